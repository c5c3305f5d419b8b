//! The self-healing daemon against `fleetca serve` (issue 14, defect 3):
//! local faults (corrupt state file, corrupt certificate, full disk) are
//! healed without an operator; and the flash-write budget of a renewal.

mod fleetca_server;
mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fleetca_server::*;
use support::*;

/// The agent's `run` daemon; killed (SIGKILL, by its pid) on drop.
struct Daemon {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Daemon {
    fn start(srv: &Server, out: &Path, extra: &[&str], log: &str) -> Daemon {
        let mut a = extra.to_vec();
        // No start-up splay: the first attempt is what is tested.
        a.extend(["--splay", "0", "run"]);
        let log = srv.tmp.path().join(log);
        let f = std::fs::File::create(&log).unwrap();
        let child = srv
            .command(out, &a)
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Still running? (An exit is a failure: the daemon must heal.)
    fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("daemon exited ({status}):\n{}", self.log());
        }
    }

    /// Polls `cond` until it holds, checking the daemon stays up; panics
    /// with `what` after `secs`.
    fn wait_for(&mut self, secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            self.assert_alive();
            assert!(
                start.elapsed() < Duration::from_secs(secs),
                "{what} did not happen within {secs}s; agent log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn corrupt_state_file_is_rebuilt_by_the_daemon() {
    let Some(srv) = Server::start("heal_state") else {
        return;
    };
    let name = "h1.routers.example.com";
    let out = srv.tmp.path().join("out");
    let (code, _, err) = srv.run(&out, &["--domain", name, "issue"]);
    assert_eq!(code, 10, "{err}");
    let state = out.join(".state/state.json");
    std::fs::write(&state, b"{\"failures\": 3, torn").unwrap();
    let mut d = Daemon::start(&srv, &out, &["--domain", name], "daemon-state.log");
    d.wait_for(60, "state.json rebuilt", || {
        std::fs::read(&state)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some()
    });
    d.assert_alive();
    assert!(d.log().contains("rebuilding the state"), "{}", d.log());
    assert_eq!(srv.issued(name), 1);
}

#[test]
fn corrupt_certificate_is_reissued() {
    let Some(srv) = Server::start("heal_cert") else {
        return;
    };
    let name = "h2.routers.example.com";
    let out = srv.tmp.path().join("out");
    let (code, _, err) = srv.run(&out, &["--domain", name, "issue"]);
    assert_eq!(code, 10, "{err}");

    // One-shot `issue` over a corrupt cert.pem.
    std::fs::write(
        out.join("cert.pem"),
        b"-----BEGIN CERTIFICATE-----\ngarbage\n",
    )
    .unwrap();
    let (code, _, err) = srv.run(&out, &["--domain", name, "issue"]);
    assert_eq!(code, 10, "issue over a corrupt cert.pem: {err}");
    assert_complete_set(&out, false);
    assert_eq!(srv.issued(name), 2);

    // The daemon over a corrupt cert.pem: re-issues without an operator.
    std::fs::write(out.join("cert.pem"), b"not a certificate").unwrap();
    let mut d = Daemon::start(&srv, &out, &["--domain", name], "daemon-cert.log");
    d.wait_for(120, "a new certificate", || srv.issued(name) == 3);
    d.wait_for(60, "the new certificate installed", || {
        fleetca_agent::install::read_current(&out).is_some_and(|s| {
            fleetca_agent::keys::pem_certs(&s.cert_pem)
                .first()
                .is_some_and(|d| fleetca_agent::schedule::CertInfo::parse(d).is_ok())
        })
    });
    assert_complete_set(&out, false);
    d.assert_alive();
}

/// A tmpfs of `kb` KiB at `dir` (we are root in the test container); `None`
/// when mounting is not possible here.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, kb: u32) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kb}k"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn disk_full_during_install_then_space_freed_installs_without_an_operator() {
    let Some(srv) = Server::start("heal_disk_full") else {
        return;
    };
    let name = "h3.routers.example.com";
    let mnt = srv.tmp.path().join("flash");
    let tmpfs = Tmpfs::mount(&mnt, 64);
    if !support::gate(
        "disk_full_during_install_then_space_freed_installs_without_an_operator",
        tmpfs.is_some(),
        "cannot mount a tmpfs here (needs root)",
    ) {
        return;
    }
    let out = mnt.join("out");
    std::fs::create_dir_all(&out).unwrap();
    // Fill the file system to the last byte.
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = [0u8; 4096];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&block[..1]).is_ok() {}
    }
    let state_dir = srv.tmp.path().join("state");
    let sd = state_dir.to_str().unwrap();
    let mut d = Daemon::start(
        &srv,
        &out,
        &["--domain", name, "--state-dir", sd],
        "daemon-full.log",
    );
    let st_path = state_dir.join("state.json");
    d.wait_for(120, "the install to fail on the full disk", || {
        std::fs::read_to_string(&st_path).is_ok_and(|s| s.contains("No space left"))
    });
    assert_eq!(srv.issued(name), 1, "issued before the install failed");
    assert!(fleetca_agent::install::read_current(&out).is_none());
    std::fs::remove_file(&filler).unwrap();
    // The daemon's backoff is 60-120 s after the first failure.
    d.wait_for(240, "the install after space was freed", || {
        fleetca_agent::install::read_current(&out).is_some()
    });
    assert_complete_set(&out, false);
    assert_eq!(
        srv.issued(name),
        1,
        "the issued certificate was installed, none ordered again"
    );
    d.assert_alive();
}

#[test]
fn a_no_op_check_does_not_rewrite_the_state_file_and_a_renewal_stays_in_budget() {
    let Some(srv) = Server::start("heal_flash") else {
        return;
    };
    let name = "h4.routers.example.com";
    let out = srv.tmp.path().join("out");
    let (code, _, err) = srv.run(&out, &["--domain", name, "issue"]);
    assert_eq!(code, 10, "{err}");
    let (code, _, err) = srv.run(&out, &["--domain", name, "renew"]);
    assert_eq!(code, 0, "{err}");
    let state = out.join(".state/state.json");
    let meta = std::fs::metadata(&state).unwrap();
    // Let the clock pass a second so that a Date-derived field would differ.
    let t0 = fleetca_agent::http::now_unix();
    let start = Instant::now();
    while fleetca_agent::http::now_unix() == t0 {
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, _, err) = srv.run(&out, &["--domain", name, "renew"]);
    assert_eq!(code, 0, "{err}");
    let after = std::fs::metadata(&state).unwrap();
    assert_eq!(
        (after.ino(), after.mtime(), after.mtime_nsec()),
        (meta.ino(), meta.mtime(), meta.mtime_nsec()),
        "a no-op check rewrote state.json"
    );

    // A forced renewal under strace: at most 5 files written, 13 fsyncs.
    if !support::gate(
        "a_no_op_check_does_not_rewrite_the_state_file_and_a_renewal_stays_in_budget",
        Path::new("/usr/bin/strace").exists(),
        "strace is missing (.ci/run installs it)",
    ) {
        return;
    }
    let trace = srv.tmp.path().join("strace.log");
    let args = srv.args(&out, &["--domain", name, "renew", "--force"]);
    let st = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,openat,rename,renameat,renameat2",
        ])
        .arg("-o")
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_fleetca-agent"))
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(
        st.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let log = std::fs::read_to_string(&trace).unwrap();
    let fsyncs = log
        .lines()
        .filter(|l| l.contains("fsync(") || l.contains("fdatasync("))
        .count();
    // Files created or replaced under the out-dir: opened for writing.
    let mut written: Vec<String> = log
        .lines()
        .filter(|l| l.contains("openat(") && l.contains("O_WRONLY") && !l.contains("= -1"))
        .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
        .filter(|p| p.starts_with(out.to_str().unwrap()))
        .map(|p| {
            // A temp name counts as the file it replaces.
            let file = Path::new(&p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            file.trim_start_matches('.')
                .split(".tmp")
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    written.sort();
    written.dedup();
    assert!(fsyncs <= 13, "{fsyncs} fsyncs per renewal:\n{log}");
    assert!(written.len() <= 5, "files written per renewal: {written:?}");
    eprintln!("renewal: {fsyncs} fsyncs, files {written:?}");
}

#[test]
fn corrupt_account_key_makes_a_new_account_and_renews() {
    let Some(srv) = Server::start("heal_account_key") else {
        return;
    };
    let name = "h5.routers.example.com";
    let out = srv.tmp.path().join("out");
    let (code, _, err) = srv.run(&out, &["--domain", name, "issue"]);
    assert_eq!(code, 10, "{err}");
    let key = out.join(".state/account.key");
    std::fs::write(&key, b"-----BEGIN PRIVATE KEY-----\ntorn\n").unwrap();
    // The installed certificate belongs to the lost account, so `replaces`
    // is refused (unauthorized) and the agent orders without it.
    let (code, _, err) = srv.run(&out, &["--domain", name, "renew", "--force"]);
    assert_eq!(code, 10, "renew with a corrupt account key: {err}");
    assert!(out.join(".state/account.key.corrupt").exists());
    assert_complete_set(&out, false);
    assert_eq!(srv.issued(name), 2);
}
