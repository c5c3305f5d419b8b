//! Validation authority tests on loopback, no mocks: `pebble-challtestsrv` is the DNS server
//! (TXT, CAA, SERVFAIL through its management API), the http-01 and tls-alpn-01 responders are
//! real servers in the test, and a tiny hickory-proto DNS server serves the one CAA record
//! challtestsrv cannot (a critical flag).
//!
//! If `pebble-challtestsrv` is missing the tests print a SKIP line and pass, unless `CI` is set.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use fleetca::va::{
    AddressPolicy, ChallengeKind, Target, Va, VaConfig, ValidationError, ValidationRequest,
};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// The tool gate every integration test uses: a visible SKIP outside CI, a failure under CI.
#[path = "support/gate.rs"]
mod gate;

const CHALLTESTSRV: &str = "/usr/bin/pebble-challtestsrv";
const ACCOUNT: &str = "https://ca.fleetca.test/acme/t1/acct/abc";
const CA_ID: &str = "fleetca.local";
const KEYAUTHZ: &str = "tok-123_ABC.thumbprint-xyz";
const TOKEN: &str = "tok-123_ABC";

// ---------------------------------------------------------------- helpers

/// A running pebble-challtestsrv, killed on drop.
struct ChallTestSrv {
    child: Child,
    dns: SocketAddr,
    mgmt: SocketAddr,
}

impl Drop for ChallTestSrv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (bound, then released).
fn free_port_udp_tcp() -> u16 {
    for _ in 0..50 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ChallTestSrv {
    /// Starts one; None (skip) when the binary is missing outside CI.
    async fn start() -> Option<ChallTestSrv> {
        // The harness names each test's thread after the test, which is what SKIP names.
        let test = std::thread::current()
            .name()
            .unwrap_or("va_challenges")
            .to_string();
        if !gate::gate(
            &test,
            std::path::Path::new(CHALLTESTSRV).exists(),
            &format!("{CHALLTESTSRV} missing (apt-get install pebble)"),
        ) {
            return None;
        }
        let dns_port = free_port_udp_tcp();
        let mgmt_port = free_tcp_port();
        let child = Command::new(CHALLTESTSRV)
            .args([
                "-dns01",
                &format!("127.0.0.1:{dns_port}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                &format!("127.0.0.1:{mgmt_port}"),
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pebble-challtestsrv");
        let srv = ChallTestSrv {
            child,
            dns: SocketAddr::from((Ipv4Addr::LOCALHOST, dns_port)),
            mgmt: SocketAddr::from((Ipv4Addr::LOCALHOST, mgmt_port)),
        };
        // Ready when both the management port and the DNS TCP port accept.
        let start = Instant::now();
        loop {
            let a = TcpStream::connect(srv.mgmt).await.is_ok();
            let b = TcpStream::connect(srv.dns).await.is_ok();
            if a && b {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "pebble-challtestsrv did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(srv)
    }

    /// POST a JSON body to the management API; panics unless 200.
    async fn post(&self, path: &str, json: &str) {
        let mut s = TcpStream::connect(self.mgmt).await.unwrap();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{json}",
            self.mgmt,
            json.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{path} {json}: {resp}");
    }

    async fn set_txt(&self, host: &str, value: &str) {
        self.post(
            "/set-txt",
            &format!(r#"{{"host":"{host}.","value":"{value}"}}"#),
        )
        .await;
    }

    async fn clear_txt(&self, host: &str) {
        self.post("/clear-txt", &format!(r#"{{"host":"{host}."}}"#))
            .await;
    }

    async fn add_caa(&self, host: &str, tag: &str, value: &str) {
        self.post(
            "/add-caa",
            &format!(r#"{{"host":"{host}.","policies":[{{"tag":"{tag}","value":"{value}"}}]}}"#),
        )
        .await;
    }

    async fn set_servfail(&self, host: &str) {
        self.post("/set-servfail", &format!(r#"{{"host":"{host}."}}"#))
            .await;
    }
}

fn va(dns: SocketAddr, http_port: u16, tls_port: u16, timeout: Duration) -> Va {
    Va::new(VaConfig {
        dns_resolver: Some(dns),
        http01_port: http_port,
        tlsalpn01_port: tls_port,
        timeout,
        max_http_redirects: 10,
        // The responders here are on loopback, which the VA refuses by default.
        addresses: AddressPolicy::new(
            vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            vec![],
        ),
    })
    .unwrap()
}

fn req(target: Target, kind: ChallengeKind) -> ValidationRequest {
    ValidationRequest {
        target,
        wildcard: false,
        kind,
        token: TOKEN.to_string(),
        key_authorization: KEYAUTHZ.to_string(),
        account_uri: ACCOUNT.to_string(),
        caa_identities: ids(),
        // Redirects may lead to names under fleetca.test (or to the identifier's host).
        permitted: pki::Permitted::parse(&["fleetca.test".to_string()]).unwrap(),
    }
}

/// The CAA identities of the tenant the tests validate for.
fn ids() -> Vec<String> {
    vec![CA_ID.to_string()]
}

fn dns_target(n: &str) -> Target {
    Target::Dns(n.to_string())
}

fn sha256(s: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes())
        .as_ref()
        .to_vec()
}

fn txt_value(keyauthz: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha256(keyauthz))
}

type Handler = Arc<dyn Fn(&str, &str) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync>;

/// HTTP/1.1 server on 127.0.0.1:<random>; `handler(path, host)` gives status, headers, body.
/// Returns the port and the Host headers seen.
async fn http_server(handler: Handler) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hosts = Arc::new(Mutex::new(Vec::new()));
    let hosts2 = hosts.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let hosts = hosts2.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |r: Request<hyper::body::Incoming>| {
                    let host = r
                        .headers()
                        .get(hyper::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    hosts.lock().unwrap().push(host.clone());
                    let (status, headers, body) = handler(r.uri().path(), &host);
                    let mut resp = Response::builder().status(status);
                    for (k, v) in headers {
                        resp = resp.header(k, v);
                    }
                    async move { Ok::<_, Infallible>(resp.body(Full::new(Bytes::from(body))).unwrap()) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (port, hosts)
}

fn challenge_ok() -> Handler {
    Arc::new(|path, _host| {
        if path == format!("/.well-known/acme-challenge/{TOKEN}") {
            (200, vec![], format!("{KEYAUTHZ}\r\n"))
        } else {
            (404, vec![], "not found".into())
        }
    })
}

#[derive(Debug)]
struct FixedCert {
    key: Arc<CertifiedKey>,
    sni: Mutex<Option<String>>,
}

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        *self.sni.lock().unwrap() = hello.server_name().map(str::to_string);
        Some(self.key.clone())
    }
}

/// What the test tls-alpn-01 responder presents.
struct AlpnCert {
    san: rcgen::SanType,
    acme_identifier: Option<Vec<u8>>,
    critical: bool,
    /// Sign the handshake with a key other than the certificate's.
    other_key: bool,
}

fn make_cert(spec: &AlpnCert) -> Arc<CertifiedKey> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![spec.san.clone()];
    if let Some(d) = &spec.acme_identifier {
        let mut ext = rcgen::CustomExtension::new_acme_identifier(d);
        ext.set_criticality(spec.critical);
        params.custom_extensions = vec![ext];
    }
    let cert = params.self_signed(&key).unwrap();
    let key = if spec.other_key {
        rcgen::KeyPair::generate().unwrap()
    } else {
        key
    };
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&der).unwrap();
    Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing))
}

/// tls-alpn-01 responder (a rustls server with a cert resolver, STACK pitfall 5).
/// Returns the port and the SNI seen.
async fn tls_server(spec: AlpnCert, alpn: Vec<Vec<u8>>, tls12_only: bool) -> (u16, Arc<FixedCert>) {
    tls_server_with_http(spec, alpn, tls12_only, None).await
}

/// Same, optionally serving HTTP/1.1 over the TLS connection (https redirect target).
async fn tls_server_with_http(
    spec: AlpnCert,
    alpn: Vec<Vec<u8>>,
    tls12_only: bool,
    http: Option<Handler>,
) -> (u16, Arc<FixedCert>) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let resolver = Arc::new(FixedCert {
        key: make_cert(&spec),
        sni: Mutex::new(None),
    });
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    cfg.alpn_protocols = alpn;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let http = http.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(stream).await else {
                    return;
                };
                match http {
                    Some(handler) => {
                        let svc =
                            hyper::service::service_fn(move |r: Request<hyper::body::Incoming>| {
                                let (status, _, body) = handler(r.uri().path(), "");
                                async move {
                                    Ok::<_, Infallible>(
                                        Response::builder()
                                            .status(status)
                                            .body(Full::new(Bytes::from(body)))
                                            .unwrap(),
                                    )
                                }
                            });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(s), svc)
                            .await;
                    }
                    None => {
                        let mut buf = [0u8; 16];
                        let _ =
                            tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
                    }
                }
            });
        }
    });
    (port, resolver)
}

fn good_cert(name: &str) -> AlpnCert {
    AlpnCert {
        san: rcgen::SanType::DnsName(name.try_into().unwrap()),
        acme_identifier: Some(sha256(KEYAUTHZ)),
        critical: true,
        other_key: false,
    }
}

fn acme_tls() -> Vec<Vec<u8>> {
    vec![b"acme-tls/1".to_vec()]
}

macro_rules! srv_or_skip {
    () => {
        match ChallTestSrv::start().await {
            Some(s) => s,
            None => return,
        }
    };
}

fn expect_err<T: std::fmt::Debug>(
    r: Result<T, ValidationError>,
    acme_type: &str,
    contains: &str,
) -> ValidationError {
    let e = r.expect_err("validation should fail");
    assert_eq!(e.acme_type(), acme_type, "{e}");
    assert!(
        e.to_string().contains(contains),
        "{e:?} should mention {contains:?}"
    );
    assert!(e.to_string().len() < 1200, "detail too long: {e}");
    e
}

// ---------------------------------------------------------------- http-01

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_success() {
    let srv = srv_or_skip!();
    let (port, hosts) = http_server(challenge_ok()).await;
    let va = va(srv.dns, port, 1, Duration::from_secs(5));
    let rec = va
        .validate(&req(
            dns_target("ok.http.fleetca.test"),
            ChallengeKind::Http01,
        ))
        .await
        .unwrap();
    assert_eq!(rec.hostname, "ok.http.fleetca.test");
    assert_eq!(rec.port, Some(port));
    assert_eq!(rec.address_used, Some(IpAddr::from(Ipv4Addr::LOCALHOST)));
    assert_eq!(
        rec.addresses_resolved,
        vec![IpAddr::from(Ipv4Addr::LOCALHOST)]
    );
    assert_eq!(
        rec.urls,
        vec![format!(
            "http://ok.http.fleetca.test:{port}/.well-known/acme-challenge/{TOKEN}"
        )]
    );
    assert!(rec.caa_checked);
    assert_eq!(hosts.lock().unwrap().as_slice(), ["ok.http.fleetca.test"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_ip_identifier() {
    let srv = srv_or_skip!();
    let (port, hosts) = http_server(challenge_ok()).await;
    let va = va(srv.dns, port, 1, Duration::from_secs(5));
    let rec = va
        .validate(&req(
            Target::Ip(Ipv4Addr::LOCALHOST.into()),
            ChallengeKind::Http01,
        ))
        .await
        .unwrap();
    assert!(!rec.caa_checked);
    assert_eq!(hosts.lock().unwrap().as_slice(), ["127.0.0.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_wrong_body() {
    let srv = srv_or_skip!();
    let (port, _) = http_server(Arc::new(|_, _| (200, vec![], "something else".into()))).await;
    let va = va(srv.dns, port, 1, Duration::from_secs(5));
    let r = va
        .validate(&req(
            dns_target("wrong.http.fleetca.test"),
            ChallengeKind::Http01,
        ))
        .await;
    // Status and size only: the body is never echoed.
    let e = expect_err(
        r,
        "incorrectResponse",
        "did not match the key authorization (HTTP 200, 14 bytes)",
    );
    assert!(!e.to_string().contains("something else"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_leading_whitespace_is_not_trimmed() {
    let srv = srv_or_skip!();
    let (port, _) = http_server(Arc::new(|_, _| (200, vec![], format!(" {KEYAUTHZ}")))).await;
    let va = va(srv.dns, port, 1, Duration::from_secs(5));
    let r = va
        .validate(&req(
            dns_target("ws.http.fleetca.test"),
            ChallengeKind::Http01,
        ))
        .await;
    expect_err(
        r,
        "incorrectResponse",
        "did not match the key authorization",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_404() {
    let srv = srv_or_skip!();
    let (port, _) = http_server(Arc::new(|_, _| (404, vec![], "nope".into()))).await;
    let va = va(srv.dns, port, 1, Duration::from_secs(5));
    let r = va
        .validate(&req(
            dns_target("nf.http.fleetca.test"),
            ChallengeKind::Http01,
        ))
        .await;
    expect_err(r, "unauthorized", "404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_redirect_followed() {
    let srv = srv_or_skip!();
    let h: Handler = Arc::new(move |path, _| {
        if path.starts_with("/.well-known/acme-challenge/") {
            (
                302,
                vec![(
                    "location",
                    "http://other.fleetca.test:PORT/final".to_string(),
                )],
                String::new(),
            )
        } else if path == "/final" {
            (200, vec![], KEYAUTHZ.into())
        } else {
            (404, vec![], String::new())
        }
    });
    // The handler needs the port it runs on: wrap it.
    let (port, hosts) = {
        let cell: Arc<Mutex<u16>> = Arc::new(Mutex::new(0));
        let c2 = cell.clone();
        let h2: Handler = Arc::new(move |path, host| {
            let (s, hd, b) = h(path, host);
            let p = *c2.lock().unwrap();
            let hd = hd
                .into_iter()
                .map(|(k, v)| (k, v.replace("PORT", &p.to_string())))
                .collect();
            (s, hd, b)
        });
        let (port, hosts) = http_server(h2).await;
        *cell.lock().unwrap() = port;
        (port, hosts)
    };
    let va = va(srv.dns, port, 1, Duration::from_secs(5));
    let rec = va
        .validate(&req(
            dns_target("redir.http.fleetca.test"),
            ChallengeKind::Http01,
        ))
        .await
        .unwrap();
    assert_eq!(rec.hops.len(), 2);
    assert_eq!(rec.hops[0].status, Some(302));
    assert_eq!(
        rec.hops[1].url,
        format!("http://other.fleetca.test:{port}/final")
    );
    assert_eq!(
        hosts.lock().unwrap().as_slice(),
        [
            "redir.http.fleetca.test".to_string(),
            format!("other.fleetca.test:{port}")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_redirect_to_https_without_cert_check() {
    let srv = srv_or_skip!();
    // The https side presents a self-signed certificate for an unrelated name: not checked.
    let (tls_port, _) = tls_server_with_http(
        good_cert("unrelated.fleetca.test"),
        vec![b"http/1.1".to_vec()],
        false,
        Some(Arc::new(|path, _| {
            if path == "/secure" {
                (200, vec![], KEYAUTHZ.into())
            } else {
                (404, vec![], String::new())
            }
        })),
    )
    .await;
    let (port, _) = http_server(Arc::new(move |_, _| {
        (
            307,
            vec![(
                "location",
                format!("https://secure.fleetca.test:{tls_port}/secure"),
            )],
            String::new(),
        )
    }))
    .await;
    let va = va(srv.dns, port, tls_port, Duration::from_secs(5));
    let rec = va
        .validate(&req(
            dns_target("tohttps.http.fleetca.test"),
            ChallengeKind::Http01,
        ))
        .await
        .unwrap();
    assert_eq!(rec.hops.len(), 2);
    assert_eq!(rec.hops[1].status, Some(200));
    assert!(rec.urls[1].starts_with("https://secure.fleetca.test:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_redirect_to_disallowed_port() {
    let srv = srv_or_skip!();
    let (port, _) = http_server(Arc::new(|_, _| {
        (
            301,
            vec![("location", "http://evil.fleetca.test:8443/x".to_string())],
            String::new(),
        )
    }))
    .await;
    let va = va(srv.dns, port, 1, Duration::from_secs(5));
    let r = va
        .validate(&req(
            dns_target("rp.http.fleetca.test"),
            ChallengeKind::Http01,
        ))
        .await;
    let e = expect_err(r, "connection", "its port is not");
    assert!(
        !e.to_string().contains("evil"),
        "the Location is not echoed: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_redirect_loop_and_redirect_to_ip() {
    let srv = srv_or_skip!();
    let (port, _) = http_server(Arc::new(|_, _| {
        (302, vec![("location", "/x".to_string())], String::new())
    }))
    .await;
    // A relative redirect loop on the same name: stops after max_http_redirects.
    let va = va(srv.dns, port, 1, Duration::from_secs(5));
    let r = va
        .validate(&req(
            dns_target("loop.http.fleetca.test"),
            ChallengeKind::Http01,
        ))
        .await;
    expect_err(r, "connection", "too many redirects");

    let (port, _) = http_server(Arc::new(move |_, _| {
        (
            302,
            vec![("location", format!("http://127.0.0.1:{port}/x"))],
            String::new(),
        )
    }))
    .await;
    let va2 = Va::new(VaConfig {
        http01_port: port,
        ..va.config().clone()
    })
    .unwrap();
    let r = va2
        .validate(&req(
            dns_target("ip.http.fleetca.test"),
            ChallengeKind::Http01,
        ))
        .await;
    expect_err(r, "connection", "IP addresses");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_connection_refused() {
    let srv = srv_or_skip!();
    let port = free_tcp_port(); // nothing listens there
    let va = va(srv.dns, port, 1, Duration::from_secs(5));
    let r = va
        .validate(&req(
            dns_target("refused.http.fleetca.test"),
            ChallengeKind::Http01,
        ))
        .await;
    expect_err(r, "connection", "could not connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_slow_server_times_out() {
    let srv = srv_or_skip!();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts, hands the reading half to the test, and answers correctly only after twice the
    // VA's timeout: a VA that ignored its timeout would wait and succeed.
    let (tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let (read, mut write) = s.into_split();
            let _ = tx.send(read);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(3000)).await;
                let body = KEYAUTHZ;
                let _ = write
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    let va = va(srv.dns, port, 1, Duration::from_millis(1500));
    let r = va
        .validate(&req(
            dns_target("slow.http.fleetca.test"),
            ChallengeKind::Http01,
        ))
        .await;
    expect_err(r, "connection", "timed out");
    // The timeout fired with the request sent and unanswered (not a connect failure), and the
    // VA abandoned the connection: the server side reads the request, then end of stream.
    let mut conn = accepted.try_recv().expect("the VA connected");
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut got)).await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "the VA left its connection open after timing out"
    );
    assert!(
        String::from_utf8_lossy(&got).starts_with("GET /.well-known/acme-challenge/"),
        "request: {:?}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_and_tlsalpn01_refuse_wildcards() {
    let srv = srv_or_skip!();
    let va = va(srv.dns, 1, 1, Duration::from_secs(2));
    for kind in [ChallengeKind::Http01, ChallengeKind::TlsAlpn01] {
        let mut r = req(dns_target("wild.fleetca.test"), kind);
        r.wildcard = true;
        expect_err(va.validate(&r).await, "malformed", "only dns-01");
    }
    let r = req(Target::Ip(Ipv4Addr::LOCALHOST.into()), ChallengeKind::Dns01);
    expect_err(va.validate(&r).await, "malformed", "dns-01");
}

// ---------------------------------------------------------------- dns-01

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns01_success_wrong_missing_and_no_cache() {
    let srv = srv_or_skip!();
    let va = va(srv.dns, 1, 1, Duration::from_secs(5));
    let name = "d1.dns.fleetca.test";
    let r = req(dns_target(name), ChallengeKind::Dns01);

    // missing
    expect_err(
        va.validate(&r).await,
        "unauthorized",
        "no TXT record found at _acme-challenge.d1.dns.fleetca.test",
    );

    // wrong value
    srv.set_txt(&format!("_acme-challenge.{name}"), "not-the-digest")
        .await;
    let e = expect_err(
        va.validate(&r).await,
        "incorrectResponse",
        "none has the expected value",
    );
    assert!(!e.to_string().contains("not-the-digest"), "not echoed: {e}");

    // right value appears next to it: seen at once (no cache)
    srv.set_txt(&format!("_acme-challenge.{name}"), &txt_value(KEYAUTHZ))
        .await;
    let rec = va.validate(&r).await.unwrap();
    assert_eq!(rec.hostname, format!("_acme-challenge.{name}"));
    assert!(rec.caa_checked);

    // removed: failing again at once
    srv.clear_txt(&format!("_acme-challenge.{name}")).await;
    expect_err(va.validate(&r).await, "unauthorized", "no TXT record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns01_wildcard_uses_base_name() {
    let srv = srv_or_skip!();
    let va = va(srv.dns, 1, 1, Duration::from_secs(5));
    srv.set_txt("_acme-challenge.w.dns.fleetca.test", &txt_value(KEYAUTHZ))
        .await;
    let mut r = req(dns_target("w.dns.fleetca.test"), ChallengeKind::Dns01);
    r.wildcard = true;
    va.validate(&r).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns01_servfail_is_dns_error() {
    let srv = srv_or_skip!();
    let va = va(srv.dns, 1, 1, Duration::from_secs(3));
    srv.set_servfail("_acme-challenge.sf.dns.fleetca.test")
        .await;
    let r = req(dns_target("sf.dns.fleetca.test"), ChallengeKind::Dns01);
    expect_err(
        va.validate(&r).await,
        "dns",
        "_acme-challenge.sf.dns.fleetca.test",
    );
}

// ---------------------------------------------------------------- tls-alpn-01

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlsalpn01_success_tls13_and_tls12() {
    let srv = srv_or_skip!();
    for tls12 in [false, true] {
        let name = "ok.alpn.fleetca.test";
        let (port, seen) = tls_server(good_cert(name), acme_tls(), tls12).await;
        let va = va(srv.dns, 1, port, Duration::from_secs(5));
        let rec = va
            .validate(&req(dns_target(name), ChallengeKind::TlsAlpn01))
            .await
            .unwrap_or_else(|e| panic!("tls12={tls12}: {e}"));
        assert_eq!(rec.sni.as_deref(), Some(name));
        assert_eq!(seen.sni.lock().unwrap().as_deref(), Some(name));
        assert!(rec.caa_checked);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlsalpn01_ip_identifier_uses_reverse_sni() {
    let srv = srv_or_skip!();
    let spec = AlpnCert {
        san: rcgen::SanType::IpAddress(Ipv4Addr::LOCALHOST.into()),
        acme_identifier: Some(sha256(KEYAUTHZ)),
        critical: true,
        other_key: false,
    };
    let (port, seen) = tls_server(spec, acme_tls(), false).await;
    let va = va(srv.dns, 1, port, Duration::from_secs(5));
    let rec = va
        .validate(&req(
            Target::Ip(Ipv4Addr::LOCALHOST.into()),
            ChallengeKind::TlsAlpn01,
        ))
        .await
        .unwrap();
    assert_eq!(rec.sni.as_deref(), Some("1.0.0.127.in-addr.arpa"));
    assert_eq!(
        seen.sni.lock().unwrap().as_deref(),
        Some("1.0.0.127.in-addr.arpa")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlsalpn01_handshake_signature_is_verified() {
    let srv = srv_or_skip!();
    let name = "key.alpn.fleetca.test";
    for tls12 in [false, true] {
        let mut spec = good_cert(name);
        spec.other_key = true;
        let (port, _) = tls_server(spec, acme_tls(), tls12).await;
        let va = va(srv.dns, 1, port, Duration::from_secs(5));
        let r = va
            .validate(&req(dns_target(name), ChallengeKind::TlsAlpn01))
            .await;
        expect_err(r, "tls", "handshake");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlsalpn01_wrong_digest() {
    let srv = srv_or_skip!();
    let name = "dg.alpn.fleetca.test";
    let mut spec = good_cert(name);
    spec.acme_identifier = Some(sha256("another.keyauthz"));
    let (port, _) = tls_server(spec, acme_tls(), false).await;
    let va = va(srv.dns, 1, port, Duration::from_secs(5));
    let r = va
        .validate(&req(dns_target(name), ChallengeKind::TlsAlpn01))
        .await;
    expect_err(r, "incorrectResponse", "SHA-256 of the key authorization");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlsalpn01_missing_extension() {
    let srv = srv_or_skip!();
    let name = "noext.alpn.fleetca.test";
    let mut spec = good_cert(name);
    spec.acme_identifier = None;
    let (port, _) = tls_server(spec, acme_tls(), false).await;
    let va = va(srv.dns, 1, port, Duration::from_secs(5));
    let r = va
        .validate(&req(dns_target(name), ChallengeKind::TlsAlpn01))
        .await;
    expect_err(r, "incorrectResponse", "no acmeIdentifier extension");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlsalpn01_non_critical_extension() {
    let srv = srv_or_skip!();
    let name = "nc.alpn.fleetca.test";
    let mut spec = good_cert(name);
    spec.critical = false;
    let (port, _) = tls_server(spec, acme_tls(), false).await;
    let va = va(srv.dns, 1, port, Duration::from_secs(5));
    let r = va
        .validate(&req(dns_target(name), ChallengeKind::TlsAlpn01))
        .await;
    expect_err(r, "incorrectResponse", "not marked critical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlsalpn01_wrong_san() {
    let srv = srv_or_skip!();
    let name = "san.alpn.fleetca.test";
    let (port, _) = tls_server(good_cert("other.alpn.fleetca.test"), acme_tls(), false).await;
    let va = va(srv.dns, 1, port, Duration::from_secs(5));
    let r = va
        .validate(&req(dns_target(name), ChallengeKind::TlsAlpn01))
        .await;
    let e = expect_err(
        r,
        "incorrectResponse",
        "must name exactly san.alpn.fleetca.test",
    );
    assert!(!e.to_string().contains("other.alpn"), "not echoed: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlsalpn01_alpn_not_selected() {
    let srv = srv_or_skip!();
    let name = "noalpn.alpn.fleetca.test";
    // A server without ALPN configured ignores the extension and completes the handshake.
    let (port, _) = tls_server(good_cert(name), vec![], false).await;
    let va = va(srv.dns, 1, port, Duration::from_secs(5));
    let r = va
        .validate(&req(dns_target(name), ChallengeKind::TlsAlpn01))
        .await;
    expect_err(r, "unauthorized", "acme-tls/1");
    // A server with other protocols only refuses with no_application_protocol.
    let (port, _) = tls_server(good_cert(name), vec![b"h2".to_vec()], false).await;
    let va = Va::new(VaConfig {
        tlsalpn01_port: port,
        ..va.config().clone()
    })
    .unwrap();
    let r = va
        .validate(&req(dns_target(name), ChallengeKind::TlsAlpn01))
        .await;
    expect_err(r, "unauthorized", "acme-tls/1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tlsalpn01_not_tls() {
    let srv = srv_or_skip!();
    let (port, _) = http_server(challenge_ok()).await;
    let va = va(srv.dns, 1, port, Duration::from_secs(3));
    let r = va
        .validate(&req(
            dns_target("plain.alpn.fleetca.test"),
            ChallengeKind::TlsAlpn01,
        ))
        .await;
    expect_err(r, "tls", "handshake");
}

// ---------------------------------------------------------------- CAA

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caa_rules_via_challtestsrv() {
    let srv = srv_or_skip!();
    let va = va(srv.dns, 1, 1, Duration::from_secs(5));
    let h = ChallengeKind::Http01;

    // no records anywhere
    va.check_caa("none.caa.fleetca.test", false, ACCOUNT, h, &ids())
        .await
        .unwrap();

    // matching issue, case-insensitive, found on a parent (tree climbing)
    srv.add_caa("match.caa.fleetca.test", "issue", "FleetCA.local")
        .await;
    va.check_caa("match.caa.fleetca.test", false, ACCOUNT, h, &ids())
        .await
        .unwrap();
    va.check_caa("dev.x.match.caa.fleetca.test", false, ACCOUNT, h, &ids())
        .await
        .unwrap();

    // non-matching issue
    srv.add_caa("other.caa.fleetca.test", "issue", "letsencrypt.org")
        .await;
    expect_err(
        va.check_caa("other.caa.fleetca.test", false, ACCOUNT, h, &ids())
            .await,
        "caa",
        "letsencrypt.org",
    );
    // ...and the closest RRset wins: a child with its own matching record is fine
    srv.add_caa("ok.other.caa.fleetca.test", "issue", CA_ID)
        .await;
    va.check_caa("ok.other.caa.fleetca.test", false, ACCOUNT, h, &ids())
        .await
        .unwrap();

    // issuewild for wildcards; issue for the rest
    srv.add_caa("wild.caa.fleetca.test", "issue", "letsencrypt.org")
        .await;
    srv.add_caa("wild.caa.fleetca.test", "issuewild", CA_ID)
        .await;
    va.check_caa(
        "wild.caa.fleetca.test",
        true,
        ACCOUNT,
        ChallengeKind::Dns01,
        &ids(),
    )
    .await
    .unwrap();
    expect_err(
        va.check_caa(
            "wild.caa.fleetca.test",
            false,
            ACCOUNT,
            ChallengeKind::Dns01,
            &ids(),
        )
        .await,
        "caa",
        "names another CA",
    );
    srv.add_caa("nowild.caa.fleetca.test", "issue", CA_ID).await;
    srv.add_caa("nowild.caa.fleetca.test", "issuewild", ";")
        .await;
    expect_err(
        va.check_caa(
            "nowild.caa.fleetca.test",
            true,
            ACCOUNT,
            ChallengeKind::Dns01,
            &ids(),
        )
        .await,
        "caa",
        "allows no CA",
    );

    // RFC 8657 accounturi
    srv.add_caa(
        "acct.caa.fleetca.test",
        "issue",
        &format!("{CA_ID}; accounturi={ACCOUNT}"),
    )
    .await;
    va.check_caa("acct.caa.fleetca.test", false, ACCOUNT, h, &ids())
        .await
        .unwrap();
    expect_err(
        va.check_caa(
            "acct.caa.fleetca.test",
            false,
            "https://ca.fleetca.test/acme/t1/acct/zzz",
            h,
            &ids(),
        )
        .await,
        "caa",
        "limited to account",
    );

    // RFC 8657 validationmethods
    srv.add_caa(
        "meth.caa.fleetca.test",
        "issue",
        &format!("{CA_ID}; validationmethods=dns-01,tls-alpn-01"),
    )
    .await;
    va.check_caa(
        "meth.caa.fleetca.test",
        false,
        ACCOUNT,
        ChallengeKind::Dns01,
        &ids(),
    )
    .await
    .unwrap();
    expect_err(
        va.check_caa("meth.caa.fleetca.test", false, ACCOUNT, h, &ids())
            .await,
        "caa",
        "validation methods",
    );

    // SERVFAIL: never fail open
    srv.set_servfail("broken.caa.fleetca.test").await;
    expect_err(
        va.check_caa("broken.caa.fleetca.test", false, ACCOUNT, h, &ids())
            .await,
        "dns",
        "not allowed while CAA cannot be checked",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_applies_caa_after_the_challenge() {
    let srv = srv_or_skip!();
    // One log of what the VA did, in order: its DNS queries (through a recording proxy in
    // front of challtestsrv) and its challenge fetches.
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let ok = challenge_ok();
    let log = events.clone();
    let (port, hosts) = http_server(Arc::new(move |path, host| {
        log.lock().unwrap().push(format!("http {path}"));
        ok(path, host)
    }))
    .await;
    let dns = recording_dns_proxy(srv.dns, events.clone()).await;
    srv.add_caa("forbidden.caa.fleetca.test", "issue", "letsencrypt.org")
        .await;
    let va = va(dns, port, 1, Duration::from_secs(5));
    let r = va
        .validate(&req(
            dns_target("forbidden.caa.fleetca.test"),
            ChallengeKind::Http01,
        ))
        .await;
    expect_err(r, "caa", "forbidden.caa.fleetca.test");
    // BR §3.2.2.8: CAA is checked once the challenge has been met, so the fetch comes first.
    assert_eq!(
        *hosts.lock().unwrap(),
        ["forbidden.caa.fleetca.test".to_string()],
        "the challenge was fetched"
    );
    let events = events.lock().unwrap().clone();
    let fetch = events
        .iter()
        .position(|e| e.starts_with("http /.well-known/acme-challenge/"));
    let caa = events.iter().position(|e| e.starts_with("dns CAA "));
    assert!(
        matches!((fetch, caa), (Some(f), Some(c)) if f < c),
        "CAA must be queried after the challenge fetch: {events:?}"
    );
}

/// A UDP DNS proxy in front of `upstream` that appends `dns <TYPE> <name>` to `events` for
/// each query, before forwarding it.
async fn recording_dns_proxy(upstream: SocketAddr, events: Arc<Mutex<Vec<String>>>) -> SocketAddr {
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let query = buf[..n].to_vec();
            if let Ok(m) = hickory_proto::op::Message::from_vec(&query) {
                for q in &m.queries {
                    events
                        .lock()
                        .unwrap()
                        .push(format!("dns {} {}", q.query_type(), q.name()));
                }
            }
            let sock = sock.clone();
            tokio::spawn(async move {
                let up = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                up.send_to(&query, upstream).await.unwrap();
                let mut b = [0u8; 4096];
                if let Ok(Ok((m, _))) =
                    tokio::time::timeout(Duration::from_secs(5), up.recv_from(&mut b)).await
                {
                    let _ = sock.send_to(&b[..m], peer).await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caa_empty_identity_list_matches_nothing() {
    let srv = srv_or_skip!();
    srv.add_caa("x.empty.fleetca.test", "issue", CA_ID).await;
    let va = Va::new(VaConfig {
        dns_resolver: Some(srv.dns),
        ..VaConfig::default()
    })
    .unwrap();
    expect_err(
        va.check_caa(
            "x.empty.fleetca.test",
            false,
            ACCOUNT,
            ChallengeKind::Dns01,
            &[],
        )
        .await,
        "caa",
        "no CAA identity configured",
    );
    va.check_caa(
        "norecords.empty.fleetca.test",
        false,
        ACCOUNT,
        ChallengeKind::Dns01,
        &[],
    )
    .await
    .unwrap();
}

/// challtestsrv cannot set the CAA flags byte, so the critical-unknown-tag case uses a tiny DNS
/// server built on hickory-proto.
async fn tiny_caa_dns(
    records: Vec<(&'static str, bool, &'static str, &'static str)>,
) -> SocketAddr {
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::rdata::CAA;
    use hickory_proto::rr::{RData, Record, RecordType};
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut resp = Message::response(q.metadata.id, q.metadata.op_code);
            resp.metadata.message_type = MessageType::Response;
            resp.metadata.recursion_desired = q.metadata.recursion_desired;
            resp.metadata.recursion_available = true;
            resp.metadata.response_code = ResponseCode::NoError;
            for query in &q.queries {
                resp.add_query(query.clone());
                if query.query_type() != RecordType::CAA {
                    continue;
                }
                let qn = query.name().to_ascii().to_ascii_lowercase();
                for (name, critical, tag, value) in &records {
                    if qn.trim_end_matches('.') == *name {
                        let mut caa = CAA::new_issue(*critical, None, vec![]);
                        caa.tag = tag.to_string();
                        caa.value = value.as_bytes().to_vec();
                        resp.add_answer(Record::from_rdata(
                            query.name().clone(),
                            60,
                            RData::CAA(caa),
                        ));
                    }
                }
            }
            if let Ok(bytes) = resp.to_vec() {
                let _ = sock.send_to(&bytes, peer).await;
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caa_critical_unknown_property_forbids() {
    let dns = tiny_caa_dns(vec![
        ("crit.fleetca.test", false, "issue", CA_ID),
        ("crit.fleetca.test", true, "tbs", "unknown"),
        ("noncrit.fleetca.test", false, "issue", CA_ID),
        ("noncrit.fleetca.test", false, "tbs", "unknown"),
        ("critiodef.fleetca.test", false, "issue", CA_ID),
        (
            "critiodef.fleetca.test",
            true,
            "iodef",
            "mailto:sec@fleetca.test",
        ),
    ])
    .await;
    let va = va(dns, 1, 1, Duration::from_secs(3));
    expect_err(
        va.check_caa(
            "crit.fleetca.test",
            false,
            ACCOUNT,
            ChallengeKind::Http01,
            &ids(),
        )
        .await,
        "caa",
        "critical property \"tbs\"",
    );
    va.check_caa(
        "noncrit.fleetca.test",
        false,
        ACCOUNT,
        ChallengeKind::Http01,
        &ids(),
    )
    .await
    .unwrap();
    va.check_caa(
        "critiodef.fleetca.test",
        false,
        ACCOUNT,
        ChallengeKind::Http01,
        &ids(),
    )
    .await
    .unwrap();
    // a child name climbs to the critical record too
    expect_err(
        va.check_caa(
            "a.b.crit.fleetca.test",
            false,
            ACCOUNT,
            ChallengeKind::Http01,
            &ids(),
        )
        .await,
        "caa",
        "tbs",
    );
}
