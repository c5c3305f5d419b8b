//! Fleet onboarding: External Account Binding (RFC 8555 §7.3.4) against a live `fleetca serve`
//! with `eab_required`, driven by this crate's test client (every rejection rule, each checking
//! that no account was created and no use was spent) and by certbot and lego.

mod client;
mod support;

use acme_types::eab::{eab_jws, EabAlgorithm};
use acme_types::sign::{AccountKey, AccountKeyKind};
use client::{Client, Resp};
use fleetca::ra::EabKeyring;
use fleetca::sa::{AuditEntry, EabKeyRecord};
use serde_json::{json, Value};
use support::{free_port, Fleetca, Tool};

const PERMITS: &[&str] = &["routers.example.com", "10.0.0.0/8"];

struct Env {
    ca: Fleetca,
    root: String,
}

impl Env {
    /// Starts `fleetca serve` with `--eab-required` on a plain thread (the harness blocks).
    fn start() -> Env {
        std::thread::spawn(|| {
            let mut ca = Fleetca::init_with(PERMITS, &["--eab-required"]);
            // No validation happens in these tests: any port will do for DNS and challenges.
            ca.serve(free_port(), free_port(), free_port());
            let root = ca.root_pem().to_string();
            Env { ca, root }
        })
        .join()
        .expect("harness thread")
    }

    fn eab_create(&self, uses: u32) -> (String, Vec<u8>) {
        let ca = &self.ca;
        let (kid, key) = std::thread::scope(|s| s.spawn(|| ca.eab_create("default", uses)).join())
            .expect("eab create");
        (kid, acme_types::b64::decode(&key).expect("base64url key"))
    }

    fn cli(&self, args: &[&str]) -> support::CmdOutput {
        let ca = &self.ca;
        std::thread::scope(|s| s.spawn(|| ca.cli(args)).join()).expect("cli")
    }

    async fn db(&self) -> std::sync::Arc<dyn fleetca::sa::Database> {
        fleetca::sa::open_database(&self.ca.database_url())
            .await
            .expect("open db")
    }

    async fn accounts(&self) -> i64 {
        self.db().await.counts().await.expect("counts").accounts
    }

    async fn uses(&self, kid: &str) -> i64 {
        self.db()
            .await
            .get_eab_key("default", kid)
            .await
            .expect("get")
            .expect("key exists")
            .uses
    }

    async fn client(&self) -> Client {
        Client::new(&self.ca.directory_url(), &self.root).await
    }
}

/// newAccount with `binding` (or none).
async fn new_account(c: &mut Client, binding: Option<Value>) -> Resp {
    let mut payload = json!({"termsOfServiceAgreed": true, "contact": ["mailto:ops@example.com"]});
    if let Some(b) = binding {
        payload["externalAccountBinding"] = b;
    }
    let r = c.post(&c.url("newAccount"), Some(&payload)).await;
    if r.status == 201 || r.status == 200 {
        c.kid = Some(r.location());
    }
    r
}

fn binding(c: &Client, kid: &str, key: &[u8]) -> Value {
    eab_jws(
        kid,
        key,
        &c.url("newAccount"),
        c.key.jwk(),
        EabAlgorithm::HS256,
    )
}

/// Sends a refused newAccount and checks the problem type, that no account was created and
/// that the credential's use count did not move.
async fn refused(env: &Env, binding: Option<Value>, problem: &str, kid: Option<&str>) {
    let before = env.accounts().await;
    let uses = match kid {
        Some(k) => Some(env.uses(k).await),
        None => None,
    };
    let mut c = env.client().await;
    let r = new_account(&mut c, binding).await;
    assert_eq!(r.problem(), problem, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        env.accounts().await,
        before,
        "a refused newAccount created an account"
    );
    if let (Some(k), Some(u)) = (kid, uses) {
        assert_eq!(env.uses(k).await, u, "a refused newAccount spent a use");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eab_binding_creates_account_and_is_returned() {
    let env = Env::start();
    let dir: Value = env.client().await.directory;
    assert_eq!(dir["meta"]["externalAccountRequired"], true);

    let (kid, key) = env.eab_create(1);
    let mut c = env.client().await;
    let b = binding(&c, &kid, &key);
    let r = new_account(&mut c, Some(b.clone())).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["externalAccountBinding"], b);
    assert_eq!(env.uses(&kid).await, 1);
    // The account object keeps showing the binding (§7.1.2).
    let acct = c.post(&c.kid.clone().unwrap(), None).await.json();
    assert_eq!(acct["externalAccountBinding"], b);
    // The same key again finds the existing account (200) and spends nothing.
    c.kid = None;
    let r = new_account(&mut c, Some(b)).await;
    assert_eq!(r.status, 200);
    assert_eq!(env.uses(&kid).await, 1);
    // An order works for the bound account.
    let r = c.new_order(&["dev1.routers.example.com"]).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    // HS384 and HS512 are accepted too; a reusable key counts its uses.
    let (kid, key) = env.eab_create(2);
    for alg in [EabAlgorithm::HS384, EabAlgorithm::HS512] {
        let mut c = env.client().await;
        let b = eab_jws(&kid, &key, &c.url("newAccount"), c.key.jwk(), alg);
        let r = new_account(&mut c, Some(b)).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(env.uses(&kid).await, 2);
    refused(&env, None, "externalAccountRequired", None).await;

    // Creation and revocation are in the audit log; the HMAC key never is.
    let audit = env.db().await;
    let log = audit.recent_audit(100).await.unwrap();
    assert!(log.iter().any(|e| e.action == "eab.create"));
    let key_b64 = acme_types::b64::encode(&key);
    assert!(log.iter().all(|e| !format!("{e:?}").contains(&key_b64)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eab_rejections_change_nothing() {
    let env = Env::start();
    let (kid, key) = env.eab_create(1);

    // Missing binding on a tenant that requires one.
    refused(&env, None, "externalAccountRequired", None).await;

    // Wrong MAC key.
    let c = env.client().await;
    let b = binding(&c, &kid, b"not-the-key-not-the-key-not-the-");
    refused(&env, Some(b), "unauthorized", Some(&kid)).await;

    // Unknown kid.
    let c = env.client().await;
    let b = binding(&c, "eab_nosuchkey", &key);
    refused(&env, Some(b), "unauthorized", None).await;

    // Wrong url (§7.3.4: must equal the outer JWS's url).
    let c = env.client().await;
    let b = eab_jws(
        &kid,
        &key,
        &c.url("newOrder"),
        c.key.jwk(),
        EabAlgorithm::HS256,
    );
    refused(&env, Some(b), "malformed", Some(&kid)).await;

    // Payload is not the outer JWS's key: a binding made for another account key.
    let other = AccountKey::generate(AccountKeyKind::EcdsaP256).unwrap();
    let c = env.client().await;
    let b = eab_jws(
        &kid,
        &key,
        &c.url("newAccount"),
        other.jwk(),
        EabAlgorithm::HS256,
    );
    refused(&env, Some(b), "unauthorized", Some(&kid)).await;

    // Not a JWS at all.
    refused(&env, Some(json!({"kid": kid})), "malformed", Some(&kid)).await;

    // Use it once, then a second device with the same single-use key is refused.
    let mut c = env.client().await;
    let b = binding(&c, &kid, &key);
    let r = new_account(&mut c, Some(b)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let c2 = env.client().await;
    let b = binding(&c2, &kid, &key);
    refused(&env, Some(b), "unauthorized", Some(&kid)).await;

    // Revoked.
    let (kid, key) = env.eab_create(5);
    let out = env.cli(&["eab", "revoke", &kid]);
    assert!(out.success(), "{out}");
    let c = env.client().await;
    let b = binding(&c, &kid, &key);
    refused(&env, Some(b), "unauthorized", Some(&kid)).await;

    // Expired: stored with an expiry in the past (no sleeping), sealed like the CLI does.
    let ring = EabKeyring::load_or_create(&env.ca.data_dir().join("eab.key")).unwrap();
    let key = vec![42u8; 32];
    let kid = "eab_expired".to_string();
    let rec = EabKeyRecord {
        kid: kid.clone(),
        tenant: "default".into(),
        sealed_key: ring.seal("default", &kid, &key).unwrap(),
        max_uses: 1,
        uses: 0,
        expires_at: Some(1_000),
        revoked_at: None,
        created_at: 0,
    };
    let audit = AuditEntry {
        at: 0,
        actor: "test".into(),
        action: "eab.create".into(),
        tenant: Some("default".into()),
        object: Some(kid.clone()),
        before: None,
        after: None,
    };
    env.db().await.insert_eab_key(&rec, &audit).await.unwrap();
    let c = env.client().await;
    let b = binding(&c, &kid, &key);
    refused(&env, Some(b), "unauthorized", Some(&kid)).await;

    // A listing shows states and never a key.
    let out = env.cli(&["eab", "list", "--json"]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("\"revoked\"") && out.stdout.contains("\"expired\""));
    assert!(!out.stdout.contains("hmac"));
}

/// A concurrent double use of a single-use key creates exactly one account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eab_single_use_key_races_create_one_account() {
    let env = Env::start();
    for _ in 0..3 {
        let (kid, key) = env.eab_create(1);
        let before = env.accounts().await;
        let mut a = env.client().await;
        let mut b = env.client().await;
        let (ba, bb) = (binding(&a, &kid, &key), binding(&b, &kid, &key));
        let (ra, rb) = tokio::join!(new_account(&mut a, Some(ba)), new_account(&mut b, Some(bb)));
        let (won, lost) = if ra.status == 201 { (ra, rb) } else { (rb, ra) };
        assert_eq!(won.status, 201, "{won:?}");
        assert_eq!(lost.problem(), "unauthorized", "{lost:?}");
        assert_eq!(env.accounts().await, before + 1);
        assert_eq!(env.uses(&kid).await, 1);
    }
}

fn interop_env(test: &str, client: Tool) -> Option<(Env, support::ChallTestSrv, u16)> {
    if !support::require(test, &[Tool::ChallTestSrv, Tool::Openssl, client]) {
        return None;
    }
    let cts = support::ChallTestSrv::start();
    let http01 = free_port();
    let mut ca = Fleetca::init_with(PERMITS, &["--eab-required"]);
    ca.serve(cts.dns_port(), http01, free_port());
    let root = ca.root_pem().to_string();
    Some((Env { ca, root }, cts, http01))
}

/// certbot `--eab-kid/--eab-hmac-key` against a tenant that requires EAB.
#[test]
fn certbot_with_eab() {
    let Some((env, _cts, http01)) = interop_env("certbot_with_eab", Tool::Certbot) else {
        return;
    };
    let (kid, key) = env.ca.eab_create("default", 1);
    let ep = env.ca.endpoint();
    // Without a binding certbot cannot register.
    assert!(support::certbot_certonly(&ep, &["dev0.routers.example.com"], http01).is_err());
    let cert = support::certbot_certonly(
        &ep.with_eab(&kid, &key),
        &["dev1.routers.example.com"],
        http01,
    )
    .unwrap_or_else(|e| panic!("certbot with EAB failed\n{e}\n{}", env.ca.log()));
    assert!(support::openssl_verify(
        env.ca.root_pem_path(),
        &cert.chain_path,
        &cert.cert_path
    ));
    let out = env.ca.cli(&["eab", "list", "--json"]);
    assert!(out.stdout.contains("\"uses\":1"), "{out}");
    assert!(
        !env.ca.log().contains(&key),
        "the HMAC key appeared in the server log"
    );
}

/// lego `--eab --kid --hmac`; a second lego account with the same single-use key fails.
#[test]
fn lego_with_eab() {
    let Some((env, _cts, http01)) = interop_env("lego_with_eab", Tool::Lego) else {
        return;
    };
    let (kid, key) = env.ca.eab_create("default", 1);
    let ep = env.ca.endpoint().with_eab(&kid, &key);
    let challenge = support::Challenge::Http01 { port: http01 };
    let cert = support::lego_run(&ep, &["dev2.routers.example.com"], challenge)
        .unwrap_or_else(|e| panic!("lego with EAB failed\n{e}\n{}", env.ca.log()));
    assert!(support::openssl_verify(
        env.ca.root_pem_path(),
        &cert.issuer_path,
        &cert.leaf_path
    ));
    let again = support::lego_run(&ep, &["dev3.routers.example.com"], challenge);
    let err = match again {
        Ok(_) => panic!("a used single-use EAB key registered a second lego account"),
        Err(e) => e,
    };
    assert!(err.combined().contains("unauthorized"), "{err}");
}
