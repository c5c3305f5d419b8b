//! Test harness: Pebble, pebble-challtestsrv and fleetca as child processes
//! on free loopback ports (adapted from crates/server/tests/support).
#![allow(dead_code)]

use std::collections::HashSet;
use std::fs;
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) mod fleetca;

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A free TCP+UDP loopback port, never handed out twice per process.
pub(crate) fn free_port() -> u16 {
    for _ in 0..200 {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
            continue;
        }
        let mut g = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if g.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no free port");
}

/// The tool gate shared with the server's tests: a visible SKIP outside CI, a failure under CI.
#[path = "../../../server/tests/support/gate.rs"]
mod gate;
pub(crate) use gate::gate;

/// Whether `bin` exists; prints SKIP (or panics under CI) otherwise.
pub(crate) fn require(test: &str, bin: &Path) -> bool {
    gate(test, bin.exists(), &format!("{} missing", bin.display()))
}

/// Kills the child on drop; prints its log while panicking.
pub(crate) struct ChildGuard {
    child: Child,
    log: PathBuf,
}

impl ChildGuard {
    pub(crate) fn spawn(mut cmd: Command, log: &Path) -> ChildGuard {
        let f = fs::File::create(log).unwrap();
        cmd.stdout(f.try_clone().unwrap())
            .stderr(f)
            .stdin(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        ChildGuard {
            child,
            log: log.to_owned(),
        }
    }

    pub(crate) fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.log.display(), self.log());
        }
    }
}

/// Waits for a TCP port on 127.0.0.1.
pub(crate) fn wait_port(port: u16) {
    let start = Instant::now();
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `openssl` helper.
fn openssl(args: &[&str]) -> Output {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A throwaway CA and a localhost server cert. Returns (ca, cert, key).
pub(crate) fn make_localhost_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_owned();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "7",
        "-subj",
        "/CN=agent test TLS CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
    ]);
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &p("tls.key"),
        "-out",
        &p("tls.csr"),
    ]);
    fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-days",
        "7",
        "-set_serial",
        "2",
        "-in",
        &p("tls.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-extfile",
        &p("ext.cnf"),
        "-out",
        &p("tls.pem"),
    ]);
    (dir.join("ca.pem"), dir.join("tls.pem"), dir.join("tls.key"))
}

/// pebble-challtestsrv with mock DNS (A -> 127.0.0.1).
pub(crate) struct ChallTestSrv {
    _guard: ChildGuard,
    pub(crate) dns_port: u16,
    pub(crate) mgmt_port: u16,
}

impl ChallTestSrv {
    pub(crate) fn start(dir: &Path) -> ChallTestSrv {
        let dns_port = free_port();
        let mgmt_port = free_port();
        let mut cmd = Command::new("pebble-challtestsrv");
        cmd.args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-management", &format!("127.0.0.1:{mgmt_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]);
        let guard = ChildGuard::spawn(cmd, &dir.join("challtestsrv.log"));
        wait_port(mgmt_port);
        wait_port(dns_port);
        ChallTestSrv {
            _guard: guard,
            dns_port,
            mgmt_port,
        }
    }

    /// A `--dns-hook` script that feeds the management API.
    pub(crate) fn hook_script(&self, dir: &Path) -> PathBuf {
        let path = dir.join("dns-hook.sh");
        let port = self.mgmt_port;
        fs::write(&path, format!(r#"#!/bin/sh
set -e
echo "$@" >> "$(dirname "$0")/hook-calls.log"
case "$1" in
  add) curl -sS --fail -X POST --data "{{\"host\":\"$2.\",\"value\":\"$3\"}}" http://127.0.0.1:{port}/set-txt ;;
  del) curl -sS --fail -X POST --data "{{\"host\":\"$2.\"}}" http://127.0.0.1:{port}/clear-txt ;;
esac
"#)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

/// Pebble validating http-01 on `http_port`, tls-alpn-01 on `tls_port`.
pub(crate) struct Pebble {
    _guard: ChildGuard,
    pub(crate) directory: String,
    pub(crate) tls_ca: PathBuf,
}

impl Pebble {
    pub(crate) fn start(dir: &Path, dns_port: u16, http_port: u16, tls_port: u16) -> Pebble {
        Pebble::start_with(dir, dns_port, http_port, tls_port, serde_json::json!({}))
    }

    /// Like [`Pebble::start`], with `extra` merged into Pebble's config
    /// (e.g. `externalAccountBindingRequired` and `externalAccountMACKeys`).
    pub(crate) fn start_with(
        dir: &Path,
        dns_port: u16,
        http_port: u16,
        tls_port: u16,
        extra: serde_json::Value,
    ) -> Pebble {
        let (ca, cert, key) = make_localhost_tls(dir);
        let port = free_port();
        let mgmt = free_port();
        let mut config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt}"),
            "certificate": cert, "privateKey": key,
            "httpPort": http_port, "tlsPort": tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": false
        }});
        if let serde_json::Value::Object(m) = extra {
            for (k, v) in m {
                config["pebble"][k] = v;
            }
        }
        let cfg = dir.join("pebble.json");
        fs::write(&cfg, config.to_string()).unwrap();
        let mut cmd = Command::new("pebble");
        cmd.arg("-config")
            .arg(&cfg)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0");
        let guard = ChildGuard::spawn(cmd, &dir.join("pebble.log"));
        wait_port(port);
        Pebble {
            _guard: guard,
            directory: format!("https://127.0.0.1:{port}/dir"),
            tls_ca: ca,
        }
    }
}

/// Runs the agent binary; returns (exit code, stdout, stderr).
pub(crate) fn agent(args: &[&str]) -> (i32, String, String) {
    agent_env(args, &[])
}

/// Runs the agent binary with extra environment variables.
pub(crate) fn agent_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fleetca-agent"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Public key (PEM) of a certificate file and of a key file, via openssl.
pub(crate) fn pubkeys(cert: &Path, key: &Path) -> (String, String) {
    let c = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-pubkey"]);
    let k = openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
    (
        String::from_utf8_lossy(&c.stdout).into_owned(),
        String::from_utf8_lossy(&k.stdout).into_owned(),
    )
}

/// The agent binary as a `Command`, for tests that control the process.
pub(crate) fn agent_command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fleetca-agent"));
    c.args(args);
    c
}

/// Asserts that `out` holds a complete set whose key matches its certificate
/// (read through `current/`, and the stable names agree with it), or nothing
/// when `allow_empty`. Returns the installed certificate PEM.
pub(crate) fn assert_complete_set(out: &Path, allow_empty: bool) -> Option<String> {
    use fleetca_agent::{install, keys, schedule::CertInfo};
    let Some(set) = install::read_current(out) else {
        assert!(allow_empty, "{}: no complete set installed", out.display());
        return None;
    };
    let key = keys::parse_cert_key(&set.key_pem).expect("installed key parses");
    let der = keys::pem_certs(&set.cert_pem);
    assert!(!der.is_empty(), "installed cert.pem is empty");
    let info = CertInfo::parse(&der[0]).unwrap();
    assert_eq!(
        info.spki,
        rcgen::PublicKeyData::subject_public_key_info(&key),
        "installed key and certificate do not match"
    );
    for (n, want) in [
        ("key.pem", &set.key_pem),
        ("cert.pem", &set.cert_pem),
        ("chain.pem", &set.chain_pem),
    ] {
        if let Ok(got) = fs::read_to_string(out.join(n)) {
            assert_eq!(&got, want, "{n} disagrees with current/");
        }
    }
    if let Ok(full) = fs::read_to_string(out.join("fullchain.pem")) {
        assert_eq!(full, set.fullchain_pem(), "fullchain.pem disagrees");
    }
    Some(set.cert_pem)
}
