//! `fleetca bench --storm`: a small renewal storm (50 devices) against a load-test server, with
//! `fleetca renew-early --all` as the operator's trigger. Times are printed, never asserted.

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
}
