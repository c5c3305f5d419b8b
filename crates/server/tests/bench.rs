//! `fleetca bench` end to end: a small run against a server in load-test mode, and a real
//! http-01 run where the bench answers the challenges. Rates are printed, never asserted.

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
}
