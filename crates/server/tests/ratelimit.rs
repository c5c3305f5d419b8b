//! Rate limits (`[ca.rate_limits]`, RFC 8555 §6.6) and overload shedding against a real
//! `fleetca serve`: each limit is set tiny in the tenant config, the request over it must get
//! `rateLimited` (429) with a `Retry-After` from the bucket, and storage must not change. The
//! overload gate (`--max-in-flight`) must answer concurrent finalizes with some 503s while the
//! directory and newNonce keep answering.

mod support;

use fleetca::bench::client::{http_client, AcmeClient, Resp};
use fleetca::sa::TableCounts;
use serde_json::json;
use std::time::{Duration, Instant};
use support::Fleetca;

const SUFFIX: &str = "routers.example.com";

/// A CA whose `fleetca.toml` carries `[ca.rate_limits]` with `limits`, served with `extra`.
fn start(limits: &str, extra: &[&str], http01_port: u16) -> Fleetca {
    let mut f = Fleetca::init(&[SUFFIX]);
    f.set_rate_limits(limits);
    f.serve_with(0, http01_port, 0, extra);
    f
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Row counts of the instance's own database, whichever backend it runs on.
async fn counts(f: &Fleetca) -> TableCounts {
    let db = fleetca::sa::open_database(&f.database_url()).await.unwrap();
    db.counts().await.unwrap()
}

async fn client(f: &Fleetca) -> AcmeClient {
    let http = http_client(f.root_pem()).unwrap();
    let mut c = AcmeClient::new(http, &f.directory_url()).await.unwrap();
    c.register().await.unwrap();
    c
}

async fn new_order(c: &AcmeClient, name: &str) -> Resp {
    c.post_raw(
        &c.url("newOrder").unwrap(),
        Some(&json!({"identifiers": [{"type": "dns", "value": name}]})),
    )
    .await
    .unwrap()
}

/// Asserts a `rateLimited` answer whose `Retry-After` lies in `range` seconds.
fn assert_rate_limited(r: &Resp, range: std::ops::RangeInclusive<u64>) {
    assert_eq!(r.status, 429, "{:?}", r.json());
    assert_eq!(r.json()["type"], "urn:ietf:params:acme:error:rateLimited");
    let ra: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(range.contains(&ra), "Retry-After {ra} not in {range:?}");
}

#[test]
fn new_orders_per_account_and_per_name() {
    let f = start(
        "new_orders_per_account_per_hour = 2\ncertificates_per_name_per_week = 1\nname_suffix_labels = 4",
        &["--insecure-skip-validation"],
        0,
    );
    rt().block_on(async {
        let c = client(&f).await;
        assert_eq!(new_order(&c, &format!("a.x.{SUFFIX}")).await.status, 201);
        assert_eq!(new_order(&c, &format!("b.y.{SUFFIX}")).await.status, 201);
        let before = counts(&f).await;
        // Third order of this account in the hour: 2/hour refills one every 1800 s.
        let r = new_order(&c, &format!("c.z.{SUFFIX}")).await;
        assert_rate_limited(&r, 1700..=1800);
        assert_eq!(counts(&f).await, before, "a refused order stores nothing");

        // Another account, a name under the already-used registered name x.routers.example.com
        // (4 labels): one per week, so about a week to wait.
        let c2 = client(&f).await;
        let before = counts(&f).await;
        let r = new_order(&c2, &format!("other.x.{SUFFIX}")).await;
        assert_rate_limited(&r, 600_000..=604_800);
        assert_eq!(counts(&f).await, before);
        // The refused order did not spend c2's account budget or the new name's.
        assert_eq!(new_order(&c2, &format!("w.{SUFFIX}")).await.status, 201);
        assert_eq!(new_order(&c2, &format!("v.{SUFFIX}")).await.status, 201);
    });
}

/// The weekly per-name limit counts the name the order stores, not its spelling: upper-case,
/// trailing-dot and full-width (IDNA-mapped) spellings of a name already ordered are refused
/// like the name itself, and store nothing.
#[test]
fn names_are_counted_in_canonical_form() {
    let f = start(
        "certificates_per_name_per_week = 1",
        &["--insecure-skip-validation"],
        0,
    );
    rt().block_on(async {
        let c = client(&f).await;
        assert_eq!(new_order(&c, &format!("dev1.{SUFFIX}")).await.status, 201);
        let before = counts(&f).await;
        for spelling in [
            format!("DEV1.{}", SUFFIX.to_uppercase()),
            format!("Dev1.{SUFFIX}."),
            format!("ｄｅｖ１.{SUFFIX}"),
            format!("ＤＥＶ１．{SUFFIX}"),
        ] {
            let r = new_order(&c, &spelling).await;
            assert_rate_limited(&r, 600_000..=604_800);
            assert_eq!(counts(&f).await, before, "{spelling}");
        }
        // A different name has its own budget.
        assert_eq!(new_order(&c, &format!("dev2.{SUFFIX}")).await.status, 201);
    });
}

#[test]
fn new_accounts_per_ip() {
    let f = start(
        "new_accounts_per_ip_per_hour = 1",
        &["--insecure-skip-validation"],
        0,
    );
    rt().block_on(async {
        let mut first = client(&f).await;
        let before = counts(&f).await;
        let http = http_client(f.root_pem()).unwrap();
        let second = AcmeClient::new(http, &f.directory_url()).await.unwrap();
        let r = second
            .post_raw(
                &second.url("newAccount").unwrap(),
                Some(&json!({"termsOfServiceAgreed": true})),
            )
            .await
            .unwrap();
        assert_rate_limited(&r, 3500..=3600);
        assert_eq!(counts(&f).await, before, "no account was created");
        // Looking up the existing account is not creating one: still allowed.
        first.kid = None;
        first.register().await.expect("existing account is found");
        assert_eq!(counts(&f).await, before);
    });
}

/// A client whose requests all carry `X-Forwarded-For: xff`, as if behind a balancer.
async fn forwarded_client(f: &Fleetca, xff: &str) -> AcmeClient {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", xff.parse().unwrap());
    let http = fleetca::bench::client::http_client_builder(f.root_pem())
        .unwrap()
        .default_headers(headers)
        .build()
        .unwrap();
    AcmeClient::new(http, &f.directory_url()).await.unwrap()
}

async fn try_register(c: &AcmeClient) -> Resp {
    c.post_raw(
        &c.url("newAccount").unwrap(),
        Some(&json!({"termsOfServiceAgreed": true})),
    )
    .await
    .unwrap()
}

#[test]
fn per_ip_limits_follow_x_forwarded_for_only_from_trusted_proxies() {
    // The test client connects from 127.0.0.1, here playing the load balancer.
    let trusting = start(
        "new_accounts_per_ip_per_hour = 1",
        &[
            "--insecure-skip-validation",
            "--trusted-proxy",
            "127.0.0.0/8",
        ],
        0,
    );
    rt().block_on(async {
        // Two devices behind the balancer: one budget each.
        let a = forwarded_client(&trusting, "198.51.100.1").await;
        assert_eq!(try_register(&a).await.status, 201);
        let b = forwarded_client(&trusting, "198.51.100.2").await;
        assert_eq!(try_register(&b).await.status, 201);
        // A device that forges a prefix is still charged to the address the balancer saw.
        let forged = forwarded_client(&trusting, "203.0.113.50, 198.51.100.1").await;
        let before = counts(&trusting).await;
        assert_rate_limited(&try_register(&forged).await, 3500..=3600);
        assert_eq!(counts(&trusting).await, before);
    });

    // Without --trusted-proxy the header is the client's own claim and is ignored.
    let plain = start(
        "new_accounts_per_ip_per_hour = 1",
        &["--insecure-skip-validation"],
        0,
    );
    rt().block_on(async {
        let a = forwarded_client(&plain, "198.51.100.1").await;
        assert_eq!(try_register(&a).await.status, 201);
        let b = forwarded_client(&plain, "198.51.100.2").await;
        let before = counts(&plain).await;
        assert_rate_limited(&try_register(&b).await, 3500..=3600);
        assert_eq!(counts(&plain).await, before);
    });
}

#[test]
fn requests_per_ip_and_cheap_endpoints_exempt() {
    let f = start(
        "requests_per_ip_per_second = 3\nrequests_per_ip_burst = 3",
        &["--insecure-skip-validation"],
        0,
    );
    rt().block_on(async {
        let http = http_client(f.root_pem()).unwrap();
        let c = AcmeClient::new(http.clone(), &f.directory_url())
            .await
            .unwrap();
        let url = c.url("newAccount").unwrap();
        let mut limited = None;
        for _ in 0..20 {
            let r = c
                .post_raw(&url, Some(&json!({"onlyReturnExisting": true})))
                .await
                .unwrap();
            if r.status == 429 {
                limited = Some(r);
                break;
            }
        }
        let r = limited.expect("a burst of signed requests hits 3/s");
        assert_rate_limited(&r, 1..=1);
        // Directory and newNonce are outside the per-IP limit.
        for _ in 0..20 {
            let d = http.get(f.directory_url()).send().await.unwrap();
            assert_eq!(d.status(), 200);
            let n = http.head(c.url("newNonce").unwrap()).send().await.unwrap();
            assert_eq!(n.status(), 200);
        }
    });
}

#[test]
fn failed_validations_per_account() {
    // http-01 to a port nothing listens on: every validation fails with a connection error.
    let closed = support::free_port();
    let f = start("failed_validations_per_account_per_hour = 1", &[], closed);
    rt().block_on(async {
        let c = client(&f).await;
        let start_challenge = |name: String| {
            let c = &c;
            async move {
                let order = new_order(c, &name).await.json();
                let authz_url = order["authorizations"][0].as_str().unwrap().to_string();
                let authz = c.post(&authz_url, None).await.unwrap().json();
                let ch = authz["challenges"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|ch| ch["type"] == "http-01")
                    .unwrap()["url"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let r = c.post_raw(&ch, Some(&json!({}))).await.unwrap();
                (authz_url, ch, r)
            }
        };
        let (authz_url, _, r) = start_challenge(format!("fail1.{SUFFIX}")).await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        let deadline = Instant::now() + Duration::from_secs(60);
        let done = c
            .poll(&authz_url, deadline, |a| a["status"] != "pending")
            .await
            .unwrap();
        assert_eq!(done["status"], "invalid", "{done}");

        let (_, ch, r) = start_challenge(format!("fail2.{SUFFIX}")).await;
        assert_rate_limited(&r, 3500..=3600);
        // Nothing started: the challenge is still pending.
        let ch = c.post(&ch, None).await.unwrap().json();
        assert_eq!(ch["status"], "pending", "{ch}");
    });
}

/// Makes `n` orders ready to finalize (skip-validation server).
async fn ready_orders(c: &AcmeClient, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        let name = format!("ov{i}.{SUFFIX}");
        let order = new_order(c, &name).await.json();
        let authz_url = order["authorizations"][0].as_str().unwrap();
        let authz = c.post(authz_url, None).await.unwrap().json();
        let ch = authz["challenges"][0]["url"].as_str().unwrap();
        c.post(ch, Some(&json!({}))).await.unwrap();
        c.poll(authz_url, Instant::now() + Duration::from_secs(30), |a| {
            a["status"] == "valid"
        })
        .await
        .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key).unwrap();
        out.push((
            order["finalize"].as_str().unwrap().to_string(),
            acme_types::b64::encode(csr.der()),
        ));
    }
    out
}

#[test]
fn overload_sheds_finalizes_with_503_and_cheap_endpoints_answer() {
    let f = start(
        "",
        &[
            "--insecure-skip-validation",
            "--max-in-flight",
            "1",
            "--max-waiting",
            "0",
            "--overload-wait-ms",
            "0",
        ],
        0,
    );
    rt().block_on(async {
        let c = client(&f).await;
        let orders = ready_orders(&c, 24).await;
        // Fresh nonces first, so the burst is only finalize POSTs.
        let mut signed = Vec::new();
        for (url, csr) in &orders {
            let nonce = c.nonce().await.unwrap();
            let jws = acme_types::sign::sign_jws(
                &c.key,
                &acme_types::sign::JwsHeader {
                    key: acme_types::sign::JwsKey::Kid(c.kid.clone().unwrap()),
                    nonce: Some(nonce),
                    url: url.clone(),
                },
                json!({ "csr": csr }).to_string().as_bytes(),
            )
            .unwrap();
            signed.push((url.clone(), jws.to_string()));
        }
        let burst = signed.into_iter().map(|(url, body)| {
            let http = c.http.clone();
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .header("content-type", "application/jose+json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let retry = r
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                (status, retry, body)
            })
        });
        let burst: Vec<_> = burst.collect();
        // Meanwhile the cheap path answers.
        let http = c.http.clone();
        for _ in 0..10 {
            let d = http.get(f.directory_url()).send().await.unwrap();
            assert_eq!(d.status(), 200);
            let n = http.head(c.url("newNonce").unwrap()).send().await.unwrap();
            assert_eq!(n.status(), 200);
        }
        let mut shed = 0;
        let mut ok = 0;
        for t in burst {
            let (status, retry, body) = t.await.unwrap();
            match status {
                503 => {
                    shed += 1;
                    assert_eq!(body["type"], "urn:ietf:params:acme:error:serverInternal");
                    let ra: u64 = retry.expect("Retry-After on 503").parse().unwrap();
                    assert!((1..=3).contains(&ra), "{ra}");
                }
                200 => ok += 1,
                s => panic!("unexpected {s}: {body}"),
            }
        }
        println!("overload: {ok} finalized, {shed} shed");
        assert!(
            shed > 0,
            "a 1-slot gate must shed some of 24 concurrent finalizes"
        );
        assert!(ok > 0, "the gate still lets work through");
        // Shed requests stored nothing: exactly the finalized ones have certificates.
        assert_eq!(counts(&f).await.certificates, ok);
    });
}
