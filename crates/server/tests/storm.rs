//! `fleetca bench --storm`: a small renewal storm (50 devices) against a load-test server, with
//! `fleetca renew-early --all` as the operator's trigger. Times are printed, never asserted; the
//! stored certificates and the server's 503 count are checked, not only the bench's report.

mod support;

use std::process::Command;
use std::time::Duration;
use support::{run, Fleetca};

#[test]
fn renewal_storm_after_renew_early_all() {
    let mut f = Fleetca::init(&["routers.example.com"]);
    // A deliberately small overload gate, so the storm also exercises 503 + Retry-After.
    f.serve_with(
        0,
        0,
        0,
        &["--insecure-skip-validation", "--max-in-flight", "4"],
    );
    let trigger = format!(
        "{} renew-early --all --data-dir {}",
        Fleetca::bin().display(),
        f.data_dir().display()
    );
    let mut cmd = Command::new(Fleetca::bin());
    cmd.args(["bench", "--url", &f.directory_url(), "--root"])
        .arg(f.root_pem_path())
        .args(["--suffix", "routers.example.com", "--mode", "skip"])
        .args(["--clients", "50", "--count", "50", "--storm"])
        .args(["--storm-trigger", &trigger]);
    let out = run(cmd, Duration::from_secs(300));
    println!("{}", out.stdout);
    assert!(out.success(), "{out}\n{}", f.log());
    assert!(
        out.stdout.contains("storm: 50 devices hold certificates"),
        "{out}"
    );
    assert!(
        out.stdout.contains("(50 renewed, 0 failed, 0 not due"),
        "every device renews at once after renew-early --all\n{out}"
    );
    assert!(out.stdout.contains("renewalInfo latency"), "{out}");
    // The server's side of the story: 50 first certificates and 50 renewals stored, and the
    // overload gate really shed requests with 503 (the bench retried them after Retry-After).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let counts = rt.block_on(async {
        let db = fleetca::sa::open_database(&f.database_url())
            .await
            .expect("open db");
        db.counts().await.expect("counts")
    });
    assert_eq!(counts.certificates, 100, "{out}");
    let metrics = support::metrics::scrape(&f);
    let shed = support::metrics::sum(&metrics, "fleetca_overload_shed_total", &[]);
    let answered_503 =
        support::metrics::sum(&metrics, "fleetca_http_requests_total", &["status=\"503\""]);
    // Every request the gate shed was answered 503, and the bench saw exactly those 503s.
    // (How many depends on timing; a gate tight enough to shed every run also fails renewals
    // after the bench's five attempts, so the two counts must agree rather than be positive.)
    let seen: f64 = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("503 answers retried: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no 503 count in the report\n{out}"));
    assert_eq!(answered_503, shed, "{metrics}");
    assert_eq!(
        seen, shed,
        "503s the bench saw vs the server's count\n{out}\n{metrics}"
    );
}
