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

/// The steps a renewal over an installed set passes: the stable links already point through
/// `current`, so the `link-*` steps are skipped (nothing to write).
const RENEWAL_STEPS: [&str; 8] = [
    "mkdir",
    "key.pem",
    "cert.pem",
    "chain.pem",
    "fullchain.pem",
    "sync-versions",
    "swap",
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
            // Only a kill of a process still parked at the step counts.
            assert!(
                child.try_wait().unwrap().is_none(),
                "the agent exited at its pause before {pause_at}: {log}"
            );
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
        assert!(kill_at(&a, step), "a first install never paused at {step}");
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
        assert_eq!(
            kill_at(&force, step),
            RENEWAL_STEPS.contains(&step),
            "a renewal pauses at every step but the links (step {step})"
        );
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
    // Twelve kills that hit a running agent; a draw that lands after it finished is retried.
    let (mut kills, mut attempts) = (0, 0);
    while kills < 12 && attempts < 60 {
        attempts += 1;
        let delay = Duration::from_millis(random_below(full.as_millis().max(1) as u64, &mut seed));
        let mut child = agent_command(&force)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        // A kill counts only when it hit a running agent, not one that had already finished.
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        let _ = child.wait();
        assert_complete_set(&out, false);
    }
    let (code, _, err) = agent(&force);
    assert_eq!(code, 10, "{err}");
    assert_complete_set(&out, false);
    assert_eq!(
        kills, 12,
        "only {kills} of {attempts} random kills hit a running agent"
    );
    eprintln!(
        "{} paused kills, {kills} random SIGKILLs, random phase {:?}",
        STEPS.len() + RENEWAL_STEPS.len(),
        started.elapsed()
    );
}
