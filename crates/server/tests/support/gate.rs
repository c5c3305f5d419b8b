//! The one gate every test that needs an external tool (a binary, a PostgreSQL server, a
//! browser) goes through. Outside CI a missing tool skips the test with a `SKIP` line on the
//! process's real stderr, so it shows in a normal `cargo test` run; under CI it is a failure,
//! so a CI run can never pass by skipping.
//!
//! One source file, included by the server's and the agent's test support and by the server's
//! unit tests (`#[path]`), so the rule is the same everywhere.
#![allow(dead_code)] // each includer uses a different subset

use std::io::Write as _;

/// True when running under CI (`CI` set to anything but empty/`0`/`false`).
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// True when `available`; otherwise panics under CI, or writes `SKIP test: missing` where the
/// harness shows it and returns false, so the test returns early.
pub(crate) fn gate(test: &str, available: bool, missing: &str) -> bool {
    if available {
        return true;
    }
    if in_ci() {
        panic!("{test}: {missing}; CI is set, so a missing tool is a failure");
    }
    // Not eprintln!: the harness captures that and shows it only for failing tests.
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {missing}");
    false
}

/// The PostgreSQL URL of `FLEETCA_TEST_POSTGRES`, through [`gate`].
pub(crate) fn postgres_url(test: &str) -> Option<String> {
    let url = std::env::var("FLEETCA_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty());
    if gate(test, url.is_some(), "FLEETCA_TEST_POSTGRES is not set") {
        url
    } else {
        None
    }
}
