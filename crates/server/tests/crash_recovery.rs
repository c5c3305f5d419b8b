//! Crash safety of the single-node (SQLite) server: `fleetca serve` is SIGKILLed at a random
//! moment while `fleetca bench` runs full ACME flows against it, then restarted, many times.
//! After every restart: each certificate any client received is in the database, no order is
//! left in `processing`, and `PRAGMA integrity_check` says `ok`.
//!
//! Why no order can be stuck: finalize claims the order (`pending` → `processing`, under a
//! token and a lease), signs outside storage, then stores the certificate and marks the order
//! `valid` in one transaction that only the claim's holder can commit. A crash after the claim
//! leaves a `processing` order whose holder is dead; a single node (SQLite) releases every such
//! claim when it starts, before it serves (several PostgreSQL nodes wait for the lease). So
//! after a restart no order is `processing`, and no `valid` order lacks its certificate.

mod support;

use sqlx::Row;
use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{free_port, wait_for, ChildGuard, Fleetca, Probe};

const SUFFIX: &str = "routers.example.com";
const ITERATIONS: usize = 12;
/// Bound on the whole loop; at least 10 iterations must fit.
const BUDGET: Duration = Duration::from_secs(240);

fn serve(f: &Fleetca, port: u16, log: &Path) -> ChildGuard {
    let mut cmd = Command::new(Fleetca::bin());
    cmd.args(["serve", "--data-dir"])
        .arg(f.data_dir())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--insecure-skip-validation");
    let mut guard = ChildGuard::spawn("fleetca", cmd, log);
    let url = format!("https://127.0.0.1:{port}/acme/default/directory");
    wait_for(
        &Probe::Https {
            url: &url,
            ca_pem: f.root_pem_path(),
        },
        support::STARTUP_DEADLINE,
        Some(&mut guard),
    )
    .expect("fleetca serve came back up");
    guard
}

fn bench(f: &Fleetca, port: u16, certs: &Path, log: &Path) -> ChildGuard {
    let mut cmd = Command::new(Fleetca::bin());
    cmd.args([
        "bench",
        "--mode",
        "skip",
        "--clients",
        "4",
        "--count",
        "100000",
    ])
    .args([
        "--url",
        &format!("https://127.0.0.1:{port}/acme/default/directory"),
    ])
    .arg("--root")
    .arg(f.root_pem_path())
    .args(["--suffix", SUFFIX])
    .arg("--save-certs")
    .arg(certs);
    ChildGuard::spawn("bench", cmd, log)
}

/// Serials (lower-case hex, no leading zeros) of the certificates saved by the bench runs.
fn received(certs: &Path) -> HashSet<String> {
    std::fs::read_dir(certs)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".pem").map(norm)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn norm(serial: &str) -> String {
    let s = serial.trim().to_ascii_lowercase().replace(':', "");
    let s = s.trim_start_matches('0');
    if s.is_empty() { "0" } else { s }.to_string()
}

/// The invariants after a restart; returns how many certificates the database holds.
async fn check(db: &Path, received: &HashSet<String>) -> usize {
    let store = fleetca::sa::SqliteStorage::open(db).await.unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    let stored: HashSet<String> = sqlx::query("SELECT serial FROM certificates")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| norm(&r.get::<String, _>(0)))
        .collect();
    let missing: Vec<_> = received.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "certificates clients received are missing from the database: {missing:?}"
    );
    let processing: i64 = sqlx::query("SELECT COUNT(*) FROM orders WHERE status = 'processing'")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(processing, 0, "orders left in processing after restart");
    let orphan: i64 = sqlx::query(
        "SELECT COUNT(*) FROM orders o WHERE o.status = 'valid' AND NOT EXISTS
           (SELECT 1 FROM certificates c WHERE c.id = o.cert_id)",
    )
    .fetch_one(&pool)
    .await
    .unwrap()
    .get(0);
    assert_eq!(orphan, 0, "a valid order without its certificate");
    pool.close().await;
    stored.len()
}

#[test]
fn sigkill_during_load_loses_nothing() {
    let f = Fleetca::init(&[SUFFIX]);
    let certs = f.scratch().join("certs");
    let db = f.data_dir().join("fleetca.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    let mut rounds = 0;
    while rounds < ITERATIONS && start.elapsed() < BUDGET {
        let port = free_port();
        let server = serve(&f, port, &f.scratch().join(format!("serve-{rounds}.log")));
        let stored = rt.block_on(check(&db, &received(&certs)));
        eprintln!(
            "round {rounds}: restarted; {stored} certificates stored, {} received so far",
            received(&certs).len()
        );
        let load = bench(
            &f,
            port,
            &certs,
            &f.scratch().join(format!("bench-{rounds}.log")),
        );
        // A random moment in the load (not a wait for a condition): 0.3-1.8 s.
        let at = Duration::from_millis(300 + rand::random::<u64>() % 1500);
        std::thread::sleep(at);
        // ChildGuard's drop is Child::kill, i.e. SIGKILL: no shutdown path runs.
        drop(server);
        drop(load);
        rounds += 1;
    }
    assert!(
        rounds >= 10,
        "only {rounds} kill/restart rounds fit in {BUDGET:?}"
    );
    let _server = serve(&f, free_port(), &f.scratch().join("serve-final.log"));
    let got = received(&certs);
    let stored = rt.block_on(check(&db, &got));
    eprintln!(
        "{rounds} SIGKILLs: {} certificates received by clients, {stored} stored, all present",
        got.len()
    );
    assert!(!got.is_empty(), "the load obtained no certificates at all");
}
