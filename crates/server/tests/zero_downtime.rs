//! Zero-downtime restart: 32 devices run ACME flows against one address while the serving
//! `fleetca serve` gets SIGTERM and a new process takes over, (a) through systemd-style socket
//! activation (this test holds the listening socket and passes it as `LISTEN_FDS` to the old
//! and then the new process) and (b) through SO_REUSEPORT (`--reuse-port`, the new process
//! binds the same port first). Every flow completes, retrying only retryable answers (503 +
//! Retry-After, badNonce); no connection is refused; the old process drains and exits 0.

mod support;

use fleetca::bench::client::{http_client, AcmeClient, ClientError, Resp};
use serde_json::{json, Value};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{wait_for, ChildGuard, Fleetca, Probe};

const FLOWS: usize = 32;
/// Longest the whole exercise may take.
const DEADLINE: Duration = Duration::from_secs(240);

/// What the devices saw.
#[derive(Default)]
struct Seen {
    /// Connections refused: the thing a restart must never cause.
    refused: AtomicUsize,
    /// Other transport failures (reset, closed before the answer), retried.
    transport: AtomicUsize,
    /// Retryable answers (503 with Retry-After, badNonce), retried.
    retryable: AtomicUsize,
    /// Certificates issued, by all flows.
    issued: AtomicUsize,
}

fn is_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        cur = err.source();
    }
    format!("{e:?}").contains("ConnectionRefused")
}

fn record_transport(seen: &Seen, e: &reqwest::Error) {
    if is_refused(e) {
        seen.refused.fetch_add(1, Ordering::SeqCst);
        eprintln!("connection refused: {e:?}");
    } else {
        seen.transport.fetch_add(1, Ordering::SeqCst);
        eprintln!("transport error (retried): {e:?}");
    }
}

/// A signed request, retried on retryable answers and transport failures (as a device does);
/// any other error answer ends the flow.
async fn send(
    c: &AcmeClient,
    url: &str,
    payload: Option<&Value>,
    seen: &Seen,
) -> Result<Resp, String> {
    for _ in 0..200 {
        match c.post_raw(url, payload).await {
            Ok(r)
                if r.status == 503 || r.json()["type"] == "urn:ietf:params:acme:error:badNonce" =>
            {
                seen.retryable.fetch_add(1, Ordering::SeqCst);
                let wait = r
                    .header("retry-after")
                    .and_then(|s| s.parse::<u64>().ok())
                    .map_or(Duration::from_millis(50), |s| Duration::from_secs(s.min(1)));
                tokio::time::sleep(wait).await;
            }
            Ok(r) if r.status >= 300 => {
                return Err(format!(
                    "{url}: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ))
            }
            Ok(r) => return Ok(r),
            Err(ClientError::Http(e)) => {
                record_transport(seen, &e);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("{url}: no answer after 200 attempts"))
}

/// POST-as-GET `url` until `done`.
async fn poll(
    c: &AcmeClient,
    url: &str,
    seen: &Seen,
    done: impl Fn(&Value) -> bool,
) -> Result<Value, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = send(c, url, None, seen).await?.json();
        if done(&v) {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("{url} stuck: {v}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One device: an account, then certificates one after another until `stop`.
async fn device(
    directory: String,
    root: String,
    n: usize,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
) -> Result<usize, String> {
    let http = http_client(&root).map_err(|e| e.to_string())?;
    let mut c = loop {
        match AcmeClient::new(http.clone(), &directory).await {
            Ok(c) => break c,
            Err(ClientError::Http(e)) => {
                record_transport(&seen, &e);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let r = send(
        &c,
        &c.url("newAccount").unwrap(),
        Some(&json!({"termsOfServiceAgreed": true})),
        &seen,
    )
    .await?;
    c.kid = r.header("location");
    let mut issued = 0;
    while !stop.load(Ordering::SeqCst) {
        let name = format!("d{n}-{issued}.routers.example.com");
        let r = send(
            &c,
            &c.url("newOrder").unwrap(),
            Some(&json!({"identifiers": [{"type": "dns", "value": name}]})),
            &seen,
        )
        .await?;
        let order_url = r.header("location").ok_or("order without Location")?;
        let order = r.json();
        let authz_url = order["authorizations"][0]
            .as_str()
            .ok_or("no authz")?
            .to_string();
        let authz = send(&c, &authz_url, None, &seen).await?.json();
        let ch = authz["challenges"][0]["url"]
            .as_str()
            .ok_or("no challenge")?
            .to_string();
        send(&c, &ch, Some(&json!({})), &seen).await?;
        poll(&c, &authz_url, &seen, |a| a["status"] != "pending").await?;
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.clone()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params.serialize_request(&key).unwrap();
        let fin = json!({"csr": acme_types::b64::encode(csr.der())});
        // A finalize whose answer was lost may have been carried out: the order says.
        if let Err(e) = send(
            &c,
            order["finalize"].as_str().ok_or("no finalize")?,
            Some(&fin),
            &seen,
        )
        .await
        {
            if !e.contains("orderNotReady") {
                return Err(e);
            }
        }
        let done = poll(&c, &order_url, &seen, |o| o["status"] != "processing").await?;
        let cert_url = done["certificate"]
            .as_str()
            .ok_or_else(|| format!("order not valid: {done}"))?;
        let pem = send(&c, cert_url, None, &seen).await?;
        if !String::from_utf8_lossy(&pem.body).contains("BEGIN CERTIFICATE") {
            return Err("no certificate".into());
        }
        issued += 1;
        seen.issued.fetch_add(1, Ordering::SeqCst);
    }
    Ok(issued)
}

/// `fleetca serve` on `port`: with `socket`, the test's listening socket as its only
/// inherited descriptor (`LISTEN_FDS=1`, named `acme`); else bound by itself with `extra`.
fn node(
    f: &Fleetca,
    port: u16,
    socket: Option<&TcpListener>,
    extra: &[&str],
    log: &Path,
) -> ChildGuard {
    let base = format!("https://127.0.0.1:{port}");
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--data-dir".into(),
        f.data_dir().display().to_string(),
    ];
    for a in [
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--http-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--base-url",
        &base,
        "--insecure-skip-validation",
        // Finalizations take a while, so the SIGTERM finds some in progress.
        "--signer-delay-ms",
        "200",
        "--drain-timeout",
        "20",
    ] {
        args.push(a.to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut cmd = match socket {
        Some(l) => {
            // sd_listen_fds(3): the descriptor is 3 and LISTEN_PID is the server's own pid
            // (`exec` keeps the shell's).
            let fd = l.as_raw_fd();
            assert_ne!(fd, 3, "the test's socket is already descriptor 3");
            // bash: dash redirects only descriptors 0-9.
            let mut c = Command::new("bash");
            c.arg("-c")
                .arg(format!(
                    "export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=acme; exec \"$0\" \"$@\" 3<&{fd} {fd}<&-"
                ))
                .arg(Fleetca::bin())
                .args(&args);
            c
        }
        None => {
            let mut c = Command::new(Fleetca::bin());
            c.args(&args);
            c
        }
    };
    cmd.env("RUST_LOG", "info");
    ChildGuard::spawn("fleetca-node", cmd, log)
}

fn wait_up(f: &Fleetca, port: u16, guard: &mut ChildGuard) {
    let url = format!("https://127.0.0.1:{port}/acme/default/directory");
    wait_for(
        &Probe::Https {
            url: &url,
            ca_pem: f.root_pem_path(),
        },
        support::STARTUP_DEADLINE,
        Some(guard),
    )
    .expect("node up");
}

/// Connects to `port` in a loop until `stop`, counting refusals.
fn spawn_prober(
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut tries = 0;
        while !stop.load(Ordering::SeqCst) {
            tries += 1;
            if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                if e.kind() == std::io::ErrorKind::ConnectionRefused {
                    seen.refused.fetch_add(1, Ordering::SeqCst);
                    eprintln!("prober: connection refused");
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        tries
    })
}

/// Runs the 32 devices against `port`; `restart` is called once every device has a
/// certificate, and returns the old node (to be watched until it exits) and the new one.
fn restart_under_load(
    f: &Fleetca,
    port: u16,
    restart: impl FnOnce() -> (ChildGuard, ChildGuard),
) -> (Arc<Seen>, ChildGuard) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let stop_probe = Arc::new(AtomicBool::new(false));
    let prober = spawn_prober(port, stop_probe.clone(), seen.clone());
    let directory = format!("https://127.0.0.1:{port}/acme/default/directory");
    let flows: Vec<_> = (0..FLOWS)
        .map(|n| {
            rt.spawn(device(
                directory.clone(),
                f.root_pem().to_string(),
                n,
                seen.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let start = Instant::now();
    while seen.issued.load(Ordering::SeqCst) < FLOWS {
        assert!(start.elapsed() < DEADLINE, "no progress before the restart");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mut old, new) = restart();
    // The old node drains and exits 0, within its drain timeout.
    let status = loop {
        if let Some(s) = old.try_wait() {
            break s;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the old node did not exit\n{}",
            old.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "old node exited with {status}\n{}",
        old.log()
    );
    assert!(old.log().contains("drained"), "{}", old.log());
    // Every device gets at least one more certificate from the new node, then stops.
    let after = seen.issued.load(Ordering::SeqCst);
    while seen.issued.load(Ordering::SeqCst) < after + FLOWS {
        assert!(
            start.elapsed() < DEADLINE,
            "no progress after the restart\n{}",
            new.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    for (n, h) in flows.into_iter().enumerate() {
        let r = rt.block_on(h).expect("flow task");
        assert!(r.is_ok(), "device {n}: {r:?}\n{}\n{}", old.log(), new.log());
    }
    stop_probe.store(true, Ordering::SeqCst);
    let probes = prober.join().unwrap();
    eprintln!(
        "issued {}, retryable answers {}, other transport errors {}, refused {}, probe connects {probes}",
        seen.issued.load(Ordering::SeqCst),
        seen.retryable.load(Ordering::SeqCst),
        seen.transport.load(Ordering::SeqCst),
        seen.refused.load(Ordering::SeqCst),
    );
    (seen, new)
}

fn sigterm(node: &ChildGuard) {
    let ok = Command::new("kill")
        .args(["-TERM", &node.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn sigterm_under_load_with_socket_activation_refuses_no_connection() {
    let f = Fleetca::init(&["routers.example.com"]);
    // The service manager's part: one listening socket for the life of the service.
    let bound = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = bound.local_addr().unwrap().port();
    // Above the descriptors the children use (they get it as 3), and inherited across exec
    // as systemd passes it.
    let socket = TcpListener::from(rustix::io::fcntl_dupfd_cloexec(&bound, 64).unwrap());
    drop(bound);
    rustix::io::fcntl_setfd(&socket, rustix::io::FdFlags::empty()).unwrap();
    let mut a = node(&f, port, Some(&socket), &[], &f.scratch().join("a.log"));
    wait_up(&f, port, &mut a);
    let log_b = f.scratch().join("b.log");
    let (seen, b) = restart_under_load(&f, port, || {
        // systemctl restart: SIGTERM to the old process, then the new one on the same socket.
        sigterm(&a);
        let b = node(&f, port, Some(&socket), &[], &log_b);
        (a, b)
    });
    assert_eq!(seen.refused.load(Ordering::SeqCst), 0, "{}", b.log());
    assert!(b.log().contains("ACME directory"), "{}", b.log());
}

#[test]
fn sigterm_under_load_with_reuseport_refuses_no_connection() {
    let f = Fleetca::init(&["routers.example.com"]);
    let port = support::free_port();
    let mut a = node(
        &f,
        port,
        None,
        &["--reuse-port"],
        &f.scratch().join("a.log"),
    );
    wait_up(&f, port, &mut a);
    let log_b = f.scratch().join("b.log");
    let (seen, b) = restart_under_load(&f, port, || {
        // The new process binds the same port beside the old one, then the old one drains.
        let mut b = node(&f, port, None, &["--reuse-port"], &log_b);
        let deadline = Instant::now() + support::STARTUP_DEADLINE;
        while !b.log().contains("ACME directory") {
            assert!(
                b.try_wait().is_none() && Instant::now() < deadline,
                "{}",
                b.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sigterm(&a);
        (a, b)
    });
    assert_eq!(seen.refused.load(Ordering::SeqCst), 0, "{}", b.log());
}

#[test]
fn a_second_server_without_reuse_port_cannot_take_the_port() {
    // SO_REUSEPORT is opt-in: by default a second server on a used address fails fast.
    let f = Fleetca::init(&["routers.example.com"]);
    let port = support::free_port();
    let mut a = node(
        &f,
        port,
        None,
        &["--reuse-port"],
        &f.scratch().join("a.log"),
    );
    wait_up(&f, port, &mut a);
    let mut b = node(&f, port, None, &[], &f.scratch().join("b.log"));
    let deadline = Instant::now() + support::STARTUP_DEADLINE;
    let status = loop {
        if let Some(s) = b.try_wait() {
            break s;
        }
        assert!(Instant::now() < deadline, "{}", b.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    assert!(b.log().contains("--listen"), "{}", b.log());
}
