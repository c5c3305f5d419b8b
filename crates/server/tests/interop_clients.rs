//! Real-client interop: certbot and lego against a live `fleetca serve`.
//!
//! Each test starts its own challtestsrv (mock DNS: every name -> 127.0.0.1)
//! and its own fleetca instance on free ports, so they run in parallel.
//! The same client invocations are proven against Pebble in
//! `interop_pebble.rs`.

mod support;

use support::{
    certbot_certonly, certbot_revoke, free_port, lego_revoke, lego_run, openssl_text,
    openssl_verify, ChallTestSrv, Challenge, Fleetca, Tool,
};

const PERMITS: &[&str] = &["routers.example.com", "10.0.0.0/8"];

struct Env {
    // Field order = drop order: the CA before its DNS server.
    ca: Fleetca,
    cts: ChallTestSrv,
    http01: u16,
    tlsalpn01: u16,
}

fn start(permits: &[&str]) -> Env {
    let cts = ChallTestSrv::start();
    let http01 = free_port();
    let tlsalpn01 = free_port();
    let mut ca = Fleetca::init(permits);
    ca.serve(cts.dns_port(), http01, tlsalpn01);
    Env {
        ca,
        cts,
        http01,
        tlsalpn01,
    }
}

fn tools(test: &str, client: Tool) -> bool {
    support::require(test, &[Tool::ChallTestSrv, Tool::Openssl, client])
}

/// (a) certbot http-01, chain verifies against `fleetca ca root`, revoke.
#[test]
fn certbot_http01_issue_verify_revoke() {
    if !tools("certbot_http01_issue_verify_revoke", Tool::Certbot) {
        return;
    }
    let env = start(PERMITS);
    let ep = env.ca.endpoint();
    let cert = certbot_certonly(&ep, &["dev1.routers.example.com"], env.http01)
        .unwrap_or_else(|e| panic!("certbot certonly failed\n{e}\n{}", env.ca.log()));
    assert!(
        openssl_verify(env.ca.root_pem_path(), &cert.chain_path, &cert.cert_path),
        "certbot's chain does not verify against `fleetca ca root`"
    );
    let text = openssl_text(&cert.cert_path);
    assert!(text.contains("DNS:dev1.routers.example.com"), "{text}");
    certbot_revoke(&ep, &cert)
        .unwrap_or_else(|e| panic!("certbot revoke failed\n{e}\n{}", env.ca.log()));
    support::revocation::assert_revoked(&env.ca, &cert.cert_path, &cert.chain_path);
}

/// Shared body of (b)-(d): issue with lego, verify, revoke, revoke again.
fn lego_issue_verify_revoke(env: &Env, domains: &[&str], challenge: Challenge<'_>) {
    let ep = env.ca.endpoint();
    let cert = lego_run(&ep, domains, challenge)
        .unwrap_or_else(|e| panic!("lego run failed\n{e}\n{}\n{}", env.ca.log(), env.cts.log()));
    assert!(
        openssl_verify(env.ca.root_pem_path(), &cert.issuer_path, &cert.leaf_path),
        "lego's chain does not verify against `fleetca ca root`"
    );
    let text = openssl_text(&cert.leaf_path);
    for d in domains {
        assert!(
            text.contains(&format!("DNS:{d}")),
            "SAN {d} missing:\n{text}"
        );
    }
    lego_revoke(&ep, &cert).unwrap_or_else(|e| panic!("lego revoke failed\n{e}\n{}", env.ca.log()));
    support::revocation::assert_revoked(&env.ca, &cert.leaf_path, &cert.issuer_path);
    // RFC 8555 7.6: a second revocation is refused with alreadyRevoked.
    let again = lego_revoke(&ep, &cert).expect_err("second revoke must fail");
    assert!(
        again.combined().contains("alreadyRevoked"),
        "second revoke should fail with alreadyRevoked\n{again}"
    );
}

/// (b) lego http-01.
#[test]
fn lego_http01_issue_verify_revoke() {
    if !tools("lego_http01_issue_verify_revoke", Tool::Lego) {
        return;
    }
    let env = start(PERMITS);
    let port = env.http01;
    lego_issue_verify_revoke(
        &env,
        &["dev2.routers.example.com"],
        Challenge::Http01 { port },
    );
}

/// (c) lego tls-alpn-01.
#[test]
fn lego_tlsalpn01_issue_verify_revoke() {
    if !tools("lego_tlsalpn01_issue_verify_revoke", Tool::Lego) {
        return;
    }
    let env = start(PERMITS);
    let port = env.tlsalpn01;
    lego_issue_verify_revoke(
        &env,
        &["dev3.routers.example.com"],
        Challenge::TlsAlpn01 { port },
    );
}

/// (d) lego dns-01 with a wildcard (TXT records via challtestsrv).
#[test]
fn lego_dns01_wildcard_issue_verify_revoke() {
    if !tools("lego_dns01_wildcard_issue_verify_revoke", Tool::Lego) {
        return;
    }
    let env = start(PERMITS);
    lego_issue_verify_revoke(
        &env,
        &["*.lab.routers.example.com", "lab.routers.example.com"],
        Challenge::Dns01 { cts: &env.cts },
    );
}

/// (e) a name outside the permitted subtrees is refused at newOrder.
#[test]
fn lego_outside_permitted_subtree_is_rejected() {
    if !tools("lego_outside_permitted_subtree_is_rejected", Tool::Lego) {
        return;
    }
    let env = start(PERMITS);
    let ep = env.ca.endpoint();
    let err = match lego_run(
        &ep,
        &["evil.example.net"],
        Challenge::Http01 { port: env.http01 },
    ) {
        Ok(cert) => panic!(
            "fleetca issued for evil.example.net\n{}\n{}",
            cert.output,
            openssl_text(&cert.leaf_path)
        ),
        Err(e) => e,
    };
    assert!(
        err.combined().contains("rejectedIdentifier"),
        "expected urn:ietf:params:acme:error:rejectedIdentifier\n{err}\n{}",
        env.ca.log()
    );
}

/// (f) RFC 8738 IP identifier over http-01.
///
/// The VA connects to the IP itself, so use 127.0.0.1 with a separate
/// instance permitting 127.0.0.0/8. The client is certbot (>= 5.0,
/// `--ip-address`): Debian 12's lego 4.9.1 predates IP identifier support
/// (it sends `{"type":"dns","value":"127.0.0.1"}`, and drops IP SANs from a
/// `--csr`), see `interop_pebble.rs`.
#[test]
fn ip_identifier_http01_issue_verify_revoke() {
    if !tools("ip_identifier_http01_issue_verify_revoke", Tool::Certbot) {
        return;
    }
    let env = start(&["127.0.0.0/8", "routers.example.com"]);
    let ep = env.ca.endpoint();
    let cert = certbot_certonly(&ep, &["127.0.0.1"], env.http01)
        .unwrap_or_else(|e| panic!("certbot (IP) failed\n{e}\n{}", env.ca.log()));
    assert!(
        openssl_verify(env.ca.root_pem_path(), &cert.chain_path, &cert.cert_path),
        "IP certificate chain does not verify against `fleetca ca root`"
    );
    let text = openssl_text(&cert.cert_path);
    assert!(text.contains("IP Address:127.0.0.1"), "{text}");
    certbot_revoke(&ep, &cert)
        .unwrap_or_else(|e| panic!("certbot revoke failed\n{e}\n{}", env.ca.log()));
    support::revocation::assert_revoked(&env.ca, &cert.cert_path, &cert.chain_path);
}
