//! Real power-loss test: the agent binary issues and renews against Pebble
//! and is SIGKILLed at every install step (the debug-build hook
//! `FLEETCA_AGENT_TEST_PAUSE_AT=<step>` parks it there) and at random
//! moments. After every kill the out-dir holds nothing (first install) or a
//! complete set whose key matches its certificate, and a rerun completes.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;

/// Install steps in order (see `install::install_with_checkpoints`).
const STEPS: [&str; 12] = [
    "mkdir",
    "key.pem",
    "cert.pem",
    "chain.pem",
    "fullchain.pem",
    "sync-versions",
    "swap",
    "link-key.pem",
    "link-cert.pem",
    "link-chain.pem",
    "link-fullchain.pem",
    "prune",
];

/// Runs the agent with `pause_at`; kills it (SIGKILL) once it reports the
/// pause. Returns whether it paused (false: it finished without reaching
/// that step, e.g. the links already existed).
fn kill_at(args: &[&str], pause_at: &str) -> bool {
    let mut child = agent_command(args)
        .env("FLEETCA_AGENT_TEST_PAUSE_AT", pause_at)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut paused = false;
    let mut log = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap_or_default();
        log.push_str(&line);
        log.push('\n');
        if line.contains("test: paused at ") {
            paused = true;
            child.kill().unwrap(); // SIGKILL
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        paused || status.code() == Some(10),
        "agent failed before {pause_at} ({status:?}): {log}"
    );
    paused
}

/// A pseudo-random number in `0..n` (no RNG crate needed for test timing).
fn random_below(n: u64, seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed % n
}

#[test]
fn sigkill_at_every_install_step_and_at_random_moments() {
    if !require("sigkill", Path::new("/usr/bin/pebble")) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cts = ChallTestSrv::start(tmp.path());
    let http_port = free_port();
    let pebble = Pebble::start(tmp.path(), cts.dns_port, http_port, free_port());
    let hp = http_port.to_string();
    let mut kills = 0;

    // 1. First install, killed before each step: nothing or a complete set.
    for (i, step) in STEPS.iter().enumerate() {
        let out = tmp.path().join(format!("first-{i}"));
        let args = [
            "--server",
            &pebble.directory,
            "--server-root",
            pebble.tls_ca.to_str().unwrap(),
            "--out-dir",
            out.to_str().unwrap(),
            "--domain",
            "pl.example",
            "--http-port",
            &hp,
        ];
        let mut a = args.to_vec();
        a.push("issue");
        if kill_at(&a, step) {
            kills += 1;
        }
        assert_complete_set(&out, true);
        let (code, _, err) = agent(&a);
        assert_eq!(code, 10, "rerun after a kill before {step}: {err}");
        assert_complete_set(&out, false);
    }

    // 2. Renewal over an installed set, killed before each step: the old or
    //    the new set, complete either way.
    let out = tmp.path().join("renew");
    let args = [
        "--server",
        &pebble.directory,
        "--server-root",
        pebble.tls_ca.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
        "--domain",
        "pl.example",
        "--http-port",
        &hp,
    ];
    let mut issue = args.to_vec();
    issue.push("issue");
    assert_eq!(agent(&issue).0, 10);
    let mut force = args.to_vec();
    force.extend(["renew", "--force"]);
    for step in STEPS {
        let before = assert_complete_set(&out, false);
        if kill_at(&force, step) {
            kills += 1;
        }
        let after = assert_complete_set(&out, false);
        if [
            "mkdir",
            "key.pem",
            "cert.pem",
            "chain.pem",
            "fullchain.pem",
            "sync-versions",
            "swap",
        ]
        .contains(&step)
        {
            assert_eq!(after, before, "killed before {step}: the old set must stay");
        }
        let (code, _, err) = agent(&force);
        assert_eq!(code, 10, "rerun after a kill before {step}: {err}");
        assert_complete_set(&out, false);
    }

    // 3. Kills at random moments of a whole renewal.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let started = Instant::now();
    let full = {
        let t = Instant::now();
        assert_eq!(agent(&force).0, 10);
        t.elapsed()
    };
    for _ in 0..12 {
        let delay = Duration::from_millis(random_below(full.as_millis() as u64 + 50, &mut seed));
        let mut child = agent_command(&force)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        kills += 1;
        assert_complete_set(&out, false);
    }
    let (code, _, err) = agent(&force);
    assert_eq!(code, 10, "{err}");
    assert_complete_set(&out, false);
    assert!(kills >= 20, "only {kills} kills");
    eprintln!("{kills} SIGKILLs, random phase {:?}", started.elapsed());
}
