//! `fleetca --version` and `fleetca doctor`: a healthy deployment passes, and each check is
//! broken once, on a real data directory made by `fleetca init`, through the real binary.

mod support;

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fleetca() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetca"));
    // The test's own environment never leaks into what doctor checks.
    for var in [
        "FLEETCA_DATA_DIR",
        "FLEETCA_DATABASE",
        "FLEETCA_LISTEN",
        "FLEETCA_HTTP_LISTEN",
        "FLEETCA_ADMIN_LISTEN",
        "FLEETCA_BASE_URL",
        "FLEETCA_KEY_PASSPHRASE",
        "FLEETCA_PKCS11_PIN_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A data directory as an operator would leave it: public URLs set, the database created.
fn deployment(tmp: &Path) -> PathBuf {
    let dir = tmp.join("ca");
    let out = fleetca()
        .args(["init", "--data-dir"])
        .arg(&dir)
        .args(["--permit", "routers.example.net"])
        .args(["--public-base-url", "http://ca.example.net"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Any operator command opens (and so creates and migrates) the database.
    let out = fleetca()
        .args(["account", "list", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// `fleetca doctor --json` with `extra`, and for each flag `extra` does not set, a value that
/// passes on any host; its exit status and report.
fn doctor(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> (bool, Value) {
    let mut cmd = fleetca();
    cmd.args(["doctor", "--json", "--data-dir"])
        .arg(dir)
        .args(extra);
    for (flag, value) in [
        ("--base-url", "https://ca.example.net:8443"),
        ("--listen", "127.0.0.1:0"),
        ("--http-listen", "127.0.0.1:0"),
        ("--admin-listen", "127.0.0.1:0"),
        ("--min-free-mb", "1"),
    ] {
        if !extra.contains(&flag) {
            cmd.args([flag, value]);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        report["ok"].as_bool(),
        Some(out.status.success()),
        "{report:#}"
    );
    (out.status.success(), report)
}

/// The failing findings of `check`; panics if there are none.
fn failures(report: &Value, check: &str) -> Vec<String> {
    let found: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check && f["status"] == "fail")
        .map(|f| format!("{} / fix: {}", f["detail"], f["fix"]))
        .collect();
    assert!(!found.is_empty(), "no failing {check} finding:\n{report:#}");
    found
}

/// Fails the test unless the run failed on `check` and on nothing else.
fn fails_only(ok: bool, report: &Value, check: &str) -> Vec<String> {
    assert!(!ok, "doctor passed:\n{report:#}");
    let others: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "fail" && f["check"] != check)
        .collect();
    assert!(others.is_empty(), "unexpected failures: {others:#?}");
    failures(report, check)
}

#[test]
fn version_names_the_commit_and_the_features() {
    let out = fleetca().arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("fleetca {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let commit = text
        .lines()
        .find_map(|l| l.strip_prefix("commit: "))
        .unwrap_or_else(|| panic!("no commit line: {text}"));
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
    assert!(text.lines().any(|l| l.starts_with("features: ")), "{text}");
}

#[test]
fn doctor_passes_a_healthy_deployment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = deployment(tmp.path());
    let (ok, report) = doctor(&dir, &[], &[]);
    assert!(ok, "{report:#}");
    let checks: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for c in [
        "data_dir",
        "key_files",
        "issuing_key",
        "public_urls",
        "clock",
        "database",
        "disk",
        "listeners",
    ] {
        assert!(checks.contains(&c), "{c} missing: {report:#}");
    }
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["status"] == "ok"),
        "{report:#}"
    );
    // The text form says the same, and exits 0.
    let out = fleetca()
        .args(["doctor", "--data-dir"])
        .arg(&dir)
        .args([
            "--base-url",
            "https://ca.example.net:8443",
            "--min-free-mb",
            "1",
        ])
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok   key_files"));
}

#[test]
fn doctor_fails_on_a_directory_that_is_not_initialised() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, report) = doctor(&tmp.path().join("nothing"), &[], &[]);
    let f = fails_only(ok, &report, "data_dir");
    assert!(f[0].contains("fleetca init"), "{f:?}");
}

#[test]
fn doctor_fails_on_a_key_other_users_can_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = deployment(tmp.path());
    let key = dir.join("ca/default/key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, report) = doctor(&dir, &[], &[]);
    let f = fails_only(ok, &report, "key_files");
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0].contains(&key.display().to_string()) && f[0].contains("644"),
        "{f:?}"
    );
    assert!(f[0].contains("chmod 600"), "{f:?}");
}

#[test]
fn doctor_fails_on_a_key_owned_by_another_user() {
    // chown to another user needs root (CI runs as root).
    if !support::gate(
        "doctor_fails_on_a_key_owned_by_another_user",
        rustix::process::geteuid().is_root(),
        "not root: cannot chown a key to another user",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = deployment(tmp.path());
    let key = dir.join("eab.key");
    // The EAB sealing key is made on first use; stand one in with the right mode.
    std::fs::write(&key, b"secret").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&key, Some(65534), Some(65534)).unwrap();
    let (ok, report) = doctor(&dir, &[], &[]);
    let f = fails_only(ok, &report, "key_files");
    assert!(f[0].contains("owned by uid 65534"), "{f:?}");
}

#[test]
fn doctor_fails_when_the_pkcs11_token_is_unreachable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = deployment(tmp.path());
    let cfg = dir.join("fleetca.toml");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(
        "\n[ca.pkcs11]\nmodule = \"/nonexistent/libpkcs11-fleetca-test.so\"\ntoken = \"fleetca\"\nkey = \"fleetca-default-0\"\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let pin = tmp.path().join("pin");
    std::fs::write(&pin, "1234\n").unwrap();
    let (ok, report) = doctor(&dir, &["--pkcs11-pin-file", pin.to_str().unwrap()], &[]);
    let f = fails_only(ok, &report, "pkcs11");
    assert!(f[0].contains("libpkcs11-fleetca-test.so"), "{f:?}");
}

#[test]
fn doctor_warns_on_a_public_tenant_without_ct() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = deployment(tmp.path());
    let cfg = dir.join("fleetca.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("trust = \"private\"\n"), "{text}");
    // What a test fixture does to isolate a sub-CA from CT, left in a deployment.
    std::fs::write(
        &cfg,
        text.replacen(
            "trust = \"private\"\n",
            "trust = \"public\"\nct_required = false\n",
            1,
        ),
    )
    .unwrap();
    let (_, report) = doctor(&dir, &[], &[]);
    let warned: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "public_ct")
        .collect();
    assert_eq!(warned.len(), 1, "{report:#}");
    assert_eq!(warned[0]["status"], "warn", "{report:#}");
    let detail = warned[0]["detail"].as_str().unwrap();
    assert!(detail.contains("ct_required = false"), "{detail}");

    // A private tenant gets no such finding: CT is the browsers' rule for public trust.
    std::fs::write(&cfg, &text).unwrap();
    let (ok, report) = doctor(&dir, &[], &[]);
    assert!(ok, "{report:#}");
    assert!(
        !report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "public_ct"),
        "{report:#}"
    );
}

#[test]
fn doctor_fails_on_loopback_public_urls() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    // init's defaults: CRLs at http://127.0.0.1:8080.
    let out = fleetca()
        .args(["init", "--data-dir"])
        .arg(&dir)
        .args(["--permit", "routers.example.net"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (ok, report) = doctor(&dir, &["--base-url", "https://localhost:8443"], &[]);
    let f = fails_only(ok, &report, "public_urls");
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(f.iter().any(|l| l.contains("FLEETCA_BASE_URL")), "{f:?}");
    assert!(
        f.iter()
            .any(|l| l.contains("public_base_url") && l.contains("127.0.0.1")),
        "{f:?}"
    );
}

#[test]
fn doctor_fails_on_a_clock_before_the_ca_and_the_build() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = deployment(tmp.path());
    // Debug builds only: the server clock moved 30 years back (as a device with a dead RTC).
    let (ok, report) = doctor(
        &dir,
        &[],
        &[("FLEETCA_TEST_CLOCK_OFFSET_SECS", "-946080000")],
    );
    let f = fails_only(ok, &report, "clock");
    assert!(
        f.iter()
            .any(|l| l.contains("before tenant \\\"default\\\"'s CA certificate begins")),
        "{f:?}"
    );
    assert!(f.iter().all(|l| l.contains("synchronise")), "{f:?}");
}

#[test]
fn doctor_fails_on_a_database_a_newer_fleetca_migrated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = deployment(tmp.path());
    let db = rusqlite::Connection::open(dir.join("fleetca.db")).unwrap();
    db.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990001, 'from a newer fleetca', 1, x'00', 0)",
        [],
    )
    .unwrap();
    drop(db);
    let (ok, report) = doctor(&dir, &[], &[]);
    let f = fails_only(ok, &report, "database");
    assert!(
        f[0].contains("99990001") && f[0].contains("newer fleetca"),
        "{f:?}"
    );
    // Read-only: the check changed nothing.
    let db = rusqlite::Connection::open(dir.join("fleetca.db")).unwrap();
    let n: i64 = db
        .query_row(
            "SELECT count(*) FROM _sqlx_migrations WHERE version = 99990001",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn doctor_fails_on_too_little_free_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = deployment(tmp.path());
    // More than any test machine has: 1 EiB.
    let (ok, report) = doctor(&dir, &["--min-free-mb", "1099511627776"], &[]);
    let f = fails_only(ok, &report, "disk");
    assert!(f[0].contains("MiB free"), "{f:?}");
}

#[test]
fn doctor_fails_on_a_listener_address_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = deployment(tmp.path());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (ok, report) = doctor(&dir, &["--http-listen", &addr], &[]);
    let f = fails_only(ok, &report, "listeners");
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(
        f[0].contains("--http-listen") && f[0].contains(&addr),
        "{f:?}"
    );
    assert!(f[0].contains("FLEETCA_HTTP_LISTEN"), "{f:?}");
    // A running serve holds its own addresses: --skip-listeners leaves them alone.
    let (ok, report) = doctor(&dir, &["--http-listen", &addr, "--skip-listeners"], &[]);
    assert!(ok, "{report:#}");
}
