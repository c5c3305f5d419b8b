//! `fleetca serve` for the field-fault tests (journal, rollback, self-heal):
//! like tests/fleetca.rs's server, plus counting what the CA issued and
//! parking/SIGKILLing the agent at a named step.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::*;

/// The fleetca binary (FLEETCA_BIN or target/debug/fleetca).
pub(crate) fn fleetca_bin() -> PathBuf {
    std::env::var_os("FLEETCA_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/fleetca")
        })
}

/// `fleetca serve` on free loopback ports, names resolved by
/// pebble-challtestsrv (every A record is 127.0.0.1).
pub(crate) struct Server {
    pub(crate) bin: PathBuf,
    pub(crate) guard: ChildGuard,
    pub(crate) cts: ChallTestSrv,
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) data: PathBuf,
    pub(crate) root: PathBuf,
    pub(crate) dir_url: String,
    pub(crate) http_port: u16,
}

impl Server {
    /// Starts one, or `None` (test skipped) when the binary is missing.
    pub(crate) fn start(test: &str) -> Option<Server> {
        let bin = fleetca_bin();
        if !require(
            &format!("{test} (run `cargo build -p fleetca` first)"),
            &bin,
        ) {
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let out = Command::new(&bin)
            .arg("init")
            .arg("--data-dir")
            .arg(&data)
            .args(["--permit", "routers.example.com"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fleetca init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new(&bin)
            .args(["ca", "root", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success());
        let root = tmp.path().join("root.pem");
        std::fs::write(&root, &out.stdout).unwrap();
        let cts = ChallTestSrv::start(tmp.path());
        let (http_port, port) = (free_port(), free_port());
        let mut cmd = Command::new(&bin);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--http-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .args(["--dns-resolver", &format!("127.0.0.1:{}", cts.dns_port)])
            .args(["--http01-port", &http_port.to_string()])
            // The challenge responders are on loopback, which the VA
            // refuses unless allowed.
            .args(["--va-allow-address", "127.0.0.0/8"]);
        let guard = ChildGuard::spawn(cmd, &tmp.path().join("fleetca.log"));
        wait_port(port);
        Some(Server {
            bin,
            guard,
            cts,
            dir_url: format!("https://127.0.0.1:{port}/acme/default/directory"),
            tmp,
            data,
            root,
            http_port,
        })
    }

    /// Agent arguments: server, trust, out-dir, http-01 port, then `extra`.
    pub(crate) fn args(&self, out: &Path, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--server".into(),
            self.dir_url.clone(),
            "--server-root".into(),
            self.root.display().to_string(),
            "--out-dir".into(),
            out.display().to_string(),
            "--http-port".into(),
            self.http_port.to_string(),
            "--challenge".into(),
            "http-01".into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    /// Runs the agent to completion: (exit code, stdout, stderr).
    pub(crate) fn run(&self, out: &Path, extra: &[&str]) -> (i32, String, String) {
        let a = self.args(out, extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        agent(&a)
    }

    /// The agent as a Command (for daemons and kills).
    pub(crate) fn command(&self, out: &Path, extra: &[&str]) -> Command {
        let a = self.args(out, extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        agent_command(&a)
    }

    /// How many certificates the CA has issued for `name` (server side:
    /// `fleetca cert list`).
    pub(crate) fn issued(&self, name: &str) -> usize {
        let out = Command::new(&self.bin)
            .args(["cert", "list", "--json", "--name", name, "--data-dir"])
            .arg(&self.data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cert list: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("cert list: {e}: {}", String::from_utf8_lossy(&out.stdout)));
        match v {
            serde_json::Value::Array(a) => a.len(),
            other => other
                .get("certificates")
                .and_then(|c| c.as_array())
                .map(|a| a.len())
                .unwrap_or_else(|| panic!("cert list output: {other}")),
        }
    }
}

/// Runs `cmd` with `FLEETCA_AGENT_TEST_PAUSE_AT=step` and SIGKILLs it once it
/// reports the pause. Returns whether it paused; its stderr so far.
pub(crate) fn kill_at(mut cmd: Command, step: &str) -> (bool, String) {
    let mut child = cmd
        .env("FLEETCA_AGENT_TEST_PAUSE_AT", step)
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
    let _ = child.wait();
    (paused, log)
}

/// The installed leaf's serial (hex).
pub(crate) fn installed_serial(out: &Path) -> String {
    let pem = assert_complete_set(out, false).unwrap();
    let der = fleetca_agent::keys::pem_certs(&pem).remove(0);
    let info = fleetca_agent::schedule::CertInfo::parse(&der).unwrap();
    info.serial.iter().map(|b| format!("{b:02x}")).collect()
}

/// `status --json` of the agent for `out`.
pub(crate) fn status(srv: &Server, out: &Path) -> serde_json::Value {
    let (code, stdout, err) = srv.run(out, &["--json", "status"]);
    assert_eq!(code, 0, "status: {err}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("status: {e}: {stdout}"))
}

/// Lines in a file (0 if missing).
pub(crate) fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |s| s.lines().count())
}
