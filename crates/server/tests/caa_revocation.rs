//! CAA and revocation correctness, end to end against `fleetca serve` with `pebble-challtestsrv`
//! as the DNS server (TXT and CAA records through its management API):
//! * CAA is checked again at finalize when the authorization's validation is older than the
//!   recheck age (BR §3.2.2.8), and not within it;
//! * each tenant's CAA identities, not the default tenant's, decide validations and rechecks;
//! * revocation by another account that holds authorizations (RFC 8555 §7.6) needs, for each
//!   certificate name, a valid authorization of the same name *and* wildcard flag.
//!
//! Time is moved by restarting the server on the same port and data directory with
//! `FLEETCA_TEST_CLOCK_OFFSET_SECS` (honoured by debug builds only, see `clock::server_clock`).

mod client;
mod support;

use std::path::Path;
use std::process::Command;

use client::{b64url, csr, Client, Resp};
use serde_json::{json, Value};
use support::{ChallTestSrv, ChildGuard, Fleetca, Probe, Tool};

const PERMITS: &[&str] = &["routers.example.com"];
const HOUR: i64 = 3600;

/// Runs blocking harness code (it drives its own runtime) off the test's runtime.
fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("harness thread")
}

/// `fleetca serve` on `port` (fixed, so account and order URLs survive a restart) with the
/// server clock `offset` seconds ahead.
fn serve(f: &Fleetca, port: u16, dns_port: u16, offset: i64, log: &Path) -> ChildGuard {
    let mut cmd = Command::new(Fleetca::bin());
    cmd.args(["serve", "--data-dir"])
        .arg(f.data_dir())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(["--dns-resolver", &format!("127.0.0.1:{dns_port}")])
        .args(["--http01-port", &support::free_port().to_string()])
        .args(["--tlsalpn01-port", &support::free_port().to_string()])
        .env("FLEETCA_TEST_CLOCK_OFFSET_SECS", offset.to_string())
        .env("RUST_LOG", "info");
    f.with_database(&mut cmd);
    let mut guard = ChildGuard::spawn("fleetca", cmd, log);
    let url = format!("https://127.0.0.1:{port}/acme/default/directory");
    support::wait_for(
        &Probe::Https {
            url: &url,
            ca_pem: f.root_pem_path(),
        },
        support::STARTUP_DEADLINE,
        Some(&mut guard),
    )
    .unwrap_or_else(|e| panic!("fleetca serve did not come up: {e}"));
    if offset != 0 {
        assert!(
            guard.log().contains("FLEETCA_TEST_CLOCK_OFFSET_SECS"),
            "the server did not take the test clock offset (a release build ignores it)\n{}",
            guard.log()
        );
    }
    guard
}

/// Publishes one CAA property at `host` through challtestsrv's management API.
fn add_caa(dns: &ChallTestSrv, host: &str, tag: &str, value: &str) {
    let body = json!({"host": format!("{host}."), "policies": [{"tag": tag, "value": value}]});
    support::http_post_local(dns.management_port(), "/add-caa", &body.to_string())
        .unwrap_or_else(|e| panic!("challtestsrv add-caa: {e}"));
}

async fn account(directory: &str, root: &str) -> Client {
    let mut c = Client::new(directory, root).await;
    let r = c.new_account().await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    c
}

/// A new order for `names`: (order URL, order).
async fn order(c: &Client, names: &[&str]) -> (String, Value) {
    let r = c.new_order(names).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    (r.location(), r.json())
}

/// Answers the single authorization of `order` with dns-01 and returns it once decided.
async fn answer_dns01(c: &Client, dns: &ChallTestSrv, order: &Value) -> Value {
    let authz_url = order["authorizations"][0].as_str().expect("authz URL");
    let authz = c.post(authz_url, None).await.json();
    let ch = authz["challenges"]
        .as_array()
        .expect("challenges")
        .iter()
        .find(|c| c["type"] == "dns-01")
        .expect("dns-01")
        .clone();
    let name = authz["identifier"]["value"].as_str().expect("identifier");
    let value =
        acme_types::keyauth::dns01_txt_value(&c.key_authorization(ch["token"].as_str().unwrap()));
    dns.set_txt(&format!("_acme-challenge.{name}"), &value);
    let r = c.post(ch["url"].as_str().unwrap(), Some(&json!({}))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    c.poll(authz_url, |a| a["status"] != "pending").await
}

async fn finalize(c: &Client, order: &Value, names: &[&str]) -> Resp {
    let (csr_der, _key) = csr(names, &rcgen::PKCS_ECDSA_P256_SHA256);
    c.post(
        order["finalize"].as_str().expect("finalize URL"),
        Some(&json!({"csr": b64url(&csr_der)})),
    )
    .await
}

/// The challenge error of a decided authorization, as (problem type, detail).
fn challenge_error(authz: &Value) -> (String, String) {
    let ch = authz["challenges"]
        .as_array()
        .expect("challenges")
        .iter()
        .find(|c| c["status"] == "invalid")
        .unwrap_or_else(|| panic!("no invalid challenge: {authz}"));
    (
        ch["error"]["type"].as_str().unwrap_or("").to_string(),
        ch["error"]["detail"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn caa_is_rechecked_at_finalize_once_the_validation_is_old() {
    let Some((dns, ca)) = blocking(|| {
        support::require(
            "caa_is_rechecked_at_finalize_once_the_validation_is_old",
            &[Tool::ChallTestSrv],
        )
        .then(|| (ChallTestSrv::start(), Fleetca::init(PERMITS)))
    }) else {
        return;
    };
    let ca = std::sync::Arc::new(ca);
    let port = support::free_port();
    let dns_port = dns.dns_port();
    let start = |offset: i64, n: u32| {
        let ca = ca.clone();
        blocking(move || {
            let log = ca.scratch().join(format!("serve-{n}.log"));
            serve(&ca, port, dns_port, offset, &log)
        })
    };
    let directory = format!("https://127.0.0.1:{port}/acme/default/directory");

    // Both names validated now, with no CAA record anywhere: allowed.
    let server = start(0, 0);
    let c = account(&directory, ca.root_pem()).await;
    let (fresh_url, fresh) = order(&c, &["fresh.routers.example.com"]).await;
    let (stale_url, stale) = order(&c, &["stale.routers.example.com"]).await;
    let (_, broken) = order(&c, &["broken.routers.example.com"]).await;
    for o in [&fresh, &stale, &broken] {
        assert_eq!(answer_dns01(&c, &dns, o).await["status"], "valid");
    }
    drop(server);

    // The domain owner now forbids every CA; one name's DNS now fails.
    add_caa(&dns, "routers.example.com", "issue", ";");
    let body = json!({"host": "broken.routers.example.com."}).to_string();
    support::http_post_local(dns.management_port(), "/set-servfail", &body)
        .unwrap_or_else(|e| panic!("challtestsrv set-servfail: {e}"));

    // 6 h later the validation's CAA check still counts (BR §3.2.2.8): not rechecked, issued.
    let server = start(6 * HOUR, 1);
    let r = finalize(&c, &fresh, &["fresh.routers.example.com"]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let done = c.poll(&fresh_url, |o| o["status"] != "processing").await;
    assert_eq!(done["status"], "valid", "{done}");
    drop(server);

    // 9 h later it no longer does: CAA is checked again and forbids issuance.
    let server = start(9 * HOUR, 2);
    let before = ca.counts().await;
    let r = finalize(&c, &stale, &["stale.routers.example.com"]).await;
    assert_eq!(r.problem(), "caa", "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.status, 403);
    let p = r.json();
    assert!(
        p["detail"]
            .as_str()
            .unwrap_or("")
            .contains("stale.routers.example.com"),
        "{p}"
    );
    assert_eq!(
        p["subproblems"][0]["identifier"]["value"], "stale.routers.example.com",
        "{p}"
    );
    // Nothing signed or stored; the order stays ready (RFC 8555 §7.4), so it can be finalized
    // once the domain owner allows this CA again.
    let after = ca.counts().await;
    assert_eq!(after.certificates, before.certificates);
    assert_eq!(after.orders, before.orders);
    let o = c.post(&stale_url, None).await.json();
    assert_eq!(o["status"], "ready", "{o}");
    assert!(o.get("certificate").is_none(), "{o}");
    // A CAA lookup that fails forbids issuance too (fail closed): `dns`.
    let r = finalize(&c, &broken, &["broken.routers.example.com"]).await;
    assert_eq!(r.problem(), "dns", "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(ca.counts().await.certificates, before.certificates);
    assert!(
        !server.log().contains("certificate issued"),
        "{}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_tenant_is_checked_against_its_own_caa_identities() {
    let Some((dns, ca)) = blocking(|| {
        if !support::require(
            "each_tenant_is_checked_against_its_own_caa_identities",
            &[Tool::ChallTestSrv],
        ) {
            return None;
        }
        let ca = Fleetca::init_with(PERMITS, &["--caa-identity", "ca-a.fleetca.test"]);
        let out = ca.cli(&[
            "tenant",
            "add",
            "vendorb",
            "--permit",
            "routers.example.com",
            "--caa-identity",
            "ca-b.fleetca.test",
        ]);
        assert!(out.success(), "tenant add failed\n{out}");
        Some((ChallTestSrv::start(), ca))
    }) else {
        return;
    };
    let ca = std::sync::Arc::new(ca);
    let port = support::free_port();
    let dns_port = dns.dns_port();
    let start = |offset: i64, n: u32| {
        let ca = ca.clone();
        blocking(move || {
            let log = ca.scratch().join(format!("serve-{n}.log"));
            serve(&ca, port, dns_port, offset, &log)
        })
    };
    let dir_a = format!("https://127.0.0.1:{port}/acme/default/directory");
    let dir_b = format!("https://127.0.0.1:{port}/acme/vendorb/directory");
    add_caa(
        &dns,
        "b-only.routers.example.com",
        "issue",
        "ca-b.fleetca.test",
    );
    add_caa(
        &dns,
        "a-only.routers.example.com",
        "issue",
        "ca-a.fleetca.test",
    );

    let server = start(0, 0);
    let a = account(&dir_a, ca.root_pem()).await;
    let b = account(&dir_b, ca.root_pem()).await;
    assert_eq!(
        a.directory["meta"]["caaIdentities"],
        json!(["ca-a.fleetca.test"])
    );
    assert_eq!(
        b.directory["meta"]["caaIdentities"],
        json!(["ca-b.fleetca.test"])
    );

    // A record naming only tenant B's identity: tenant A refused, tenant B allowed.
    let (_, oa) = order(&a, &["b-only.routers.example.com"]).await;
    let authz = answer_dns01(&a, &dns, &oa).await;
    assert_eq!(authz["status"], "invalid", "{authz}");
    let (kind, detail) = challenge_error(&authz);
    assert_eq!(kind, "urn:ietf:params:acme:error:caa", "{detail}");
    assert!(detail.contains("ca-a.fleetca.test"), "{detail}");
    let (ob_url, ob) = order(&b, &["b-only.routers.example.com"]).await;
    let authz = answer_dns01(&b, &dns, &ob).await;
    assert_eq!(authz["status"], "valid", "{authz}");

    // And the other way round.
    let (_, ob2) = order(&b, &["a-only.routers.example.com"]).await;
    let authz = answer_dns01(&b, &dns, &ob2).await;
    assert_eq!(authz["status"], "invalid", "{authz}");
    assert_eq!(challenge_error(&authz).0, "urn:ietf:params:acme:error:caa");
    let (_, oa2) = order(&a, &["a-only.routers.example.com"]).await;
    assert_eq!(answer_dns01(&a, &dns, &oa2).await["status"], "valid");
    drop(server);

    // The finalize recheck uses the tenant's identities too: 9 h later B still issues.
    let _server = start(9 * HOUR, 1);
    let r = finalize(&b, &ob, &["b-only.routers.example.com"]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let done = b.poll(&ob_url, |o| o["status"] != "processing").await;
    assert_eq!(done["status"], "valid", "{done}");
}

/// Revokes `leaf` as `c` (an account, JWS with kid).
async fn revoke(c: &Client, leaf: &[u8]) -> Resp {
    c.post(
        &c.url("revokeCert"),
        Some(&json!({"certificate": b64url(leaf)})),
    )
    .await
}

/// A valid authorization of `c` for `name` (`*.` for a wildcard), through a new order.
async fn authorize(c: &Client, dns: &ChallTestSrv, name: &str) {
    let (_, o) = order(c, &[name]).await;
    c.authorize_dns01(&o, |n, v| dns.set_txt(n, v)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_by_authorization_holders_matches_names_and_wildcards() {
    let Some((dns, mut ca)) = blocking(|| {
        support::require(
            "revocation_by_authorization_holders_matches_names_and_wildcards",
            &[Tool::ChallTestSrv],
        )
        .then(|| (ChallTestSrv::start(), Fleetca::init(PERMITS)))
    }) else {
        return;
    };
    let dns_port = dns.dns_port();
    let mut ca = blocking(move || {
        ca.serve(dns_port, support::free_port(), support::free_port());
        ca
    });
    let directory = ca.directory_url();
    let root = ca.root_pem().to_string();

    // The owner orders a wildcard and a plain-name certificate.
    let owner = account(&directory, &root).await;
    let issue = |name: &'static str| {
        let owner = &owner;
        let dns = &dns;
        async move {
            let (url, o) = order(owner, &[name]).await;
            owner.authorize_dns01(&o, |n, v| dns.set_txt(n, v)).await;
            let (chain, _) = owner.finalize_and_download(&url, &o, &[name]).await;
            chain[0].clone()
        }
    };
    let wild = issue("*.w.routers.example.com").await;
    let plain = issue("p.routers.example.com").await;
    assert_eq!(ca.counts().await.revoked, 0);

    // A plain authorization does not cover the wildcard certificate.
    let holder = account(&directory, &root).await;
    authorize(&holder, &dns, "w.routers.example.com").await;
    let r = revoke(&holder, &wild).await;
    assert_eq!(
        r.problem(),
        "unauthorized",
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.status, 403);
    assert_eq!(ca.counts().await.revoked, 0);

    // A wildcard authorization does not cover the plain name.
    authorize(&holder, &dns, "*.p.routers.example.com").await;
    let r = revoke(&holder, &plain).await;
    assert_eq!(
        r.problem(),
        "unauthorized",
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(ca.counts().await.revoked, 0);

    // The matching authorizations do (RFC 8555 §7.6).
    authorize(&holder, &dns, "*.w.routers.example.com").await;
    let r = revoke(&holder, &wild).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(ca.counts().await.revoked, 1);
    authorize(&holder, &dns, "p.routers.example.com").await;
    let r = revoke(&holder, &plain).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(ca.counts().await.revoked, 2);
    ca.stop();
}
