//! Continuous coverage (fleetca docs/coverage.md) as the agent lives it: its certificate is
//! `ok` after issuance, `due` inside its ARI window, `overdue` after it; the agent then renews
//! with `replaces` (RFC 9773 §5), and the old certificate is `ok` again, replaced by the new
//! one. The server's clock is moved by restarting it with `FLEETCA_TEST_CLOCK_OFFSET_SECS`
//! (debug builds).

mod support;

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use support::fleetca::*;
use support::*;

fn serial_hex(info: &fleetca_agent::schedule::CertInfo) -> String {
    info.serial
        .iter()
        .skip_while(|b| **b == 0)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn installed(out: &Path) -> fleetca_agent::schedule::CertInfo {
    let pem = assert_complete_set(out, false).unwrap();
    let der = fleetca_agent::keys::pem_certs(&pem).remove(0);
    fleetca_agent::schedule::CertInfo::parse(&der).unwrap()
}

/// serial → coverage row, from `fleetca coverage --json` on the server's clock.
fn coverage(srv: &Server) -> Vec<Value> {
    let out = srv.admin_now(&["coverage", "--json"]);
    serde_json::from_str::<Value>(out.trim())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn state_of(srv: &Server, serial: &str) -> Value {
    coverage(srv)
        .into_iter()
        .find(|r| r["serial"] == serial)
        .unwrap_or_else(|| panic!("{serial} not in the coverage listing"))
}

/// Polls (the renewalInfo poll is recorded off the request path) until `serial` is `want`.
fn wait_state(srv: &Server, serial: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row = state_of(srv, serial);
        if row["state"] == want {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "{serial} stays {row} (want {want})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn agent_certificate_goes_ok_due_overdue_and_back_to_ok_with_replaces() {
    let bin = fleetca_bin();
    if !require("agent_coverage (run `cargo build -p fleetca` first)", &bin) {
        return;
    }
    let mut srv = Server::start_with(&bin, &["--coverage-refresh", "1s"]);
    let out = srv.tmp.path().join("out-coverage");
    let flags = ["--domain", "cover1.routers.example.com"];
    let with = |cmd: &[&'static str]| {
        let mut v = flags.to_vec();
        v.extend_from_slice(cmd);
        v
    };
    let (code, _, err) = srv.run(&out, &with(&["issue"]), &[]);
    assert_eq!(code, 10, "issue: {err}");
    let first = installed(&out);
    let serial = serial_hex(&first);
    let row = wait_state(&srv, &serial, "ok");
    // Not due yet.
    let (code, _, err) = srv.run(&out, &with(&["renew"]), &[]);
    assert_eq!(code, 0, "renew before the window: {err}");
    let (ws, we) = (
        row["window_start"].as_i64().unwrap(),
        row["window_end"].as_i64().unwrap(),
    );
    let now = fleetca_agent::http::now_unix();

    // Inside the window: due.
    srv.restart(ws + 3600 - now);
    wait_state(&srv, &serial, "due");

    // After it: overdue. The agent renews (when it decides to is its own schedule's business,
    // tested elsewhere; here it is told to) and names the old certificate in `replaces`.
    let offset = we + 3600 - now;
    srv.restart(offset);
    wait_state(&srv, &serial, "overdue");
    let (code, _, err) = srv.run(&out, &with(&["renew", "--force"]), &[]);
    assert_eq!(code, 10, "renew when overdue: {err}");
    let second = installed(&out);
    let new_serial = serial_hex(&second);
    assert_ne!(new_serial, serial);
    let old = wait_state(&srv, &serial, "ok");
    assert_eq!(old["replaced_by"], new_serial.as_str(), "{old}");
    assert_eq!(state_of(&srv, &new_serial)["state"], "ok");
    // The renewal named the old certificate in `replaces`: the order says so.
    let db = srv.database().expect("SQLite database");
    let q = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT COUNT(*) FROM order_lifecycle WHERE replaces_cert_id IS NOT NULL")
        .output()
        .expect("sqlite3 (Debian package sqlite3)");
    assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stderr));
    let replaced = String::from_utf8_lossy(&q.stdout).trim().to_string();
    assert_eq!(replaced, "1", "the renewal order did not carry replaces");
}
