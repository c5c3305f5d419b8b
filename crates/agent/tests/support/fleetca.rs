//! `fleetca serve` for the end-to-end tests (binary from FLEETCA_BIN or
//! target/debug/fleetca; the tests build nothing themselves).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

pub(crate) fn fleetca_bin() -> PathBuf {
    std::env::var_os("FLEETCA_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/fleetca")
        })
}

/// `fleetca serve` on free loopback ports, resolving names through
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
    pub(crate) tls_port: u16,
}

impl Server {
    pub(crate) fn start(bin: &Path) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let out = Command::new(bin)
            .arg("init")
            .arg("--data-dir")
            .arg(&data)
            .args(["--permit", "routers.example.com"])
            // RFC 8738 IP identifiers of the loopback device (tests/fleet_timing.rs).
            .args(["--permit", "127.0.0.0/8"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fleetca init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new(bin)
            .args(["ca", "root", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success());
        let root = tmp.path().join("root.pem");
        std::fs::write(&root, &out.stdout).unwrap();

        let cts = ChallTestSrv::start(tmp.path());
        let (http_port, tls_port, port) = (free_port(), free_port(), free_port());
        let mut cmd = Command::new(bin);
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
            // The agent answers challenges on loopback, which the VA refuses by default.
            .args(["--va-allow-address", "127.0.0.0/8"])
            .args(["--dns-resolver", &format!("127.0.0.1:{}", cts.dns_port)])
            .args([
                "--http01-port",
                &http_port.to_string(),
                "--tlsalpn01-port",
                &tls_port.to_string(),
            ]);
        let guard = ChildGuard::spawn(cmd, &tmp.path().join("fleetca.log"));
        wait_port(port);
        Server {
            bin: bin.to_owned(),
            guard,
            cts,
            dir_url: format!("https://127.0.0.1:{port}/acme/default/directory"),
            tmp,
            data,
            root,
            http_port,
            tls_port,
        }
    }

    /// Agent flags for `out`, then `extra`.
    pub(crate) fn args(&self, out: &Path, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [
            "--server",
            &self.dir_url,
            "--server-root",
            self.root.to_str().unwrap(),
            "--out-dir",
            out.to_str().unwrap(),
            "--http-port",
            &self.http_port.to_string(),
            "--tls-port",
            &self.tls_port.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    pub(crate) fn run(
        &self,
        out: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (i32, String, String) {
        let a = self.args(out, extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        agent_env(&a, env)
    }

    /// `fleetca <args> --data-dir D`, asserting success; its stdout.
    pub(crate) fn admin(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .args(args)
            .arg("--data-dir")
            .arg(&self.data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fleetca {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The SQLite database in the data dir.
    pub(crate) fn database(&self) -> Option<PathBuf> {
        std::fs::read_dir(&self.data)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.extension()
                    .is_some_and(|e| e == "db" || e == "sqlite" || e == "sqlite3")
            })
    }
}
