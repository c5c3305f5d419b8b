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
    /// The ACME listener's port (kept across [`Server::restart`]).
    pub(crate) port: u16,
    /// Extra `serve` arguments (kept across [`Server::restart`]).
    pub(crate) extra: Vec<String>,
    /// The server clock's offset (`FLEETCA_TEST_CLOCK_OFFSET_SECS`, debug builds only).
    pub(crate) offset: i64,
}

impl Server {
    pub(crate) fn start(bin: &Path) -> Server {
        Self::start_with(bin, &[])
    }

    /// [`Server::start`] with extra `serve` arguments.
    pub(crate) fn start_with(bin: &Path, extra: &[&str]) -> Server {
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
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let guard = spawn_serve(
            bin,
            &data,
            &tmp.path().join("fleetca.log"),
            [port, cts.dns_port, http_port, tls_port],
            &extra,
            0,
        );
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
            port,
            extra,
            offset: 0,
        }
    }

    /// Restarts `serve` on the same ports and data with its clock `offset` seconds ahead.
    pub(crate) fn restart(&mut self, offset: i64) {
        let n = offset.unsigned_abs();
        let log = self.tmp.path().join(format!("fleetca-{n}.log"));
        // The old process goes first: the new one binds the same port.
        self.guard = spawn_serve(&self.bin, &self.data, &log, [0, 0, 0, 0], &[], i64::MIN);
        self.guard = spawn_serve(
            &self.bin,
            &self.data,
            &log,
            [self.port, self.cts.dns_port, self.http_port, self.tls_port],
            &self.extra,
            offset,
        );
        self.offset = offset;
    }

    /// `fleetca <args> --data-dir D` on the server's clock, asserting success; its stdout.
    pub(crate) fn admin_now(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .args(args)
            .arg("--data-dir")
            .arg(&self.data)
            .env("FLEETCA_TEST_CLOCK_OFFSET_SECS", self.offset.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fleetca {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// `fleetca serve` on `[acme, dns, http-01, tls-alpn-01]` ports; `offset` `i64::MIN` spawns a
/// process that exits at once (`true`), to stop the previous one before a restart.
fn spawn_serve(
    bin: &Path,
    data: &Path,
    log: &Path,
    ports: [u16; 4],
    extra: &[String],
    offset: i64,
) -> ChildGuard {
    if offset == i64::MIN {
        return ChildGuard::spawn(Command::new("true"), log);
    }
    let [port, dns_port, http_port, tls_port] = ports;
    {
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data)
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
            .args(["--dns-resolver", &format!("127.0.0.1:{dns_port}")])
            .args([
                "--http01-port",
                &http_port.to_string(),
                "--tlsalpn01-port",
                &tls_port.to_string(),
            ])
            .args(extra)
            .env("FLEETCA_TEST_CLOCK_OFFSET_SECS", offset.to_string());
        let guard = ChildGuard::spawn(cmd, log);
        wait_port(port);
        guard
    }
}

impl Server {
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
