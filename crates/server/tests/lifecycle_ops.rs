//! Operator side of the certificate lifecycle against a running `fleetca serve`: the delegated
//! OCSP responder (RFC 6960 §4.2.2.2) checked with `openssl ocsp` and pkilint, fleet-wide
//! revocation (`fleetca cert revoke-many`) visible in OCSP and the CRL right after, `fleetca
//! cert expiring`, and `fleetca prune`.

mod client;
mod support;

use client::Client;
use fleetca::ca::status::CRL_PUBLISH_INTERVAL;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{ChallTestSrv, Fleetca, Tool};

const PERMITS: &[&str] = &["routers.example.com"];

struct Env {
    ca: Fleetca,
    dns: ChallTestSrv,
    root: String,
}

impl Env {
    fn start(test: &'static str, init: &'static [&'static str]) -> Option<Env> {
        std::thread::spawn(move || {
            if !support::require(test, &[Tool::ChallTestSrv, Tool::Openssl]) {
                return None;
            }
            let dns = ChallTestSrv::start();
            let mut ca = Fleetca::init_with(PERMITS, init);
            ca.serve(dns.dns_port(), support::free_port(), support::free_port());
            let root = ca.root_pem().to_string();
            Some(Env { ca, dns, root })
        })
        .join()
        .expect("harness thread")
    }

    async fn client(&self) -> Client {
        let mut c = Client::new(&self.ca.directory_url(), &self.root).await;
        assert_eq!(c.new_account().await.status, 201);
        c
    }

    /// Orders, validates with dns-01, finalizes; returns (leaf DER, issuing CA DER).
    async fn issue(&self, c: &Client, name: &str) -> (Vec<u8>, Vec<u8>) {
        let body = json!({"identifiers": [{"type": "dns", "value": name}]});
        let r = c.post(&c.url("newOrder"), Some(&body)).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let order_url = r.location();
        let order = r.json();
        c.authorize_dns01(&order, |n, v| self.dns.set_txt(n, v))
            .await;
        let (ders, _) = c.finalize_and_download(&order_url, &order, &[name]).await;
        (ders[0].clone(), ders[1].clone())
    }

    fn write_pem(&self, name: &str, der: &[u8]) -> PathBuf {
        let p = self.ca.scratch().join(name);
        std::fs::write(&p, pki::der_to_pem("CERTIFICATE", der)).unwrap();
        p
    }

    /// `openssl ocsp` for `leaf` with nonce, verified against the root; (ok, output).
    fn ocsp(&self, leaf: &Path, issuer: &Path, respout: Option<&Path>) -> (bool, String) {
        let url = format!(
            "{}/ocsp/default",
            self.ca.plain_http_url().expect("plain HTTP URL")
        );
        let mut args: Vec<String> = [
            "ocsp",
            "-issuer",
            issuer.to_str().unwrap(),
            "-cert",
            leaf.to_str().unwrap(),
            "-url",
            &url,
            "-resp_text",
            "-CAfile",
            self.ca.root_pem_path().to_str().unwrap(),
            "-verify_other",
            issuer.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(out) = respout {
            args.push("-respout".into());
            args.push(out.to_str().unwrap().into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        openssl(&args)
    }

    /// The full CRL as `openssl crl -text`, signature checked with the issuing CA.
    async fn crl_text(&self, issuer: &Path, name: &str) -> String {
        let url = format!(
            "{}/crl/default.crl",
            self.ca.plain_http_url().expect("plain HTTP URL")
        );
        let der = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
        let f = self.ca.scratch().join(name);
        std::fs::write(&f, &der).unwrap();
        let (ok, text) = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            f.to_str().unwrap(),
            "-CAfile",
            issuer.to_str().unwrap(),
            "-noout",
            "-text",
        ]);
        assert!(ok && text.contains("verify OK"), "{text}");
        text
    }

    fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.ca.cli(args);
        assert!(out.success(), "fleetca {args:?} failed\n{out}");
        serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("fleetca {args:?}: not JSON ({e})\n{out}"))
    }
}

fn openssl(args: &[&str]) -> (bool, String) {
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(args);
    let out = support::run(cmd, std::time::Duration::from_secs(30));
    (out.success(), out.combined())
}

fn serial_hex(der: &[u8]) -> String {
    pki::cert_info::serial_of(der)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn delegated_ocsp_responder_signs_and_verifies() {
    let Some(env) = Env::start(
        "delegated_ocsp_responder_signs_and_verifies",
        &["--ocsp-signer"],
    ) else {
        return;
    };
    let ca_dir = env.ca.data_dir().join("ca").join("default");
    let key = ca_dir.join("ocsp-key.pem");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let responder_pem = std::fs::read_to_string(ca_dir.join("ocsp-cert.pem")).unwrap();
    let responder = pki::cert_info::pem_to_ders(&responder_pem).unwrap()[0].clone();
    let (_, x) = x509_parser::parse_x509_certificate(&responder).unwrap();
    let days = (x.validity().not_after.timestamp() - x.validity().not_before.timestamp()) / 86400;
    assert!((89..=91).contains(&days), "{days} days");

    let c = env.client().await;
    let (leaf, issuing) = env.issue(&c, "dlg1.routers.example.com").await;
    let leaf_pem = env.write_pem("dlg-leaf.pem", &leaf);
    let issuer_pem = env.write_pem("dlg-issuer.pem", &issuing);
    let resp = env.ca.scratch().join("dlg-resp.der");
    let (ok, text) = env.ocsp(&leaf_pem, &issuer_pem, Some(&resp));
    assert!(ok, "{text}\n{}", env.ca.log());
    assert!(text.contains(": good"), "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
    // The responder certificate travels in `certs`: openssl prints it.
    assert!(text.contains("OCSP Responder"), "{text}");
    assert!(text.contains("OCSP Signing"), "{text}");
    assert!(text.contains("OCSP No Check"), "{text}");
    let findings = support::pkilint::serious(
        "delegated_ocsp_responder_signs_and_verifies",
        "lint_ocsp_response",
        &["--document-format", "DER"],
        &resp,
    );
    assert!(findings.is_empty(), "pkilint OCSP findings: {findings:?}");

    // Revoked by serial through the fleet-wide command: the next answer says so, still
    // signed by the delegate.
    let serial = serial_hex(&leaf);
    let v = env.cli_json(&[
        "cert",
        "revoke-many",
        "--serial",
        &serial,
        "--reason",
        "keyCompromise",
        "--json",
    ]);
    assert_eq!(v["revoked"], json!([serial]), "{v}");
    let (ok, text) = env.ocsp(&leaf_pem, &issuer_pem, Some(&resp));
    assert!(ok, "{text}");
    assert!(text.contains(": revoked"), "{text}");
    assert!(text.contains("Reason: keyCompromise"), "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
    let findings = support::pkilint::serious(
        "delegated_ocsp_responder_signs_and_verifies",
        "lint_ocsp_response",
        &["--document-format", "DER"],
        &resp,
    );
    assert!(findings.is_empty(), "pkilint OCSP findings: {findings:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_many_by_suffix_account_and_tenant() {
    let Some(env) = Env::start("revoke_many_by_suffix_account_and_tenant", &[]) else {
        return;
    };
    let c1 = env.client().await;
    let c2 = env.client().await;
    let (a, issuing) = env.issue(&c1, "a.plant1.routers.example.com").await;
    let (b, _) = env.issue(&c1, "b.plant1.routers.example.com").await;
    let (cc, _) = env.issue(&c1, "c.plant2.routers.example.com").await;
    let (d, _) = env.issue(&c2, "d.plant3.routers.example.com").await;
    let issuer_pem = env.write_pem("issuer.pem", &issuing);
    let (sa, sb, sc, sd) = (
        serial_hex(&a),
        serial_hex(&b),
        serial_hex(&cc),
        serial_hex(&d),
    );

    // Expiring: all four within 60 days (30-day default lifetime), none within a day.
    let v = env.cli_json(&["cert", "expiring", "--within", "60d", "--json"]);
    assert_eq!(v.as_array().unwrap().len(), 4, "{v}");
    let v = env.cli_json(&[
        "cert", "expiring", "--within", "1d", "--tenant", "default", "--json",
    ]);
    assert_eq!(v, json!([]));

    // --all needs --tenant; a dry run changes nothing.
    let out = env
        .ca
        .cli(&["cert", "revoke-many", "--all", "--reason", "superseded"]);
    assert!(!out.success(), "{out}");
    let v = env.cli_json(&[
        "cert",
        "revoke-many",
        "--suffix",
        "plant1.routers.example.com",
        "--reason",
        "superseded",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(v["would_revoke"].as_array().unwrap().len(), 2, "{v}");
    let text = env.crl_text(&issuer_pem, "crl0.der").await;
    assert!(!text.contains(&sa.to_uppercase()), "{text}");

    // By suffix: a and b, visible in OCSP and the CRL at once.
    let v = env.cli_json(&[
        "cert",
        "revoke-many",
        "--suffix",
        "plant1.routers.example.com",
        "--reason",
        "superseded",
        "--json",
    ]);
    let mut got: Vec<String> = serde_json::from_value(v["revoked"].clone()).unwrap();
    got.sort();
    let mut want = vec![sa.clone(), sb.clone()];
    want.sort();
    assert_eq!(got, want, "{v}");
    let a_pem = env.write_pem("a.pem", &a);
    let (ok, text) = env.ocsp(&a_pem, &issuer_pem, None);
    assert!(
        ok && text.contains(": revoked") && text.contains("Reason: superseded"),
        "{text}"
    );
    let text = env.crl_text(&issuer_pem, "crl1.der").await;
    assert!(
        text.contains(&sa.to_uppercase()) && text.contains(&sb.to_uppercase()),
        "{text}"
    );
    assert!(!text.contains(&sc.to_uppercase()), "{text}");

    // By account: d's account only.
    let d_acct = env.cli_json(&["cert", "list", "--serial", &sd, "--json"])[0]["account_id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = env.cli_json(&[
        "cert",
        "revoke-many",
        "--account",
        &d_acct,
        "--reason",
        "cessationOfOperation",
        "--json",
    ]);
    assert_eq!(v["revoked"], json!([sd]), "{v}");
    let d_pem = env.write_pem("d.pem", &d);
    let (ok, text) = env.ocsp(&d_pem, &issuer_pem, None);
    assert!(ok && text.contains(": revoked"), "{text}");

    // Expiring now lists only c (revoked ones are no longer in use).
    let v = env.cli_json(&["cert", "expiring", "--within", "60d", "--json"]);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["serial"], json!(sc));

    // The whole issuing CA: only c was left; the others count as already revoked.
    let v = env.cli_json(&[
        "cert",
        "revoke-many",
        "--tenant",
        "default",
        "--all",
        "--reason",
        "privilegeWithdrawn",
        "--json",
    ]);
    assert_eq!(v["revoked"], json!([sc]), "{v}");
    assert_eq!(v["already_revoked"].as_array().unwrap().len(), 3, "{v}");
    let c_pem = env.write_pem("c.pem", &cc);
    let (ok, text) = env.ocsp(&c_pem, &issuer_pem, None);
    assert!(ok && text.contains(": revoked"), "{text}");
    let text = env.crl_text(&issuer_pem, "crl2.der").await;
    for s in [&sa, &sb, &sc, &sd] {
        assert!(text.contains(&s.to_uppercase()), "{s}: {text}");
    }

    // Each revocation is in the audit log.
    use fleetca::sa::AuditStore;
    let db = fleetca::sa::SqliteStorage::open(&env.ca.data_dir().join("fleetca.db"))
        .await
        .unwrap();
    let audit = db.recent_audit(100).await.unwrap();
    let revoked: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "cert.revoke")
        .filter_map(|e| e.object.clone())
        .collect();
    for s in [&sa, &sb, &sc, &sd] {
        assert!(revoked.contains(s), "{s} not audited: {audit:?}");
    }

    // renew-early takes the same selectors.
    let out = env
        .ca
        .cli(&["renew-early", "--suffix", "plant2.routers.example.com"]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains(&sc), "{out}");

    // A pruning pass with nothing old enough deletes nothing and keeps every certificate.
    let v = env.cli_json(&["prune", "--json"]);
    assert_eq!(
        v,
        json!({"certificates": 0, "orders": 0, "authzs": 0, "challenges": 0})
    );
    let v = env.cli_json(&["cert", "list", "--json"]);
    assert_eq!(v.as_array().unwrap().len(), 4);
}

/// The serials (lower-case hex) on the full CRL served now.
async fn crl_serials(env: &Env) -> Vec<String> {
    let url = format!(
        "{}/crl/default.crl",
        env.ca.plain_http_url().expect("plain HTTP URL")
    );
    let der = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&der).expect("CRL parses");
    crl.iter_revoked_certificates()
        .map(|r| r.raw_serial().iter().map(|b| format!("{b:02x}")).collect())
        .collect()
}

/// The CRLs the `default` CA signed so far, from `/metrics` (read off the runtime: the
/// scrape blocks).
fn crls_signed(env: &Env) -> f64 {
    let text = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            s.spawn(|| support::metrics::scrape(&env.ca))
                .join()
                .expect("scrape")
        })
    });
    support::metrics::sum(
        &text,
        "fleetca_crl_generated_total",
        &["tenant=\"default\""],
    )
}

/// A burst of revocations asks the CA's status publisher to re-sign the CRL instead of each
/// signing it: the number of CRL signatures stays within the publisher's bound (one round at
/// once, then at most one per interval), and the CRL served soon after lists every serial.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_revocations_signs_a_bounded_number_of_crls() {
    const BURST: usize = 8;
    let Some(env) = Env::start("a_burst_of_revocations_signs_a_bounded_number_of_crls", &[]) else {
        return;
    };
    let c = env.client().await;
    let mut leaves = Vec::new();
    for i in 0..BURST {
        let (leaf, _) = env
            .issue(&c, &format!("burst{i}.routers.example.com"))
            .await;
        leaves.push(leaf);
    }
    let before = crls_signed(&env);
    let started = std::time::Instant::now();
    for leaf in &leaves {
        let r = c
            .post(
                &c.url("revokeCert"),
                Some(&json!({"certificate": client::b64url(leaf), "reason": 4})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let burst = started.elapsed();

    // Every revoked serial is on the served CRL within the publisher's promised delay.
    let want: Vec<String> = leaves.iter().map(|l| serial_hex(l)).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let listed = crl_serials(&env).await;
        if want.iter().all(|s| listed.contains(s)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revoked serials missing from the CRL: {want:?} vs {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // One round may start at the first revocation and one more per interval after it (the
    // burst's own length, measured, sets how many intervals it spanned).
    let signed = crls_signed(&env) - before;
    let rounds = 2.0 + (burst.as_secs_f64() / CRL_PUBLISH_INTERVAL.as_secs_f64()).ceil();
    assert!(
        signed <= rounds,
        "{BURST} revocations in {burst:?} signed {signed} CRLs (bound {rounds})"
    );
}
