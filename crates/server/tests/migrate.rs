//! `fleetca migrate`: a SQLite CA with issued certificates, EAB keys and audit entries moves to
//! PostgreSQL with nothing lost, and serves from there.

mod support;

use std::io::Write as _;
use std::process::Command;
use std::time::Duration;
use support::{run, Fleetca};

#[test]
fn sqlite_ca_moves_to_postgres_without_losing_anything() {
    const TEST: &str = "sqlite_ca_moves_to_postgres_without_losing_anything";
    if support::postgres_url(TEST).is_none() {
        return;
    }
    // The source is the harness's SQLite file; a run with every test on PostgreSQL has none.
    // That run is not missing a tool, and the SQLite run of the same suite covers this test.
    if std::env::var("FLEETCA_TEST_BACKEND").is_ok_and(|b| b == "postgres") {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP {TEST}: FLEETCA_TEST_BACKEND=postgres leaves no SQLite source"
        );
        return;
    }
    let mut f = Fleetca::init(&["routers.example.com"]);
    f.serve_with(0, 0, 0, &["--insecure-skip-validation"]);
    let certs = f.scratch().join("certs");
    let mut bench = Command::new(Fleetca::bin());
    bench
        .args(["bench", "--url", &f.directory_url(), "--root"])
        .arg(f.root_pem_path())
        .args([
            "--suffix",
            "routers.example.com",
            "--clients",
            "3",
            "--count",
            "12",
            "--save-certs",
        ])
        .arg(&certs);
    let out = run(bench, Duration::from_secs(120));
    assert!(
        out.success() && out.stdout.contains("12 ok, 0 failed"),
        "{out}"
    );
    let serials: Vec<String> = std::fs::read_dir(&certs)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.path()
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
        })
        .filter(|s| !s.starts_with('.'))
        .collect();
    assert_eq!(serials.len(), 12);
    // State beyond certificates: a revocation (audited), an EAB key (sealed, audited).
    assert!(f
        .cli(&["cert", "revoke", &serials[0], "--reason", "keyCompromise"])
        .success());
    assert!(f
        .cli(&["eab", "create", "--tenant", "default", "--json"])
        .success());
    let sqlite = f.data_dir().join("fleetca.db");
    f.stop();

    let pg = support::create_postgres_database();
    let mut cmd = Command::new(Fleetca::bin());
    cmd.args([
        "migrate",
        "--from",
        &format!("sqlite:{}", sqlite.display()),
        "--to",
        &pg,
        "--json",
    ]);
    let out = run(cmd, Duration::from_secs(120));
    assert!(out.success(), "{out}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON report");
    let rows = |t: &str| {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r[0] == t)
            .map(|r| r[1].as_i64().unwrap())
            .unwrap()
    };
    assert_eq!(rows("certificates"), 12);
    assert_eq!(rows("eab_keys"), 1);
    assert!(rows("audit_log") >= 2);
    assert_eq!(report["certificate_digest"].as_str().unwrap().len(), 64);

    // A second migration into the same database is refused: nothing is copied twice.
    let mut cmd = Command::new(Fleetca::bin());
    cmd.args([
        "migrate",
        "--from",
        &format!("sqlite:{}", sqlite.display()),
        "--to",
        &pg,
    ]);
    assert!(!run(cmd, Duration::from_secs(60)).success());

    // The operator view of the PostgreSQL copy has every certificate and the revocation.
    for (i, serial) in serials.iter().enumerate() {
        let mut cmd = Command::new(Fleetca::bin());
        cmd.args(["cert", "show", serial, "--json", "--data-dir"])
            .arg(f.data_dir())
            .env("FLEETCA_DATABASE", &pg);
        let out = run(cmd, Duration::from_secs(30));
        assert!(out.success(), "{serial}: {out}");
        let status = if i == 0 { "revoked" } else { "valid" };
        assert!(
            out.stdout.contains(status),
            "{serial} should be {status}: {out}"
        );
    }
}
