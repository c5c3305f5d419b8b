//! Tenants: a second issuing CA made with `fleetca tenant add`, served beside `default`.
//! An account of one tenant can neither see nor change another tenant's objects, and each
//! tenant's name policy is its own.

mod client;
mod support;

use client::{b64url, csr, Client};
use fleetca::sa::TableCounts;
use serde_json::{json, Value};
use support::{ChallTestSrv, Fleetca, Tool};

const PERMITS: &[&str] = &["routers.example.com"];

struct Env {
    ca: Fleetca,
    dns: ChallTestSrv,
    root: String,
}

fn start(test: &'static str) -> Option<Env> {
    std::thread::spawn(move || {
        if !support::require(test, &[Tool::ChallTestSrv]) {
            return None;
        }
        let dns = ChallTestSrv::start();
        let mut ca = Fleetca::init(PERMITS);
        let out = ca.cli(&["tenant", "add", "vendorb", "--permit", "cams.example.net"]);
        assert!(out.success(), "tenant add failed\n{out}");
        ca.serve(dns.dns_port(), support::free_port(), support::free_port());
        let root = ca.root_pem().to_string();
        Some(Env { ca, dns, root })
    })
    .join()
    .expect("harness thread")
}

impl Env {
    fn directory(&self, tenant: &str) -> String {
        self.ca
            .directory_url()
            .replace("/acme/default/", &format!("/acme/{tenant}/"))
    }

    async fn client(&self, tenant: &str) -> Client {
        let mut c = Client::new(&self.directory(tenant), &self.root).await;
        let r = c.new_account().await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        c
    }

    async fn counts(&self) -> TableCounts {
        self.ca.counts().await
    }

    /// Issues a certificate for `name` to `c`; returns (order URL, order, authz URL,
    /// challenge URL, certificate URL, certificate PEM).
    async fn issue(
        &self,
        c: &Client,
        name: &str,
    ) -> (String, Value, String, String, String, String) {
        let r = c.new_order(&[name]).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let order_url = r.location();
        let order = r.json();
        let authz_url = order["authorizations"][0].as_str().unwrap().to_string();
        let authz = c.post(&authz_url, None).await.json();
        let ch = authz["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "dns-01")
            .expect("dns-01")
            .clone();
        let value = acme_types::keyauth::dns01_txt_value(
            &c.key_authorization(ch["token"].as_str().unwrap()),
        );
        self.dns.set_txt(&format!("_acme-challenge.{name}"), &value);
        let ch_url = ch["url"].as_str().unwrap().to_string();
        let r = c.post(&ch_url, Some(&json!({}))).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let a = c.poll(&authz_url, |a| a["status"] != "pending").await;
        assert_eq!(a["status"], "valid", "{a}\n{}", self.ca.log());
        let (der, _key) = csr(&[name], &rcgen::PKCS_ECDSA_P256_SHA256);
        let r = c
            .post(
                order["finalize"].as_str().unwrap(),
                Some(&json!({"csr": b64url(&der)})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let done = c.poll(&order_url, |o| o["status"] == "valid").await;
        let cert_url = done["certificate"].as_str().unwrap().to_string();
        let pem = String::from_utf8(c.post(&cert_url, None).await.body).unwrap();
        (order_url, order, authz_url, ch_url, cert_url, pem)
    }
}

/// The same object path under the other tenant's prefix.
fn under(url: &str, from: &str, to: &str) -> String {
    url.replace(&format!("/acme/{from}/"), &format!("/acme/{to}/"))
}

fn refused(r: &client::Resp, what: &str) {
    assert!(
        r.status == 404 || r.status == 401 || r.status == 403 || r.status == 400,
        "{what}: expected a refusal, got {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    let p = r.problem();
    assert!(
        ["malformed", "unauthorized", "accountDoesNotExist"].contains(&p.as_str()),
        "{what}: problem {p}"
    );
    if p == "malformed" {
        assert_eq!(
            r.status, 404,
            "{what}: malformed must be the 404 not-found answer"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated() {
    let Some(env) = start("tenants_are_isolated") else {
        return;
    };
    // Each tenant has its own directory, issuing CA and policy.
    let b_dir: Value = reqwest_get(&env, &env.directory("vendorb")).await;
    assert!(b_dir["newAccount"]
        .as_str()
        .unwrap()
        .contains("/acme/vendorb/new-account"));
    let a = env.client("default").await;
    let (order_url, order, authz_url, ch_url, cert_url, pem) =
        env.issue(&a, "dev1.routers.example.com").await;
    let b = env.client("vendorb").await;
    let before = env.counts().await;
    let a_kid = a.kid.clone().unwrap();

    // Every object URL of tenant A, POSTed by B's account, under A's prefix and under B's.
    let finalize = order["finalize"].as_str().unwrap().to_string();
    let (csr_der, _) = csr(
        &["dev1.routers.example.com"],
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let attempts: Vec<(&str, String, Option<Value>)> = vec![
        ("order", order_url.clone(), None),
        ("authz", authz_url.clone(), None),
        (
            "authz deactivate",
            authz_url.clone(),
            Some(json!({"status": "deactivated"})),
        ),
        ("challenge", ch_url.clone(), Some(json!({}))),
        ("certificate", cert_url.clone(), None),
        (
            "finalize",
            finalize.clone(),
            Some(json!({"csr": b64url(&csr_der)})),
        ),
        ("account", a_kid.clone(), None),
        (
            "account deactivate",
            a_kid.clone(),
            Some(json!({"status": "deactivated"})),
        ),
        ("orders list", format!("{a_kid}/orders"), None),
    ];
    for (what, url, payload) in &attempts {
        for u in [url.clone(), under(url, "default", "vendorb")] {
            let r = b.post(&u, payload.as_ref()).await;
            refused(&r, &format!("{what} {u}"));
        }
    }
    // Revoking A's certificate with B's account, at either tenant.
    let der = pki::cert_info::pem_to_ders(&pem).unwrap().remove(0);
    for url in [
        b.url("revokeCert"),
        under(&b.url("revokeCert"), "vendorb", "default"),
    ] {
        let r = b
            .post(&url, Some(&json!({"certificate": b64url(&der)})))
            .await;
        refused(&r, &format!("revokeCert {url}"));
    }
    assert_eq!(
        env.counts().await,
        before,
        "a cross-tenant request changed storage"
    );
    // A still sees its objects unchanged.
    assert_eq!(a.post(&order_url, None).await.json()["status"], "valid");
    assert_eq!(a.post(&authz_url, None).await.json()["status"], "valid");
    assert_eq!(a.post(&a_kid, None).await.json()["status"], "valid");

    // EAB keys are per tenant: a credential of B does not bind an account on A.
    let out = env
        .ca
        .cli(&["eab", "create", "--tenant", "vendorb", "--json"]);
    assert!(out.success(), "{out}");
    let cred: Value = serde_json::from_str(&out.stdout).unwrap();
    // From here on B's credential exists; the refused binding must not consume or change it.
    let before = env.counts().await;
    let mut c = Client::new(&env.directory("default"), &env.root).await;
    let binding = acme_types::eab::eab_jws(
        cred["kid"].as_str().unwrap(),
        &acme_types::b64::decode(cred["hmac_key"].as_str().unwrap()).unwrap(),
        &c.url("newAccount"),
        c.key.jwk(),
        acme_types::eab::EabAlgorithm::HS256,
    );
    let r = c
        .post(
            &c.url("newAccount"),
            Some(&json!({"termsOfServiceAgreed": true, "externalAccountBinding": binding})),
        )
        .await;
    assert_eq!(r.problem(), "unauthorized");
    c.kid = None;
    assert_eq!(env.counts().await, before);

    // A name permitted to A but not to B is refused on B (and B's own name on A).
    let r = b.new_order(&["dev2.routers.example.com"]).await;
    assert_eq!(r.problem(), "rejectedIdentifier", "{:?}", r.json());
    let r = a.new_order(&["cam1.cams.example.net"]).await;
    assert_eq!(r.problem(), "rejectedIdentifier", "{:?}", r.json());
    assert_eq!(env.counts().await, before);

    // B issues under its own CA, which is not A's.
    let (_, _, _, _, _, b_pem) = env.issue(&b, "cam1.cams.example.net").await;
    let issuer = |pem: &str| {
        let ders = pki::cert_info::pem_to_ders(pem).unwrap();
        let (_, c) = x509_parser::parse_x509_certificate(&ders[0]).unwrap();
        c.issuer().to_string()
    };
    assert_ne!(issuer(&pem), issuer(&b_pem));
    assert!(issuer(&b_pem).contains("vendorb"), "{}", issuer(&b_pem));
}

async fn reqwest_get(env: &Env, url: &str) -> Value {
    client::http_client(&env.root)
        .get(url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json")
}

/// The operator CLI: search, show and revoke certificates (CRL re-signed at once), list and
/// deactivate accounts; every change is in the audit log with before/after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_search_revoke_deactivate_audit() {
    let Some(env) = start("admin_cli_search_revoke_deactivate_audit") else {
        return;
    };
    let a = env.client("default").await;
    let (_, _, _, _, _, pem) = env.issue(&a, "dev7.routers.example.com").await;
    let acct_id = a
        .kid
        .clone()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let cli = |args: Vec<String>| {
        let ca = &env.ca;
        std::thread::scope(|s| {
            s.spawn(|| {
                let v: Vec<&str> = args.iter().map(String::as_str).collect();
                ca.cli(&v)
            })
            .join()
        })
        .expect("cli")
    };
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let out = cli(args(&[
        "cert",
        "list",
        "--name",
        "routers.example.com",
        "--json",
    ]));
    assert!(out.success(), "{out}");
    let list: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let serial = list[0]["serial"].as_str().unwrap().to_string();
    assert_eq!(list[0]["status"], "valid");
    let by_account = cli(args(&["cert", "list", "--account", &acct_id, "--json"]));
    assert!(by_account.stdout.contains(&serial), "{by_account}");
    let none = cli(args(&[
        "cert",
        "list",
        "--name",
        "cams.example.net",
        "--json",
    ]));
    assert_eq!(none.stdout.trim(), "[]");
    let show = cli(args(&["cert", "show", &serial, "--json"]));
    let shown: Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(
        pki::cert_info::pem_to_ders(shown["pem"].as_str().unwrap()).unwrap()[0],
        pki::cert_info::pem_to_ders(&pem).unwrap()[0]
    );

    let out = cli(args(&[
        "cert",
        "revoke",
        &serial,
        "--reason",
        "keyCompromise",
        "--json",
    ]));
    assert!(out.success(), "{out}");
    let again = cli(args(&["cert", "revoke", &serial]));
    assert!(!again.success(), "a second revocation succeeded\n{again}");
    // The CRL in storage was re-signed and lists the serial with its reason.
    let db = fleetca::sa::open_database(&env.ca.database_url())
        .await
        .unwrap();
    let crl = db.get_crl("default").await.unwrap().expect("CRL");
    let (_, parsed) = x509_parser::parse_x509_crl(&crl.der).expect("CRL parses");
    let listed: Vec<String> = parsed
        .iter_revoked_certificates()
        .map(|r| {
            r.raw_serial_as_string()
                .replace(':', "")
                .to_ascii_lowercase()
        })
        .collect();
    assert!(
        listed
            .iter()
            .any(|s| fleetca::sa::normalize_serial(s) == fleetca::sa::normalize_serial(&serial)),
        "{serial} not in {listed:?}"
    );

    let out = cli(args(&["account", "deactivate", &acct_id]));
    assert!(out.success(), "{out}");
    let r = a.new_order(&["dev8.routers.example.com"]).await;
    assert_eq!(r.problem(), "unauthorized");
    let out = cli(args(&["account", "list", "--tenant", "default", "--json"]));
    let accts: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(accts[0]["status"], "deactivated", "{accts}");

    let log = db.recent_audit(50).await.unwrap();
    for action in ["tenant.add", "cert.revoke", "account.deactivate"] {
        let e = log
            .iter()
            .find(|e| e.action == action)
            .unwrap_or_else(|| panic!("{action} not audited: {log:?}"));
        assert!(e.actor.starts_with("cli:"), "{e:?}");
        assert!(e.after.is_some(), "{e:?}");
    }
    let revoke = log.iter().find(|e| e.action == "cert.revoke").unwrap();
    assert!(revoke.before.as_deref().unwrap().contains("\"valid\""));
    assert!(revoke.after.as_deref().unwrap().contains("\"revoked\""));
}
