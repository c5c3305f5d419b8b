//! Proves the interop harness itself against Pebble, the reference ACME test
//! server: the exact lego / certbot / challtestsrv invocations used against
//! fleetca in `interop_clients.rs` work against a known-good CA.

mod support;

use support::{
    certbot_certonly, certbot_revoke, free_port, lego_revoke, lego_run, openssl_text,
    openssl_verify, ChallTestSrv, Challenge, Pebble, Tool,
};

const TOOLS: &[Tool] = &[Tool::Pebble, Tool::ChallTestSrv, Tool::Openssl];

struct Env {
    // Field order = drop order: Pebble before its DNS server.
    pebble: Pebble,
    cts: ChallTestSrv,
    http01: u16,
    tlsalpn01: u16,
}

fn start() -> Env {
    let cts = ChallTestSrv::start();
    let http01 = free_port();
    let tlsalpn01 = free_port();
    let pebble = Pebble::start(cts.dns_port(), http01, tlsalpn01);
    Env {
        pebble,
        cts,
        http01,
        tlsalpn01,
    }
}

#[test]
fn pebble_challtestsrv_txt_roundtrip() {
    if !support::require("pebble_challtestsrv_txt_roundtrip", &[Tool::ChallTestSrv]) {
        return;
    }
    let cts = ChallTestSrv::start();
    cts.set_txt("_acme-challenge.x.routers.example.com", "abc");
    cts.clear_txt("_acme-challenge.x.routers.example.com");
    // The lego exec hook must work with each transport it may pick.
    for transport in ["curl", "python3", "bash"] {
        if transport != "bash" && !on_path(transport) {
            eprintln!("exec hook: {transport} not installed, not testing that transport");
            continue;
        }
        let host = format!("_acme-challenge.{transport}.routers.example.com.");
        for (action, value) in [("present", "v"), ("cleanup", "v")] {
            let mut c = std::process::Command::new("bash");
            c.arg(cts.exec_script())
                .args([action, &host, value])
                .env("FLEETCA_HOOK_TRANSPORT", transport);
            let out = support::run(c, std::time::Duration::from_secs(20));
            assert!(out.success(), "exec hook ({transport}) failed\n{out}");
        }
        let log = cts.log();
        assert!(
            log.contains(&format!("Added DNS-01 TXT challenge for Host \"{host}\""))
                && log.contains(&format!("Removed DNS-01 TXT challenge for Host \"{host}\"")),
            "{log}"
        );
    }
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

#[test]
fn pebble_certbot_http01_and_revoke() {
    if !support::require(
        "pebble_certbot_http01_and_revoke",
        &[TOOLS, &[Tool::Certbot]].concat(),
    ) {
        return;
    }
    let env = start();
    let ep = env.pebble.endpoint();
    let cert = certbot_certonly(&ep, &["dev1.routers.example.com"], env.http01)
        .unwrap_or_else(|e| panic!("certbot certonly failed\n{e}\n{}", env.pebble.log()));
    assert!(openssl_verify(
        &ep.issuing_root,
        &cert.chain_path,
        &cert.cert_path
    ));
    certbot_revoke(&ep, &cert).unwrap_or_else(|e| panic!("certbot revoke failed\n{e}"));
}

#[test]
fn pebble_certbot_ip_identifier() {
    if !support::require(
        "pebble_certbot_ip_identifier",
        &[TOOLS, &[Tool::Certbot]].concat(),
    ) {
        return;
    }
    let env = start();
    let ep = env.pebble.endpoint();
    let cert = certbot_certonly(&ep, &["127.0.0.1"], env.http01)
        .unwrap_or_else(|e| panic!("certbot certonly (IP) failed\n{e}\n{}", env.pebble.log()));
    assert!(openssl_verify(
        &ep.issuing_root,
        &cert.chain_path,
        &cert.cert_path
    ));
    let text = openssl_text(&cert.cert_path);
    assert!(text.contains("IP Address:127.0.0.1"), "{text}");
    certbot_revoke(&ep, &cert).unwrap_or_else(|e| panic!("certbot revoke (IP) failed\n{e}"));
}

#[test]
fn pebble_lego_http01_and_revoke() {
    if !support::require(
        "pebble_lego_http01_and_revoke",
        &[TOOLS, &[Tool::Lego]].concat(),
    ) {
        return;
    }
    let env = start();
    let ep = env.pebble.endpoint();
    let cert = lego_run(
        &ep,
        &["dev2.routers.example.com"],
        Challenge::Http01 { port: env.http01 },
    )
    .unwrap_or_else(|e| panic!("lego http-01 failed\n{e}\n{}", env.pebble.log()));
    assert!(openssl_verify(
        &ep.issuing_root,
        &cert.issuer_path,
        &cert.leaf_path
    ));
    lego_revoke(&ep, &cert).unwrap_or_else(|e| panic!("lego revoke failed\n{e}"));
    let again = lego_revoke(&ep, &cert).expect_err("second revoke must fail");
    assert!(again.combined().contains("alreadyRevoked"), "{again}");
}

#[test]
fn pebble_lego_tlsalpn01() {
    if !support::require("pebble_lego_tlsalpn01", &[TOOLS, &[Tool::Lego]].concat()) {
        return;
    }
    let env = start();
    let ep = env.pebble.endpoint();
    let cert = lego_run(
        &ep,
        &["dev3.routers.example.com"],
        Challenge::TlsAlpn01 {
            port: env.tlsalpn01,
        },
    )
    .unwrap_or_else(|e| panic!("lego tls-alpn-01 failed\n{e}\n{}", env.pebble.log()));
    assert!(openssl_verify(
        &ep.issuing_root,
        &cert.issuer_path,
        &cert.leaf_path
    ));
}

#[test]
fn pebble_lego_dns01_wildcard() {
    if !support::require(
        "pebble_lego_dns01_wildcard",
        &[TOOLS, &[Tool::Lego]].concat(),
    ) {
        return;
    }
    let env = start();
    let ep = env.pebble.endpoint();
    let cert = lego_run(
        &ep,
        &["*.lab.routers.example.com", "lab.routers.example.com"],
        Challenge::Dns01 { cts: &env.cts },
    )
    .unwrap_or_else(|e| {
        panic!(
            "lego dns-01 failed\n{e}\n{}\n{}",
            env.cts.log(),
            env.pebble.log()
        )
    });
    assert!(openssl_verify(
        &ep.issuing_root,
        &cert.issuer_path,
        &cert.leaf_path
    ));
    let text = openssl_text(&cert.leaf_path);
    assert!(text.contains("DNS:*.lab.routers.example.com"), "{text}");
    lego_revoke(&ep, &cert).unwrap_or_else(|e| panic!("lego revoke failed\n{e}"));
}
