//! Certificate lifecycle against a running `fleetca serve`: profiles (draft-aaron-acme-profiles),
//! ACME Renewal Information (RFC 9773) with `replaces` and `fleetca renew-early`, and the
//! OCSP responder (RFC 6960) checked with `openssl ocsp` before and after a revocation.

mod client;
mod support;

use client::{b64url, Client, Resp};
use fleetca::sa::TableCounts;
use serde_json::{json, Value};
use support::{ChallTestSrv, Fleetca, Tool};
use x509_parser::extensions::{GeneralName, ParsedExtension};

const PERMITS: &[&str] = &["routers.example.com"];

struct Env {
    ca: Fleetca,
    dns: ChallTestSrv,
    root: String,
}

impl Env {
    fn start(test: &'static str) -> Option<Env> {
        Self::start_with(test, &[])
    }

    fn start_with(test: &'static str, extra: &'static [&'static str]) -> Option<Env> {
        std::thread::spawn(move || {
            if !support::require(test, &[Tool::ChallTestSrv]) {
                return None;
            }
            let dns = ChallTestSrv::start();
            let mut ca = Fleetca::init(PERMITS);
            ca.serve_with(
                dns.dns_port(),
                support::free_port(),
                support::free_port(),
                extra,
            );
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

    async fn counts(&self) -> TableCounts {
        self.ca.counts().await
    }

    async fn new_order(&self, c: &Client, names: &[&str], extra: Value) -> Resp {
        let mut body = json!({
            "identifiers": names.iter().map(|n| json!({"type": "dns", "value": n})).collect::<Vec<_>>()
        });
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        c.post(&c.url("newOrder"), Some(&body)).await
    }

    /// Orders, validates with dns-01, finalizes and downloads; returns the leaf DER.
    async fn issue(&self, c: &Client, names: &[&str], extra: Value) -> (Vec<u8>, Value) {
        let r = self.new_order(c, names, extra).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let order_url = r.location();
        let order = r.json();
        c.authorize_dns01(&order, |n, v| self.dns.set_txt(n, v))
            .await;
        let (ders, order) = c.finalize_and_download(&order_url, &order, names).await;
        (ders[0].clone(), order)
    }

    fn renewal_info_url(&self, c: &Client, leaf: &[u8]) -> String {
        format!("{}/{}", c.url("renewalInfo"), cert_id(leaf))
    }
}

/// RFC 9773 §4.1 certID of a certificate.
fn cert_id(der: &[u8]) -> String {
    let (_, x) = x509_parser::parse_x509_certificate(der).unwrap();
    let aki = x
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("AKI");
    acme_types::ari::CertId::from_unsigned_serial(&aki, x.raw_serial()).to_string()
}

/// (validity in seconds, has CRL DP, OCSP URLs in AIA)
fn revocation_pointers(der: &[u8]) -> (i64, bool, Vec<String>) {
    let (_, x) = x509_parser::parse_x509_certificate(der).unwrap();
    let v = x.validity();
    let secs = v.not_after.timestamp() - v.not_before.timestamp();
    let mut cdp = false;
    let mut ocsp = Vec::new();
    for e in x.extensions() {
        match e.parsed_extension() {
            ParsedExtension::CRLDistributionPoints(_) => cdp = true,
            ParsedExtension::AuthorityInfoAccess(a) => {
                for d in &a.accessdescs {
                    if d.access_method.to_id_string() == "1.3.6.1.5.5.7.48.1" {
                        if let GeneralName::URI(u) = d.access_location {
                            ocsp.push(u.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (secs, cdp, ocsp)
}

async fn get(c: &Client, url: &str) -> (u16, Option<String>, Value) {
    let r = c.http.get(url).send().await.expect("GET");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = r.json().await.unwrap_or(Value::Null);
    (status, retry, body)
}

fn unix(rfc3339: &Value) -> i64 {
    time::OffsetDateTime::parse(
        rfc3339.as_str().expect("time string"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339")
    .unix_timestamp()
}

#[tokio::test(flavor = "multi_thread")]
async fn profiles_in_directory_orders_and_certificates() {
    let Some(env) = Env::start("profiles_in_directory_orders_and_certificates") else {
        return;
    };
    let c = env.client().await;
    let profiles = &c.directory["meta"]["profiles"];
    assert!(profiles["default"].is_string(), "{}", c.directory);
    assert!(profiles["shortlived"].is_string(), "{}", c.directory);

    // An unknown profile is refused and nothing is stored.
    let before = env.counts().await;
    let r = env
        .new_order(
            &c,
            &["p0.routers.example.com"],
            json!({"profile": "forever"}),
        )
        .await;
    assert_eq!((r.status, r.problem().as_str()), (400, "malformed"));
    assert_eq!(env.counts().await, before);

    // shortlived: at most 7 days (BR §1.6.1) whatever the CSR, no CRL DP, no OCSP pointer.
    let (leaf, order) = env
        .issue(
            &c,
            &["p1.routers.example.com"],
            json!({"profile": "shortlived"}),
        )
        .await;
    assert_eq!(order["profile"], "shortlived");
    let (secs, cdp, ocsp) = revocation_pointers(&leaf);
    assert!(secs < 7 * 86400, "shortlived validity {secs}s");
    assert!(
        !cdp && ocsp.is_empty(),
        "shortlived has no revocation pointers"
    );

    // default (no profile named): the configured lifetime, CRL DP and OCSP URL.
    let (leaf, order) = env.issue(&c, &["p2.routers.example.com"], json!({})).await;
    assert_eq!(order["profile"], "default");
    let (secs, cdp, ocsp) = revocation_pointers(&leaf);
    assert!(secs > 20 * 86400, "default validity {secs}s");
    assert!(cdp);
    assert_eq!(ocsp.len(), 1);
    assert!(ocsp[0].ends_with("/ocsp/default"), "{ocsp:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn renewal_info_replaces_and_renew_early() {
    let Some(env) = Env::start("renewal_info_replaces_and_renew_early") else {
        return;
    };
    let c = env.client().await;
    let names = ["ari1.routers.example.com"];
    let (leaf, _) = env.issue(&c, &names, json!({})).await;
    let url = env.renewal_info_url(&c, &leaf);

    // RFC 9773 §4.2: a window inside the middle third of the validity period, Retry-After.
    let (status, retry, body) = get(&c, &url).await;
    assert_eq!(status, 200, "{body}");
    assert!(retry.is_some_and(|r| r.parse::<u64>().unwrap() > 0));
    let (_, x) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    let (nb, na) = (
        x.validity().not_before.timestamp(),
        x.validity().not_after.timestamp(),
    );
    let (start, end) = (
        unix(&body["suggestedWindow"]["start"]),
        unix(&body["suggestedWindow"]["end"]),
    );
    let third = (na - nb) / 3;
    assert!(
        start >= nb + third && end <= na - third + 1 && start < end,
        "{body}"
    );

    // Malformed certID: 400; a well-formed one this CA did not issue: 404.
    let (status, _, _) = get(&c, &format!("{}/not-a-cert-id", c.url("renewalInfo"))).await;
    assert_eq!(status, 400);
    let (status, _, _) = get(
        &c,
        &format!(
            "{}/aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE",
            c.url("renewalInfo")
        ),
    )
    .await;
    assert_eq!(status, 404);

    // replaces (RFC 9773 §5): another account may not replace it; no shared name is refused.
    let other = env.client().await;
    let r = env
        .new_order(&other, &names, json!({"replaces": cert_id(&leaf)}))
        .await;
    assert_eq!(r.problem(), "unauthorized", "{}", r.json());
    let r = env
        .new_order(
            &c,
            &["ari2.routers.example.com"],
            json!({"replaces": cert_id(&leaf)}),
        )
        .await;
    assert_eq!(r.problem(), "malformed", "{}", r.json());
    // The first replacing order is accepted; a second while it lives is alreadyReplaced.
    let r = env
        .new_order(&c, &names, json!({"replaces": cert_id(&leaf)}))
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let r = env
        .new_order(&c, &names, json!({"replaces": cert_id(&leaf)}))
        .await;
    assert_eq!(r.problem(), "alreadyReplaced", "{}", r.json());

    // renew-early moves the window to now, immediately visible over ARI.
    let serial = pki::cert_info::serial_of(&leaf).expect("serial");
    let serial_hex: String = serial.iter().map(|b| format!("{b:02x}")).collect();
    let mut cmd = std::process::Command::new(Fleetca::bin());
    cmd.args(["renew-early", "--data-dir"])
        .arg(env.ca.data_dir())
        .args(["--serial", &serial_hex]);
    env.ca.with_database(&mut cmd);
    let out = support::run(cmd, std::time::Duration::from_secs(30));
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains(&serial_hex), "{out}");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (_, _, body) = get(&c, &url).await;
    let start = unix(&body["suggestedWindow"]["start"]);
    assert!(start <= now + 5 && start < nb + third, "{body}");

    // With --spread the window opens now and stays open for the spread, so a fleet's ARI
    // clients (each picking a random moment inside it, RFC 9773 §4.2) arrive evenly.
    let mut cmd = std::process::Command::new(Fleetca::bin());
    cmd.args(["renew-early", "--data-dir"])
        .arg(env.ca.data_dir())
        .args(["--serial", &serial_hex, "--spread", "2h"]);
    env.ca.with_database(&mut cmd);
    let out = support::run(cmd, std::time::Duration::from_secs(30));
    assert!(out.success(), "{out}");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (_, _, body) = get(&c, &url).await;
    let (start, end) = (
        unix(&body["suggestedWindow"]["start"]),
        unix(&body["suggestedWindow"]["end"]),
    );
    assert!((now - 30..=now + 5).contains(&start), "{body}");
    assert!(
        (start + 7200 - 5..=start + 7200 + 5).contains(&end),
        "{body}"
    );

    // A selector is required.
    let mut cmd = std::process::Command::new(Fleetca::bin());
    cmd.args(["renew-early", "--data-dir"])
        .arg(env.ca.data_dir());
    assert!(!support::run(cmd, std::time::Duration::from_secs(30)).success());
}

fn openssl(args: &[&str]) -> (bool, String) {
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(args);
    let out = support::run(cmd, std::time::Duration::from_secs(30));
    (out.success(), out.combined())
}

#[tokio::test(flavor = "multi_thread")]
async fn ocsp_good_then_revoked_with_openssl() {
    let Some(env) = Env::start("ocsp_good_then_revoked_with_openssl") else {
        return;
    };
    if !support::require("ocsp_good_then_revoked_with_openssl", &[Tool::Openssl]) {
        return;
    }
    let c = env.client().await;
    let (leaf, order) = env
        .issue(&c, &["ocsp1.routers.example.com"], json!({}))
        .await;
    let chain = String::from_utf8(
        c.post(order["certificate"].as_str().unwrap(), None)
            .await
            .body,
    )
    .unwrap();
    let issuing = pki::cert_info::pem_to_ders(&chain).unwrap()[1].clone();
    let dir = env.ca.scratch();
    let leaf_pem = dir.join("ocsp-leaf.pem");
    let issuer_pem = dir.join("ocsp-issuer.pem");
    std::fs::write(&leaf_pem, pki::der_to_pem("CERTIFICATE", &leaf)).unwrap();
    std::fs::write(&issuer_pem, pki::der_to_pem("CERTIFICATE", &issuing)).unwrap();
    let base = env.ca.plain_http_url().expect("plain HTTP URL in the log");
    let url = format!("{base}/ocsp/default");
    let (leaf_s, issuer_s, root_s) = (
        leaf_pem.to_str().unwrap(),
        issuer_pem.to_str().unwrap(),
        env.ca.root_pem_path().to_str().unwrap(),
    );
    let query = |extra: &'static [&'static str]| {
        let mut args = vec![
            "ocsp",
            "-issuer",
            issuer_s,
            "-cert",
            leaf_s,
            "-url",
            &url,
            "-resp_text",
            "-CAfile",
            root_s,
            "-verify_other",
            issuer_s,
        ];
        args.extend_from_slice(extra);
        openssl(&args)
    };

    // Good, signed by the issuing CA, nonce echoed (openssl checks it), thisUpdate/nextUpdate.
    let (ok, text) = query(&[]);
    assert!(ok, "{text}\n{}", env.ca.log());
    assert!(text.contains(": good"), "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(text.contains("Next Update:"), "{text}");
    assert!(!text.contains("WARNING: no nonce"), "{text}");

    // GET (RFC 6960 Appendix A.1) without a nonce is cacheable: Cache-Control, Last-Modified,
    // Expires.
    let req_path = dir.join("ocsp-req.der");
    let (ok, text) = openssl(&[
        "ocsp",
        "-issuer",
        issuer_s,
        "-cert",
        leaf_s,
        "-no_nonce",
        "-reqout",
        req_path.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let req_der = std::fs::read(&req_path).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&req_der);
    let r = reqwest::Client::new()
        .get(format!("{url}/{b64}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "application/ocsp-response");
    assert!(
        h["cache-control"].to_str().unwrap().contains("max-age="),
        "{h:?}"
    );
    assert!(
        h.contains_key("last-modified") && h.contains_key("expires"),
        "{h:?}"
    );
    // POST with the same request works too.
    let r = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/ocsp-request")
        .body(req_der.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED successful(0), ... }
    assert_eq!(body[0], 0x30);
    assert!(
        body.windows(3).take(6).any(|w| w == [0x0a, 0x01, 0x00]),
        "{body:?}"
    );

    // A serial this CA never issued is `unknown`.
    let (_, text) = openssl(&[
        "ocsp",
        "-issuer",
        issuer_s,
        "-serial",
        "0x7e57",
        "-url",
        &url,
        "-resp_text",
        "-CAfile",
        root_s,
        "-verify_other",
        issuer_s,
    ]);
    assert!(text.contains("0x7e57: unknown"), "{text}");

    // Another issuer's CertID (the root as "issuer") is `unauthorized`.
    let (_, text) = openssl(&[
        "ocsp",
        "-issuer",
        root_s,
        "-cert",
        leaf_s,
        "-url",
        &url,
        "-no_nonce",
    ]);
    assert!(text.contains("unauthorized"), "{text}");

    // Revoke (keyCompromise) over ACME; the very next OCSP answer says revoked with the reason.
    let r = c
        .post(
            &c.url("revokeCert"),
            Some(&json!({"certificate": b64url(&leaf), "reason": 1})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let resp_path = dir.join("ocsp-resp.der");
    let resp_s = resp_path.to_str().unwrap().to_string();
    let (ok, text) = openssl(&[
        "ocsp",
        "-issuer",
        issuer_s,
        "-cert",
        leaf_s,
        "-url",
        &url,
        "-resp_text",
        "-CAfile",
        root_s,
        "-verify_other",
        issuer_s,
        "-respout",
        &resp_s,
    ]);
    assert!(ok, "{text}");
    assert!(text.contains(": revoked"), "{text}");
    let findings = support::pkilint::serious(
        "ocsp_good_then_revoked_with_openssl",
        "lint_ocsp_response",
        &["--document-format", "DER"],
        &resp_path,
    );
    assert!(findings.is_empty(), "pkilint OCSP findings: {findings:?}");
    assert!(text.contains("Reason: keyCompromise"), "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
}

fn crl_dp(der: &[u8]) -> Vec<String> {
    let (_, x) = x509_parser::parse_x509_certificate(der).unwrap();
    let mut out = Vec::new();
    for e in x.extensions() {
        if let ParsedExtension::CRLDistributionPoints(d) = e.parsed_extension() {
            for p in d.iter() {
                if let Some(x509_parser::extensions::DistributionPointName::FullName(names)) =
                    &p.distribution_point
                {
                    for n in names {
                        if let GeneralName::URI(u) = n {
                            out.push(u.to_string());
                        }
                    }
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn partitioned_crls_with_idp_and_revocation() {
    let Some(env) = Env::start_with(
        "partitioned_crls_with_idp_and_revocation",
        &["--crl-shards", "4"],
    ) else {
        return;
    };
    if !support::require("partitioned_crls_with_idp_and_revocation", &[Tool::Openssl]) {
        return;
    }
    let c = env.client().await;
    let (leaf, order) = env
        .issue(&c, &["crl1.routers.example.com"], json!({}))
        .await;
    let chain = String::from_utf8(
        c.post(order["certificate"].as_str().unwrap(), None)
            .await
            .body,
    )
    .unwrap();
    let issuing = pki::cert_info::pem_to_ders(&chain).unwrap()[1].clone();
    let issuer_pem = env.ca.scratch().join("crl-issuer.pem");
    std::fs::write(&issuer_pem, pki::der_to_pem("CERTIFICATE", &issuing)).unwrap();

    // The CDP names one shard of this tenant.
    let cdp = crl_dp(&leaf);
    assert_eq!(cdp.len(), 1, "{cdp:?}");
    let path = cdp[0]
        .split_once("/crl/default/")
        .map(|(_, f)| format!("/crl/default/{f}"))
        .unwrap_or_else(|| panic!("shard CDP: {cdp:?}"));
    let shard: u32 = path
        .trim_start_matches("/crl/default/")
        .trim_end_matches(".crl")
        .parse()
        .unwrap();
    assert!(shard < 4);
    let base = env.ca.plain_http_url().expect("plain HTTP URL");
    let fetch = |p: String| {
        let url = format!("{base}{p}");
        async move {
            let r = reqwest::get(&url).await.unwrap();
            assert_eq!(r.status(), 200, "{url}");
            r.bytes().await.unwrap().to_vec()
        }
    };
    let check = |der: &[u8], name: &str| -> String {
        let f = env.ca.scratch().join(name);
        std::fs::write(&f, der).unwrap();
        let (ok, text) = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            f.to_str().unwrap(),
            "-CAfile",
            issuer_pem.to_str().unwrap(),
            "-noout",
            "-text",
        ]);
        assert!(ok && text.contains("verify OK"), "{text}");
        text
    };
    let serial = pki::cert_info::serial_of(&leaf).unwrap();
    let serial_hex: String = serial.iter().map(|b| format!("{b:02X}")).collect();

    // Before revocation: empty, signed, IDP naming its own URL (the certificate's CDP).
    let text = check(&fetch(path.clone()).await, "shard-before.crl");
    assert!(text.contains("Issuing Distribution Point"), "{text}");
    assert!(text.contains(&cdp[0]), "IDP names {}: {text}", cdp[0]);
    assert!(!text.contains(&serial_hex), "{text}");

    let r = c
        .post(
            &c.url("revokeCert"),
            Some(&json!({"certificate": b64url(&leaf), "reason": 4})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // After: in its shard (re-signed on fetch), in no other shard, and in the full CRL.
    let text = check(&fetch(path.clone()).await, "shard-after.crl");
    assert!(text.contains(&serial_hex), "{text}");
    let findings = support::pkilint::serious(
        "partitioned_crls_with_idp_and_revocation",
        "lint_crl",
        &["-t", "CRL", "-p", "BR", "--document-format", "DER"],
        &env.ca.scratch().join("shard-after.crl"),
    );
    assert!(findings.is_empty(), "pkilint CRL findings: {findings:?}");
    assert!(text.contains("Superseded"), "{text}");
    let other = (shard + 1) % 4;
    let text = check(
        &fetch(format!("/crl/default/{other}.crl")).await,
        "shard-other.crl",
    );
    assert!(!text.contains(&serial_hex), "{text}");
    let text = check(&fetch("/crl/default.crl".into()).await, "full.crl");
    assert!(text.contains(&serial_hex), "{text}");
    // Shards beyond the limit do not exist.
    let r = reqwest::get(format!("{base}/crl/default/99999.crl"))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
