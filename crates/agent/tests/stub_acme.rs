//! A tiny in-process ACME-ish server (plain HTTP, JWS not verified,
//! authorizations already valid) for what Pebble 2.4 cannot do: ARI
//! (RFC 9773) windows with Retry-After, and an order stuck in `processing`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, IsCa, Issuer, KeyPair,
    SerialNumber,
};
use serde_json::{json, Value};

#[derive(Default)]
struct Seen {
    /// newOrder payloads, in order.
    orders: Vec<Value>,
    /// renewalInfo paths requested.
    ari: Vec<String>,
    /// Certificates issued (DER), in order.
    issued: Vec<Vec<u8>>,
    /// Every request: when, method and path.
    requests: Vec<(Instant, String)>,
    /// When each newOrder request arrived (refused ones too).
    new_order_at: Vec<Instant>,
    /// Order polls (POST-as-GET of the order URL).
    order_polls: usize,
    /// Certificate downloads.
    downloads: usize,
}

/// Order polls after which a `processing_forever` order turns invalid (see the order handler).
const POLL_LIMIT: usize = 30;

struct Config {
    /// suggestedWindow (start, end) as RFC 3339.
    window: (String, String),
    retry_after: u64,
    processing_forever: bool,
    /// Finalize issues but answers orderNotReady, as a retried finalize does after the first
    /// attempt's answer was lost.
    lose_finalize_answer: bool,
    /// Status of the one order ("ready" until finalized).
    order_status: &'static str,
    /// newOrder answers to give first, in order: (HTTP status, Retry-After).
    refuse_orders: Vec<(u16, u64)>,
}

struct Stub {
    base: String,
    seen: Arc<Mutex<Seen>>,
    config: Arc<Mutex<Config>>,
}

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    serial: u8,
    last_chain: String,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

impl Stub {
    fn start(with_ari: bool) -> Stub {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let now = time::OffsetDateTime::now_utc();
        let config = Arc::new(Mutex::new(Config {
            window: (
                rfc3339(now + time::Duration::days(60)),
                rfc3339(now + time::Duration::days(61)),
            ),
            retry_after: 3600,
            processing_forever: false,
            lose_finalize_answer: false,
            order_status: "ready",
            refuse_orders: Vec::new(),
        }));
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = ca_params.self_signed(&ca_key).unwrap().pem();
        let ca = Arc::new(Mutex::new(Ca {
            issuer: Issuer::new(ca_params, ca_key),
            pem,
            serial: 0,
            last_chain: String::new(),
        }));
        let (b, s, c) = (base.clone(), seen.clone(), config.clone());
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let (b, s, c, ca) = (b.clone(), s.clone(), c.clone(), ca.clone());
                std::thread::spawn(move || handle(conn, &b, &s, &c, &ca, with_ari));
            }
        });
        Stub { base, seen, config }
    }
}

fn payload(body: &[u8]) -> Value {
    let jws: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let p = jws["payload"].as_str().unwrap_or("");
    if p.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(&acme_types::b64::decode(p).unwrap()).unwrap_or(Value::Null)
}

fn handle(
    conn: TcpStream,
    base: &str,
    seen: &Mutex<Seen>,
    config: &Mutex<Config>,
    ca: &Mutex<Ca>,
    with_ari: bool,
) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len];
    let _ = r.read_exact(&mut body);
    seen.lock()
        .unwrap()
        .requests
        .push((Instant::now(), format!("{method} {path}")));
    let order = |status: &str| {
        json!({"status": status, "identifiers": [{"type":"dns","value":"stub.example"}],
               "authorizations": [format!("{base}/authz/1")], "finalize": format!("{base}/finalize/1"),
               "certificate": format!("{base}/cert/1")})
    };
    let mut headers = vec![("Replay-Nonce".to_owned(), "bm9uY2U".to_owned())];
    let (status, ctype, out): (&str, &str, String) = match (method.as_str(), path.as_str()) {
        ("GET", "/dir") => {
            let mut d = json!({"newNonce": format!("{base}/nonce"), "newAccount": format!("{base}/acct"),
                "newOrder": format!("{base}/new-order"), "revokeCert": format!("{base}/revoke"),
                "keyChange": format!("{base}/key-change")});
            if with_ari {
                d["renewalInfo"] = json!(format!("{base}/renewal-info"));
            }
            ("200 OK", "application/json", d.to_string())
        }
        ("HEAD", "/nonce") | ("GET", "/nonce") => ("200 OK", "text/plain", String::new()),
        ("POST", "/acct") => {
            headers.push(("Location".into(), format!("{base}/acct/1")));
            ("201 Created", "application/json", json!({"status":"valid"}).to_string())
        }
        ("POST", "/new-order") if !config.lock().unwrap().refuse_orders.is_empty() => {
            seen.lock().unwrap().new_order_at.push(Instant::now());
            let (code, after) = config.lock().unwrap().refuse_orders.remove(0);
            headers.push(("Retry-After".into(), after.to_string()));
            let (status, kind) = match code {
                429 => ("429 Too Many Requests", "rateLimited"),
                _ => ("503 Service Unavailable", "serverInternal"),
            };
            (
                status,
                "application/problem+json",
                json!({"type": format!("urn:ietf:params:acme:error:{kind}"),
                       "detail": "come back later"})
                .to_string(),
            )
        }
        ("POST", "/new-order") => {
            seen.lock().unwrap().new_order_at.push(Instant::now());
            seen.lock().unwrap().orders.push(payload(&body));
            config.lock().unwrap().order_status = "ready";
            headers.push(("Location".into(), format!("{base}/order/1")));
            ("201 Created", "application/json", order("ready").to_string())
        }
        ("POST", "/authz/1") => (
            "200 OK",
            "application/json",
            json!({"status":"valid","identifier":{"type":"dns","value":"stub.example"},"challenges":[]})
                .to_string(),
        ),
        ("POST", "/finalize/1") => {
            let csr_der = acme_types::b64::decode(payload(&body)["csr"].as_str().unwrap()).unwrap();
            let mut csr = CertificateSigningRequestParams::from_der(&csr_der.into()).unwrap();
            let mut ca = ca.lock().unwrap();
            ca.serial += 1;
            // High bit set: the ARI certID must keep the DER leading zero.
            csr.params.serial_number = Some(SerialNumber::from(vec![0x80 | ca.serial, 0x11, 0x22]));
            csr.params.use_authority_key_identifier_extension = true;
            let now = time::OffsetDateTime::now_utc();
            csr.params.not_before = now - time::Duration::hours(1);
            csr.params.not_after = now + time::Duration::days(90);
            let cert = csr.signed_by(&ca.issuer).unwrap();
            seen.lock().unwrap().issued.push(cert.der().to_vec());
            ca.last_chain = format!("{}{}", cert.pem(), ca.pem);
            drop(ca);
            headers.push(("Retry-After".into(), "1".into()));
            let mut c = config.lock().unwrap();
            c.order_status = if c.processing_forever {
                "processing"
            } else {
                "valid"
            };
            if c.lose_finalize_answer {
                (
                    "403 Forbidden",
                    "application/problem+json",
                    json!({"type": "urn:ietf:params:acme:error:orderNotReady",
                           "detail": "the order is valid, not ready"})
                    .to_string(),
                )
            } else {
                ("200 OK", "application/json", order(c.order_status).to_string())
            }
        }
        ("POST", "/order/1") => {
            headers.push(("Retry-After".into(), "1".into()));
            let polls = {
                let mut s = seen.lock().unwrap();
                s.order_polls += 1;
                s.order_polls
            };
            let mut c = config.lock().unwrap();
            // An agent that ignored its --order-timeout would poll for ever: far past what the
            // test allows, the order fails, so such an agent exits with another code.
            if c.processing_forever && polls > POLL_LIMIT {
                c.order_status = "invalid";
            }
            let st = c.order_status;
            ("200 OK", "application/json", order(st).to_string())
        }
        ("POST", "/cert/1") => {
            seen.lock().unwrap().downloads += 1;
            (
                "200 OK",
                "application/pem-certificate-chain",
                ca.lock().unwrap().last_chain.clone(),
            )
        }
        ("GET", p) if p.starts_with("/renewal-info/") => {
            seen.lock().unwrap().ari.push(p["/renewal-info/".len()..].to_owned());
            let c = config.lock().unwrap();
            headers.push(("Retry-After".into(), c.retry_after.to_string()));
            (
                "200 OK",
                "application/json",
                json!({"suggestedWindow": {"start": c.window.0, "end": c.window.1}}).to_string(),
            )
        }
        _ => ("404 Not Found", "application/problem+json",
              json!({"type":"urn:ietf:params:acme:error:malformed","detail":"no such resource"}).to_string()),
    };
    let mut resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        out.len()
    );
    for (k, v) in headers {
        resp.push_str(&format!("{k}: {v}\r\n"));
    }
    resp.push_str("\r\n");
    if method != "HEAD" {
        resp.push_str(&out);
    }
    let mut conn = conn;
    let _ = conn.write_all(resp.as_bytes());
}

struct Env {
    _tmp: tempfile::TempDir,
    args: Vec<String>,
    out: std::path::PathBuf,
}

fn env(stub: &Stub, extra: &[&str]) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    // Any certificate will do as a trust anchor: the stub is plain HTTP.
    let (ca, _, _) = support::make_localhost_tls(tmp.path());
    let out = tmp.path().join("out");
    let mut args: Vec<String> = [
        "--server",
        &format!("{}/dir", stub.base),
        "--server-root",
        ca.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
        "--domain",
        "stub.example",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    Env {
        _tmp: tmp,
        args,
        out,
    }
}

fn run(e: &Env, cmd: &[&str]) -> (i32, String, String) {
    let mut a: Vec<&str> = e.args.iter().map(String::as_str).collect();
    a.extend_from_slice(cmd);
    support::agent(&a)
}

/// RFC 9773 §4.1 certID of a DER certificate, computed here independently
/// of the agent: base64url(AKI keyIdentifier) "." base64url(serial DER bytes).
fn cert_id(der: &[u8]) -> String {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("stub certificates carry an AKI");
    let serial = cert.raw_serial();
    assert_eq!(
        serial[0], 0,
        "serial with the high bit set keeps its leading zero"
    );
    format!(
        "{}.{}",
        acme_types::b64::encode(&aki),
        acme_types::b64::encode(serial)
    )
}

#[test]
fn ari_window_in_the_past_renews_with_replaces() {
    let stub = Stub::start(true);
    let e = env(&stub, &[]);
    let (code, _, err) = run(&e, &["issue"]);
    assert_eq!(code, 10, "{err}");
    let first = stub.seen.lock().unwrap().issued[0].clone();
    assert!(stub.seen.lock().unwrap().orders[0]
        .get("replaces")
        .is_none());

    let now = time::OffsetDateTime::now_utc();
    stub.config.lock().unwrap().window = (
        rfc3339(now - time::Duration::days(2)),
        rfc3339(now - time::Duration::days(1)),
    );
    let (code, _, err) = run(&e, &["renew"]);
    assert_eq!(code, 10, "ARI window in the past must renew: {err}");
    let seen = stub.seen.lock().unwrap();
    assert_eq!(seen.ari.last().unwrap(), &cert_id(&first));
    assert_eq!(seen.orders.len(), 2);
    assert_eq!(
        seen.orders[1]["replaces"],
        json!(cert_id(&first)),
        "{:?}",
        seen.orders[1]
    );
    let installed = std::fs::read_to_string(e.out.join("cert.pem")).unwrap();
    assert_eq!(
        &fleetca_agent::keys::pem_certs(&installed)[0],
        seen.issued.last().unwrap()
    );
}

#[test]
fn ari_window_in_the_future_waits_and_honours_retry_after() {
    let stub = Stub::start(true);
    let e = env(&stub, &[]);
    let (code, _, err) = run(&e, &["issue"]);
    assert_eq!(code, 10, "{err}");
    let now = time::OffsetDateTime::now_utc();
    {
        let mut c = stub.config.lock().unwrap();
        c.window = (
            rfc3339(now + time::Duration::days(30)),
            rfc3339(now + time::Duration::days(31)),
        );
        c.retry_after = 7200;
    }
    let (code, _, err) = run(&e, &["renew"]);
    assert_eq!(code, 0, "ARI window in the future must not renew: {err}");
    assert_eq!(stub.seen.lock().unwrap().orders.len(), 1);
    assert_eq!(stub.seen.lock().unwrap().ari.len(), 1);

    let (code, out, _) = run(&e, &["--json", "status"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["renewal_source"], "ari");
    let parse = |s: &Value| {
        time::OffsetDateTime::parse(
            s.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let renew_at = parse(&v["renew_at"]);
    assert!(renew_at >= now + time::Duration::days(30) - time::Duration::seconds(1));
    // The next check is the renewalInfo Retry-After (2 h), not the window.
    let next = parse(&v["next_attempt"]);
    let d = (next - now).whole_seconds();
    assert!((7100..=7400).contains(&d), "next attempt in {d}s: {v}");
    assert_eq!(v["next_ari_check"], v["next_attempt"]);
}

#[test]
fn endless_processing_times_out_with_26() {
    let stub = Stub::start(false);
    stub.config.lock().unwrap().processing_forever = true;
    let e = env(&stub, &["--order-timeout", "4"]);
    let (code, _, err) = run(&e, &["issue"]);
    assert_eq!(code, 26, "{err}");
    assert!(err.contains("deadline"), "{err}");
    // The agent waited for the order (it polled), honoured the 1 s Retry-After, and gave up at
    // its 4 s deadline: at most one poll per second of it, plus slack for the first. A slow machine polls
    // fewer times, never more; an agent without the deadline polls past POLL_LIMIT.
    let seen = stub.seen.lock().unwrap();
    assert!(
        (1..=6).contains(&seen.order_polls),
        "{} order polls in a 4 s deadline with Retry-After 1: {err}",
        seen.order_polls
    );
    assert_eq!(seen.downloads, 0, "an abandoned order is not downloaded");
    assert!(!e.out.join("current").exists(), "nothing may be installed");
}

/// A finalize whose answer is an error although the CA issued (a node killed after its commit,
/// the retried request answered orderNotReady): the agent reads the order, finds it valid and
/// installs that certificate instead of ordering a second one.
#[test]
fn finalize_answered_with_an_error_after_issuing_installs_the_certificate() {
    let stub = Stub::start(false);
    stub.config.lock().unwrap().lose_finalize_answer = true;
    let e = env(&stub, &[]);
    let (code, _, err) = run(&e, &["issue"]);
    assert_eq!(code, 10, "issued and installed: {err}");
    assert!(
        e.out.join("current").exists(),
        "certificate installed: {err}"
    );
    assert_eq!(
        stub.seen.lock().unwrap().issued.len(),
        1,
        "one certificate issued"
    );
    assert_eq!(stub.seen.lock().unwrap().orders.len(), 1, "one order");
}

/// Defect 5: one-shot `renew` honours the saved renewalInfo next-check time
/// (RFC 9773 §4.3.2) and makes no request at all before it; `--force` does.
#[test]
fn renew_before_the_saved_ari_check_makes_no_request() {
    let stub = Stub::start(true);
    let e = env(&stub, &[]);
    let (code, _, err) = run(&e, &["issue"]);
    assert_eq!(code, 10, "{err}");
    let (code, _, err) = run(&e, &["renew"]);
    assert_eq!(code, 0, "window 60 days out: {err}");
    let requests = stub.seen.lock().unwrap().requests.len();
    let (code, _, err) = run(&e, &["renew"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("next renewalInfo check"), "{err}");
    assert_eq!(
        stub.seen.lock().unwrap().requests.len(),
        requests,
        "no request before the saved check: {:?}",
        &stub.seen.lock().unwrap().requests[requests..]
    );
    let (code, _, err) = run(&e, &["renew", "--force"]);
    assert_eq!(code, 10, "{err}");
    assert_eq!(stub.seen.lock().unwrap().orders.len(), 2);
}

/// Defect 5: 429 with Retry-After (RFC 8555 §6.6): the refusal is remembered
/// and a one-shot `renew` makes no request before it; `--force` overrides.
#[test]
fn rate_limited_retry_after_is_remembered_by_one_shot_renew() {
    let stub = Stub::start(false);
    let e = env(&stub, &[]);
    let (code, _, err) = run(&e, &["issue"]);
    assert_eq!(code, 10, "{err}");
    stub.config.lock().unwrap().refuse_orders = vec![(429, 3600)];
    let (code, _, err) = run(&e, &["renew", "--force"]);
    assert_eq!(code, 21, "{err}");
    assert!(err.contains("retry after 3600s"), "{err}");
    let requests = stub.seen.lock().unwrap().requests.len();
    let (code, _, err) = run(&e, &["renew"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Retry-After"), "{err}");
    assert_eq!(
        stub.seen.lock().unwrap().requests.len(),
        requests,
        "no request"
    );
    let (code, stdout, _) = run(&e, &["--json", "status"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(v["retry_not_before"].is_string(), "{v}");
    let (code, _, err) = run(&e, &["renew", "--force"]);
    assert_eq!(code, 10, "forced: {err}");
}

/// Defect 5: the daemon waits out a 503's Retry-After (plus its own bounded
/// jitter), not its generic backoff, then succeeds.
#[test]
fn daemon_waits_the_retry_after_of_a_503() {
    let stub = Stub::start(false);
    stub.config.lock().unwrap().refuse_orders = vec![(503, 3)];
    let e = env(&stub, &["--splay", "0"]);
    let mut a: Vec<&str> = e.args.iter().map(String::as_str).collect();
    a.push("run");
    let log = e.out.with_extension("log");
    let cmd = support::agent_command(&a);
    let guard = support::ChildGuard::spawn(cmd, &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    while stub.seen.lock().unwrap().issued.is_empty() {
        assert!(Instant::now() < deadline, "never issued: {}", guard.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = guard.log();
    let wait: u64 = text
        .split("retrying in ")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no retry line: {text}"));
    // At least the Retry-After, at most a quarter more (min 1 s) of jitter.
    assert!((3..=4).contains(&wait), "planned wait {wait}s: {text}");
    let at = stub.seen.lock().unwrap().new_order_at.clone();
    assert_eq!(at.len(), 2, "one refused and one accepted newOrder");
    assert!(
        at[1] - at[0] >= Duration::from_secs(3),
        "{:?}",
        at[1] - at[0]
    );
}

/// Boot waits: --wait-for-network gives up after --wait-timeout and the
/// daemon goes on (it copes with an unreachable server anyway).
#[test]
fn daemon_boot_wait_for_network_is_bounded() {
    let stub = Stub::start(false);
    // A port nobody listens on: bound, then closed.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let e = env(
        &stub,
        &[
            "--splay",
            "0",
            "--wait-for-network",
            &closed,
            "--wait-timeout",
            "1",
            "--wait-for-time",
        ],
    );
    let mut a: Vec<&str> = e.args.iter().map(String::as_str).collect();
    a.push("run");
    let guard =
        support::ChildGuard::spawn(support::agent_command(&a), &e.out.with_extension("log"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while stub.seen.lock().unwrap().issued.is_empty() {
        assert!(Instant::now() < deadline, "never issued: {}", guard.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = guard.log();
    assert!(log.contains("still unreachable after 1s"), "{log}");
    assert!(
        log.contains("clock: not before the trusted time floor"),
        "{log}"
    );
}
