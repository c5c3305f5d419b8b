//! The validation authority is not a window into the operator's network (RFC 8555 §10.2):
//! against a real `fleetca serve`, a real http-01 responder on loopback redirects the CA to a
//! name that resolves to another loopback address, where a "secret" service listens. The
//! server allows only the responder's address (`--va-allow-address 127.0.0.1/32`), so:
//! the challenge becomes `invalid` with a `connection` problem, the secret service never sees
//! a connection, and its body appears nowhere (order, authorization, log, audit log). A
//! responder answering a wrong body does not get it echoed either.

mod client;
mod support;

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use client::Client;
use fleetca::va::{
    AddressPolicy, ChallengeKind, Target, Va, VaConfig, ValidationError, ValidationRecord,
    ValidationRequest,
};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use support::{ChallTestSrv, Fleetca, Tool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const PERMIT: &str = "routers.example.com";
/// Answers the challenge with a redirect to [`SECRET_HOST`].
const REDIRECTING: &str = "gw.routers.example.com";
/// Inside the permitted names (so only the address rule can stop it), resolves to 127.0.0.2.
const SECRET_HOST: &str = "metadata.routers.example.com";
const SECRET_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const SECRET_BODY: &str = "SECRET-aws-key-AKIAEXAMPLE-do-not-leak";
/// Answers the challenge with this wrong body.
const WRONG_BODY_NAME: &str = "cpe.routers.example.com";
const MARKER: &str = "MARKER-body-must-not-be-echoed-7f3a";

struct Env {
    ca: Fleetca,
    dns: ChallTestSrv,
    http01_port: u16,
}

fn start(test: &'static str) -> Option<Env> {
    std::thread::spawn(move || {
        if !support::require(test, &[Tool::ChallTestSrv]) {
            return None;
        }
        let dns = ChallTestSrv::start();
        dns.add_a(SECRET_HOST, SECRET_ADDR);
        let mut ca = Fleetca::init(&[PERMIT]);
        let http01_port = support::free_port();
        // Only the responder's address is let through; the rest of loopback stays refused.
        ca.serve_with(
            dns.dns_port(),
            http01_port,
            support::free_port(),
            &["--va-allow-address", "127.0.0.1/32"],
        );
        Some(Env {
            ca,
            dns,
            http01_port,
        })
    })
    .join()
    .expect("harness thread")
}

/// The device's http-01 responder on 127.0.0.1:`port`, answering by Host.
async fn responder(port: u16) {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .expect("bind the responder");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |r: Request<hyper::body::Incoming>| {
                    let host = r
                        .headers()
                        .get(hyper::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let resp = if host.starts_with(REDIRECTING) {
                        Response::builder().status(302).header(
                            "location",
                            format!("http://{SECRET_HOST}:{port}/latest/meta-data/iam"),
                        )
                    } else {
                        Response::builder().status(200)
                    };
                    let body = if host.starts_with(WRONG_BODY_NAME) {
                        format!("{MARKER} not the key authorization")
                    } else {
                        String::new()
                    };
                    async move { Ok::<_, Infallible>(resp.body(Full::new(Bytes::from(body))).unwrap()) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

/// The internal service on `SECRET_ADDR`:`port`; returns its connection counter.
async fn secret_service(port: u16) -> Arc<AtomicUsize> {
    let listener = TcpListener::bind(SocketAddr::from((SECRET_ADDR, port)))
        .await
        .expect("bind 127.0.0.2 (the whole of 127/8 is loopback on Linux)");
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{SECRET_BODY}",
                    SECRET_BODY.len()
                );
                let _ = stream.write_all(resp.as_bytes()).await;
            });
        }
    });
    count
}

/// Orders `name`, answers its http-01 challenge, waits for the decision; returns the order
/// and the authorization as the client sees them.
async fn answer_http01(c: &Client, name: &str) -> (Value, Value) {
    let r = c.new_order(&[name]).await;
    assert_eq!(
        r.status,
        201,
        "newOrder: {}",
        String::from_utf8_lossy(&r.body)
    );
    let order_url = r.location();
    let order = r.json();
    let authz_url = order["authorizations"][0]
        .as_str()
        .expect("authz URL")
        .to_string();
    let authz = c.post(&authz_url, None).await.json();
    let ch = authz["challenges"]
        .as_array()
        .expect("challenges")
        .iter()
        .find(|ch| ch["type"] == "http-01")
        .unwrap_or_else(|| panic!("http-01 offered: {authz}"))
        .clone();
    let r = c
        .post(ch["url"].as_str().expect("challenge URL"), Some(&json!({})))
        .await;
    assert_eq!(
        r.status,
        200,
        "challenge POST: {}",
        String::from_utf8_lossy(&r.body)
    );
    let authz = c.poll(&authz_url, |a| a["status"] != "pending").await;
    let order = c.post(&order_url, None).await.json();
    (order, authz)
}

fn http01_error(authz: &Value) -> Value {
    authz["challenges"]
        .as_array()
        .expect("challenges")
        .iter()
        .find(|ch| ch["type"] == "http-01")
        .expect("http-01")["error"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_redirect_to_internal_service_is_refused_and_nothing_leaks() {
    let Some(env) = start("http01_redirect_to_internal_service_is_refused_and_nothing_leaks")
    else {
        return;
    };
    responder(env.http01_port).await;
    let secret_hits = secret_service(env.http01_port).await;
    let root = env.ca.root_pem().to_string();
    let mut c = Client::new(&env.ca.directory_url(), &root).await;
    assert_eq!(c.new_account().await.status, 201);

    let (order, authz) = answer_http01(&c, REDIRECTING).await;
    assert_eq!(authz["status"], "invalid", "{authz}\n{}", env.ca.log());
    let err = http01_error(&authz);
    assert_eq!(
        err["type"],
        "urn:ietf:params:acme:error:connection",
        "{authz}\n{}",
        env.ca.log()
    );
    let detail = err["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("loopback"),
        "the refused class is named: {detail}"
    );
    // The address the internal name resolved to is not disclosed.
    assert!(!detail.contains("127.0.0.2"), "{detail}");
    assert_eq!(order["status"], "invalid", "{order}");
    assert_eq!(
        secret_hits.load(Ordering::SeqCst),
        0,
        "the internal service was contacted\n{}",
        env.ca.log()
    );

    // A wrong body is reported by status and size, never echoed.
    let (_, authz2) = answer_http01(&c, WRONG_BODY_NAME).await;
    assert_eq!(authz2["status"], "invalid", "{authz2}");
    let err2 = http01_error(&authz2);
    assert_eq!(
        err2["type"], "urn:ietf:params:acme:error:incorrectResponse",
        "{authz2}"
    );
    let detail2 = err2["detail"].as_str().unwrap_or_default();
    assert!(detail2.contains("HTTP 200"), "{detail2}");

    // Neither the secret nor the marker anywhere: order, authorizations, log at INFO, audit.
    let db = fleetca::sa::open_database(&env.ca.database_url())
        .await
        .expect("open db");
    let audit =
        serde_json::to_string(&db.recent_audit(10_000).await.expect("audit")).expect("audit JSON");
    let log = env.ca.log();
    for (what, text) in [
        ("order", order.to_string()),
        ("authorization", authz.to_string()),
        ("second authorization", authz2.to_string()),
        ("server log", log.clone()),
        ("audit log", audit),
    ] {
        for needle in [SECRET_BODY, "AKIAEXAMPLE", MARKER] {
            assert!(
                !text.contains(needle),
                "{needle:?} leaked into the {what}: {text}"
            );
        }
    }
    assert!(
        log.contains("validation failed"),
        "the log is at INFO: {log}"
    );
    drop(env.dns);
}

// ------------------------------------------------------------------ the VA on its own

const TOKEN: &str = "tok-ssrf_1";
const KEYAUTHZ: &str = "tok-ssrf_1.thumbprint";

type Handler = Arc<dyn Fn(&str) -> (u16, Option<String>, String) + Send + Sync>;

/// An HTTP server on `addr` answering `handler(Host)` = (status, Location, body); returns its
/// connection counter.
async fn http_server(addr: SocketAddr, handler: Handler) -> Arc<AtomicUsize> {
    let listener = TcpListener::bind(addr).await.expect("bind");
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |r: Request<hyper::body::Incoming>| {
                    let host = r
                        .headers()
                        .get(hyper::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let (status, location, body) = handler(&host);
                    let mut resp = Response::builder().status(status);
                    if let Some(l) = location {
                        resp = resp.header("location", l);
                    }
                    async move { Ok::<_, Infallible>(resp.body(Full::new(Bytes::from(body))).unwrap()) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    count
}

fn va(dns: u16, port: u16, allow: &[&str], deny: &[&str]) -> Va {
    let nets = |v: &[&str]| v.iter().map(|s| s.parse().unwrap()).collect();
    Va::new(VaConfig {
        dns_resolver: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, dns))),
        http01_port: port,
        tlsalpn01_port: port,
        timeout: std::time::Duration::from_secs(5),
        max_http_redirects: 10,
        addresses: AddressPolicy::new(nets(allow), nets(deny)),
    })
    .unwrap()
}

fn req(target: Target, kind: ChallengeKind) -> ValidationRequest {
    ValidationRequest {
        target,
        wildcard: false,
        kind,
        token: TOKEN.into(),
        key_authorization: KEYAUTHZ.into(),
        account_uri: "https://ca.test/acme/default/acct/1".into(),
        caa_identities: vec!["fleetca.local".into()],
        permitted: pki::Permitted::parse(&[PERMIT.to_string()]).unwrap(),
    }
}

fn http01(name: &str) -> ValidationRequest {
    req(Target::Dns(name.into()), ChallengeKind::Http01)
}

fn expect_err(r: Result<ValidationRecord, ValidationError>, kind: &str, says: &str) -> String {
    let e = r.expect_err("validation should fail");
    assert_eq!(e.acme_type(), kind, "{e}");
    let text = e.to_string();
    assert!(text.contains(says), "{text:?} should say {says:?}");
    text
}

fn dns_server() -> Option<ChallTestSrv> {
    if !support::require("va_ssrf", &[Tool::ChallTestSrv]) {
        return None;
    }
    Some(tokio::task::block_in_place(ChallTestSrv::start))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_address_classes_are_never_contacted() {
    let Some(dns) = dns_server() else { return };
    let port = support::free_port();
    let ok: Handler = Arc::new(|_| (200, None, KEYAUTHZ.into()));
    let on_2 = http_server(SocketAddr::from((SECRET_ADDR, port)), ok.clone()).await;
    let on_1 = http_server(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), ok).await;
    tokio::task::block_in_place(|| dns.add_a("two.routers.example.com", SECRET_ADDR));

    // Resolved address checked after DNS: 127.0.0.2 is loopback, only 127.0.0.1 is allowed.
    let v = va(dns.dns_port(), port, &["127.0.0.1/32"], &[]);
    let text = expect_err(
        v.validate(&http01("two.routers.example.com")).await,
        "connection",
        "leads only to addresses this CA does not contact (loopback)",
    );
    assert!(!text.contains("127.0.0.2"), "{text}");
    assert_eq!(on_2.load(Ordering::SeqCst), 0);

    // Without any allow entry, loopback is refused for an IP identifier too, for http-01 and
    // tls-alpn-01 alike.
    let v = va(dns.dns_port(), port, &[], &[]);
    for kind in [ChallengeKind::Http01, ChallengeKind::TlsAlpn01] {
        expect_err(
            v.validate(&req(Target::Ip(Ipv4Addr::LOCALHOST.into()), kind))
                .await,
            "connection",
            "(loopback)",
        );
    }
    assert_eq!(on_1.load(Ordering::SeqCst), 0);

    // Deny wins over allow.
    let v = va(dns.dns_port(), port, &["127.0.0.0/8"], &["127.0.0.1/32"]);
    expect_err(
        v.validate(&http01("one.routers.example.com")).await,
        "connection",
        "(refused by the operator)",
    );
    assert_eq!(on_1.load(Ordering::SeqCst), 0);

    // The explicit allow lets the same validation through.
    let v = va(dns.dns_port(), port, &["127.0.0.1/32"], &[]);
    v.validate(&http01("one.routers.example.com"))
        .await
        .expect("allowed");
    assert_eq!(on_1.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_outside_the_rules_are_refused_without_echo() {
    let Some(dns) = dns_server() else { return };
    let port = support::free_port();
    let responder: Handler = Arc::new(move |host| {
        let name = host.split(':').next().unwrap_or_default();
        let location = match name {
            "scheme.routers.example.com" => format!("ftp://{name}/{MARKER}"),
            "port.routers.example.com" => format!("http://{name}:{}/{MARKER}", port + 1),
            "foreign.routers.example.com" => format!("http://{MARKER}.example.net:{port}/"),
            "creds.routers.example.com" => format!("http://{MARKER}:pw@{name}:{port}/"),
            "ip.routers.example.com" => format!("http://127.0.0.1:{port}/{MARKER}"),
            "hop.routers.example.com" => format!("http://other.routers.example.com:{port}/next"),
            _ => return (200, None, KEYAUTHZ.into()),
        };
        (302, Some(location), String::new())
    });
    http_server(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), responder).await;
    let v = va(dns.dns_port(), port, &["127.0.0.1/32"], &[]);
    for (name, says) in [
        (
            "scheme.routers.example.com",
            "only http and https are followed",
        ),
        ("port.routers.example.com", "its port is not"),
        (
            "foreign.routers.example.com",
            "its host is neither foreign.routers.example.com nor a name this CA issues",
        ),
        ("creds.routers.example.com", "the URL carries credentials"),
        ("ip.routers.example.com", "followed only for IP identifiers"),
    ] {
        let text = expect_err(v.validate(&http01(name)).await, "connection", says);
        assert!(text.contains("redirect 1 (HTTP 302"), "{text}");
        assert!(
            !text.to_lowercase().contains(&MARKER.to_lowercase()),
            "{text}"
        );
    }
    // Another name inside the permitted subtree is followed.
    let rec = v
        .validate(&http01("hop.routers.example.com"))
        .await
        .expect("redirect inside the permitted names");
    assert_eq!(rec.hops.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_bodies_are_never_echoed() {
    let Some(dns) = dns_server() else { return };
    let port = support::free_port();
    let big = MARKER.repeat(20 * 1024 / MARKER.len());
    let responder: Handler = Arc::new(move |host| match host {
        "wrong.routers.example.com" => (200, None, format!("{MARKER}\n")),
        "missing.routers.example.com" => (404, None, format!("<h1>{MARKER}</h1>")),
        "broken.routers.example.com" => (500, None, MARKER.into()),
        "nolocation.routers.example.com" => (302, None, MARKER.into()),
        _ => (200, None, big.clone()),
    });
    http_server(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), responder).await;
    let v = va(dns.dns_port(), port, &["127.0.0.1/32"], &[]);
    for (name, kind, says) in [
        (
            "wrong.routers.example.com",
            "incorrectResponse",
            "did not match the key authorization (HTTP 200, 36 bytes)",
        ),
        (
            "missing.routers.example.com",
            "unauthorized",
            "answered HTTP 404",
        ),
        (
            "broken.routers.example.com",
            "unauthorized",
            "answered HTTP 500",
        ),
        (
            "nolocation.routers.example.com",
            "connection",
            "without a usable Location",
        ),
        (
            "big.routers.example.com",
            "incorrectResponse",
            "(HTTP 200, more than 16384 bytes)",
        ),
    ] {
        let text = expect_err(v.validate(&http01(name)).await, kind, says);
        assert!(!text.contains(MARKER), "{text}");
    }
}
