//! End-to-end tests of `fleetca serve` with this crate's small test client: the complete
//! RFC 8555 flow, and one test per rejection rule checking both the problem type and that
//! storage did not change.

mod client;
mod support;

use acme_types::sign::{AccountKey, AccountKeyKind, JwsKey};
use client::{b64url, csr, csr_with_key, Client, Resp};
use fleetca::sa::TableCounts;
use serde_json::{json, Value};
use support::{ChallTestSrv, Fleetca, Tool};

const PERMITS: &[&str] = &["routers.example.com", "10.0.0.0/8"];

struct Env {
    ca: Fleetca,
    dns: ChallTestSrv,
    root: String,
    /// The port fleetca's http-01 validations connect to.
    http01_port: u16,
}

impl Env {
    /// Starts challtestsrv and fleetca. The harness blocks on its own runtime, so it runs on a
    /// plain thread rather than inside the test's async runtime.
    fn start(test: &'static str) -> Option<Env> {
        std::thread::spawn(move || Self::start_blocking(test))
            .join()
            .expect("harness thread")
    }

    fn start_blocking(test: &str) -> Option<Env> {
        if !support::require(test, &[Tool::ChallTestSrv]) {
            return None;
        }
        let dns = ChallTestSrv::start();
        let mut ca = Fleetca::init(PERMITS);
        let http01_port = support::free_port();
        ca.serve(dns.dns_port(), http01_port, support::free_port());
        let root = ca.root_pem().to_string();
        Some(Env {
            ca,
            dns,
            root,
            http01_port,
        })
    }

    async fn client(&self) -> Client {
        let mut c = Client::new(&self.ca.directory_url(), &self.root).await;
        let r = c.new_account().await;
        assert_eq!(
            r.status,
            201,
            "newAccount: {}",
            String::from_utf8_lossy(&r.body)
        );
        c
    }

    async fn counts(&self) -> TableCounts {
        self.ca.counts().await
    }

    /// Completes every authorization of `order` with dns-01 through the test DNS server.
    async fn authorize_dns01(&self, c: &Client, order: &Value) {
        c.authorize_dns01(order, |n, v| self.dns.set_txt(n, v))
            .await;
    }
}

async fn finalize(c: &Client, order: &Value, csr_der: &[u8]) -> Resp {
    c.post(
        order["finalize"].as_str().unwrap(),
        Some(&json!({"csr": b64url(csr_der)})),
    )
    .await
}

/// The last path segment of `url` is 48 bits of a recent time in milliseconds and 96 more bits,
/// base64url: objects made together share their ids' leading characters (index locality).
fn assert_recent_object_id(url: &str) {
    let id = url.rsplit('/').next().unwrap_or_default();
    let raw = acme_types::b64::decode(id).unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(raw.len(), 18, "{url}");
    let mut ms = [0u8; 8];
    ms[2..].copy_from_slice(&raw[..6]);
    let made = u64::from_be_bytes(ms);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        made <= now && now - made < 600_000,
        "{url}: made at {made}, now {now}"
    );
}

fn leaf_names(pem: &str) -> Vec<String> {
    let ders = pki::cert_info::pem_to_ders(pem).expect("pem");
    let (_, cert) = x509_parser::parse_x509_certificate(&ders[0]).expect("leaf");
    let san = cert
        .subject_alternative_name()
        .expect("san ext")
        .expect("san present");
    let mut names: Vec<String> = san
        .value
        .general_names
        .iter()
        .map(|g| match g {
            x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
            x509_parser::extensions::GeneralName::IPAddress(b) => format!("{b:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn full_issuance_download_and_revocation() {
    let Some(env) = Env::start("full_issuance_download_and_revocation") else {
        return;
    };
    let c = env.client().await;
    let names = ["dev1.routers.example.com", "*.lab.routers.example.com"];
    let r = c.new_order(&names).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let order_url = r.location();
    let order = r.json();
    assert_eq!(order["status"], "pending");
    assert_eq!(order["authorizations"].as_array().unwrap().len(), 2);
    // The newOrder answer is built without reading the order back; it must be what the
    // stored order says.
    assert_eq!(c.post(&order_url, None).await.json(), order);

    // The wildcard authorization offers dns-01 only (RFC 8555 §7.1.3).
    for a in order["authorizations"].as_array().unwrap() {
        let authz = c.post(a.as_str().unwrap(), None).await.json();
        if authz["wildcard"] == true {
            let types: Vec<_> = authz["challenges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["type"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(types, vec!["dns-01"]);
            assert_eq!(authz["identifier"]["value"], "lab.routers.example.com");
        }
    }

    // Finalize before the order is ready is refused and changes nothing.
    let (good_csr, _key) = csr(&names, &rcgen::PKCS_ECDSA_P256_SHA256);
    let r = finalize(&c, &order, &good_csr).await;
    assert_eq!((r.status, r.problem().as_str()), (403, "orderNotReady"));

    env.authorize_dns01(&c, &order).await;
    let order = c.post(&order_url, None).await.json();
    assert_eq!(order["status"], "ready");

    // A CSR naming less than the order, or more, is badCSR; the order stays ready.
    let (short_csr, _) = csr(&names[..1], &rcgen::PKCS_ECDSA_P256_SHA256);
    let r = finalize(&c, &order, &short_csr).await;
    assert_eq!(r.problem(), "badCSR");
    let (long_csr, _) = csr(
        &[
            "dev1.routers.example.com",
            "*.lab.routers.example.com",
            "dev2.routers.example.com",
        ],
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    assert_eq!(finalize(&c, &order, &long_csr).await.problem(), "badCSR");
    // The issuing CA's own key in a CSR is badPublicKey.
    let ca_key = pki::keys::load_key_pem(&env.ca.data_dir().join("ca/default/key.pem"), None)
        .expect("ca key");
    let (ca_key_csr, _) = csr_with_key(&names, &ca_key);
    let r = finalize(&c, &order, &ca_key_csr).await;
    assert_eq!(r.problem(), "badPublicKey", "{}", r.json());
    assert_eq!(env.counts().await.certificates, 0);
    assert_eq!(c.post(&order_url, None).await.json()["status"], "ready");

    let r = finalize(&c, &order, &good_csr).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let order = r.json();
    assert_eq!(order["status"], "valid");
    let cert_url = order["certificate"].as_str().expect("certificate url");
    // The finalize answer is built without reading the order back; it must be what the
    // stored order says.
    assert_eq!(c.post(&order_url, None).await.json(), order);
    // Every object the flow made has a time-ordered id (ids::new_object_id).
    for url in [&order_url, cert_url, c.kid.as_deref().expect("kid")]
        .into_iter()
        .chain(
            order["authorizations"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|a| a.as_str()),
        )
    {
        assert_recent_object_id(url);
    }

    // An order mixing a reused valid authorization with a new one is pending, as stored; one
    // made only of reused valid authorizations is ready at once.
    let r = c
        .new_order(&["dev1.routers.example.com", "dev9.routers.example.com"])
        .await;
    let mixed = r.json();
    assert_eq!(mixed["status"], "pending", "{mixed}");
    assert!(mixed["authorizations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| order["authorizations"].as_array().unwrap().contains(a)));
    assert_eq!(c.post(&r.location(), None).await.json(), mixed);
    let r = c.new_order(&["dev1.routers.example.com"]).await;
    let reused = r.json();
    assert_eq!(reused["status"], "ready", "{reused}");
    assert_eq!(c.post(&r.location(), None).await.json(), reused);

    // A second finalize cannot issue again.
    assert_eq!(
        finalize(&c, &order, &good_csr).await.problem(),
        "orderNotReady"
    );
    assert_eq!(env.counts().await.certificates, 1);

    let r = c.post(cert_url, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/pem-certificate-chain")
    );
    let pem = String::from_utf8(r.body.clone()).unwrap();
    assert_eq!(
        pem.matches("BEGIN CERTIFICATE").count(),
        2,
        "leaf + issuing CA"
    );
    assert_eq!(
        leaf_names(&pem),
        vec![
            "*.lab.routers.example.com".to_string(),
            "dev1.routers.example.com".to_string()
        ]
    );
    let alt = r.links("alternate");
    assert_eq!(alt.len(), 1, "one alternate chain (with the root)");
    let alt_pem = String::from_utf8(c.post(&alt[0], None).await.body).unwrap();
    assert_eq!(alt_pem.matches("BEGIN CERTIFICATE").count(), 3);
    assert!(
        alt_pem.ends_with(&env.root) || alt_pem.contains(env.root.trim()),
        "the alternate chain ends in the root"
    );

    // Another account can neither download nor revoke it.
    let other = env.client().await;
    assert_eq!(other.post(cert_url, None).await.status, 404);
    let leaf_der = pki::cert_info::pem_to_ders(&pem).unwrap().remove(0);
    let r = other
        .post(
            &other.url("revokeCert"),
            Some(&json!({"certificate": b64url(&leaf_der)})),
        )
        .await;
    assert_eq!(r.problem(), "unauthorized");

    // Revocation: a reason outside RFC 5280's subscriber set, then a valid one, then again.
    let revoke = c.url("revokeCert");
    let r = c
        .post(
            &revoke,
            Some(&json!({"certificate": b64url(&leaf_der), "reason": 7})),
        )
        .await;
    assert_eq!(r.problem(), "badRevocationReason");
    assert_eq!(env.counts().await.revoked, 0);
    let r = c
        .post(
            &revoke,
            Some(&json!({"certificate": b64url(&leaf_der), "reason": 1})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = c
        .post(&revoke, Some(&json!({"certificate": b64url(&leaf_der)})))
        .await;
    assert_eq!(r.problem(), "alreadyRevoked");
    assert_eq!(env.counts().await.revoked, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_with_the_certificate_key() {
    let Some(env) = Env::start("revocation_with_the_certificate_key") else {
        return;
    };
    let c = env.client().await;
    let r = c.new_order(&["dev7.routers.example.com"]).await;
    let order = r.json();
    env.authorize_dns01(&c, &order).await;
    let (csr_der, cert_key) = csr(
        &["dev7.routers.example.com"],
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let order = finalize(&c, &order, &csr_der).await.json();
    let pem = String::from_utf8(
        c.post(
            order["certificate"]
                .as_str()
                .unwrap_or_else(|| panic!("{order}")),
            None,
        )
        .await
        .body,
    )
    .unwrap();
    let leaf = pki::cert_info::pem_to_ders(&pem).unwrap().remove(0);

    // A stranger's key (jwk, no account) is refused ...
    let stranger = Client::new(&env.ca.directory_url(), &env.root).await;
    let r = stranger
        .post_with(
            &stranger.url("revokeCert"),
            Some(&json!({"certificate": b64url(&leaf)})),
            JwsKey::Jwk,
            Some(stranger.nonce().await),
            &stranger.url("revokeCert"),
        )
        .await;
    assert_eq!(r.problem(), "unauthorized");
    // ... the certificate's own key is accepted (RFC 8555 §7.6).
    let key = AccountKey::from_pkcs8_der(&cert_key.serialize_der()).expect("cert key as JWS key");
    let holder = Client::with_key(&env.ca.directory_url(), &env.root, key).await;
    let url = holder.url("revokeCert");
    let r = holder
        .post_with(
            &url,
            Some(&json!({"certificate": b64url(&leaf), "reason": 1})),
            JwsKey::Jwk,
            Some(holder.nonce().await),
            &url,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(env.counts().await.revoked, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn jws_rejections_change_nothing() {
    let Some(env) = Env::start("jws_rejections_change_nothing") else {
        return;
    };
    let mut c = Client::new(&env.ca.directory_url(), &env.root).await;
    let new_acct = c.url("newAccount");
    let payload = json!({"termsOfServiceAgreed": true});
    let before = env.counts().await;

    // Unknown nonce: badNonce, with a fresh nonce to retry with (§6.5).
    let r = c
        .post_with(
            &new_acct,
            Some(&payload),
            JwsKey::Jwk,
            Some(b64url(b"not-a-real-nonce")),
            &new_acct,
        )
        .await;
    assert_eq!((r.status, r.problem().as_str()), (400, "badNonce"));
    assert!(r.header("replay-nonce").is_some());
    // Missing nonce.
    assert_eq!(
        c.post_with(&new_acct, Some(&payload), JwsKey::Jwk, None, &new_acct)
            .await
            .problem(),
        "badNonce"
    );
    // Signed for another URL (§6.4).
    let r = c
        .post_with(
            &new_acct,
            Some(&payload),
            JwsKey::Jwk,
            Some(c.nonce().await),
            &c.url("newOrder"),
        )
        .await;
    assert_eq!(r.problem(), "unauthorized");
    // Wrong content type.
    let r = c
        .post_raw(&new_acct, b"{}".to_vec(), "application/json")
        .await;
    assert_eq!((r.status, r.problem().as_str()), (415, "malformed"));
    // Not JSON, not a JWS, compact serialization.
    assert_eq!(
        c.post_raw(&new_acct, b"{{{".to_vec(), "application/jose+json")
            .await
            .problem(),
        "malformed"
    );
    assert_eq!(
        c.post_raw(&new_acct, b"{\"foo\":1}".to_vec(), "application/jose+json")
            .await
            .problem(),
        "malformed"
    );
    assert_eq!(
        c.post_raw(
            &new_acct,
            b"eyJhbGciOiJub25lIn0.e30.".to_vec(),
            "application/jose+json"
        )
        .await
        .problem(),
        "malformed"
    );
    // Oversized bodies: the client must receive the 413 problem, not a broken pipe because the
    // server closed while it was still sending (the server reads and drops the rest first).
    for size in [65 * 1024, 200 * 1024, 900 * 1024] {
        for _ in 0..5 {
            let r = c
                .post_raw(&new_acct, vec![b'a'; size], "application/jose+json")
                .await;
            assert_eq!(
                (r.status, r.problem().as_str()),
                (413, "malformed"),
                "{size}"
            );
        }
    }
    // alg "none" and a MAC algorithm.
    for alg in ["none", "HS256"] {
        let protected = b64url(json!({"alg": alg, "jwk": c.key.jwk().to_json(), "nonce": c.nonce().await, "url": new_acct}).to_string().as_bytes());
        let body = json!({"protected": protected, "payload": b64url(payload.to_string().as_bytes()), "signature": b64url(b"sig")});
        assert_eq!(
            c.post_raw(
                &new_acct,
                body.to_string().into_bytes(),
                "application/jose+json"
            )
            .await
            .problem(),
            "badSignatureAlgorithm",
            "{alg}"
        );
    }
    // A valid JWS whose payload was swapped after signing.
    let jws = acme_types::sign::sign_jws(
        &c.key,
        &acme_types::sign::JwsHeader {
            key: JwsKey::Jwk,
            nonce: Some(c.nonce().await),
            url: new_acct.clone(),
        },
        payload.to_string().as_bytes(),
    )
    .unwrap();
    let mut tampered = jws.clone();
    tampered["payload"] = json!(b64url(br#"{"termsOfServiceAgreed":false}"#));
    assert_eq!(
        c.post_raw(
            &new_acct,
            tampered.to_string().into_bytes(),
            "application/jose+json"
        )
        .await
        .problem(),
        "malformed"
    );
    // kid on newAccount, and a kid naming no account.
    let r = c
        .post_with(
            &new_acct,
            Some(&payload),
            JwsKey::Kid(format!("{}/acme/default/acct/nope", base(&new_acct))),
            Some(c.nonce().await),
            &new_acct,
        )
        .await;
    assert_eq!(r.problem(), "malformed", "newAccount must carry jwk (§6.2)");
    let r = c
        .post_with(
            &c.url("newOrder"),
            Some(&json!({"identifiers": []})),
            JwsKey::Kid(format!("{}/acme/default/acct/nope", base(&new_acct))),
            Some(c.nonce().await),
            &c.url("newOrder"),
        )
        .await;
    assert_eq!(r.problem(), "accountDoesNotExist");
    // jwk where an account is required.
    let r = c
        .post_with(
            &c.url("newOrder"),
            Some(&json!({"identifiers": [{"type": "dns", "value": "a.routers.example.com"}]})),
            JwsKey::Jwk,
            Some(c.nonce().await),
            &c.url("newOrder"),
        )
        .await;
    assert_eq!(r.problem(), "malformed");
    // onlyReturnExisting for an unknown key.
    let r = c
        .post(&new_acct, Some(&json!({"onlyReturnExisting": true})))
        .await;
    assert_eq!(r.problem(), "accountDoesNotExist");
    // Contacts.
    assert_eq!(
        c.post(
            &new_acct,
            Some(&json!({"contact": ["mailto:a@b.com?cc=c@d.com"]}))
        )
        .await
        .problem(),
        "invalidContact"
    );
    assert_eq!(
        c.post(&new_acct, Some(&json!({"contact": ["tel:+1555"]})))
            .await
            .problem(),
        "unsupportedContact"
    );
    assert_eq!(
        env.counts().await,
        before,
        "refused requests must not change storage"
    );

    // Replay: the same signed request twice creates one account.
    let jws = acme_types::sign::sign_jws(
        &c.key,
        &acme_types::sign::JwsHeader {
            key: JwsKey::Jwk,
            nonce: Some(c.nonce().await),
            url: new_acct.clone(),
        },
        payload.to_string().as_bytes(),
    )
    .unwrap();
    let first = c
        .post_raw(
            &new_acct,
            jws.to_string().into_bytes(),
            "application/jose+json",
        )
        .await;
    assert_eq!(first.status, 201);
    let second = c
        .post_raw(
            &new_acct,
            jws.to_string().into_bytes(),
            "application/jose+json",
        )
        .await;
    assert_eq!(second.problem(), "badNonce");
    assert_eq!(env.counts().await.accounts, before.accounts + 1);
    // The same key again finds the existing account (200, same Location).
    let again = c.new_account().await;
    assert_eq!(again.status, 200);
    assert_eq!(again.location(), first.location());
}

fn base(url: &str) -> String {
    url.split("/acme/").next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn order_policy_ownership_and_lists() {
    let Some(env) = Env::start("order_policy_ownership_and_lists") else {
        return;
    };
    let c = env.client().await;
    let before = env.counts().await;

    // Outside the constraints: rejectedIdentifier, every bad identifier reported (§6.7.1).
    let r = c
        .new_order(&[
            "dev1.routers.example.com",
            "evil.example.net",
            "evilrouters.example.com",
        ])
        .await;
    assert_eq!(r.problem(), "compound");
    let subs = r.json()["subproblems"].as_array().unwrap().clone();
    assert_eq!(subs.len(), 2);
    assert!(subs
        .iter()
        .all(|s| s["type"] == "urn:ietf:params:acme:error:rejectedIdentifier"));
    assert_eq!(
        c.new_order(&["evil.example.net"]).await.problem(),
        "rejectedIdentifier"
    );
    assert_eq!(
        c.new_order(&["192.168.1.1"]).await.problem(),
        "rejectedIdentifier"
    );
    assert_eq!(
        c.new_order(&["a..routers.example.com"]).await.problem(),
        "rejectedIdentifier"
    );
    let r = c
        .post(
            &c.url("newOrder"),
            Some(&json!({"identifiers": [{"type": "email", "value": "a@routers.example.com"}]})),
        )
        .await;
    assert_eq!(r.problem(), "unsupportedIdentifier");
    let r = c.post(&c.url("newOrder"), Some(&json!({"identifiers": [{"type": "dns", "value": "a.routers.example.com"}], "notAfter": "2030-01-01T00:00:00Z"}))).await;
    assert_eq!(r.problem(), "malformed");
    assert_eq!(
        c.post(&c.url("newOrder"), Some(&json!({"identifiers": []})))
            .await
            .problem(),
        "malformed"
    );
    assert_eq!(
        env.counts().await,
        before,
        "refused orders must not change storage"
    );

    // Case, trailing dot and IP identifiers are accepted and canonicalised.
    let r = c
        .new_order(&["DEV2.Routers.Example.COM.", "10.1.2.3"])
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let order = r.json();
    let values: Vec<_> = order["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap().to_string())
        .collect();
    assert!(
        values.contains(&"dev2.routers.example.com".to_string()),
        "{values:?}"
    );
    assert!(values.contains(&"10.1.2.3".to_string()));
    let order_url = r.location();

    // Authorization reuse: a second order for the same name reuses the pending authz.
    let again = c.new_order(&["dev2.routers.example.com"]).await.json();
    assert!(order["authorizations"]
        .as_array()
        .unwrap()
        .contains(&again["authorizations"][0]));

    // Another account sees none of it.
    let other = env.client().await;
    assert_eq!(other.post(&order_url, None).await.status, 404);
    assert_eq!(
        other
            .post(order["authorizations"][0].as_str().unwrap(), None)
            .await
            .status,
        404
    );
    // Nor its challenges, read or answered: 404, and the challenge stays pending.
    let authz = c
        .post(order["authorizations"][0].as_str().unwrap(), None)
        .await
        .json();
    let ch_url = authz["challenges"][0]["url"].as_str().unwrap();
    assert_eq!(other.post(ch_url, None).await.status, 404);
    assert_eq!(other.post(ch_url, Some(&json!({}))).await.status, 404);
    assert_eq!(c.post(ch_url, None).await.json()["status"], "pending");
    let acct_orders = format!("{}/orders", c.kid.as_ref().unwrap());
    assert_eq!(
        other.post(&acct_orders, None).await.problem(),
        "unauthorized"
    );

    // The orders list.
    let list = c.post(&acct_orders, None).await.json();
    assert_eq!(list["orders"].as_array().unwrap().len(), 2);

    // Deactivating an authorization makes the order invalid.
    let authz_url = order["authorizations"][0].as_str().unwrap();
    let r = c
        .post(authz_url, Some(&json!({"status": "deactivated"})))
        .await;
    assert_eq!(r.json()["status"], "deactivated");
    assert_eq!(c.post(&order_url, None).await.json()["status"], "invalid");
    assert_eq!(
        c.post(authz_url, Some(&json!({"status": "deactivated"})))
            .await
            .problem(),
        "malformed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn account_update_key_change_and_deactivation() {
    let Some(env) = Env::start("account_update_key_change_and_deactivation") else {
        return;
    };
    let mut c = env.client().await;
    let kid = c.kid.clone().unwrap();
    let r = c
        .post(&kid, Some(&json!({"contact": ["mailto:new@example.com"]})))
        .await;
    assert_eq!(r.json()["contact"], json!(["mailto:new@example.com"]));
    // Each refused update below leaves every row as it was (a refusal that still wrote the
    // status or the key would show in the content digests, not only in the row counts).
    let before = env.counts().await;
    assert_eq!(
        c.post(
            &kid,
            Some(&json!({"status": "valid", "contact": ["mailto:refused@example.com"]}))
        )
        .await
        .problem(),
        "malformed"
    );
    assert_eq!(env.counts().await, before, "a refused status update");

    // keyChange (§7.3.5).
    let new_key = AccountKey::generate(AccountKeyKind::EcdsaP256).unwrap();
    let url = c.url("keyChange");
    let inner = acme_types::sign::sign_jws(
        &new_key,
        &acme_types::sign::JwsHeader {
            key: JwsKey::Jwk,
            nonce: None,
            url: url.clone(),
        },
        json!({"account": kid, "oldKey": c.key.jwk().to_json()})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let r = c.post(&url, Some(&inner)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The old key no longer signs for the account; the new one does.
    let before = env.counts().await;
    assert_eq!(
        c.post(
            &kid,
            Some(&json!({"contact": ["mailto:old-key@example.com"]}))
        )
        .await
        .problem(),
        "malformed"
    );
    assert_eq!(
        env.counts().await,
        before,
        "an update signed by the old key"
    );
    c.key = new_key;
    assert_eq!(c.post(&kid, None).await.status, 200);

    // Deactivation is final (§7.3.6).
    let r = c.post(&kid, Some(&json!({"status": "deactivated"}))).await;
    assert_eq!(r.json()["status"], "deactivated");
    let before = env.counts().await;
    assert_eq!(
        c.new_order(&["x.routers.example.com"]).await.problem(),
        "unauthorized"
    );
    assert_eq!(
        c.post(
            &kid,
            Some(&json!({"contact": ["mailto:after@example.com"]}))
        )
        .await
        .problem(),
        "unauthorized"
    );
    c.kid = None;
    assert_eq!(c.new_account().await.problem(), "unauthorized");
    assert_eq!(
        env.counts().await,
        before,
        "requests of a deactivated account"
    );
}

/// An account changed behind this server's back (another node, the CLI, the admin API: here
/// a second connection to the same database) is seen on its very next request, whatever the
/// server kept from earlier ones (on PostgreSQL it keeps accounts and checks them in the
/// statement that spends the nonce).
#[tokio::test(flavor = "multi_thread")]
async fn an_account_changed_elsewhere_is_seen_on_its_next_request() {
    let Some(env) = Env::start("an_account_changed_elsewhere_is_seen_on_its_next_request") else {
        return;
    };
    let mut c = env.client().await;
    let kid = c.kid.clone().unwrap();
    let id = kid.rsplit('/').next().unwrap().to_string();
    assert_eq!(c.post(&kid, None).await.status, 200);
    let db = fleetca::sa::open_database(&env.ca.database_url())
        .await
        .expect("open db");

    // Contacts changed elsewhere: the account object shows them at once.
    db.update_account_contact(&id, &["mailto:elsewhere@example.com".to_string()])
        .await
        .unwrap();
    let r = c.post(&kid, None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["contact"], json!(["mailto:elsewhere@example.com"]));

    // Key changed elsewhere: the old key is refused, the new one signs for the account.
    let new_key = AccountKey::generate(AccountKeyKind::EcdsaP256).unwrap();
    let (old_tp, new_jwk) = (c.key.jwk().thumbprint(), new_key.jwk());
    assert!(db
        .try_change_account_key(
            &id,
            &old_tp,
            &new_jwk.thumbprint(),
            &new_jwk.to_json().to_string()
        )
        .await
        .unwrap());
    let before = env.counts().await;
    assert_eq!(
        c.new_order(&["k.routers.example.com"]).await.problem(),
        "malformed"
    );
    assert_eq!(
        env.counts().await,
        before,
        "an order signed by the replaced key"
    );
    c.key = new_key;
    assert_eq!(c.post(&kid, None).await.status, 200);

    // Deactivated elsewhere: the next request is refused and changes nothing.
    assert!(db.try_deactivate_account(&id).await.unwrap());
    let before = env.counts().await;
    assert_eq!(
        c.new_order(&["d.routers.example.com"]).await.problem(),
        "unauthorized"
    );
    assert_eq!(c.post(&kid, None).await.problem(), "unauthorized");
    assert_eq!(
        env.counts().await,
        before,
        "requests of an account deactivated elsewhere"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_nonce_and_unknown_routes() {
    let Some(env) = Env::start("directory_nonce_and_unknown_routes") else {
        return;
    };
    let c = Client::new(&env.ca.directory_url(), &env.root).await;
    for k in [
        "newNonce",
        "newAccount",
        "newOrder",
        "revokeCert",
        "keyChange",
    ] {
        assert!(
            c.directory[k]
                .as_str()
                .unwrap()
                .starts_with("https://127.0.0.1:"),
            "{k}"
        );
    }
    assert_eq!(c.directory["meta"]["externalAccountRequired"], false);
    let r = c.http.head(c.url("newNonce")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let r = c.http.get(c.url("newNonce")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let n1 = r.headers()["replay-nonce"].to_str().unwrap().to_string();
    assert_ne!(n1, c.nonce().await);
    let r = c.http.get(c.url("newOrder")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = c
        .http
        .get(env.ca.directory_url().replace("/default/", "/nope/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn key_change_to_a_taken_key_conflicts_and_orders_paginate() {
    let Some(env) = Env::start("key_change_to_a_taken_key_conflicts_and_orders_paginate") else {
        return;
    };
    let c = env.client().await;
    let other = env.client().await;
    let kid = c.kid.clone().unwrap();
    // keyChange to a key another account holds: 409 with that account's Location (§7.3.5).
    let url = c.url("keyChange");
    let inner = acme_types::sign::sign_jws(
        &other.key,
        &acme_types::sign::JwsHeader {
            key: JwsKey::Jwk,
            nonce: None,
            url: url.clone(),
        },
        json!({"account": kid, "oldKey": c.key.jwk().to_json()})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let before = env.counts().await;
    let r = c.post(&url, Some(&inner)).await;
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.location(), other.kid.clone().unwrap());
    assert_eq!(
        c.post(&kid, None).await.status,
        200,
        "the old key still works"
    );
    assert_eq!(env.counts().await, before);

    // More orders than one page: Link rel="next" walks them all exactly once (§7.1.2.1).
    for i in 0..55 {
        assert_eq!(
            c.new_order(&[&format!("d{i}.routers.example.com")])
                .await
                .status,
            201
        );
    }
    let mut seen = std::collections::HashSet::new();
    let mut next = Some(format!("{kid}/orders"));
    let mut pages = 0;
    while let Some(url) = next {
        let r = c.post(&url, None).await;
        for o in r.json()["orders"].as_array().unwrap() {
            assert!(
                seen.insert(o.as_str().unwrap().to_string()),
                "order listed twice"
            );
        }
        next = r.links("next").into_iter().next();
        pages += 1;
    }
    assert_eq!((seen.len(), pages), (55, 2));
}

/// The challenge POST waits briefly for its validation (`RaConfig::challenge_wait`): a fast
/// success or failure comes back in the same response, a slow validation is reported
/// `processing` with `Retry-After` and finishes in the background.
#[tokio::test(flavor = "multi_thread")]
async fn challenge_response_carries_a_fast_outcome() {
    let Some(env) = Env::start("challenge_response_carries_a_fast_outcome") else {
        return;
    };
    let c = env.client().await;
    let challenge = |authz: &Value, kind: &str| {
        authz["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ch| ch["type"] == kind)
            .unwrap_or_else(|| panic!("{kind} offered: {authz}"))
            .clone()
    };
    let names = [
        "fast.routers.example.com",
        "wrong.routers.example.com",
        "slow.routers.example.com",
    ];
    let order = c.new_order(&names).await.json();
    let authz_urls: Vec<String> = order["authorizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let authzs: Vec<Value> = {
        let mut v = Vec::new();
        for u in &authz_urls {
            v.push(c.post(u, None).await.json());
        }
        v
    };
    let by_name = |n: &str| {
        let i = authzs
            .iter()
            .position(|a| a["identifier"]["value"] == n)
            .expect("authorization per name");
        (authz_urls[i].clone(), authzs[i].clone())
    };

    // Correct TXT record: the response already says valid, and so does the authorization.
    let (fast_url, fast) = by_name(names[0]);
    let ch = challenge(&fast, "dns-01");
    let txt =
        acme_types::keyauth::dns01_txt_value(&c.key_authorization(ch["token"].as_str().unwrap()));
    env.dns
        .set_txt(&format!("_acme-challenge.{}", names[0]), &txt);
    let r = c.post(ch["url"].as_str().unwrap(), Some(&json!({}))).await;
    let body = r.json();
    assert_eq!(body["status"], "valid", "{body}\n{}", env.ca.log());
    assert!(body["validated"].is_string(), "{body}");
    assert!(r.header("retry-after").is_none());
    assert_eq!(c.post(&fast_url, None).await.json()["status"], "valid");

    // No TXT record: the response says invalid, with the problem, and the authorization too.
    let (wrong_url, wrong) = by_name(names[1]);
    let ch = challenge(&wrong, "dns-01");
    let r = c.post(ch["url"].as_str().unwrap(), Some(&json!({}))).await;
    let body = r.json();
    assert_eq!(body["status"], "invalid", "{body}");
    assert!(
        body["error"]["type"]
            .as_str()
            .unwrap_or_default()
            .starts_with("urn:ietf:params:acme:error:"),
        "{body}"
    );
    assert_eq!(c.post(&wrong_url, None).await.json()["status"], "invalid");
    // Answering again changes nothing and reports the decided state.
    let again = c.post(ch["url"].as_str().unwrap(), Some(&json!({}))).await;
    assert_eq!(again.json()["status"], "invalid");

    // An http-01 server that accepts and never answers: the response comes back while the
    // validation is still running, as processing with Retry-After.
    let _hang = std::net::TcpListener::bind(("127.0.0.1", env.http01_port)).expect("bind http-01");
    env.dns.add_a(names[2], std::net::Ipv4Addr::LOCALHOST);
    let (slow_url, slow) = by_name(names[2]);
    let ch = challenge(&slow, "http-01");
    let r = c.post(ch["url"].as_str().unwrap(), Some(&json!({}))).await;
    let body = r.json();
    assert_eq!(body["status"], "processing", "{body}");
    assert!(r.header("retry-after").is_some());
    assert_eq!(c.post(&slow_url, None).await.json()["status"], "pending");
}
