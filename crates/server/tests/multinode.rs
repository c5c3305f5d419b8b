//! Several `fleetca serve` nodes sharing one PostgreSQL database behind a load balancer: clients
//! spread over both, one node is SIGKILLed mid-load, every client finishes through the other,
//! and every certificate a client received is in the database, unrevoked and valid.

mod client;
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{free_port, wait_for, ChildGuard, Fleetca, Probe};

/// A TCP round-robin balancer: TLS passes through to a live backend (both nodes hold the same
/// certificate, as nodes behind a real load balancer would).
/// Returns the number of connections passed to each backend so far.
fn start_balancer(
    rt: &tokio::runtime::Runtime,
    listener: std::net::TcpListener,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
) -> Arc<Mutex<std::collections::HashMap<SocketAddr, usize>>> {
    let served = Arc::new(Mutex::new(std::collections::HashMap::new()));
    let counts = served.clone();
    listener.set_nonblocking(true).expect("nonblocking");
    let listener = {
        let _rt = rt.enter();
        tokio::net::TcpListener::from_std(listener).expect("balancer listener")
    };
    let next = Arc::new(AtomicUsize::new(0));
    rt.spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let (backends, next, counts) = (backends.clone(), next.clone(), counts.clone());
            tokio::spawn(async move {
                let list = backends.lock().unwrap().clone();
                let start = next.fetch_add(1, Ordering::SeqCst);
                for i in 0..list.len() {
                    let addr = list[(start + i) % list.len()];
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(addr).await {
                        *counts.lock().unwrap().entry(addr).or_insert(0) += 1;
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        return;
                    }
                }
            });
        }
    });
    served
}

/// A node of `f` on database `db`, started on a free port: returns it and the port.
fn node(f: &Fleetca, db: &str, base_url: &str, log: &Path) -> (ChildGuard, u16) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let listen = free_port();
        let mut cmd = Command::new(Fleetca::bin());
        cmd.args(["serve", "--data-dir"])
            .arg(f.data_dir())
            .args([
                "--database",
                db,
                "--listen",
                &format!("127.0.0.1:{listen}"),
                "--http-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args(["--base-url", base_url, "--insecure-skip-validation"])
            // A finalize cut off by the SIGKILL between claim and store leaves its order
            // `processing` until the claim's lease ends; then the client finalizes it again.
            .args(["--finalize-lease-secs", "5"])
            // Likewise a validation the killed node had started: the survivor takes it over
            // when its lease ends (65 s by default, which a client caught by the kill waited).
            .args(["--validation-lease-secs", "5"]);
        let mut guard = ChildGuard::spawn("fleetca-node", cmd, log);
        let url = format!("https://127.0.0.1:{listen}/acme/default/directory");
        let probe = Probe::Https {
            url: &url,
            ca_pem: f.root_pem_path(),
        };
        match wait_for(&probe, support::STARTUP_DEADLINE, Some(&mut guard)) {
            Ok(()) => return (guard, listen),
            // The free port was taken before the node bound it (the other node's database
            // connections use ephemeral ports from the same range): another port.
            Err(e) if attempt < 3 && e.contains("Address already in use") => {}
            Err(e) => panic!("node up: {e}"),
        }
    }
}

/// Two nodes of `f` on one PostgreSQL database `db`, behind a round-robin balancer.
struct TwoNodes {
    a: ChildGuard,
    b: ChildGuard,
    rt: tokio::runtime::Runtime,
    /// The balancer's URL, every node's `--base-url`.
    base: String,
    /// Connections the balancer passed to each node.
    served: Arc<Mutex<std::collections::HashMap<SocketAddr, usize>>>,
    /// The nodes' listen addresses (keys of `served`).
    addrs: (SocketAddr, SocketAddr),
}

impl TwoNodes {
    fn start(f: &Fleetca, db: &str) -> TwoNodes {
        // The balancer's port is held from the start: the nodes need its URL.
        let balancer = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind balancer");
        let lb = balancer.local_addr().expect("balancer address").port();
        let base = format!("https://127.0.0.1:{lb}");
        let (a, pa) = node(f, db, &base, &f.scratch().join("a.log"));
        let (b, pb) = node(f, db, &base, &f.scratch().join("b.log"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let addrs = (
            SocketAddr::from(([127, 0, 0, 1], pa)),
            SocketAddr::from(([127, 0, 0, 1], pb)),
        );
        let backends = Arc::new(Mutex::new(vec![addrs.0, addrs.1]));
        let served = start_balancer(&rt, balancer, backends);
        TwoNodes {
            a,
            b,
            rt,
            base,
            served,
            addrs,
        }
    }
}

/// Whether the shared PostgreSQL cluster is configured; without it the test is skipped,
/// except under CI, where that is a failure.
fn have_postgres(test: &str) -> bool {
    support::postgres_url(test).is_some()
}

#[test]
fn two_nodes_share_postgres_and_survive_a_sigkill() {
    if !have_postgres("two_nodes_share_postgres_and_survive_a_sigkill") {
        return;
    }
    let f = Fleetca::init(&["routers.example.com"]);
    let db = support::create_postgres_database();
    let TwoNodes {
        a: node_a,
        b: node_b,
        rt,
        base,
        served,
        addrs: (addr_a, addr_b),
    } = TwoNodes::start(&f, &db);
    let served_by = |addr: SocketAddr| served.lock().unwrap().get(&addr).copied().unwrap_or(0);

    let certs = f.scratch().join("certs");
    let total = 60;
    let mut bench = Command::new(Fleetca::bin());
    bench
        .args([
            "bench",
            "--url",
            &format!("{base}/acme/default/directory"),
            "--root",
        ])
        .arg(f.root_pem_path())
        .args([
            "--suffix",
            "routers.example.com",
            "--mode",
            "skip",
            "--clients",
            "6",
            "--count",
            &total.to_string(),
            "--save-certs",
        ])
        .arg(&certs)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = bench.spawn().expect("spawn bench");

    // Kill node A once a few certificates are out, in the middle of the load.
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_dir(&certs).map(|d| d.count()).unwrap_or(0) < 10 {
        assert!(
            Instant::now() < deadline,
            "no progress before the kill\n{}\n{}",
            node_a.log(),
            node_b.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Both nodes carried the load before the kill (the balancer alternates).
    let (a_before, b_before) = (served_by(addr_a), served_by(addr_b));
    assert!(
        a_before > 0 && b_before > 0,
        "before the kill: node A {a_before} connections, node B {b_before}"
    );
    let killed = Command::new("kill")
        .args(["-9", &node_a.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("bench finishes");
    // The clients that were on node A reconnected, and only node B could take them.
    let b_after = served_by(addr_b);
    assert!(
        b_after > b_before,
        "the survivor took no new connection after the kill ({b_before} -> {b_after})"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && stdout.contains(&format!("certificates: {total} ok, 0 failed")),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        node_b.log()
    );

    // Every certificate any client received is in the shared database and valid.
    let saved: Vec<_> = std::fs::read_dir(&certs)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pem"))
        .collect();
    assert_eq!(saved.len(), total);
    let store = rt
        .block_on(fleetca::sa::open_database(&db))
        .expect("open shared database");
    for p in &saved {
        let serial = p.file_stem().unwrap().to_str().unwrap();
        let pem = std::fs::read_to_string(p).unwrap();
        let der = pki::cert_info::pem_to_ders(&pem).unwrap().remove(0);
        let rec = rt
            .block_on(store.get_cert_by_serial("default", serial))
            .unwrap()
            .unwrap_or_else(|| panic!("certificate {serial} missing from the database"));
        assert_eq!(rec.der, der);
        assert!(rec.revoked_at.is_none());
    }
    // The chain of one of them verifies with openssl against the root.
    let pem = std::fs::read_to_string(&saved[0]).unwrap();
    let ders = pki::cert_info::pem_to_ders(&pem).unwrap();
    let dir = f.scratch();
    std::fs::write(
        dir.join("leaf.pem"),
        pki::cert_info::der_to_pem("CERTIFICATE", &ders[0]),
    )
    .unwrap();
    std::fs::write(
        dir.join("chain.pem"),
        pki::cert_info::der_to_pem("CERTIFICATE", &ders[1]),
    )
    .unwrap();
    assert!(support::openssl_verify(
        f.root_pem_path(),
        &dir.join("chain.pem"),
        &dir.join("leaf.pem")
    ));
    // The surviving node still serves; no order was left in processing.
    let counts = rt.block_on(store.counts()).unwrap();
    assert_eq!(
        counts.certificates as usize,
        rt.block_on(async { total_valid_orders(&db).await })
    );
    drop(node_b);
}

/// Orders by status straight from the shared database (none may stay `processing`).
async fn total_valid_orders(db: &str) -> usize {
    use sqlx::{Connection, Row};
    let mut c = sqlx::PgConnection::connect(db).await.unwrap();
    let stuck: i64 = sqlx::query("SELECT COUNT(*) FROM orders WHERE status = 'processing'")
        .fetch_one(&mut c)
        .await
        .unwrap()
        .get(0);
    assert_eq!(stuck, 0, "orders stuck in processing");
    let valid: i64 = sqlx::query("SELECT COUNT(*) FROM orders WHERE status = 'valid'")
        .fetch_one(&mut c)
        .await
        .unwrap()
        .get(0);
    valid as usize
}

/// The hourly and weekly rate limits hold for the fleet, not per node: with
/// `new_orders_per_account_per_hour = 3`, six newOrder requests of one account that alternate
/// between two nodes get three orders, not six (each node alone would have allowed three).
#[test]
fn two_nodes_share_one_rate_limit() {
    if !have_postgres("two_nodes_share_one_rate_limit") {
        return;
    }
    let f = Fleetca::init(&["routers.example.com"]);
    f.set_rate_limits("new_orders_per_account_per_hour = 3");
    let db = support::create_postgres_database();
    let TwoNodes {
        a: node_a,
        b: node_b,
        rt,
        base,
        served,
        ..
    } = TwoNodes::start(&f, &db);
    let statuses: Vec<(u16, String)> = rt.block_on(async {
        let url = format!("{base}/acme/default/directory");
        let mut c = client::Client::new(&url, f.root_pem()).await;
        // A new connection per request: the round-robin balancer alternates the nodes.
        c.http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .use_preconfigured_tls(client_tls(f.root_pem()))
            .build()
            .unwrap();
        assert_eq!(c.new_account().await.status, 201);
        let mut out = Vec::new();
        for i in 0..6 {
            // Each POST is two connections (newNonce, then the POST itself); one more on every
            // other round moves the next newOrder to the other node.
            if i % 2 == 1 {
                c.nonce().await;
            }
            let r = c.new_order(&[&format!("d{i}.routers.example.com")]).await;
            let kind = if r.status == 201 {
                String::new()
            } else {
                r.problem()
            };
            out.push((r.status, kind));
        }
        out
    });
    let granted = statuses.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(
        granted,
        3,
        "{statuses:?}\n{}\n{}",
        node_a.log(),
        node_b.log()
    );
    assert!(
        statuses[3..]
            .iter()
            .all(|(s, k)| *s == 429 && k == "rateLimited"),
        "{statuses:?}"
    );
    // Both nodes answered requests, so the limit was not one node's alone.
    let served = served.lock().unwrap().clone();
    assert_eq!(served.len(), 2, "{served:?}");
    assert!(served.values().all(|n| *n >= 4), "{served:?}");
}

fn client_tls(root_pem: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for der in pki::cert_info::pem_to_ders(root_pem).expect("root PEM") {
        roots.add(der.into()).expect("root cert");
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("tls versions")
    .with_root_certificates(roots)
    .with_no_client_auth()
}
