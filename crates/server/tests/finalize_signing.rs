//! Finalize in three steps (claim, sign outside storage, store), through a real `fleetca serve`:
//! a slow signer (`--signer-delay-ms`, standing in for a remote HSM) holds up only the order
//! it signs, never the writes other requests wait for; a server killed between claim and
//! store loses nothing, and the order ends with exactly one certificate.

mod client;
mod support;

use client::{b64url, csr, Client};
use serde_json::{json, Value};
use support::Fleetca;

const SUFFIX: &str = "routers.example.com";

/// An account and a `ready` order for `name` (validation is skipped on these servers).
async fn ready_order(c: &Client, name: &str) -> (String, Value) {
    let r = c.new_order(&[name]).await;
    assert_eq!(
        r.status,
        201,
        "newOrder: {}",
        String::from_utf8_lossy(&r.body)
    );
    let url = r.location();
    let order = r.json();
    for authz in order["authorizations"].as_array().expect("authorizations") {
        let authz = c.post(authz.as_str().expect("url"), None).await.json();
        let ch = &authz["challenges"][0];
        let r = c
            .post(ch["url"].as_str().expect("challenge url"), Some(&json!({})))
            .await;
        assert_eq!(
            r.status,
            200,
            "challenge: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let order = c.poll(&url, |o| o["status"] != "pending").await;
    assert_eq!(order["status"], "ready", "{order}");
    (url, order)
}

fn finalize_body(name: &str) -> Value {
    let (der, _key) = csr(&[name], &rcgen::PKCS_ECDSA_P256_SHA256);
    json!({ "csr": b64url(&der) })
}

/// Certificates stored for the order at `order_url`, counted in the database.
async fn certificates_of(f: &Fleetca, order_url: &str) -> i64 {
    use sqlx::Row;
    let order_id = order_url.rsplit('/').next().expect("order id");
    let db = f.database_url();
    let q = "SELECT COUNT(*) FROM certificates WHERE order_id = $1";
    if db.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&db).await.expect("postgres");
        sqlx::query(q)
            .bind(order_id)
            .fetch_one(&pool)
            .await
            .expect("count")
            .get::<i64, _>(0)
    } else {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{db}?mode=ro"))
            .await
            .expect("sqlite");
        sqlx::query(q)
            .bind(order_id)
            .fetch_one(&pool)
            .await
            .expect("count")
            .get::<i64, _>(0)
    }
}

/// The harness blocks on a runtime of its own, so it runs on a plain thread, not on the
/// test's runtime.
fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().expect("harness thread"))
}

/// While one finalize waits on a slow signature, another account's newOrder, challenge and
/// order reads complete: signing no longer runs inside the storage writer's transaction. The
/// finalize itself then completes with its certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_signer_holds_up_only_its_own_order() {
    let mut f = blocking(|| Fleetca::init(&[SUFFIX]));
    blocking(|| {
        f.serve_with(
            1,
            1,
            1,
            &["--insecure-skip-validation", "--signer-delay-ms", "4000"],
        )
    });
    let mut a = Client::new(&f.directory_url(), f.root_pem()).await;
    a.new_account().await;
    let (a_url, a_order) = ready_order(&a, &format!("a.{SUFFIX}")).await;
    let finalize_url = a_order["finalize"].as_str().expect("finalize").to_string();
    let body = finalize_body(&format!("a.{SUFFIX}"));
    let a = std::sync::Arc::new(a);
    let signing = {
        let a = a.clone();
        tokio::spawn(async move { a.post(&finalize_url, Some(&body)).await })
    };
    // The order is claimed: processing while its certificate is signed. Polled, because on a
    // busy machine the spawned finalize may not even have been sent yet.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = a.post(&a_url, None).await.json()["status"].clone();
        if status == "processing" {
            break;
        }
        assert_eq!(status, "ready", "before the claim the order is ready");
        assert!(
            std::time::Instant::now() < deadline,
            "the finalize never claimed the order"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Meanwhile another device's requests, writes included, are answered. (When signing ran
    // inside the storage writer's transaction, these waited for the signature.)
    let mut b = Client::new(&f.directory_url(), f.root_pem()).await;
    assert_eq!(b.new_account().await.status, 201);
    let (b_url, _) = ready_order(&b, &format!("b.{SUFFIX}")).await;
    assert!(
        !signing.is_finished(),
        "the slow finalize finished before the other requests: the test proves nothing"
    );

    let r = signing.await.expect("finalize task");
    assert_eq!(
        r.status,
        200,
        "finalize: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(r.json()["status"], "valid");
    assert_eq!(certificates_of(&f, &a_url).await, 1);
    assert_eq!(certificates_of(&f, &b_url).await, 0);
}

/// SIGKILL between claim and store: the order was `processing`, nothing was stored. After a
/// restart the order is `ready` again (a single SQLite node releases its predecessor's claims
/// at start; on PostgreSQL the claim's lease runs out), it finalizes, and exactly one
/// certificate exists for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_between_claim_and_store_loses_nothing_and_signs_once() {
    let mut f = blocking(|| Fleetca::init(&[SUFFIX]));
    let lease = ["--finalize-lease-secs", "3"];
    let slow = [
        "--insecure-skip-validation",
        "--signer-delay-ms",
        "60000",
        lease[0],
        lease[1],
    ];
    blocking(|| f.serve_with(1, 1, 1, &slow));
    let name = format!("k.{SUFFIX}");
    let key_der;
    let order_url;
    {
        let mut c = Client::new(&f.directory_url(), f.root_pem()).await;
        c.new_account().await;
        key_der = c.key.to_pkcs8_der().to_vec();
        let (url, order) = ready_order(&c, &name).await;
        order_url = url;
        let finalize_url = order["finalize"].as_str().expect("finalize").to_string();
        let body = finalize_body(&name);
        let c = std::sync::Arc::new(c);
        let cc = c.clone();
        let stuck = tokio::spawn(async move { cc.post(&finalize_url, Some(&body)).await });
        let seen = c.poll(&order_url, |o| o["status"] != "ready").await;
        assert_eq!(seen["status"], "processing", "{seen}");
        blocking(|| f.stop()); // SIGKILL while the signature is being made
        let _ = stuck.await;
    }
    assert_eq!(
        certificates_of(&f, &order_url).await,
        0,
        "nothing stored before the kill"
    );

    blocking(|| f.serve_with(1, 1, 1, &["--insecure-skip-validation", lease[0], lease[1]]));
    let key = acme_types::sign::AccountKey::from_pkcs8_der(&key_der).expect("account key");
    let mut c = Client::with_key(&f.directory_url(), f.root_pem(), key).await;
    assert_eq!(c.new_account().await.status, 200, "the same account");
    let base = f.directory_url().replace("/directory", "");
    let order_url = format!(
        "{base}/order/{}",
        order_url.rsplit('/').next().expect("order id")
    );
    // Released at start (SQLite) or when the 3 s lease ends (PostgreSQL); the deadline of
    // `poll` covers both.
    let order = c.poll(&order_url, |o| o["status"] == "ready").await;
    let (chain, done) = c
        .finalize_and_download(&order_url, &order, &[name.as_str()])
        .await;
    assert_eq!(done["status"], "valid");
    assert!(!chain.is_empty());
    assert_eq!(
        certificates_of(&f, &order_url).await,
        1,
        "exactly one certificate"
    );
    // A second finalize of the valid order is refused (RFC 8555 §7.4) and signs nothing.
    let r = c
        .post(
            order["finalize"].as_str().expect("finalize"),
            Some(&finalize_body(&name)),
        )
        .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["type"], "urn:ietf:params:acme:error:orderNotReady");
    assert_eq!(certificates_of(&f, &order_url).await, 1);
}

/// A signature that outlives its claim's lease is discarded: the sweeper gave the order back,
/// the slow request is told to finalize again, and the retry stores the only certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_that_outlives_its_lease_is_discarded() {
    let mut f = blocking(|| Fleetca::init(&[SUFFIX]));
    // Lease 2 s, signature 8 s: the sweeper (every 5 s) releases the claim before the store.
    blocking(|| {
        f.serve_with(
            1,
            1,
            1,
            &[
                "--insecure-skip-validation",
                "--signer-delay-ms",
                "8000",
                "--finalize-lease-secs",
                "2",
            ],
        )
    });
    let name = format!("l.{SUFFIX}");
    let mut c = Client::new(&f.directory_url(), f.root_pem()).await;
    c.new_account().await;
    let (order_url, order) = ready_order(&c, &name).await;
    let r = c
        .post(
            order["finalize"].as_str().expect("finalize"),
            Some(&finalize_body(&name)),
        )
        .await;
    assert_eq!(r.status, 403, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["type"], "urn:ietf:params:acme:error:orderNotReady");
    assert_eq!(
        certificates_of(&f, &order_url).await,
        0,
        "the late signature was not stored"
    );
    assert!(
        f.log().contains("certificate discarded"),
        "the discarded signature is logged with its serial"
    );
    let order = c.poll(&order_url, |o| o["status"] == "ready").await;
    assert_eq!(order["status"], "ready");
}
