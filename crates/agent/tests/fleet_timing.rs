//! Field faults against `fleetca serve`: IP identifiers, the start-up splay
//! of a fleet, hook timeouts, a clock years ahead or behind, and ACME
//! profiles (issue 14, defects 4-7).

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::fleetca::*;
use support::*;

const YEAR: i64 = 365 * 86_400;

fn server(test: &str) -> Option<Server> {
    let bin = fleetca_bin();
    if !require(
        &format!("{test} (run `cargo build -p fleetca` first)"),
        &bin,
    ) {
        return None;
    }
    Some(Server::start(&bin))
}

fn installed_info(out: &Path) -> fleetca_agent::schedule::CertInfo {
    let pem = assert_complete_set(out, false).unwrap();
    let der = fleetca_agent::keys::pem_certs(&pem).remove(0);
    fleetca_agent::schedule::CertInfo::parse(&der).unwrap()
}

fn status_json(srv: &Server, out: &Path, env: &[(&str, &str)]) -> Value {
    let (code, stdout, err) = srv.run(out, &["--json", "status"], env);
    assert_eq!(code, 0, "status: {err}");
    serde_json::from_str(stdout.trim()).unwrap()
}

/// Defect 4: an IP identifier (RFC 8738) is recorded in its textual form, so
/// `renew` without `--domain` orders the same identifier again.
#[test]
fn ip_identifier_issue_and_renew_without_domain() {
    let Some(srv) = server("ip_identifier") else {
        return;
    };
    let out = srv.tmp.path().join("out-ip");
    let (code, _, err) = srv.run(&out, &["--domain", "127.0.0.1", "issue"], &[]);
    assert_eq!(code, 10, "issue for 127.0.0.1: {err}\n{}", srv.guard.log());
    assert_eq!(installed_info(&out).names, vec!["127.0.0.1"]);
    let v = status_json(&srv, &out, &[]);
    assert_eq!(v["names"], serde_json::json!(["127.0.0.1"]), "{v}");

    let before = installed_info(&out).serial;
    let (code, _, err) = srv.run(&out, &["renew", "--force"], &[]);
    assert_eq!(
        code,
        10,
        "renew without --domain: {err}\n{}",
        srv.guard.log()
    );
    let after = installed_info(&out);
    assert_ne!(after.serial, before);
    assert_eq!(after.names, vec!["127.0.0.1"]);
}

/// The "start-up splay: first attempt in Ns of a Ws window" line of a
/// running daemon: (N, W).
fn wait_for_splay(log: &Path, deadline: Instant) -> (u64, u64) {
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text.split("first attempt in ").nth(1) {
            let n: u64 = rest.split('s').next().unwrap().parse().unwrap();
            let w: u64 = rest
                .split("of a ")
                .nth(1)
                .and_then(|r| r.split('s').next())
                .unwrap()
                .parse()
                .unwrap();
            return (n, w);
        }
        assert!(
            Instant::now() < deadline,
            "no splay line in {}: {text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `fleetca-agent run` for each out-dir at once and returns their
/// planned splays (the daemons are killed once they have logged them).
fn start_daemons(srv: &Server, outs: &[std::path::PathBuf]) -> Vec<(u64, u64)> {
    let mut children = Vec::new();
    for out in outs {
        std::fs::create_dir_all(out).unwrap();
        let log = out.with_extension("log");
        let args = srv.args(out, &["--domain", "fleet.routers.example.com", "run"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = agent_command(&args);
        let f = std::fs::File::create(&log).unwrap();
        cmd.stdout(Stdio::null()).stderr(f).stdin(Stdio::null());
        children.push((cmd.spawn().unwrap(), log));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let planned = children
        .iter()
        .map(|(_, log)| wait_for_splay(log, deadline))
        .collect();
    for (mut c, _) in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    planned
}

/// Defect 5: 50 identical devices started in the same second spread their
/// first attempts over the splay window, and one device keeps its share.
#[test]
fn fifty_agents_started_together_spread_over_the_splay_window() {
    let Some(srv) = server("splay") else {
        return;
    };
    let outs: Vec<_> = (0..50)
        .map(|i| srv.tmp.path().join(format!("dev{i}")))
        .collect();
    let planned = start_daemons(&srv, &outs);
    let window = planned[0].1;
    assert!(window > 0, "{planned:?}");
    let splays: std::collections::BTreeSet<u64> = planned.iter().map(|p| p.0).collect();
    assert!(
        planned.iter().all(|p| p.1 == window && p.0 < window),
        "{planned:?}"
    );
    assert!(
        splays.len() >= 40,
        "only {} distinct of 50: {splays:?}",
        splays.len()
    );
    // 50 uniform draws: the first below a fifth and the last above four
    // fifths of the window (fails with probability about 2e-5).
    let (lo, hi) = (*splays.first().unwrap(), *splays.last().unwrap());
    assert!(
        lo < window / 5 && hi > window * 4 / 5,
        "{lo}..{hi} of {window}"
    );
    // Stable: the same devices restarted draw the same splays.
    let again = start_daemons(&srv, &outs[..5]);
    assert_eq!(again, planned[..5].to_vec());
}

fn alive(pid_file: &Path) -> bool {
    let pid = std::fs::read_to_string(pid_file).unwrap();
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// Defect 5: a reload command that hangs is killed with everything it
/// started once --hook-timeout passes, and counts as failed.
#[test]
fn hanging_reload_command_is_killed_and_counts_as_failed() {
    let Some(srv) = server("hook_timeout") else {
        return;
    };
    let out = srv.tmp.path().join("out-hook");
    let dir = srv.tmp.path();
    let (sh_pid, sleep_pid) = (dir.join("sh.pid"), dir.join("sleep.pid"));
    let reload = format!(
        "echo $$ > {}; sleep 1000 & echo $! > {}; wait",
        sh_pid.display(),
        sleep_pid.display()
    );
    let (code, _, err) = srv.run(
        &out,
        &[
            "--domain",
            "hook.routers.example.com",
            "--reload-cmd",
            &reload,
            "--hook-timeout",
            "2",
            "issue",
        ],
        &[],
    );
    assert_eq!(code, 24, "reload failed: {err}");
    assert!(err.contains("timed out"), "{err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(&sh_pid) || alive(&sleep_pid) {
        assert!(Instant::now() < deadline, "the hook's processes still run");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Installed, and the reload is still owed.
    assert_complete_set(&out, false);
    let v = status_json(&srv, &out, &[]);
    assert_eq!(v["reload_pending"], true, "{v}");
}

/// Defect 5: a dns-01 hook that hangs is killed after --hook-timeout and the
/// challenge fails (exit 22) instead of blocking the agent.
#[test]
fn hanging_dns_hook_is_killed_and_the_challenge_fails() {
    let Some(srv) = server("dns_hook_timeout") else {
        return;
    };
    let out = srv.tmp.path().join("out-dnshook");
    let pid = srv.tmp.path().join("dns-sleep.pid");
    let hook = format!("sleep 1000 & echo $! > {}; wait; :", pid.display());
    let (code, _, err) = srv.run(
        &out,
        &[
            "--domain",
            "dnshook.routers.example.com",
            "--challenge",
            "dns-01",
            "--dns-hook",
            &hook,
            "--hook-timeout",
            "1",
            "issue",
        ],
        &[],
    );
    assert_eq!(code, 22, "{err}");
    assert!(err.contains("timed out after 1s"), "{err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(&pid) {
        assert!(Instant::now() < deadline, "the hook's sleep still runs");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!out.join("current").exists());
}

/// Defect 6: a clock two years ahead makes the server's TLS certificate
/// look expired; the server's Date settles it and the agent works on server
/// time. Fifty years behind works through the trusted floor.
#[test]
fn clock_two_years_ahead_and_fifty_years_behind_still_renew() {
    let Some(srv) = server("clock_ahead") else {
        return;
    };
    let out = srv.tmp.path().join("out-clock");
    let flags = ["--domain", "clock.routers.example.com"];
    let with = |cmd: &[&'static str]| {
        let mut v = flags.to_vec();
        v.extend_from_slice(cmd);
        v
    };
    let (code, _, err) = srv.run(&out, &with(&["issue"]), &[]);
    assert_eq!(code, 10, "issue: {err}");
    let first = installed_info(&out);

    let ahead = (fleetca_agent::http::now_unix() + 2 * YEAR).to_string();
    let env = [("FLEETCA_AGENT_FAKE_NOW", ahead.as_str())];
    // Not due by the server's time: nothing to do (not exit 20).
    let (code, _, err) = srv.run(&out, &with(&["renew"]), &env);
    assert_eq!(code, 0, "renew with the clock 2 years ahead: {err}");
    assert!(err.contains("using server time for this session"), "{err}");
    let v = status_json(&srv, &out, &env);
    assert_eq!(v["expired"], false, "{v}");
    assert_eq!(v["schedule_clock"], "server time", "{v}");
    assert!(v["clock_note"].as_str().is_some(), "{v}");
    let (code, _, err) = srv.run(&out, &with(&["renew", "--force"]), &env);
    assert_eq!(code, 10, "forced renew 2 years ahead: {err}");
    let second = installed_info(&out);
    assert_ne!(second.serial, first.serial);
    // The certificate was issued at the server's time, not the device's.
    assert!(second.not_before < fleetca_agent::http::now_unix() + 86_400);

    let behind = (fleetca_agent::http::now_unix() - 50 * YEAR).to_string();
    let env = [("FLEETCA_AGENT_FAKE_NOW", behind.as_str())];
    let (code, _, err) = srv.run(&out, &with(&["renew", "--force"]), &env);
    assert_eq!(code, 10, "forced renew 50 years behind: {err}");
    assert_ne!(installed_info(&out).serial, second.serial);
}

/// Defect 7: `--profile shortlived` (draft-aaron-acme-profiles) gets the
/// server's short-lived certificate and `status` shows the profile; a
/// profile the directory does not offer is a usage error before any order.
#[test]
fn profile_shortlived_gets_a_short_lived_certificate() {
    let Some(srv) = server("profile") else {
        return;
    };
    let out = srv.tmp.path().join("out-profile");
    let (code, _, err) = srv.run(
        &out,
        &[
            "--domain",
            "short.routers.example.com",
            "--profile",
            "shortlived",
            "issue",
        ],
        &[],
    );
    assert_eq!(
        code,
        10,
        "issue with --profile shortlived: {err}\n{}",
        srv.guard.log()
    );
    let info = installed_info(&out);
    let life = info.not_after - info.not_before;
    // fleetca: 160 h plus the notBefore backdate; BR short-lived: under 7 days.
    assert!(life <= 7 * 86_400, "lifetime {life}s");
    let v = status_json(&srv, &out, &[]);
    assert_eq!(v["profile"], "shortlived", "{v}");

    let out2 = srv.tmp.path().join("out-noprofile");
    let (code, _, err) = srv.run(
        &out2,
        &[
            "--domain",
            "x.routers.example.com",
            "--profile",
            "nosuch",
            "issue",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("shortlived"),
        "names the offered profiles: {err}"
    );
    assert!(!out2.join("current").exists());
}
