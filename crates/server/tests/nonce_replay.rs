//! A replayed request is refused with `badNonce` and changes nothing (RFC 8555 §6.5), for
//! each request of an issuance: on PostgreSQL their nonce is spent by the request's first
//! read (one statement with it) rather than before the request is handled, so each is
//! replayed here, byte for byte, after it succeeded once. Runs on both backends
//! (`FLEETCA_TEST_BACKEND=postgres` for PostgreSQL).

mod client;
mod support;

use acme_types::sign::JwsKey;
use client::{b64url, csr, Client, Resp};
use fleetca::sa::TableCounts;
use serde_json::{json, Value};
use support::authz::challenge_of;
use support::{ChallTestSrv, Fleetca, Tool};

struct Env {
    ca: Fleetca,
    dns: ChallTestSrv,
    root: String,
}

impl Env {
    /// The harness blocks on its own runtime, so it runs on a plain thread.
    fn start(test: &'static str) -> Option<Env> {
        std::thread::spawn(move || {
            if !support::require(test, &[Tool::ChallTestSrv]) {
                return None;
            }
            let dns = ChallTestSrv::start();
            let mut ca = Fleetca::init(&["routers.example.com"]);
            // The account and name limits off (as `scripts/bench-postgres` runs): with their
            // buckets shared in PostgreSQL, newOrder and the challenge POST spend the nonce
            // before writing them, the ordinary way `acme_server` covers; without, every
            // step here is its one-statement form.
            ca.set_rate_limits(
                "failed_validations_per_account_per_hour = 0\n\
                 new_orders_per_account_per_hour = 0\n\
                 certificates_per_name_per_week = 0",
            );
            ca.serve(dns.dns_port(), support::free_port(), support::free_port());
            let root = ca.root_pem().to_string();
            Some(Env { ca, dns, root })
        })
        .join()
        .expect("harness thread")
    }

    async fn counts(&self) -> TableCounts {
        self.ca.counts().await
    }
}

/// Sends `body` to `url`.
async fn send(c: &Client, url: &str, body: &[u8]) -> Resp {
    c.post_raw(url, body.to_vec(), "application/jose+json")
        .await
}

/// Sends `body` again: `badNonce` with a fresh nonce, and storage as it was.
async fn assert_replay_refused(env: &Env, c: &Client, url: &str, body: &[u8], what: &str) {
    let before = env.counts().await;
    let r = send(c, url, body).await;
    assert_eq!(
        (r.status, r.problem().as_str()),
        (400, "badNonce"),
        "{what} replayed: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(r.header("replay-nonce").is_some(), "{what}");
    assert_eq!(
        env.counts().await,
        before,
        "{what} replayed changed storage"
    );
}

/// Sends a new request signed with `spent`, a nonce an earlier request used: `badNonce`, and
/// storage as it was (on PostgreSQL the statement that would have spent it also holds the
/// request's first write, which must not happen).
async fn assert_spent_nonce_refused(
    env: &Env,
    c: &Client,
    url: &str,
    payload: Option<&Value>,
    spent: &str,
    what: &str,
) {
    let before = env.counts().await;
    let kid = JwsKey::Kid(c.kid().to_string());
    let r = c
        .post_with(url, payload, kid, Some(spent.to_string()), url)
        .await;
    assert_eq!(
        (r.status, r.problem().as_str()),
        (400, "badNonce"),
        "{what} with a spent nonce: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        env.counts().await,
        before,
        "{what} with a spent nonce changed storage"
    );
}

/// Reads `url` (POST-as-GET) with a nonce of its own, which it returns, spent.
async fn read_spending(c: &Client, url: &str) -> String {
    let nonce = c.nonce().await;
    let kid = JwsKey::Kid(c.kid().to_string());
    let r = c.post_with(url, None, kid, Some(nonce.clone()), url).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    nonce
}

#[tokio::test]
async fn a_spent_nonce_starts_nothing() {
    let Some(env) = Env::start("a_spent_nonce_starts_nothing") else {
        return;
    };
    let mut c = Client::new(&env.ca.directory_url(), &env.root).await;
    assert_eq!(c.new_account().await.status, 201);
    let name = "stale.routers.example.com";
    let acct_url = c.kid().to_string();
    let spent = read_spending(&c, &acct_url).await;
    let new_order = json!({"identifiers": [{"type": "dns", "value": name}]});
    assert_spent_nonce_refused(
        &env,
        &c,
        &c.url("newOrder"),
        Some(&new_order),
        &spent,
        "newOrder",
    )
    .await;

    let r = c.new_order(&[name]).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let order_url = r.location();
    let order = r.json();
    let authz_url = order["authorizations"][0]
        .as_str()
        .expect("authz")
        .to_string();
    let spent = read_spending(&c, &authz_url).await;
    assert_spent_nonce_refused(&env, &c, &authz_url, None, &spent, "authorization").await;

    // The challenge is pending: a POST with a spent nonce must not start it.
    let authz = c.post(&authz_url, None).await.json();
    let ch = challenge_of(&authz, "dns-01");
    let ch_url = ch["url"].as_str().expect("challenge URL").to_string();
    assert_spent_nonce_refused(&env, &c, &ch_url, Some(&json!({})), &spent, "challenge").await;
    let now = c.post(&ch_url, None).await.json();
    assert_eq!(now["status"], "pending", "{now}");

    // Ready order: finalize with a spent nonce must not claim it.
    env.dns.set_txt(
        &format!("_acme-challenge.{name}"),
        &acme_types::keyauth::dns01_txt_value(
            &c.key_authorization(ch["token"].as_str().expect("token")),
        ),
    );
    assert_eq!(c.post(&ch_url, Some(&json!({}))).await.status, 200);
    let ready = c.poll(&order_url, |o| o["status"] != "pending").await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let (csr_der, _key) = csr(&[name], &rcgen::PKCS_ECDSA_P256_SHA256);
    let fin = json!({"csr": b64url(&csr_der)});
    let fin_url = order["finalize"].as_str().expect("finalize").to_string();
    assert_spent_nonce_refused(&env, &c, &fin_url, Some(&fin), &spent, "finalize").await;
    let still = c.post(&order_url, None).await.json();
    assert_eq!(still["status"], "ready", "{still}");
}

#[tokio::test]
async fn each_issuance_request_replayed_is_bad_nonce_and_changes_nothing() {
    let Some(env) = Env::start("each_issuance_request_replayed_is_bad_nonce_and_changes_nothing")
    else {
        return;
    };
    let mut c = Client::new(&env.ca.directory_url(), &env.root).await;
    assert_eq!(c.new_account().await.status, 201);
    let name = "replay.routers.example.com";

    // newOrder.
    let new_order = c.url("newOrder");
    let body = c
        .signed(
            &new_order,
            Some(&json!({"identifiers": [{"type": "dns", "value": name}]})),
        )
        .await;
    let r = send(&c, &new_order, &body).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let order_url = r.location();
    let order = r.json();
    assert_replay_refused(&env, &c, &new_order, &body, "newOrder").await;

    // newAuthz (RFC 8555 §7.4.1): its nonce rides the same lookup as newOrder's.
    let new_authz = c.url("newAuthz");
    let pre = json!({"identifier": {"type": "dns", "value": "pre.routers.example.com"}});
    let body = c.signed(&new_authz, Some(&pre)).await;
    let r = send(&c, &new_authz, &body).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_replay_refused(&env, &c, &new_authz, &body, "newAuthz").await;

    // Authorization, POST-as-GET.
    let authz_url = order["authorizations"][0]
        .as_str()
        .expect("authz")
        .to_string();
    let body = c.signed(&authz_url, None).await;
    let r = send(&c, &authz_url, &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let authz = r.json();
    assert_replay_refused(&env, &c, &authz_url, &body, "authorization").await;

    // Challenge response: replayed once the validation it started has finished.
    let ch = challenge_of(&authz, "dns-01");
    let token = ch["token"].as_str().expect("token");
    env.dns.set_txt(
        &format!("_acme-challenge.{name}"),
        &acme_types::keyauth::dns01_txt_value(&c.key_authorization(token)),
    );
    let ch_url = ch["url"].as_str().expect("challenge URL").to_string();
    let body = c.signed(&ch_url, Some(&json!({}))).await;
    let r = send(&c, &ch_url, &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let done = c.poll(&authz_url, |a| a["status"] != "pending").await;
    assert_eq!(done["status"], "valid", "{done}");
    assert_replay_refused(&env, &c, &ch_url, &body, "challenge").await;

    // Finalize.
    let (csr_der, _key) = csr(&[name], &rcgen::PKCS_ECDSA_P256_SHA256);
    let fin_url = order["finalize"].as_str().expect("finalize").to_string();
    let body = c
        .signed(&fin_url, Some(&json!({"csr": b64url(&csr_der)})))
        .await;
    let r = send(&c, &fin_url, &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let order: Value = c.poll(&order_url, |o| o["status"] != "processing").await;
    assert_eq!(order["status"], "valid", "{order}");
    assert_replay_refused(&env, &c, &fin_url, &body, "finalize").await;

    // The order, POST-as-GET, as clients poll it after finalize.
    let body = c.signed(&order_url, None).await;
    let r = send(&c, &order_url, &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"], "valid");
    assert_replay_refused(&env, &c, &order_url, &body, "order").await;

    // Certificate download.
    let cert_url = order["certificate"]
        .as_str()
        .expect("certificate")
        .to_string();
    let body = c.signed(&cert_url, None).await;
    let r = send(&c, &cert_url, &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_replay_refused(&env, &c, &cert_url, &body, "certificate").await;
}
