//! RFC 8555 §7.4.1 pre-authorization (newAuthz) and RFC 9444 (ACME for subdomains) on the wire,
//! over HTTPS against a real `fleetca serve` whose DNS is a real pebble-challtestsrv on
//! loopback, with this crate's small JWS test client.
//!
//! An account pre-authorizes `routers.example.com` with `subdomainAuthAllowed` by dns-01; then
//! its orders for names below it are ready without a challenge (with or without
//! `ancestorDomain`) and are issued. Another account, an authorization without
//! `subdomainAuthAllowed`, and the same account after deactivating the ancestor all get
//! challenges. Malformed requests are refused as RFC 7807 problems and change nothing.
//!
//! `FLEETCA_TEST_BACKEND=postgres` runs it on PostgreSQL.

mod client;
mod support;

use client::Client;
use serde_json::{json, Value};
use support::{free_port, ChallTestSrv, Fleetca, Tool};

const TENANT: &str = "routers";
const ANCESTOR: &str = "routers.example.com";
const SUBDOMAIN: &str = "a.b.routers.example.com";

struct Env {
    ca: Fleetca,
    dns: ChallTestSrv,
    root: String,
}

fn start() -> Env {
    let dns = ChallTestSrv::start();
    let mut ca = Fleetca::init(&["home.arpa"]);
    let out = ca.cli(&["tenant", "add", TENANT, "--permit", "example.com"]);
    assert!(out.success(), "{out}");
    // Nothing listens on the VA's http-01 port: only dns-01 can pass.
    ca.serve_with(dns.dns_port(), free_port(), free_port(), &[]);
    let root = ca.root_pem().to_string();
    Env { ca, dns, root }
}

impl Env {
    fn directory(&self) -> String {
        self.ca
            .directory_url()
            .replace("/acme/default/", &format!("/acme/{TENANT}/"))
    }

    async fn account(&self) -> Client {
        let mut c = Client::new(&self.directory(), &self.root).await;
        let r = c.new_account().await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        c
    }

    async fn counts(&self) -> fleetca::sa::TableCounts {
        self.ca.counts().await
    }
}

async fn new_authz(c: &Client, payload: Value) -> client::Resp {
    c.post(&c.url("newAuthz"), Some(&payload)).await
}

/// newOrder with raw identifier objects (so they may carry `ancestorDomain`).
async fn new_order(c: &Client, identifiers: Value) -> client::Resp {
    c.post(
        &c.url("newOrder"),
        Some(&json!({ "identifiers": identifiers })),
    )
    .await
}

/// The order and each of its authorizations.
async fn order_authzs(c: &Client, r: &client::Resp) -> (Value, Vec<Value>) {
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let o = r.json();
    let mut authzs = Vec::new();
    for a in o["authorizations"].as_array().unwrap() {
        authzs.push(c.post(a.as_str().unwrap(), None).await.json());
    }
    (o, authzs)
}

/// Answers the pending authorization at `url` by dns-01 and waits until it is valid.
async fn answer_dns01(env: &Env, c: &Client, url: &str) -> Value {
    let authz = c.post(url, None).await.json();
    let order_like = json!({ "authorizations": [url] });
    c.authorize_dns01(&order_like, |name, value| env.dns.set_txt(name, value))
        .await;
    let name = authz["identifier"]["value"].as_str().unwrap();
    env.dns.clear_txt(&format!("_acme-challenge.{name}"));
    c.post(url, None).await.json()
}

#[tokio::test(flavor = "multi_thread")]
async fn subdomain_authorization_covers_the_accounts_subdomains_only() {
    const TEST: &str = "subdomain_authorization_covers_the_accounts_subdomains_only";
    if !support::require(TEST, &[Tool::ChallTestSrv]) {
        return;
    }
    let env = tokio::task::spawn_blocking(start).await.unwrap();
    let owner = env.account().await;

    // The directory advertises both (RFC 8555 §7.1.1, RFC 9444 §4.1).
    assert!(owner
        .url("newAuthz")
        .ends_with(&format!("/acme/{TENANT}/new-authz")));
    assert_eq!(owner.directory["meta"]["subdomainAuthAllowed"], true);

    // Refusals: RFC 7807 problems, and nothing stored or changed.
    let before = env.counts().await;
    let refused = [
        // RFC 9444 §4.1: DNS identifiers only.
        new_authz(
            &owner,
            json!({"identifier": {"type": "ip", "value": "192.0.2.1"}, "subdomainAuthAllowed": true}),
        )
        .await,
        // RFC 8555 §7.4.1: no wildcard pre-authorization.
        new_authz(
            &owner,
            json!({"identifier": {"type": "dns", "value": "*.routers.example.com"}}),
        )
        .await,
        // RFC 9444 §4.2: ancestorDomain must be an ancestor of the identifier.
        new_order(
            &owner,
            json!([{"type": "dns", "value": SUBDOMAIN, "ancestorDomain": "other.example.com"}]),
        )
        .await,
        new_order(
            &owner,
            json!([{"type": "dns", "value": SUBDOMAIN, "ancestorDomain": "outers.example.com"}]),
        )
        .await,
        new_order(
            &owner,
            json!([{"type": "dns", "value": SUBDOMAIN, "ancestorDomain": SUBDOMAIN}]),
        )
        .await,
        new_order(
            &owner,
            json!([{"type": "ip", "value": "192.0.2.1", "ancestorDomain": ANCESTOR}]),
        )
        .await,
    ];
    for r in &refused {
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.problem(), "malformed", "{}", r.json());
        assert!(!r.json()["detail"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        env.counts().await,
        before,
        "a refused request changed state"
    );

    // Pre-authorize the ancestor with subdomainAuthAllowed: dns-01 only (RFC 9444 §4.1).
    let r = new_authz(
        &owner,
        json!({"identifier": {"type": "dns", "value": ANCESTOR}, "subdomainAuthAllowed": true}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let ancestor_url = r.location();
    let a = r.json();
    assert_eq!(a["status"], "pending", "{a}");
    assert_eq!(a["subdomainAuthAllowed"], true, "{a}");
    let kinds: Vec<&str> = a["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["dns-01"], "{a}");
    // Pending, it grants nothing yet.
    let (o, authzs) = order_authzs(
        &owner,
        &new_order(&owner, json!([{"type": "dns", "value": SUBDOMAIN}])).await,
    )
    .await;
    support::authz::assert_challenged(&o, &authzs);

    let valid = answer_dns01(&env, &owner, &ancestor_url).await;
    assert_eq!(valid["status"], "valid", "{valid}");
    assert_eq!(valid["subdomainAuthAllowed"], true, "{valid}");

    // The same account: names below are ready without a challenge, with or without
    // ancestorDomain, expiring no later than the ancestor; and the order is issued (the CAA
    // recheck at finalize checks the subdomain itself).
    for ident in [
        json!({"type": "dns", "value": SUBDOMAIN}),
        json!({"type": "dns", "value": "x.routers.example.com", "ancestorDomain": ANCESTOR}),
        json!({"type": "dns", "value": "*.routers.example.com"}),
    ] {
        let r = new_order(&owner, json!([ident])).await;
        let url = r.location();
        let (o, authzs) = order_authzs(&owner, &r).await;
        support::authz::assert_granted(&o, &authzs);
        assert!(authzs[0]["expires"].as_str() <= valid["expires"].as_str());
        if ident["value"] == SUBDOMAIN {
            let (chain, _) = owner.finalize_and_download(&url, &o, &[SUBDOMAIN]).await;
            assert!(!chain.is_empty());
        }
    }

    // Another account of the same tenant does not profit, even naming the ancestor.
    let other = env.account().await;
    for ident in [
        json!({"type": "dns", "value": SUBDOMAIN}),
        json!({"type": "dns", "value": SUBDOMAIN, "ancestorDomain": ANCESTOR}),
    ] {
        let (o, authzs) = order_authzs(&other, &new_order(&other, json!([ident])).await).await;
        support::authz::assert_challenged(&o, &authzs);
    }

    // An authorization without subdomainAuthAllowed covers its own name only.
    let r = new_authz(
        &owner,
        json!({"identifier": {"type": "dns", "value": "other.example.com"}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let plain_url = r.location();
    assert!(
        r.json().get("subdomainAuthAllowed").is_none(),
        "{}",
        r.json()
    );
    let plain = answer_dns01(&env, &owner, &plain_url).await;
    assert_eq!(plain["status"], "valid", "{plain}");
    let (o, authzs) = order_authzs(
        &owner,
        &new_order(
            &owner,
            json!([{"type": "dns", "value": "x.other.example.com"}]),
        )
        .await,
    )
    .await;
    support::authz::assert_challenged(&o, &authzs);
    let r = new_order(
        &owner,
        json!([{"type": "dns", "value": "x.other.example.com", "ancestorDomain": "other.example.com"}]),
    )
    .await;
    let (o, authzs) = order_authzs(&owner, &r).await;
    support::authz::assert_challenged(&o, &authzs);

    // Deactivating the ancestor stops it at once, and takes the names derived from it along.
    let r = new_order(
        &owner,
        json!([{"type": "dns", "value": "y.routers.example.com"}]),
    )
    .await;
    let (o, derived) = order_authzs(&owner, &r).await;
    support::authz::assert_granted(&o, &derived);
    let r = owner
        .post(&ancestor_url, Some(&json!({"status": "deactivated"})))
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let again = owner
        .post(o["authorizations"][0].as_str().unwrap(), None)
        .await
        .json();
    assert_eq!(again["status"], "deactivated", "{again}");
    let (o, authzs) = order_authzs(
        &owner,
        &new_order(
            &owner,
            json!([{"type": "dns", "value": "z.routers.example.com"}]),
        )
        .await,
    )
    .await;
    support::authz::assert_challenged(&o, &authzs);
}

/// newAuthz reads what it decides on with the lookup newOrder makes, which on PostgreSQL also
/// spends the nonce and takes the account's newOrder token (one statement), and then stores
/// the authorization: two storage steps, counted by the server's own
/// `fleetca_db_operation_duration_seconds`. It draws on that bucket like an order: with two
/// per hour, the third is refused with `rateLimited` and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_authz_reads_once_and_draws_on_the_order_bucket() {
    // Starting the server waits for it with blocking requests.
    let ca = tokio::task::block_in_place(|| {
        let mut ca = Fleetca::init(&["home.arpa"]);
        ca.set_rate_limits("new_orders_per_account_per_hour = 2");
        ca.serve(free_port(), free_port(), free_port());
        ca
    });
    let root = ca.root_pem().to_string();
    let mut c = Client::new(&ca.directory_url(), &root).await;
    let r = c.new_account().await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let ops = [
        "new_order_reads_spending",
        "subdomain_ancestor_authzs",
        "insert_authz",
    ];
    // The scrape blocks on a runtime of its own.
    let calls = || tokio::task::block_in_place(|| support::metrics::db_calls(&ca, ops));
    for name in ["a.home.arpa", "b.home.arpa"] {
        let before = calls();
        let r = new_authz(
            &c,
            json!({ "identifier": { "type": "dns", "value": name } }),
        )
        .await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let after = calls();
        let made: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
        assert_eq!(made, [1.0, 0.0, 1.0], "{name}: {ops:?}");
    }
    let before = ca.counts().await;
    let r = new_authz(
        &c,
        json!({ "identifier": { "type": "dns", "value": "c.home.arpa" } }),
    )
    .await;
    assert_eq!(r.status, 429, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["type"], "urn:ietf:params:acme:error:rateLimited");
    assert_eq!(
        ca.counts().await,
        before,
        "a refused newAuthz stores nothing"
    );
}
