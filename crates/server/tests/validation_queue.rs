//! Validation leases and the validation queue (RFC 8555 §7.5.1, §8.2) against a real
//! `fleetca serve`. The targets are real slow http-01 responders on loopback, one listener per
//! address (127.0.0.k), each counting the requests it receives: a validation must reach its
//! target exactly once however long it waited for a slot, and a full queue must refuse the
//! challenge POST without changing the challenge.

mod support;

use fleetca::bench::client::{http_client, AcmeClient, Resp};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::Fleetca;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// http-01 responders on 127.0.0.1..=127.0.0.n, all on one port (the CA's `--http01-port`).
/// Each answers `/.well-known/acme-challenge/<token>` after `delay`: with `<token>.<thumbprint>`
/// when `pass`, else with 404. Every request is counted per address.
struct Targets {
    port: u16,
    hits: Vec<Arc<AtomicUsize>>,
}

impl Targets {
    async fn start(n: u8, thumbprint: String, delay: Duration, pass: bool) -> Targets {
        'port: for _ in 0..50 {
            let first = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = first.local_addr().unwrap().port();
            let mut listeners = vec![first];
            for k in 2..=n {
                match tokio::net::TcpListener::bind((Ipv4Addr::new(127, 0, 0, k), port)).await {
                    Ok(l) => listeners.push(l),
                    Err(_) => continue 'port,
                }
            }
            let mut hits = Vec::new();
            for l in listeners {
                let count = Arc::new(AtomicUsize::new(0));
                hits.push(count.clone());
                let thumb = thumbprint.clone();
                tokio::spawn(async move {
                    loop {
                        let Ok((mut s, _)) = l.accept().await else {
                            return;
                        };
                        let (count, thumb) = (count.clone(), thumb.clone());
                        tokio::spawn(async move {
                            let mut buf = Vec::new();
                            let mut chunk = [0u8; 1024];
                            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                                match s.read(&mut chunk).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                                }
                            }
                            count.fetch_add(1, Ordering::SeqCst);
                            let head = String::from_utf8_lossy(&buf);
                            let token = head
                                .split_whitespace()
                                .nth(1)
                                .and_then(|p| p.strip_prefix("/.well-known/acme-challenge/"))
                                .unwrap_or("")
                                .to_string();
                            tokio::time::sleep(delay).await;
                            let reply = if pass {
                                let body = format!("{token}.{thumb}");
                                format!(
                                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                    body.len()
                                )
                            } else {
                                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                            };
                            let _ = s.write_all(reply.as_bytes()).await;
                            let _ = s.shutdown().await;
                        });
                    }
                });
            }
            return Targets { port, hits };
        }
        panic!("no port free on all of 127.0.0.1..=127.0.0.{n}");
    }

    fn counts(&self) -> Vec<usize> {
        self.hits.iter().map(|h| h.load(Ordering::SeqCst)).collect()
    }
}

/// A CA permitted the loopback range, so `127.0.0.k` can be ordered as IP identifiers
/// (RFC 8738) and validated over http-01 against [`Targets`].
fn ca() -> Fleetca {
    Fleetca::init(&["127.0.0.0/8"])
}

/// A fresh account key and a client registered with it.
async fn registered(f: &Fleetca, key: acme_types::sign::AccountKey) -> AcmeClient {
    let http = http_client(f.root_pem()).unwrap();
    let mut c = AcmeClient::new(http, &f.directory_url()).await.unwrap();
    c.key = key;
    c.register().await.unwrap();
    c
}

fn new_key() -> acme_types::sign::AccountKey {
    acme_types::sign::AccountKey::generate(acme_types::sign::AccountKeyKind::EcdsaP256).unwrap()
}

/// Sends every ready POST at once and returns the answers in order.
async fn post_all(c: &Arc<AcmeClient>, challenges: &[String]) -> Vec<Resp> {
    let posts: Vec<_> = challenges
        .iter()
        .map(|ch| {
            let (c, ch) = (c.clone(), ch.clone());
            tokio::spawn(async move { c.post_raw(&ch, Some(&json!({}))).await.unwrap() })
        })
        .collect();
    let mut out = Vec::new();
    for p in posts {
        out.push(p.await.unwrap());
    }
    out
}

/// Orders `127.0.0.k` and returns (authorization URL, http-01 challenge URL).
async fn order_ip(c: &AcmeClient, k: u8) -> (String, String) {
    let order = c
        .post(
            &c.url("newOrder").unwrap(),
            Some(&json!({"identifiers": [{"type": "ip", "value": format!("127.0.0.{k}")}]})),
        )
        .await
        .unwrap()
        .json();
    let authz_url = order["authorizations"][0].as_str().unwrap().to_string();
    let authz = c.post(&authz_url, None).await.unwrap().json();
    let ch = authz["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ch| ch["type"] == "http-01")
        .unwrap_or_else(|| panic!("no http-01 in {authz}"))["url"]
        .as_str()
        .unwrap()
        .to_string();
    (authz_url, ch)
}

async fn poll_decided(c: &AcmeClient, authz_url: &str, f: &Fleetca) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    c.poll(authz_url, deadline, |a| a["status"] != "pending")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", f.log()))
}

/// One validation slot, ten targets that each answer later than a lease lasts: the ninth
/// waits far longer than a lease for its slot. Each target is contacted exactly once, every
/// authorization ends valid, and no live node's validation is taken over by the sweeper.
#[test]
fn each_target_is_contacted_once_when_validations_wait_longer_than_a_lease() {
    const N: u8 = 10;
    let mut f = ca();
    let rt = rt();
    // The responders need the thumbprint before the CA contacts them: the account key is
    // made first.
    let key = new_key();
    let targets = rt.block_on(Targets::start(
        N,
        key.jwk().thumbprint(),
        Duration::from_millis(2500),
        true,
    ));
    f.serve_with(
        0,
        targets.port,
        0,
        &["--max-validations", "1", "--validation-lease-secs", "2"],
    );
    rt.block_on(async {
        let c = registered(&f, key).await;
        let mut pending = Vec::new();
        for k in 1..=N {
            pending.push(order_ip(&c, k).await);
        }
        // All ready POSTs at once: one runs, nine wait for the single slot.
        let c = Arc::new(c);
        let challenges: Vec<String> = pending.iter().map(|(_, ch)| ch.clone()).collect();
        for r in post_all(&c, &challenges).await {
            assert_eq!(r.status, 200, "{}", r.json());
        }
        for (authz_url, _) in &pending {
            let a = poll_decided(&c, authz_url, &f).await;
            assert_eq!(a["status"], "valid", "{a}\n{}", f.log());
        }
        // A duplicate would come from a validation re-claimed while it waited: give one the
        // time of a lease and an answer to show up before judging.
        let quiet_until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < quiet_until {
            assert!(
                targets.counts().iter().all(|&n| n <= 1),
                "a target was contacted twice: {:?}\n{}",
                targets.counts(),
                f.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(targets.counts(), vec![1; N as usize], "{}", f.log());
        assert!(
            !f.log().contains("taking over a validation"),
            "a live node's validation was taken over\n{}",
            f.log()
        );
    });
}

/// A full queue: one slot, one waiting place. Further ready POSTs are refused with
/// `rateLimited` and a Retry-After, their challenges stay `pending` and their targets are never
/// contacted; once the queue drains, the same POST starts the validation.
#[test]
fn a_full_validation_queue_refuses_with_rate_limited_and_changes_nothing() {
    const N: u8 = 4;
    let mut f = ca();
    let rt = rt();
    let key = new_key();
    let targets = rt.block_on(Targets::start(
        N,
        key.jwk().thumbprint(),
        Duration::from_millis(1500),
        true,
    ));
    f.serve_with(
        0,
        targets.port,
        0,
        &["--max-validations", "1", "--max-queued-validations", "1"],
    );
    rt.block_on(async {
        let c = registered(&f, key).await;
        let mut orders = Vec::new();
        for k in 1..=N {
            orders.push(order_ip(&c, k).await);
        }
        // One after the other, so which ones find the queue full is certain: the first takes
        // the slot, the second the waiting place.
        let mut statuses = Vec::new();
        for (_, ch) in &orders {
            let r = c.post_raw(ch, Some(&json!({}))).await.unwrap();
            statuses.push((r.status, r.json(), r.header("retry-after")));
        }
        for (i, (status, body, retry)) in statuses.iter().enumerate() {
            if i < 2 {
                assert_eq!(*status, 200, "{body}");
                assert_eq!(body["status"], "processing", "{body}");
            } else {
                assert_eq!(*status, 429, "{body}");
                assert_eq!(body["type"], "urn:ietf:params:acme:error:rateLimited");
                let ra: u64 = retry.as_deref().expect("Retry-After").parse().unwrap();
                assert!(ra >= 1, "{ra}");
                let ch = c.post(&orders[i].1, None).await.unwrap().json();
                assert_eq!(ch["status"], "pending", "{ch}");
            }
        }
        for (authz_url, _) in &orders[..2] {
            assert_eq!(poll_decided(&c, authz_url, &f).await["status"], "valid");
        }
        assert_eq!(targets.counts(), vec![1, 1, 0, 0]);
        // The queue has drained: the refused challenges can start now.
        let mut counts = HashMap::new();
        for (authz_url, ch) in &orders[2..] {
            let r = c.post_raw(ch, Some(&json!({}))).await.unwrap();
            assert_eq!(r.status, 200, "{}", r.json());
            let a = poll_decided(&c, authz_url, &f).await;
            *counts
                .entry(a["status"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
        assert_eq!(counts.get("valid"), Some(&2), "{counts:?}");
        assert_eq!(targets.counts(), vec![1; N as usize]);
    });
}

/// `failed_validations_per_account_per_hour = 3` against eight ready POSTs sent at once, all
/// for targets that will fail: the token is taken when a validation starts, so three
/// validations run and contact their targets, and the other five POSTs are refused with
/// `rateLimited` with their challenges and authorizations left exactly as they were.
#[test]
fn failed_validation_tokens_are_taken_when_validations_start() {
    const N: u8 = 8;
    const K: usize = 3;
    let mut f = ca();
    f.set_rate_limits(&format!("failed_validations_per_account_per_hour = {K}"));
    let rt = rt();
    let key = new_key();
    // Slow failures: every validation is still running while the other POSTs arrive.
    let targets = rt.block_on(Targets::start(
        N,
        key.jwk().thumbprint(),
        Duration::from_millis(1000),
        false,
    ));
    f.serve_with(0, targets.port, 0, &[]);
    rt.block_on(async {
        let c = registered(&f, key).await;
        let mut orders = Vec::new();
        for k in 1..=N {
            orders.push(order_ip(&c, k).await);
        }
        let c = Arc::new(c);
        let challenges: Vec<String> = orders.iter().map(|(_, ch)| ch.clone()).collect();
        let answers = post_all(&c, &challenges).await;
        let mut started = Vec::new();
        for (i, r) in answers.iter().enumerate() {
            match r.status {
                200 => started.push(i),
                429 => {
                    assert_eq!(r.json()["type"], "urn:ietf:params:acme:error:rateLimited");
                    assert!(r.header("retry-after").is_some());
                }
                s => panic!("unexpected {s}: {}", r.json()),
            }
        }
        assert_eq!(
            started.len(),
            K,
            "{:?}",
            answers.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        for (i, (authz_url, ch)) in orders.iter().enumerate() {
            if started.contains(&i) {
                assert_eq!(poll_decided(&c, authz_url, &f).await["status"], "invalid");
            } else {
                let ch = c.post(ch, None).await.unwrap().json();
                assert_eq!(ch["status"], "pending", "{ch}");
                assert!(ch.get("error").is_none(), "{ch}");
                let a = c.post(authz_url, None).await.unwrap().json();
                assert_eq!(a["status"], "pending", "{a}");
            }
        }
        let counts = targets.counts();
        assert_eq!(counts.iter().sum::<usize>(), K, "{counts:?}");
        for (i, n) in counts.iter().enumerate() {
            assert_eq!(*n, usize::from(started.contains(&i)), "{counts:?}");
        }
    });
}

/// `--max-validations-per-account 2`: a third validation of the account while two are in
/// progress is refused with `rateLimited` and changes nothing; another account is not held
/// up, and once the two are decided the third starts.
#[test]
fn an_accounts_validations_in_progress_are_capped() {
    const N: u8 = 4;
    let mut f = ca();
    let rt = rt();
    let key = new_key();
    let other_key = new_key();
    // The responders answer any account's token; the thumbprint decides which one passes.
    let targets = rt.block_on(Targets::start(
        N,
        key.jwk().thumbprint(),
        Duration::from_millis(1500),
        true,
    ));
    f.serve_with(0, targets.port, 0, &["--max-validations-per-account", "2"]);
    rt.block_on(async {
        let c = registered(&f, key).await;
        let mut orders = Vec::new();
        for k in 1..=3 {
            orders.push(order_ip(&c, k).await);
        }
        for (i, (_, ch)) in orders.iter().enumerate() {
            let r = c.post_raw(ch, Some(&json!({}))).await.unwrap();
            if i < 2 {
                assert_eq!(r.status, 200, "{}", r.json());
            } else {
                assert_eq!(r.status, 429, "{}", r.json());
                assert_eq!(r.json()["type"], "urn:ietf:params:acme:error:rateLimited");
                assert!(r.header("retry-after").is_some());
                assert_eq!(c.post(ch, None).await.unwrap().json()["status"], "pending");
            }
        }
        // Another account still gets its validation started (it fails: wrong thumbprint).
        let other = registered(&f, other_key).await;
        let (other_authz, other_ch) = order_ip(&other, 4).await;
        let r = other.post_raw(&other_ch, Some(&json!({}))).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.json());
        assert_eq!(
            poll_decided(&other, &other_authz, &f).await["status"],
            "invalid"
        );
        for (authz_url, _) in &orders[..2] {
            assert_eq!(poll_decided(&c, authz_url, &f).await["status"], "valid");
        }
        let r = c.post_raw(&orders[2].1, Some(&json!({}))).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.json());
        assert_eq!(poll_decided(&c, &orders[2].0, &f).await["status"], "valid");
        assert_eq!(targets.counts(), vec![1; N as usize]);
    });
}

/// A node that dies mid-validation stops renewing its lease; once the lease has run out the
/// restarted node takes the validation over and decides it. The target sees one request per
/// claim: the dead node's and the one that took over.
#[test]
fn a_validation_whose_node_died_is_taken_over_once_its_lease_runs_out() {
    let mut f = ca();
    let rt = rt();
    let key = new_key();
    let targets = rt.block_on(Targets::start(
        1,
        key.jwk().thumbprint(),
        Duration::from_millis(3000),
        true,
    ));
    let key_der = key.to_pkcs8_der().to_vec();
    let args = ["--validation-lease-secs", "2"];
    f.serve_with(0, targets.port, 0, &args);
    let origin = |f: &Fleetca| f.directory_url().replace("/acme/default/directory", "");
    let old_origin = origin(&f);
    let authz_url = rt.block_on(async {
        let c = registered(&f, key).await;
        let (authz_url, ch) = order_ip(&c, 1).await;
        let r = c.post_raw(&ch, Some(&json!({}))).await.unwrap();
        assert_eq!(r.json()["status"], "processing", "{}", r.json());
        // The node is killed while the target is still answering.
        let deadline = Instant::now() + Duration::from_secs(30);
        while targets.counts()[0] == 0 {
            assert!(Instant::now() < deadline, "the target was never contacted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        authz_url
    });
    f.stop();
    // The restarted node listens on another port: same account, same authorization.
    f.serve_with(0, targets.port, 0, &args);
    let authz_url = authz_url.replace(&old_origin, &origin(&f));
    rt.block_on(async {
        let key = acme_types::sign::AccountKey::from_pkcs8_der(&key_der).unwrap();
        let c = registered(&f, key).await;
        let a = poll_decided(&c, &authz_url, &f).await;
        assert_eq!(a["status"], "valid", "{a}\n{}", f.log());
        assert!(f.log().contains("taking over a validation"), "{}", f.log());
        assert_eq!(targets.counts(), vec![2]);
    });
}
