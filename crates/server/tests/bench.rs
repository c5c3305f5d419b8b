//! `fleetca bench` end to end: a small run against a server in load-test mode, and a real
//! http-01 run where the bench answers the challenges. Rates are printed, never asserted; what
//! the bench reports is checked against the database and the server's own counters.

mod support;

use std::process::Command;
use std::time::Duration;
use support::{run, ChallTestSrv, Fleetca, Tool};

fn bench(f: &Fleetca, extra: &[&str]) -> support::CmdOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetca"));
    cmd.args(["bench", "--url", &f.directory_url(), "--root"])
        .arg(f.root_pem_path())
        .args(["--suffix", "routers.example.com"])
        .args(extra);
    run(cmd, Duration::from_secs(300))
}

/// Rows in the server's database: (certificates, valid challenges of `kind`).
fn stored(f: &Fleetca, kind: &str) -> (i64, i64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = fleetca::sa::open_database(&f.database_url())
            .await
            .expect("open db");
        let certs = db.counts().await.expect("counts").certificates;
        let url = f.database_url();
        let valid: i64 = if url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM challenges WHERE status = 'valid' AND type = $1",
            )
            .bind(kind)
            .fetch_one(&pool)
            .await
            .unwrap()
        } else {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{url}?mode=ro"))
                .await
                .unwrap();
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM challenges WHERE status = 'valid' AND type = $1",
            )
            .bind(kind)
            .fetch_one(&pool)
            .await
            .unwrap()
        };
        (certs, valid)
    })
}

#[test]
fn bench_skip_mode_issues_every_certificate() {
    let mut f = Fleetca::init(&["routers.example.com"]);
    f.serve_with(0, 0, 0, &["--insecure-skip-validation"]);
    let out = bench(&f, &["--mode", "skip", "--clients", "4", "--count", "24"]);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.contains("certificates: 24 ok, 0 failed"),
        "{out}"
    );
    println!("{}", out.stdout);
    // The server holds what the bench says it obtained.
    assert_eq!(stored(&f, "http-01").0, 24, "{out}");
    let metrics = support::metrics::scrape(&f);
    assert_eq!(
        support::metrics::sum(&metrics, "fleetca_issuance_total", &["result=\"issued\""]),
        24.0,
        "{metrics}"
    );
    // The requests the bench says it sent per certificate are the ones the server answered:
    // every signed POST but the four clients' newAccount, which the measured run leaves out.
    let per_cert = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("requests per certificate: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no requests line in the report\n{out}"));
    let posts = support::metrics::sum(
        &metrics,
        "fleetca_http_requests_total",
        &["listener=\"acme\"", "method=\"POST\""],
    );
    let registrations = support::metrics::sum(
        &metrics,
        "fleetca_http_requests_total",
        &["endpoint=\"/acme/{tenant}/new-account\"", "method=\"POST\""],
    );
    assert_eq!(registrations, 4.0, "{metrics}");
    assert_eq!((per_cert * 24.0).round(), posts - registrations, "{out}");
    // newOrder, the authorization, the challenge, finalize and the download at least.
    assert!(per_cert >= 5.0, "{out}");
    assert!(
        f.log().contains("NOT validated"),
        "the server must warn loudly in this mode"
    );
}

#[test]
fn bench_http01_mode_validates_for_real() {
    if !support::require(
        "bench_http01_mode_validates_for_real",
        &[Tool::ChallTestSrv],
    ) {
        return;
    }
    let dns = ChallTestSrv::start();
    let port = support::free_port();
    let mut f = Fleetca::init(&["routers.example.com"]);
    f.serve(dns.dns_port(), port, support::free_port());
    let listen = format!("127.0.0.1:{port}");
    let out = bench(
        &f,
        &[
            "--mode",
            "http01",
            "--http01-listen",
            &listen,
            "--clients",
            "2",
            "--count",
            "6",
        ],
    );
    assert!(out.success(), "{out}\n{}", f.log());
    assert!(out.stdout.contains("certificates: 6 ok, 0 failed"), "{out}");
    // Six certificates in the database, each behind a valid http-01 challenge, and the server
    // really fetched the key authorizations from the bench's responder.
    assert_eq!(stored(&f, "http-01"), (6, 6), "{out}");
    let served: usize = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("http-01 key authorizations served: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no responder count in the report\n{out}"));
    assert!(
        served >= 6,
        "the server fetched {served} key authorizations\n{out}"
    );
}
