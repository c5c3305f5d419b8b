//! Limits on what an unauthenticated client can make a real `fleetca serve` spend: CRL shards
//! beyond the configured count (RFC 5280 §5.2.5) are never signed or stored, nonces expire
//! after their configured lifetime, and the spent-nonce set of a node is capped (RFC 8555 §6.5:
//! a nonce the node can no longer vouch for is `badNonce`).

mod support;

use acme_types::sign::{sign_jws, AccountKey, AccountKeyKind, JwsHeader, JwsKey};
use fleetca::bench::client::{http_client, AcmeClient};
use serde_json::json;
use std::time::Duration;
use support::Fleetca;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The CRL shards stored for the default tenant, by number, among `shards`.
async fn stored_shards(f: &Fleetca, shards: &[u32]) -> Vec<u32> {
    let db = fleetca::sa::open_database(&f.database_url()).await.unwrap();
    let mut out = Vec::new();
    for &n in shards {
        if db.get_crl_shard("default", n).await.unwrap().is_some() {
            out.push(n);
        }
    }
    out
}

async fn get_status(url: &str) -> u16 {
    reqwest::get(url).await.unwrap().status().as_u16()
}

/// Without sharding no shard exists; with `--crl-shards 2` shards 0 and 1 do and nothing at
/// or above 2 is signed, stored or served.
#[test]
fn crl_shards_beyond_the_configured_count_are_refused_and_never_made() {
    let probe = [0, 1, 2, 5, 4095];
    let mut f = Fleetca::init(&["routers.example.com"]);
    f.serve_with(0, 0, 0, &[]);
    let rt = rt();
    rt.block_on(async {
        let base = f.plain_http_url().expect("plain HTTP URL in the log");
        for n in probe {
            let status = get_status(&format!("{base}/crl/default/{n}.crl")).await;
            assert_eq!(status, 404, "shard {n} with sharding off");
        }
        assert_eq!(stored_shards(&f, &probe).await, Vec::<u32>::new());
    });
    f.stop();
    f.serve_with(0, 0, 0, &["--crl-shards", "2"]);
    rt.block_on(async {
        let base = f.plain_http_url().expect("plain HTTP URL in the log");
        for n in probe {
            let status = get_status(&format!("{base}/crl/default/{n}.crl")).await;
            assert_eq!(status, if n < 2 { 200 } else { 404 }, "shard {n} of 2");
        }
        assert_eq!(stored_shards(&f, &probe).await, vec![0, 1]);
    });
}

/// A signed newAccount lookup (`onlyReturnExisting`) carrying `nonce`: returns the problem type.
async fn spend(c: &AcmeClient, key: &AccountKey, nonce: &str) -> String {
    let url = c.url("newAccount").unwrap();
    let jws = sign_jws(
        key,
        &JwsHeader {
            key: JwsKey::Jwk,
            nonce: Some(nonce.to_string()),
            url: url.clone(),
        },
        json!({"onlyReturnExisting": true}).to_string().as_bytes(),
    )
    .unwrap();
    let r = c
        .http
        .post(url)
        .header("content-type", "application/jose+json")
        .body(jws.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    body["type"].as_str().unwrap_or_default().to_string()
}

async fn client(f: &Fleetca) -> AcmeClient {
    let http = http_client(f.root_pem()).unwrap();
    AcmeClient::new(http, &f.directory_url()).await.unwrap()
}

const BAD_NONCE: &str = "urn:ietf:params:acme:error:badNonce";
const NO_ACCOUNT: &str = "urn:ietf:params:acme:error:accountDoesNotExist";

/// `--nonce-lifetime-secs 1`: a nonce used within its lifetime is accepted (the lookup gets
/// as far as "no such account"), one used after it is `badNonce`.
#[test]
fn an_expired_nonce_is_bad_nonce() {
    let mut f = Fleetca::init(&["routers.example.com"]);
    f.serve_with(0, 0, 0, &["--nonce-lifetime-secs", "1"]);
    rt().block_on(async {
        let c = client(&f).await;
        let key = AccountKey::generate(AccountKeyKind::EcdsaP256).unwrap();
        let n = c.nonce().await.unwrap();
        assert_eq!(spend(&c, &key, &n).await, NO_ACCOUNT);
        let stale = c.nonce().await.unwrap();
        // Expiry is the event under test, so the test waits for the clock itself: past the
        // one-second lifetime, in whole seconds.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(spend(&c, &key, &stale).await, BAD_NONCE);
    });
}

/// `--max-spent-nonces 2`: after a third nonce is spent the oldest is forgotten, and a nonce
/// issued no later than it (here: unspent, issued before all three) is `badNonce`, since the
/// node can no longer tell whether it was spent; a replay of the forgotten one is refused too.
#[test]
fn the_spent_nonce_set_is_capped() {
    let mut f = Fleetca::init(&["routers.example.com"]);
    if f.database_url().starts_with("postgres") {
        // Several nodes share the spent set as a table, pruned as nonces expire; the cap is
        // on one SQLite node's memory.
        eprintln!("SKIP: --max-spent-nonces caps a single node's in-memory set");
        return;
    }
    f.serve_with(0, 0, 0, &["--max-spent-nonces", "2"]);
    rt().block_on(async {
        let c = client(&f).await;
        let key = AccountKey::generate(AccountKeyKind::EcdsaP256).unwrap();
        let held = c.nonce().await.unwrap();
        let mut spent = Vec::new();
        for _ in 0..3 {
            let n = c.nonce().await.unwrap();
            assert_eq!(spend(&c, &key, &n).await, NO_ACCOUNT);
            spent.push(n);
        }
        assert_eq!(spend(&c, &key, &held).await, BAD_NONCE);
        for n in &spent {
            assert_eq!(spend(&c, &key, n).await, BAD_NONCE, "replay");
        }
    });
}
