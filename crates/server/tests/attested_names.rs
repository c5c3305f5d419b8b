//! Name templates (`attested_names`) end to end, over HTTPS against a real `fleetca serve`
//! whose tenant trusts a manufacturing CA made here and grants
//! `{serial}.routers.example.com` and `config.routers.example.com` to attested devices.
//!
//! - The real `fleetca-agent` binary, given the device's attestation key and birth certificate,
//!   gets a certificate for both names with no http-01/dns-01/tls-alpn-01 challenge existing
//!   at all (the server's DNS resolver points nowhere, so none could pass).
//! - Through this crate's test client, every way around the rule is tried: a name outside the
//!   templates, a template name for another serial, two devices in one order, a refused
//!   attestation, reuse by a later order or another account, and public-trust or escaping
//!   templates at start-up. Each checks the problem type and that no certificate was stored.
//!
//! The agent binary is `FLEETCA_AGENT_BIN`, else `fleetca-agent` beside this test's target
//! directory (`cargo test --workspace` builds it; with `-p fleetca` alone run
//! `cargo build -p fleetca-agent` first). `FLEETCA_TEST_BACKEND=postgres` runs it all on
//! PostgreSQL.

mod client;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use ciborium::value::Value as Cbor;
use client::{Client, Resp};
use fleetca::datadir::DataDir;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
    PKCS_ECDSA_P256_SHA256,
};
use serde_json::{json, Value};
use support::{free_port, Fleetca};

const PERMIT: &str = "routers.example.com";
const TEMPLATES: &[&str] = &["{serial}.routers.example.com", "config.routers.example.com"];
const CONFIG_NAME: &str = "config.routers.example.com";

/// The vendor's manufacturing CA and the devices it certified.
struct Factory {
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A device: attestation key and birth certificate (subject serialNumber = its serial).
struct Device {
    key: KeyPair,
    cert: rcgen::Certificate,
}

impl Factory {
    fn new() -> Factory {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "Acme Routers Manufacturing CA");
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        Factory {
            ca: CertifiedIssuer::self_signed(p, key).unwrap(),
        }
    }

    fn device(&self, serial: &str) -> Device {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "router");
        p.distinguished_name
            .push(DnType::CustomDnType(vec![2, 5, 4, 5]), serial);
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(3650);
        let cert = p.signed_by(&key, &self.ca).unwrap();
        Device { key, cert }
    }
}

impl Device {
    /// A `packed` attestation object signing `to_be_signed` (draft-ietf-acme-device-attest
    /// §5: the key authorization), made with ciborium independently of the agent's encoder.
    fn att_obj(&self, to_be_signed: &str) -> String {
        let kp =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &self.key.serialize_der())
                .unwrap();
        let sig = kp
            .sign(&SystemRandom::new(), to_be_signed.as_bytes())
            .unwrap();
        let text = |s: &str| Cbor::Text(s.into());
        let obj = Cbor::Map(vec![
            (text("fmt"), text("packed")),
            (
                text("attStmt"),
                Cbor::Map(vec![
                    (text("alg"), Cbor::Integer((-7).into())),
                    (text("sig"), Cbor::Bytes(sig.as_ref().to_vec())),
                    (
                        text("x5c"),
                        Cbor::Array(vec![Cbor::Bytes(self.cert.der().to_vec())]),
                    ),
                ]),
            ),
        ]);
        let mut buf = Vec::new();
        ciborium::ser::into_writer(&obj, &mut buf).unwrap();
        client::b64url(&buf)
    }
}

/// `fleetca init` + the tenant's attestation settings + `fleetca serve`.
fn start_ca(factory: &Factory, templates: &[&str]) -> Fleetca {
    start_ca_with(factory, templates, None)
}

/// [`start_ca`] with the tenant's failed-validation budget set to `failed_per_hour`.
fn start_ca_with(factory: &Factory, templates: &[&str], failed_per_hour: Option<u32>) -> Fleetca {
    let root_pem = factory.ca.pem();
    let templates: Vec<String> = templates.iter().map(|s| s.to_string()).collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut ca = Fleetca::init(&[PERMIT]);
            configure(ca.data_dir(), &root_pem, &templates);
            if let Some(n) = failed_per_hour {
                let dd = DataDir::new(ca.data_dir());
                let mut cfg = dd.load_config().unwrap();
                cfg.ca.rate_limits.failed_validations_per_account_per_hour = n;
                dd.save_config(&cfg).unwrap();
            }
            // No challenge may be solved here: DNS lookups go to a port nobody answers.
            ca.serve(free_port(), free_port(), free_port());
            ca
        })
        .join()
        .expect("harness thread")
    })
}

/// Writes the manufacturing root and adds `attestation_roots` and `attested_names`.
fn configure(data_dir: &Path, root_pem: &str, templates: &[String]) {
    std::fs::create_dir_all(data_dir.join("mfg")).unwrap();
    std::fs::write(data_dir.join("mfg/root.pem"), root_pem).unwrap();
    let dd = DataDir::new(data_dir);
    let mut cfg = dd.load_config().unwrap();
    cfg.ca.attestation_roots = vec!["mfg/root.pem".into()];
    cfg.ca.attested_names = templates.to_vec();
    dd.save_config(&cfg).unwrap();
}

async fn account(ca: &Fleetca) -> Client {
    let mut c = Client::new(&ca.directory_url(), ca.root_pem()).await;
    let r = c.new_account().await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    c
}

/// An order as the client holds it: its URL, body and authorizations by identifier value.
struct Order {
    url: String,
    body: Value,
    authzs: BTreeMap<String, (String, Value)>,
}

impl Order {
    fn authz(&self, value: &str) -> &Value {
        &self
            .authzs
            .get(value)
            .unwrap_or_else(|| panic!("no authorization for {value}"))
            .1
    }

    fn authz_url(&self, value: &str) -> &str {
        &self.authzs[value].0
    }

    fn challenge_types(&self, value: &str) -> Vec<String> {
        self.authz(value)["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap().to_string())
            .collect()
    }
}

async fn new_order(c: &Client, idents: &[(&str, &str)]) -> Order {
    let ids: Vec<Value> = idents
        .iter()
        .map(|(t, v)| json!({"type": t, "value": v}))
        .collect();
    let r = c
        .post(&c.url("newOrder"), Some(&json!({ "identifiers": ids })))
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let url = r.location();
    refresh(c, &url).await
}

async fn refresh(c: &Client, url: &str) -> Order {
    let body = c.post(url, None).await.json();
    let mut authzs = BTreeMap::new();
    for u in body["authorizations"].as_array().unwrap() {
        let u = u.as_str().unwrap();
        let a = c.post(u, None).await.json();
        authzs.insert(
            a["identifier"]["value"].as_str().unwrap().to_string(),
            (u.to_string(), a),
        );
    }
    Order {
        url: url.to_string(),
        body,
        authzs,
    }
}

/// POSTs `{"attObj": ...}` to the device authorization's device-attest-01 challenge.
async fn attest(c: &Client, o: &Order, serial: &str, dev: &Device) -> Value {
    let r = attest_response(c, o, serial, dev).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// [`attest`]'s response, whatever its status.
async fn attest_response(c: &Client, o: &Order, serial: &str, dev: &Device) -> Resp {
    let ch = &o.authz(serial)["challenges"][0];
    assert_eq!(ch["type"], "device-attest-01");
    let ka = c.key_authorization(ch["token"].as_str().unwrap());
    c.post(
        ch["url"].as_str().unwrap(),
        Some(&json!({ "attObj": dev.att_obj(&ka) })),
    )
    .await
}

async fn finalize(c: &Client, o: &Order, names: &[&str]) -> Resp {
    let (csr, _) = client::csr(names, &PKCS_ECDSA_P256_SHA256);
    c.post(
        o.body["finalize"].as_str().unwrap(),
        Some(&json!({ "csr": client::b64url(&csr) })),
    )
    .await
}

/// Finalizing a not-ready order is refused with orderNotReady and stores nothing.
async fn finalize_refused(ca: &Fleetca, c: &Client, o: &Order, names: &[&str]) {
    let before = ca.counts().await;
    let r = finalize(c, o, names).await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.problem(), "orderNotReady");
    assert_eq!(
        ca.counts().await,
        before,
        "a refused finalize changed storage"
    );
}

fn dev_ident(serial: &str) -> (&'static str, &str) {
    ("permanent-identifier", serial)
}

fn dns(name: &str) -> (&'static str, &str) {
    ("dns", name)
}

/// The DNS names of a PEM certificate's subjectAltName, and whether it has any otherName.
fn san_names(pem: &str) -> (Vec<String>, bool) {
    let der = pki::cert_info::pem_to_ders(pem).unwrap().remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let mut names = Vec::new();
    let mut other = false;
    for gn in &san.value.general_names {
        match gn {
            x509_parser::extensions::GeneralName::DNSName(d) => names.push(d.to_string()),
            x509_parser::extensions::GeneralName::OtherName(..) => other = true,
            _ => {}
        }
    }
    names.sort();
    (names, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attestation_grants_the_templated_names_and_nothing_else_does() {
    let factory = Factory::new();
    let ca = start_ca(&factory, TEMPLATES);
    let dev = factory.device("SN-0001");
    let name = "sn-0001.routers.example.com";
    let c = account(&ca).await;

    let o = new_order(&c, &[dns(name), dns(CONFIG_NAME), dev_ident("SN-0001")]).await;
    // The templated names have no challenge to solve; the device has device-attest-01 only.
    for n in [name, CONFIG_NAME] {
        assert_eq!(o.authz(n)["status"], "pending", "{n}");
        assert!(
            o.challenge_types(n).is_empty(),
            "{n}: {:?}",
            o.challenge_types(n)
        );
    }
    assert_eq!(o.challenge_types("SN-0001"), vec!["device-attest-01"]);
    assert_eq!(o.body["status"], "pending");
    finalize_refused(&ca, &c, &o, &[name, CONFIG_NAME]).await;

    // The attestation is verified in the POST; the names become valid in the same
    // transaction, so the order is ready at once.
    let ch = attest(&c, &o, "SN-0001", &dev).await;
    assert_eq!(ch["status"], "valid", "{ch}");
    let o = refresh(&c, &o.url).await;
    for n in [name, CONFIG_NAME, "SN-0001"] {
        assert_eq!(o.authz(n)["status"], "valid", "{n}");
    }
    assert_eq!(o.body["status"], "ready");

    let r = finalize(&c, &o, &[name, CONFIG_NAME]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let done = c.poll(&o.url, |v| v["status"] == "valid").await;
    let cert = c.post(done["certificate"].as_str().unwrap(), None).await;
    let (names, other) = san_names(&String::from_utf8_lossy(&cert.body));
    assert_eq!(names, vec![CONFIG_NAME.to_string(), name.to_string()]);
    assert!(
        !other,
        "the serial stays out of the certificate (draft §3.2 privacy mode)"
    );

    // A later order of the same account reuses neither the granted names nor the device
    // authorization: it needs a fresh attestation.
    let again = new_order(&c, &[dns(name), dns(CONFIG_NAME), dev_ident("SN-0001")]).await;
    for n in [name, CONFIG_NAME, "SN-0001"] {
        assert_ne!(again.authz_url(n), o.authz_url(n), "{n} was reused");
        assert_eq!(again.authz(n)["status"], "pending", "{n}");
    }
    assert_eq!(again.body["status"], "pending");
    finalize_refused(&ca, &c, &again, &[name, CONFIG_NAME]).await;

    // Another account naming the same DNS name without a device gets ordinary challenges.
    let other = account(&ca).await;
    let plain = new_order(&other, &[dns(name)]).await;
    assert_ne!(plain.authz_url(name), o.authz_url(name));
    let types = plain.challenge_types(name);
    assert!(
        types.contains(&"http-01".to_string()) && !types.contains(&"device-attest-01".to_string()),
        "{types:?}"
    );
    assert_eq!(plain.body["status"], "pending");
}

/// The attestation response's storage steps, counted by the server's own
/// `fleetca_db_operation_duration_seconds` (one sample per storage call). On PostgreSQL,
/// whose reads spend nonces: one step reads the challenge, spends the nonce, takes the
/// failed-validation token and starts it, and one records the outcome (giving the token
/// back). On SQLite: the read, the start and the outcome. On neither a read of the
/// challenge afterwards: the answer is what the outcome wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attestation_response_is_one_step_to_start_and_one_to_decide() {
    let factory = Factory::new();
    let ca = start_ca(&factory, TEMPLATES);
    let dev = factory.device("SN-0002");
    let c = account(&ca).await;
    let o = new_order(&c, &[dns(CONFIG_NAME), dev_ident("SN-0002")]).await;
    let ops = [
        "get_authz_by_challenge_spending",
        "start_challenge_spending",
        "try_start_challenge",
        "finish_challenge",
    ];
    // The scrape blocks on a runtime of its own.
    let calls = || tokio::task::block_in_place(|| support::metrics::db_calls(&ca, ops));
    let before = calls();
    let ch = attest(&c, &o, "SN-0002", &dev).await;
    assert_eq!(ch["status"], "valid", "{ch}");
    let after = calls();
    let made: Vec<(&str, f64)> = ops
        .iter()
        .zip(after.iter().zip(before.iter()))
        .map(|(op, (a, b))| (*op, a - b))
        .collect();
    let want = if fleetca::sa::is_postgres_url(&ca.database_url()) {
        [0.0, 1.0, 0.0, 1.0]
    } else {
        [1.0, 0.0, 1.0, 1.0]
    };
    let want: Vec<(&str, f64)> = ops.iter().copied().zip(want).collect();
    assert_eq!(made, want);
    // What the answer said is what was stored.
    let o = refresh(&c, &o.url).await;
    assert_eq!(o.authz("SN-0002")["status"], "valid");
    assert_eq!(o.body["status"], "ready");
}

/// An attestation response draws on the account's failed-validation budget (RFC 8555 §6.6)
/// like any other challenge: it takes a token before the attestation is verified and gets it
/// back on success. With a budget of one, successes never run out; a refusal spends the
/// token, and the next response is refused with `rateLimited` before anything changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attestations_draw_on_the_failed_validation_budget() {
    let factory = Factory::new();
    let ca = start_ca_with(&factory, TEMPLATES, Some(1));
    let c = account(&ca).await;
    for serial in ["SN-0101", "SN-0102", "SN-0103"] {
        let o = new_order(&c, &[dev_ident(serial)]).await;
        let ch = attest(&c, &o, serial, &factory.device(serial)).await;
        assert_eq!(ch["status"], "valid", "{serial}: {ch}");
    }
    // Refused: the impostor's attestation spends the one token.
    let o = new_order(&c, &[dev_ident("SN-0104")]).await;
    let ch = attest(&c, &o, "SN-0104", &factory.device("SN-0199")).await;
    assert_eq!(ch["status"], "invalid", "{ch}");
    // The next response is refused before it starts anything.
    let o = new_order(&c, &[dev_ident("SN-0105")]).await;
    let r = attest_response(&c, &o, "SN-0105", &factory.device("SN-0105")).await;
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    let problem: Value = r.json();
    assert_eq!(problem["type"], "urn:ietf:params:acme:error:rateLimited");
    let o = refresh(&c, &o.url).await;
    assert_eq!(o.authz("SN-0105")["status"], "pending");
    assert_eq!(o.authz("SN-0105")["challenges"][0]["status"], "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_outside_the_templates_or_for_another_serial_need_their_own_challenge() {
    let factory = Factory::new();
    let ca = start_ca(&factory, TEMPLATES);
    let c = account(&ca).await;

    // A name no template yields, beside a templated one: the attestation grants only the
    // latter, so the order cannot become ready.
    let dev2 = factory.device("SN-0002");
    let o = new_order(
        &c,
        &[
            dns("sn-0002.routers.example.com"),
            dns("other.routers.example.com"),
            dev_ident("SN-0002"),
        ],
    )
    .await;
    assert!(o.challenge_types("sn-0002.routers.example.com").is_empty());
    assert!(o
        .challenge_types("other.routers.example.com")
        .contains(&"http-01".to_string()));
    assert_eq!(attest(&c, &o, "SN-0002", &dev2).await["status"], "valid");
    let o = refresh(&c, &o.url).await;
    assert_eq!(o.authz("sn-0002.routers.example.com")["status"], "valid");
    assert_eq!(o.authz("other.routers.example.com")["status"], "pending");
    assert_eq!(o.body["status"], "pending");
    finalize_refused(
        &ca,
        &c,
        &o,
        &["sn-0002.routers.example.com", "other.routers.example.com"],
    )
    .await;

    // Serial A's name in an order attesting serial B is an ordinary name.
    let dev_b = factory.device("SN-000B");
    let o = new_order(
        &c,
        &[dns("sn-000a.routers.example.com"), dev_ident("SN-000B")],
    )
    .await;
    assert!(o
        .challenge_types("sn-000a.routers.example.com")
        .contains(&"http-01".to_string()));
    assert_eq!(attest(&c, &o, "SN-000B", &dev_b).await["status"], "valid");
    let o = refresh(&c, &o.url).await;
    assert_eq!(o.authz("sn-000a.routers.example.com")["status"], "pending");
    assert_eq!(o.body["status"], "pending");
    finalize_refused(&ca, &c, &o, &["sn-000a.routers.example.com"]).await;

    // Two devices in one order: no name is granted (it could not say which device it is).
    let o = new_order(
        &c,
        &[
            dns("sn-000a.routers.example.com"),
            dns(CONFIG_NAME),
            dev_ident("SN-000A"),
            dev_ident("SN-000B"),
        ],
    )
    .await;
    for n in ["sn-000a.routers.example.com", CONFIG_NAME] {
        assert!(o.challenge_types(n).contains(&"http-01".to_string()), "{n}");
    }

    // A serial that is not a DNS label (here with an assigner OID) matches no template.
    let o = new_order(&c, &[dns(CONFIG_NAME), dev_ident("SN-0003/1.2.3.4")]).await;
    assert!(o
        .challenge_types(CONFIG_NAME)
        .contains(&"http-01".to_string()));

    assert_eq!(ca.counts().await.certificates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_attestation_leaves_the_templated_names_invalid() {
    let factory = Factory::new();
    let ca = start_ca(&factory, TEMPLATES);
    let c = account(&ca).await;
    let name = "sn-0005.routers.example.com";
    let o = new_order(&c, &[dns(name), dns(CONFIG_NAME), dev_ident("SN-0005")]).await;

    // A genuine device of the same vendor, but not the one the order names.
    let impostor = factory.device("SN-0006");
    let ch = attest(&c, &o, "SN-0005", &impostor).await;
    assert_eq!(ch["status"], "invalid", "{ch}");
    assert_eq!(
        ch["error"]["type"],
        "urn:ietf:params:acme:error:badAttestationStatement"
    );
    let o = refresh(&c, &o.url).await;
    for n in [name, CONFIG_NAME, "SN-0005"] {
        assert_eq!(o.authz(n)["status"], "invalid", "{n}");
    }
    assert_eq!(o.body["status"], "invalid");

    // The right device answering afterwards changes nothing: the challenge was decided.
    let genuine = factory.device("SN-0005");
    let before = ca.counts().await;
    let ch = attest(&c, &o, "SN-0005", &genuine).await;
    assert_eq!(ch["status"], "invalid");
    let o = refresh(&c, &o.url).await;
    assert_eq!(o.authz(name)["status"], "invalid");
    finalize_refused(&ca, &c, &o, &[name, CONFIG_NAME]).await;
    assert_eq!(ca.counts().await, before);
    assert_eq!(before.certificates, 0);
}

/// `fleetca serve` on `data` must refuse to start, saying `why`.
fn serve_refuses(data: &Path, why: &str) {
    let mut cmd = Command::new(Fleetca::bin());
    cmd.args(["serve", "--data-dir"]).arg(data).args([
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    let out = support::run(cmd, Duration::from_secs(60));
    assert!(!out.success(), "serve started\n{out}");
    assert!(out.stderr.contains(why), "expected {why:?}\n{out}");
}

#[test]
fn templates_are_refused_for_public_trust_and_when_they_could_escape() {
    let factory = Factory::new();
    let root = factory.ca.pem();

    // Public trust (an outside root signs the issuing CA): templates are refused at start-up.
    let dir = support::temp_dir("attested-public");
    let data = dir.path().join("ca");
    let mut cmd = Command::new(Fleetca::bin());
    cmd.args(["subca", "csr", "--data-dir"])
        .arg(&data)
        .args(["--permit", PERMIT])
        .args(["--organization", "Example Routers Ltd", "--country", "GB"]);
    let out = support::run(cmd, Duration::from_secs(60));
    assert!(out.success(), "{out}");
    configure(&data, &root, &["{serial}.routers.example.com".into()]);
    serve_refuses(&data, "attested_names requires trust = \"private\"");

    // Private trust, but templates whose expansions could leave the permitted names.
    let ca = Fleetca::init(&[PERMIT]);
    for (template, why) in [
        ("{serial}.example.com", "could escape"),
        ("routers.{serial}.example.com", "could escape"),
        ("config.example.com", "could escape"),
        ("x{serial}.routers.example.com", "whole label"),
        ("*.routers.example.com", "wildcards"),
    ] {
        configure(ca.data_dir(), &root, &[template.into()]);
        serve_refuses(ca.data_dir(), why);
    }
}

/// The `fleetca-agent` binary (see the module comment), or `None` (skip) outside CI.
fn agent_bin() -> Option<PathBuf> {
    let bin = std::env::var_os("FLEETCA_AGENT_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.join("fleetca-agent"))
        })?;
    let found = bin.is_file();
    support::gate(
        "agent_gets_the_templated_names_with_its_attestation",
        found,
        &format!(
            "{} is missing (cargo build -p fleetca-agent)",
            bin.display()
        ),
    )
    .then_some(bin)
}

#[test]
fn agent_gets_the_templated_names_with_its_attestation() {
    let Some(agent) = agent_bin() else { return };
    let factory = Factory::new();
    let mut ca = start_ca(&factory, TEMPLATES);
    let dev = factory.device("SN-0042");
    let scratch = ca.scratch().to_path_buf();
    let key = scratch.join("device-key.pem");
    let cert = scratch.join("device-cert.pem");
    std::fs::write(&key, dev.key.serialize_pem()).unwrap();
    // The chain the device ships: its birth certificate, then the manufacturing CA.
    std::fs::write(&cert, format!("{}{}", dev.cert.pem(), factory.ca.pem())).unwrap();
    let out_dir = scratch.join("out");
    let name = "sn-0042.routers.example.com";

    let agent_run = |extra: &[&str]| {
        let mut cmd = Command::new(&agent);
        cmd.arg("issue")
            .args(["--server", &ca.directory_url()])
            .arg("--server-root")
            .arg(ca.root_pem_path())
            .arg("--out-dir")
            .arg(&out_dir)
            .arg("--attest-key")
            .arg(&key)
            .arg("--attest-cert")
            .arg(&cert)
            // Nothing listens here and the server cannot resolve names: http-01 cannot pass.
            .args(["--http-port", &free_port().to_string()])
            .args(["--order-timeout", "60"])
            .args(extra);
        support::run(cmd, Duration::from_secs(90))
    };

    let out = agent_run(&["--domain", name, "--domain", CONFIG_NAME]);
    assert_eq!(out.status.and_then(|s| s.code()), Some(10), "{out}");
    assert!(
        out.combined()
            .contains("permanent-identifier SN-0042: using device-attest-01"),
        "{out}"
    );
    let pem = std::fs::read_to_string(out_dir.join("cert.pem")).unwrap();
    let (names, other) = san_names(&pem);
    assert_eq!(names, vec![CONFIG_NAME.to_string(), name.to_string()]);
    assert!(!other);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = rt.block_on(ca.counts());
    // One device-attest-01 challenge is the only challenge the CA ever made.
    assert_eq!(
        (c.orders, c.authzs, c.challenges, c.certificates),
        (1, 3, 1, 1),
        "{c:?}"
    );

    // A name outside the templates needs its own challenge, which cannot pass here: the
    // attestation alone does not make the order ready, and nothing is issued.
    let out = agent_run(&["--domain", name, "--domain", "other.routers.example.com"]);
    assert_eq!(out.status.and_then(|s| s.code()), Some(22), "{out}");
    assert!(
        out.combined().contains("other.routers.example.com"),
        "{out}"
    );
    assert_eq!(rt.block_on(ca.counts()).certificates, 1);
    ca.stop();
}
