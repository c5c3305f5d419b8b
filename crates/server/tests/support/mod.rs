//! Shared harness for the real-client interop tests (`tests/interop_*.rs`).
//!
//! It drives real, external ACME clients (lego, certbot) and test
//! infrastructure (pebble-challtestsrv, Pebble, openssl) as child processes.
//!
//! * Binaries come from `FLEETCA_LEGO`, `FLEETCA_CERTBOT`,
//!   `FLEETCA_CHALLTESTSRV`, `FLEETCA_PEBBLE` (defaults: `lego`,
//!   `/opt/fleetca-venv/bin/certbot`, `pebble-challtestsrv`, `pebble`).
//!   `scripts/test-env` exports them. If one is missing the test prints a
//!   `SKIP` line and returns, unless `CI` is set, in which case it fails.
//! * Every child process is owned by a [`ChildGuard`] that kills it on drop
//!   (also while unwinding from a panic) and dumps its log when the test
//!   is failing.
//! * Every one-shot command runs with a timeout; its stdout/stderr are
//!   captured and included in the error (and thus printed on failure).
//! * Set `FLEETCA_KEEP_TMP=1` to keep the temp dirs of failing tests.
#![allow(dead_code)] // each test crate uses a different subset

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// `serve` arguments letting validations reach the test responders on loopback.
pub(crate) const LOOPBACK_VA_ALLOW: [&str; 4] = [
    "--va-allow-address",
    "127.0.0.0/8",
    "--va-allow-address",
    "::1/128",
];

/// Deadline for a server (fleetca, Pebble, challtestsrv) to come up.
pub(crate) const STARTUP_DEADLINE: Duration = Duration::from_secs(30);
/// Deadline for a single ACME client invocation.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);
/// Email used for lego accounts.
pub(crate) const EMAIL: &str = "interop@routers.example.com";

// ---------------------------------------------------------------------------
// Tools: locating external binaries, skip-or-fail policy
// ---------------------------------------------------------------------------

/// An external program the interop tests need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tool {
    /// The lego ACME client (Go).
    Lego,
    /// The certbot ACME client (Python).
    Certbot,
    /// `pebble-challtestsrv`, the mock DNS server.
    ChallTestSrv,
    /// Pebble, the reference ACME test server.
    Pebble,
    /// The `openssl` command line tool.
    Openssl,
}

impl Tool {
    fn env_var(self) -> &'static str {
        match self {
            Tool::Lego => "FLEETCA_LEGO",
            Tool::Certbot => "FLEETCA_CERTBOT",
            Tool::ChallTestSrv => "FLEETCA_CHALLTESTSRV",
            Tool::Pebble => "FLEETCA_PEBBLE",
            Tool::Openssl => "FLEETCA_OPENSSL",
        }
    }

    fn default_name(self) -> &'static str {
        match self {
            Tool::Lego => "lego",
            Tool::Certbot => "/opt/fleetca-venv/bin/certbot",
            Tool::ChallTestSrv => "pebble-challtestsrv",
            Tool::Pebble => "pebble",
            Tool::Openssl => "openssl",
        }
    }

    /// Resolves the binary (env var override, else default), or `None`.
    pub(crate) fn find(self) -> Option<PathBuf> {
        let configured: OsString = std::env::var_os(self.env_var())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| self.default_name().into());
        let configured = PathBuf::from(configured);
        if configured.components().count() > 1 {
            return is_executable(&configured).then_some(configured);
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join(&configured))
            .find(|candidate| is_executable(candidate))
    }

    /// Resolves the binary; panics if it is missing (call [`require`] first).
    pub(crate) fn path(self) -> PathBuf {
        self.find().unwrap_or_else(|| {
            panic!(
                "{:?} not found (set {} or install it; see .ci/run)",
                self,
                self.env_var()
            )
        })
    }
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

mod gate;
#[allow(unused_imports)] // each test crate uses a different subset
pub(crate) use gate::{gate, in_ci, postgres_url};
pub(crate) mod authz;
pub(crate) mod ct_check;
pub(crate) mod ct_log;
pub(crate) mod metrics;
pub(crate) mod perspective;
pub(crate) mod pkilint;
pub(crate) mod public_root;
pub(crate) mod revocation;

/// Checks that all `tools` are installed. Returns `false` (after printing a
/// clear skip line) when one is missing and we are not under CI; panics when
/// one is missing under CI.
///
/// ```ignore
/// if !support::require("my_test", &[Tool::Lego]) { return; }
/// ```
pub(crate) fn require(test: &str, tools: &[Tool]) -> bool {
    let missing: Vec<String> = tools
        .iter()
        .filter(|t| t.find().is_none())
        .map(|t| {
            format!(
                "{:?} (${} / default `{}`)",
                t,
                t.env_var(),
                t.default_name()
            )
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    gate(
        test,
        false,
        &format!(
            "missing interop tool(s): {}. Install them with .ci/run or set the env vars",
            missing.join(", ")
        ),
    )
}

// ---------------------------------------------------------------------------
// Ports, waiting, temp dirs
// ---------------------------------------------------------------------------

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port that is currently free for both TCP and UDP (the DNS
/// server needs both). Ports are never handed out twice per process, so
/// parallel tests do not collide with each other.
pub(crate) fn free_port() -> u16 {
    for _ in 0..200 {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = tcp.local_addr().expect("local_addr").port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
            continue;
        }
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("could not find a free loopback port");
}

/// What [`wait_for`] polls.
#[derive(Debug)]
pub(crate) enum Probe<'a> {
    /// A TCP port on 127.0.0.1 accepting connections.
    Port(u16),
    /// An HTTPS URL answering 200, trusting only `ca_pem` (a PEM file).
    Https {
        /// URL to GET.
        url: &'a str,
        /// PEM bundle of trusted roots.
        ca_pem: &'a Path,
    },
    /// A file (a process's log) containing `needle`.
    LogLine {
        /// The file to read.
        path: &'a Path,
        /// The text to find in it.
        needle: &'a str,
    },
}

/// Polls `probe` until it succeeds or `deadline` elapses. If `child` is
/// given and exits meanwhile, fails immediately (with its log).
pub(crate) fn wait_for(
    probe: &Probe<'_>,
    deadline: Duration,
    mut child: Option<&mut ChildGuard>,
) -> Result<(), String> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(20);
    loop {
        if let Some(child) = child.as_deref_mut() {
            if let Some(status) = child.try_wait() {
                return Err(format!(
                    "{} exited with {status} while waiting for {probe:?}\n{}",
                    child.name,
                    child.log()
                ));
            }
        }
        let attempt = match probe {
            Probe::Port(port) => TcpStream::connect_timeout(
                &SocketAddr::from((Ipv4Addr::LOCALHOST, *port)),
                Duration::from_secs(1),
            )
            .map(drop)
            .map_err(|e| e.to_string()),
            Probe::Https { url, ca_pem } => https_get(url, ca_pem).and_then(|(status, body)| {
                if status == 200 {
                    Ok(())
                } else {
                    Err(format!("HTTP {status}: {body}"))
                }
            }),
            Probe::LogLine { path, needle } => match fs::read_to_string(path) {
                Ok(text) if text.contains(needle) => Ok(()),
                Ok(_) => Err(format!("no {needle:?} yet")),
                Err(e) => Err(e.to_string()),
            },
        };
        let last_err = match attempt {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if start.elapsed() >= deadline {
            let log = child.map(|c| c.log()).unwrap_or_default();
            return Err(format!(
                "{probe:?} not ready after {deadline:?}: {last_err}\n{log}"
            ));
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

/// A fresh temp dir (not deleted if `FLEETCA_KEEP_TMP` is set).
pub(crate) fn temp_dir(prefix: &str) -> TempDir {
    let keep = std::env::var_os("FLEETCA_KEEP_TMP").is_some();
    let dir = tempfile::Builder::new()
        .prefix(&format!("fleetca-{prefix}-"))
        .disable_cleanup(keep)
        .tempdir()
        .expect("create temp dir");
    if keep {
        eprintln!("temp dir (kept): {}", dir.path().display());
    }
    dir
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// A long-running child process; killed (and reaped) on drop. Its combined
/// stdout/stderr go to a log file that is printed when the test panics.
pub(crate) struct ChildGuard {
    name: String,
    child: Child,
    log_path: PathBuf,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin closed and output to `log_path`.
    pub(crate) fn spawn(name: &str, mut cmd: Command, log_path: &Path) -> ChildGuard {
        let log = fs::File::create(log_path).expect("create log file");
        let log2 = log.try_clone().expect("clone log file");
        eprintln!("[{name}] spawn: {}", describe(&cmd));
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to spawn {name} ({}): {e}", describe(&cmd)));
        ChildGuard {
            name: name.to_owned(),
            child,
            log_path: log_path.to_owned(),
        }
    }

    /// `Some(status)` if the child has exited.
    pub(crate) fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The child's output so far, framed for printing.
    pub(crate) fn log(&self) -> String {
        let text = fs::read_to_string(&self.log_path).unwrap_or_else(|e| format!("<{e}>"));
        format!(
            "----- {} log ({}) -----\n{}\n----- end {} log -----",
            self.name,
            self.log_path.display(),
            text.trim_end(),
            self.name
        )
    }

    /// PID of the child.
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.log());
        }
    }
}

/// Captured result of a one-shot command.
#[derive(Debug)]
pub(crate) struct CmdOutput {
    /// The command line, for messages.
    pub(crate) command: String,
    /// Exit status (`None` on timeout).
    pub(crate) status: Option<ExitStatus>,
    /// Captured stdout.
    pub(crate) stdout: String,
    /// Captured stderr.
    pub(crate) stderr: String,
}

impl CmdOutput {
    /// True if the command exited with status 0.
    pub(crate) fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// stdout and stderr together, for searching.
    pub(crate) fn combined(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    fn into_result(self) -> Result<CmdOutput, CmdOutput> {
        if self.success() {
            Ok(self)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => "TIMED OUT (killed)".to_owned(),
        };
        write!(
            f,
            "command: {}\nstatus: {status}\n----- stdout -----\n{}\n----- stderr -----\n{}\n----- end -----",
            self.command,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs `cmd` to completion (killing it after `timeout`), capturing output.
pub(crate) fn run(mut cmd: Command, timeout: Duration) -> CmdOutput {
    let command = describe(&cmd);
    eprintln!("run: {command}");
    let dir = tempfile::tempdir().expect("temp dir for command output");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).expect("stdout file"))
        .stderr(fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("failed to spawn `{command}`: {e}"));
    let start = Instant::now();
    let status = loop {
        match child.try_wait().expect("try_wait") {
            Some(status) => break Some(status),
            None if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(25)),
        }
    };
    let read = |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
    CmdOutput {
        command,
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = String::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            s.push_str(&format!("{}={} ", k.to_string_lossy(), v.to_string_lossy()));
        }
    }
    s.push_str(&cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '*') {
            s.push_str(&format!(" '{a}'"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

// ---------------------------------------------------------------------------
// Tiny HTTP clients
// ---------------------------------------------------------------------------

static CRYPTO: Once = Once::new();

/// GET `url` over HTTPS trusting only the roots in `ca_pem`.
pub(crate) fn https_get(url: &str, ca_pem: &Path) -> Result<(u16, String), String> {
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
    let pem = fs::read(ca_pem).map_err(|e| format!("read {}: {e}", ca_pem.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("parse {}: {e}", ca_pem.display()))?;
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(5));
    for cert in certs {
        builder = builder.add_root_certificate(cert);
    }
    let client = builder
        .build()
        .map_err(|e| format!("reqwest client: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(async {
        let resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e:#}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .text()
            .await
            .map_err(|e| format!("GET {url} body: {e}"))?;
        Ok((status, body))
    })
}

/// Minimal blocking plain-HTTP POST to 127.0.0.1 (the challtestsrv API).
pub(crate) fn http_post_local(port: u16, path: &str, body: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let status_line = response.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) == Some("200") {
        Ok(response)
    } else {
        Err(format!("POST {path} {body} -> {response}"))
    }
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

// ---------------------------------------------------------------------------
// pebble-challtestsrv (mock DNS)
// ---------------------------------------------------------------------------

/// A `pebble-challtestsrv` serving only mock DNS (A -> 127.0.0.1, no AAAA)
/// plus its management API; also writes the lego `exec` DNS hook script.
pub(crate) struct ChallTestSrv {
    // Fields drop in order: kill the process before deleting its dir.
    guard: ChildGuard,
    dir: TempDir,
    dns_port: u16,
    management_port: u16,
    exec_script: PathBuf,
}

impl ChallTestSrv {
    /// Starts it on free ports and waits for the management API.
    pub(crate) fn start() -> ChallTestSrv {
        let dir = temp_dir("challtestsrv");
        let dns_port = free_port();
        let management_port = free_port();
        let mut cmd = Command::new(Tool::ChallTestSrv.path());
        cmd.args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-management", &format!("127.0.0.1:{management_port}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]);
        if challtestsrv_has_doh() {
            cmd.args(["-doh", ""]);
        }
        let mut guard =
            ChildGuard::spawn("challtestsrv", cmd, &dir.path().join("challtestsrv.log"));
        wait_for(
            &Probe::Port(management_port),
            STARTUP_DEADLINE,
            Some(&mut guard),
        )
        .unwrap_or_else(|e| panic!("challtestsrv did not start: {e}"));
        // The DNS listener starts just before the management one; be sure.
        wait_for(&Probe::Port(dns_port), STARTUP_DEADLINE, Some(&mut guard))
            .unwrap_or_else(|e| panic!("challtestsrv DNS did not start: {e}"));
        let exec_script = dir.path().join("lego-dns-exec.sh");
        fs::write(&exec_script, exec_script_text(management_port)).expect("write exec script");
        fs::set_permissions(&exec_script, fs::Permissions::from_mode(0o755)).expect("chmod");
        ChallTestSrv {
            guard,
            dir,
            dns_port,
            management_port,
            exec_script,
        }
    }

    /// UDP+TCP port of the mock DNS server on 127.0.0.1.
    pub(crate) fn dns_port(&self) -> u16 {
        self.dns_port
    }

    /// `127.0.0.1:PORT` of the mock DNS server.
    pub(crate) fn dns_addr(&self) -> String {
        format!("127.0.0.1:{}", self.dns_port)
    }

    /// Port of the management HTTP API.
    pub(crate) fn management_port(&self) -> u16 {
        self.management_port
    }

    /// Path of the lego `EXEC_PATH` script talking to this server.
    pub(crate) fn exec_script(&self) -> &Path {
        &self.exec_script
    }

    /// Adds a TXT record value for `host` (FQDN; a trailing dot is added).
    pub(crate) fn set_txt(&self, host: &str, value: &str) {
        let body = format!(
            r#"{{"host":{},"value":{}}}"#,
            json_str(&fqdn(host)),
            json_str(value)
        );
        http_post_local(self.management_port, "/set-txt", &body)
            .unwrap_or_else(|e| panic!("challtestsrv set-txt: {e}"));
    }

    /// Removes all TXT records for `host`.
    pub(crate) fn clear_txt(&self, host: &str) {
        let body = format!(r#"{{"host":{}}}"#, json_str(&fqdn(host)));
        http_post_local(self.management_port, "/clear-txt", &body)
            .unwrap_or_else(|e| panic!("challtestsrv clear-txt: {e}"));
    }

    /// Mocks an A record (overriding the 127.0.0.1 default) for `host`.
    pub(crate) fn add_a(&self, host: &str, addr: Ipv4Addr) {
        let body = format!(
            r#"{{"host":{},"addresses":[{}]}}"#,
            json_str(&fqdn(host)),
            json_str(&addr.to_string())
        );
        http_post_local(self.management_port, "/add-a", &body)
            .unwrap_or_else(|e| panic!("challtestsrv add-a: {e}"));
    }

    /// The server's log so far.
    pub(crate) fn log(&self) -> String {
        self.guard.log()
    }
}

fn fqdn(host: &str) -> String {
    if host.ends_with('.') {
        host.to_owned()
    } else {
        format!("{host}.")
    }
}

/// pebble-challtestsrv 2.4 (Debian 12) has no `-doh` flag; newer ones have
/// it (and listen for DoH by default), so disable it only where it exists.
fn challtestsrv_has_doh() -> bool {
    static HAS_DOH: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS_DOH.get_or_init(|| {
        let mut cmd = Command::new(Tool::ChallTestSrv.path());
        cmd.arg("-h");
        run(cmd, Duration::from_secs(10))
            .combined()
            .contains("-doh")
    })
}

/// lego `exec` provider hook: `$0 present|cleanup FQDN VALUE`.
/// Uses curl if installed, else python3, else bash's /dev/tcp;
/// `FLEETCA_HOOK_TRANSPORT=curl|python3|bash` forces one (for self-tests).
fn exec_script_text(management_port: u16) -> String {
    format!(
        r#"#!/usr/bin/env bash
# Written by the fleetca interop harness: lego exec DNS provider hook that
# feeds pebble-challtestsrv's management API.
set -euo pipefail
mgmt_port={management_port}
case "$1" in
  present) path=/set-txt;   body="{{\"host\":\"$2\",\"value\":\"$3\"}}" ;;
  cleanup) path=/clear-txt; body="{{\"host\":\"$2\"}}" ;;
  *) exit 0 ;;
esac
transport="${{FLEETCA_HOOK_TRANSPORT:-}}"
if [ -z "$transport" ]; then
  if command -v curl >/dev/null 2>&1; then transport=curl
  elif command -v python3 >/dev/null 2>&1; then transport=python3
  else transport=bash
  fi
fi
echo "exec-hook: $1 $2 -> $path via $transport" >&2
case "$transport" in
  curl)
    exec curl -sS --fail -X POST -H 'Content-Type: application/json' \
      --data "$body" "http://127.0.0.1:$mgmt_port$path" ;;
  python3)
    exec python3 -c 'import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], data=sys.argv[2].encode(), method="POST"), timeout=10).read()' \
      "http://127.0.0.1:$mgmt_port$path" "$body" ;;
  *)
    exec 3<>"/dev/tcp/127.0.0.1/$mgmt_port"
    printf 'POST %s HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %s\r\n\r\n%s' \
      "$path" "${{#body}}" "$body" >&3
    read -r _ status _ <&3
    [ "$status" = 200 ] ;;
esac
"#
    )
}

// ---------------------------------------------------------------------------
// ACME servers under test
// ---------------------------------------------------------------------------

/// What an ACME client needs to talk to a server, and what a verifier needs.
#[derive(Clone, Debug)]
pub(crate) struct AcmeEndpoint {
    /// The ACME directory URL.
    pub(crate) directory: String,
    /// PEM bundle the client must trust for the server's HTTPS certificate.
    pub(crate) tls_ca: PathBuf,
    /// PEM of the root that anchors issued certificates.
    pub(crate) issuing_root: PathBuf,
    /// External Account Binding credential (key id, base64url HMAC key) for newAccount.
    pub(crate) eab: Option<(String, String)>,
}

impl AcmeEndpoint {
    /// The same endpoint, registering accounts with an External Account Binding.
    pub(crate) fn with_eab(mut self, kid: &str, hmac_key: &str) -> AcmeEndpoint {
        self.eab = Some((kid.to_owned(), hmac_key.to_owned()));
        self
    }
}

/// A fleetca instance in a temp data dir (`fleetca init` + `fleetca serve`).
pub(crate) struct Fleetca {
    // Fields drop in order: kill the server before deleting its dir.
    server: Option<ChildGuard>,
    dir: TempDir,
    data_dir: PathBuf,
    root_pem_path: PathBuf,
    root_pem: String,
    port: Option<u16>,
    /// `FLEETCA_DATABASE` for every command of this instance (PostgreSQL runs), else SQLite.
    /// Declared after `server`, so the database is dropped after the server is stopped.
    database: Option<PgTestDb>,
}

/// A fresh PostgreSQL database when the suite runs with `FLEETCA_TEST_BACKEND=postgres`.
pub(crate) fn test_database() -> Option<PgTestDb> {
    if std::env::var("FLEETCA_TEST_BACKEND").ok().as_deref() != Some("postgres") {
        return None;
    }
    Some(create_postgres_database())
}

/// A PostgreSQL database made for one test; it derefs to its URL. Dropping it drops the
/// database (`WITH (FORCE)` ends whatever connections are left), so a developer's cluster does
/// not collect a database per test run. A test killed outright leaves its database behind;
/// the names (`fleetca_t<pid>_<port>`) say which those are.
pub(crate) struct PgTestDb {
    url: String,
    name: String,
    admin: String,
}

impl std::ops::Deref for PgTestDb {
    type Target = str;
    fn deref(&self) -> &str {
        &self.url
    }
}

impl AsRef<std::ffi::OsStr> for PgTestDb {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.url.as_ref()
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        let mut cmd = Command::new("psql");
        cmd.arg(&self.admin).args([
            "-qc",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ]);
        let out = run(cmd, Duration::from_secs(30));
        if !out.success() {
            eprintln!("could not drop test database {}\n{out}", self.name);
        }
    }
}

/// Creates an empty database in the cluster `FLEETCA_TEST_POSTGRES` names.
pub(crate) fn create_postgres_database() -> PgTestDb {
    let admin = std::env::var("FLEETCA_TEST_POSTGRES")
        .expect("FLEETCA_TEST_BACKEND=postgres needs FLEETCA_TEST_POSTGRES");
    let name = format!("fleetca_t{}_{}", std::process::id(), free_port());
    let mut cmd = Command::new("psql");
    cmd.arg(&admin).args([
        "-v",
        "ON_ERROR_STOP=1",
        "-qc",
        &format!("CREATE DATABASE {name}"),
    ]);
    let out = run(cmd, Duration::from_secs(30));
    assert!(out.success(), "creating test database {name}\n{out}");
    let (base, _) = admin.rsplit_once('/').expect("database URL with a path");
    PgTestDb {
        url: format!("{base}/{name}"),
        name,
        admin,
    }
}

/// Every test client connects from 127.0.0.1, so the per-IP request limit would meter a whole
/// test (dozens of simulated devices) as one client: the harness turns it off explicitly.
/// `tests/ratelimit.rs` tests that limit with its own setting.
pub(crate) const HARNESS_RATE_LIMITS: &str =
    "\n[ca.rate_limits]\n# set by the test harness\nrequests_per_ip_per_second = 0\n";

impl Fleetca {
    /// The `fleetca` binary under test: this crate's build, unless
    /// `FLEETCA_BIN` points at another one.
    pub(crate) fn bin() -> PathBuf {
        std::env::var_os("FLEETCA_BIN")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_fleetca")))
    }

    /// `fleetca init --data-dir DIR --permit P...`, then fetches the root
    /// with `fleetca ca root`. The per-IP request limit is turned off in the config (see
    /// [`HARNESS_RATE_LIMITS`]); [`Fleetca::set_rate_limits`] sets others.
    pub(crate) fn init(permits: &[&str]) -> Fleetca {
        Self::init_with(permits, &[])
    }

    /// [`Fleetca::init`] with extra `init` arguments (e.g. `--eab-required`).
    pub(crate) fn init_with(permits: &[&str], extra: &[&str]) -> Fleetca {
        let dir = temp_dir("fleetca");
        let data_dir = dir.path().join("data");
        let mut cmd = Command::new(Self::bin());
        cmd.arg("init").arg("--data-dir").arg(&data_dir).args(extra);
        let database = test_database();
        for p in permits {
            cmd.args(["--permit", p]);
        }
        let out = run(cmd, Duration::from_secs(60));
        assert!(out.success(), "fleetca init failed\n{out}");
        let cfg = data_dir.join("fleetca.toml");
        let mut text = fs::read_to_string(&cfg).expect("read fleetca.toml");
        text.push_str(HARNESS_RATE_LIMITS);
        fs::write(&cfg, text).expect("write fleetca.toml");

        let mut cmd = Command::new(Self::bin());
        cmd.args(["ca", "root", "--data-dir"]).arg(&data_dir);
        let out = run(cmd, Duration::from_secs(30));
        assert!(out.success(), "fleetca ca root failed\n{out}");
        let root_pem = out.stdout.clone();
        assert!(
            root_pem.contains("-----BEGIN CERTIFICATE-----"),
            "`fleetca ca root` printed no PEM certificate\n{out}"
        );
        let root_pem_path = dir.path().join("root.pem");
        fs::write(&root_pem_path, &root_pem).expect("write root.pem");
        Fleetca {
            server: None,
            dir,
            data_dir,
            root_pem_path,
            root_pem,
            port: None,
            database,
        }
    }

    /// Replaces the harness's `[ca.rate_limits]` with `lines` (TOML keys); the per-IP request
    /// limit stays off unless `lines` sets it.
    pub(crate) fn set_rate_limits(&self, lines: &str) {
        let cfg = self.data_dir.join("fleetca.toml");
        let mut text = fs::read_to_string(&cfg)
            .expect("read fleetca.toml")
            .replace(HARNESS_RATE_LIMITS, "");
        text.push_str(&format!("\n[ca.rate_limits]\n{lines}\n"));
        if !lines.contains("requests_per_ip_per_second") {
            text.push_str("requests_per_ip_per_second = 0\n");
        }
        fs::write(&cfg, text).expect("write fleetca.toml");
    }

    /// Stops the server (SIGKILL via the guard) and waits for it to exit.
    pub(crate) fn stop(&mut self) {
        self.server = None;
    }

    /// Row counts and digests of this instance's database, to check what a request stored.
    pub(crate) async fn counts(&self) -> fleetca::sa::TableCounts {
        fleetca::sa::open_database(&self.database_url())
            .await
            .expect("open the database")
            .counts()
            .await
            .expect("count the rows")
    }

    /// The database this instance uses (a `postgres://` URL or the SQLite file).
    pub(crate) fn database_url(&self) -> String {
        self.database
            .as_deref()
            .map(str::to_string)
            .unwrap_or_else(|| self.data_dir.join("fleetca.db").display().to_string())
    }

    /// Points a command of this instance at its database.
    pub(crate) fn with_database(&self, cmd: &mut Command) {
        if let Some(db) = &self.database {
            cmd.env("FLEETCA_DATABASE", db);
        }
    }

    /// `fleetca serve` on a free port; returns once the directory answers.
    pub(crate) fn serve(&mut self, dns_port: u16, http01_port: u16, tlsalpn01_port: u16) {
        self.serve_with(dns_port, http01_port, tlsalpn01_port, &[]);
    }

    /// [`Fleetca::serve`] with extra `serve` arguments.
    pub(crate) fn serve_with(
        &mut self,
        dns_port: u16,
        http01_port: u16,
        tlsalpn01_port: u16,
        extra: &[&str],
    ) {
        assert!(self.server.is_none(), "already serving");
        let port = free_port();
        let mut cmd = Command::new(Self::bin());
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            // CRLs/caIssuers on an ephemeral port: parallel instances must not fight over 8080.
            .args(["--http-listen", "127.0.0.1:0"])
            // The admin listener (dashboard, /api, /metrics) likewise; see `admin_url`.
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(["--dns-resolver", &format!("127.0.0.1:{dns_port}")])
            .args(["--http01-port", &http01_port.to_string()])
            .args(["--tlsalpn01-port", &tlsalpn01_port.to_string()]);
        // The responders are on loopback, which the VA refuses unless told otherwise; a test
        // that passes its own --va-allow-address gets exactly that.
        if !extra.contains(&"--va-allow-address") {
            cmd.args(LOOPBACK_VA_ALLOW);
        }
        cmd.args(extra).env("RUST_BACKTRACE", "1");
        self.with_database(&mut cmd);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let mut guard = ChildGuard::spawn("fleetca", cmd, &self.dir.path().join("fleetca.log"));
        self.port = Some(port);
        let url = self.directory_url();
        wait_for(
            &Probe::Https {
                url: &url,
                ca_pem: &self.root_pem_path,
            },
            STARTUP_DEADLINE,
            Some(&mut guard),
        )
        .unwrap_or_else(|e| panic!("fleetca serve did not come up: {e}"));
        // The ACME listener answers before `serve` has started the others and printed their
        // URLs (the admin one after a storage read): wait for its last start-up line, so what
        // a test reads from the log (`plain_http_url`, `admin_url`) is there.
        wait_for(
            &Probe::LogLine {
                path: &self.dir.path().join("fleetca.log"),
                needle: "CRLs and CA certificates: ",
            },
            STARTUP_DEADLINE,
            Some(&mut guard),
        )
        .unwrap_or_else(|e| panic!("fleetca serve answered but did not finish starting: {e}"));
        self.server = Some(guard);
    }

    /// The ACME directory URL (valid after [`Fleetca::serve`]).
    pub(crate) fn directory_url(&self) -> String {
        let port = self.port.expect("call serve() first");
        format!("https://127.0.0.1:{port}/acme/default/directory")
    }

    /// The root CA PEM printed by `fleetca ca root`.
    pub(crate) fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// File holding [`Fleetca::root_pem`].
    pub(crate) fn root_pem_path(&self) -> &Path {
        &self.root_pem_path
    }

    /// The `--data-dir`.
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Scratch space that lives as long as this instance.
    pub(crate) fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// Client/verifier view (the root anchors both HTTPS and issuance).
    pub(crate) fn endpoint(&self) -> AcmeEndpoint {
        AcmeEndpoint {
            directory: self.directory_url(),
            tls_ca: self.root_pem_path.clone(),
            issuing_root: self.root_pem_path.clone(),
            eab: None,
        }
    }

    /// The server log so far.
    pub(crate) fn log(&self) -> String {
        self.server.as_ref().map(|s| s.log()).unwrap_or_default()
    }

    /// Sends `signal` (`HUP`, `TERM`, ...) to the running server with kill(1).
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self.server.as_ref().expect("call serve() first").id();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// The admin listener's base URL, as `serve` printed it.
    pub(crate) fn admin_url(&self) -> String {
        metrics::admin_url(&self.dir.path().join("fleetca.log"))
    }

    /// The plain-HTTP listener's base URL (`http://ADDR`) as `serve` printed it, once it has.
    pub(crate) fn plain_http_url(&self) -> Option<String> {
        let text = fs::read_to_string(self.dir.path().join("fleetca.log")).ok()?;
        text.lines().find_map(|l| {
            l.split_once("Plain HTTP (CRLs, CA certificates) on ")
                .map(|(_, url)| url.trim().to_string())
        })
    }

    /// Runs `fleetca <args> --data-dir DIR` and returns its output.
    pub(crate) fn cli(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = Command::new(Self::bin());
        cmd.args(args).arg("--data-dir").arg(&self.data_dir);
        self.with_database(&mut cmd);
        run(cmd, Duration::from_secs(60))
    }

    /// `fleetca eab create --tenant TENANT --uses N --json`: (kid, base64url HMAC key).
    pub(crate) fn eab_create(&self, tenant: &str, uses: u32) -> (String, String) {
        let uses = uses.to_string();
        let out = self.cli(&[
            "eab", "create", "--tenant", tenant, "--uses", &uses, "--json",
        ]);
        assert!(out.success(), "fleetca eab create failed\n{out}");
        let line = out.stdout.trim();
        let field = |name: &str| {
            let pat = format!("\"{name}\":\"");
            let start = line
                .find(&pat)
                .unwrap_or_else(|| panic!("no {name} in {line}"))
                + pat.len();
            let end = line[start..].find('"').expect("closing quote") + start;
            line[start..end].to_owned()
        };
        (field("kid"), field("hmac_key"))
    }
}

/// A Pebble instance (the reference ACME test server) for proving the
/// harness and the client invocations. Its HTTPS certificate comes from a
/// throwaway CA made with openssl (Debian's package ships no test certs).
pub(crate) struct Pebble {
    // Fields drop in order: kill the server before deleting its dir.
    guard: ChildGuard,
    dir: TempDir,
    port: u16,
    endpoint: AcmeEndpoint,
}

impl Pebble {
    /// Starts Pebble validating http-01 on `http01_port`, tls-alpn-01 on
    /// `tlsalpn01_port`, resolving names via the DNS server on `dns_port`.
    pub(crate) fn start(dns_port: u16, http01_port: u16, tlsalpn01_port: u16) -> Pebble {
        let dir = temp_dir("pebble");
        let (tls_ca, cert, key) = make_localhost_tls(dir.path());
        let port = free_port();
        let mgmt_port = free_port();
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{port}"),
                "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
                "certificate": cert,
                "privateKey": key,
                "httpPort": http01_port,
                "tlsPort": tlsalpn01_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        let config_path = dir.path().join("pebble-config.json");
        fs::write(&config_path, config.to_string()).expect("write pebble config");
        let mut cmd = Command::new(Tool::Pebble.path());
        cmd.arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0");
        let mut guard = ChildGuard::spawn("pebble", cmd, &dir.path().join("pebble.log"));
        let directory = format!("https://127.0.0.1:{port}/dir");
        wait_for(
            &Probe::Https {
                url: &directory,
                ca_pem: &tls_ca,
            },
            STARTUP_DEADLINE,
            Some(&mut guard),
        )
        .unwrap_or_else(|e| panic!("pebble did not come up: {e}"));
        let (status, root) = https_get(&format!("https://127.0.0.1:{mgmt_port}/roots/0"), &tls_ca)
            .unwrap_or_else(|e| panic!("pebble roots/0: {e}\n{}", guard.log()));
        assert_eq!(status, 200, "pebble roots/0: {root}");
        let issuing_root = dir.path().join("issuing-root.pem");
        fs::write(&issuing_root, root).expect("write pebble root");
        Pebble {
            guard,
            dir,
            port,
            endpoint: AcmeEndpoint {
                directory,
                tls_ca,
                issuing_root,
                eab: None,
            },
        }
    }

    /// Client/verifier view.
    pub(crate) fn endpoint(&self) -> AcmeEndpoint {
        self.endpoint.clone()
    }

    /// The server log so far.
    pub(crate) fn log(&self) -> String {
        self.guard.log()
    }
}

/// Creates `ca.pem` and a `localhost`/127.0.0.1 server cert+key under `dir`.
/// Returns (ca, cert, key) paths.
fn make_localhost_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = dir.join("tls-ca.key");
    let ca = dir.join("tls-ca.pem");
    let key = dir.join("tls-key.pem");
    let csr = dir.join("tls.csr");
    let cert = dir.join("tls-cert.pem");
    let ext = dir.join("tls-ext.cnf");
    let openssl = || Command::new(Tool::Openssl.path());
    let check = |cmd: Command| {
        let out = run(cmd, Duration::from_secs(30));
        assert!(out.success(), "openssl failed\n{out}");
    };
    let mut c = openssl();
    c.args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
    ])
    .args([
        "-nodes",
        "-days",
        "7",
        "-subj",
        "/CN=fleetca interop test TLS CA",
    ])
    .args(["-addext", "basicConstraints=critical,CA:TRUE"])
    .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    .arg("-keyout")
    .arg(&ca_key)
    .arg("-out")
    .arg(&ca);
    check(c);
    let mut c = openssl();
    c.args([
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
    ])
    .args(["-nodes", "-subj", "/CN=localhost", "-keyout"])
    .arg(&key)
    .arg("-out")
    .arg(&csr);
    check(c);
    fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext file");
    let mut c = openssl();
    c.args(["x509", "-req", "-days", "7", "-set_serial", "2", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&cert);
    check(c);
    (ca, cert, key)
}

// ---------------------------------------------------------------------------
// lego
// ---------------------------------------------------------------------------

/// How lego should prove control.
#[derive(Clone, Copy)]
pub(crate) enum Challenge<'a> {
    /// lego's built-in HTTP server on 127.0.0.1:port.
    Http01 {
        /// Port the CA's VA connects to for http-01.
        port: u16,
    },
    /// lego's built-in TLS-ALPN server on 127.0.0.1:port.
    TlsAlpn01 {
        /// Port the CA's VA connects to for tls-alpn-01.
        port: u16,
    },
    /// `--dns exec` feeding TXT records into this challtestsrv.
    Dns01 {
        /// The mock DNS server the CA resolves against.
        cts: &'a ChallTestSrv,
    },
}

/// A certificate obtained by lego (owns lego's `--path`).
pub(crate) struct LegoCert {
    dir: TempDir,
    /// lego's `--path`.
    pub(crate) lego_path: PathBuf,
    /// Requested identifiers; the first names the files.
    pub(crate) domains: Vec<String>,
    /// Leaf certificate (lego's `.crt` is leaf + issuer bundle).
    pub(crate) cert_path: PathBuf,
    /// Leaf only (extracted from the bundle).
    pub(crate) leaf_path: PathBuf,
    /// Issuer chain (`.issuer.crt`).
    pub(crate) issuer_path: PathBuf,
    /// Private key.
    pub(crate) key_path: PathBuf,
    /// Output of the `lego run`.
    pub(crate) output: CmdOutput,
}

fn lego_base(endpoint: &AcmeEndpoint, lego_path: &Path, domains: &[&str]) -> Command {
    let mut cmd = Command::new(Tool::Lego.path());
    cmd.env("LEGO_CA_CERTIFICATES", &endpoint.tls_ca)
        .arg("--path")
        .arg(lego_path)
        .args(["--accept-tos", "--email", EMAIL])
        .args(["--server", &endpoint.directory]);
    for d in domains {
        cmd.args(["--domains", d]);
    }
    // Every command, not only `run`: lego reads `meta.externalAccountRequired` and refuses
    // to go on (even to `revoke` with an existing account) without the binding.
    if let Some((kid, hmac)) = &endpoint.eab {
        // `--flag=value`: a base64url key starts with '-' one time in 64, and a separate
        // argument would then be read as an option.
        cmd.arg("--eab")
            .arg(format!("--kid={kid}"))
            .arg(format!("--hmac={hmac}"));
    }
    cmd
}

/// `lego ... run`. `Err` carries the full captured output.
pub(crate) fn lego_run(
    endpoint: &AcmeEndpoint,
    domains: &[&str],
    challenge: Challenge<'_>,
) -> Result<LegoCert, CmdOutput> {
    let dir = temp_dir("lego");
    let lego_path = dir.path().join("lego");
    let mut cmd = lego_base(endpoint, &lego_path, domains);
    match challenge {
        Challenge::Http01 { port } => {
            cmd.args(["--http", "--http.port", &format!("127.0.0.1:{port}")]);
        }
        Challenge::TlsAlpn01 { port } => {
            cmd.args(["--tls", "--tls.port", &format!("127.0.0.1:{port}")]);
        }
        Challenge::Dns01 { cts } => {
            cmd.args(["--dns", "exec", "--dns.resolvers", &cts.dns_addr()])
                .arg("--dns.disable-cp")
                .env("EXEC_PATH", cts.exec_script())
                .env("EXEC_POLLING_INTERVAL", "1")
                .env("EXEC_PROPAGATION_TIMEOUT", "30")
                // default 60 s pause between sequential DNS authorizations
                .env("EXEC_SEQUENCE_INTERVAL", "1");
        }
    }
    cmd.arg("run");
    let output = run(cmd, CLIENT_TIMEOUT).into_result()?;
    // lego names files after the first domain, with '*' replaced by '_'.
    let stem = domains[0].replace('*', "_");
    let certs = lego_path.join("certificates");
    let cert_path = certs.join(format!("{stem}.crt"));
    let issuer_path = certs.join(format!("{stem}.issuer.crt"));
    let key_path = certs.join(format!("{stem}.key"));
    for p in [&cert_path, &issuer_path, &key_path] {
        assert!(
            p.is_file(),
            "lego succeeded but {} is missing\n{output}",
            p.display()
        );
    }
    let leaf_path = certs.join(format!("{stem}.leaf.pem"));
    let bundle = fs::read_to_string(&cert_path).expect("read lego cert");
    let leaf = pem_blocks(&bundle)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no PEM in {}\n{output}", cert_path.display()));
    fs::write(&leaf_path, leaf).expect("write leaf");
    Ok(LegoCert {
        dir,
        lego_path,
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        cert_path,
        leaf_path,
        issuer_path,
        key_path,
        output,
    })
}

/// `lego ... revoke` (with `--keep`, so it can be repeated).
pub(crate) fn lego_revoke(
    endpoint: &AcmeEndpoint,
    cert: &LegoCert,
) -> Result<CmdOutput, CmdOutput> {
    let domains: Vec<&str> = cert.domains.iter().map(String::as_str).collect();
    let mut cmd = lego_base(endpoint, &cert.lego_path, &domains[..1]);
    cmd.args(["revoke", "--keep"]);
    let out = run(cmd, CLIENT_TIMEOUT);
    // lego 4.9 logs revoke errors but may still exit 0; look at the text too.
    if out.success() && out.combined().contains("Certificate was revoked") {
        Ok(out)
    } else {
        Err(out)
    }
}

// ---------------------------------------------------------------------------
// certbot
// ---------------------------------------------------------------------------

/// A certificate obtained by certbot (owns its config/work/logs dirs).
pub(crate) struct CertbotCert {
    dir: TempDir,
    /// `--config-dir`.
    pub(crate) config_dir: PathBuf,
    /// Leaf certificate.
    pub(crate) cert_path: PathBuf,
    /// Intermediate chain.
    pub(crate) chain_path: PathBuf,
    /// Leaf + chain.
    pub(crate) fullchain_path: PathBuf,
    /// Private key.
    pub(crate) key_path: PathBuf,
    /// Output of `certbot certonly`.
    pub(crate) output: CmdOutput,
}

fn certbot_base(endpoint: &AcmeEndpoint, root: &Path, sub: &str) -> Command {
    let mut cmd = Command::new(Tool::Certbot.path());
    cmd.env("REQUESTS_CA_BUNDLE", &endpoint.tls_ca)
        .arg(sub)
        .args(["--non-interactive", "--server", &endpoint.directory])
        .arg("--config-dir")
        .arg(root.join("config"))
        .arg("--work-dir")
        .arg(root.join("work"))
        .arg("--logs-dir")
        .arg(root.join("logs"));
    cmd
}

/// `certbot certonly --standalone` on 127.0.0.1:`http01_port`. Identifiers
/// that parse as IP addresses are passed with `--ip-address` (certbot >= 5).
pub(crate) fn certbot_certonly(
    endpoint: &AcmeEndpoint,
    identifiers: &[&str],
    http01_port: u16,
) -> Result<CertbotCert, CmdOutput> {
    certbot_certonly_with(endpoint, identifiers, http01_port, &[])
}

/// [`certbot_certonly`] with extra certbot arguments (e.g. `--required-profile shortlived`).
pub(crate) fn certbot_certonly_with(
    endpoint: &AcmeEndpoint,
    identifiers: &[&str],
    http01_port: u16,
    extra: &[&str],
) -> Result<CertbotCert, CmdOutput> {
    let dir = temp_dir("certbot");
    let mut cmd = certbot_base(endpoint, dir.path(), "certonly");
    cmd.args(extra);
    cmd.args(["--standalone", "--http-01-address", "127.0.0.1"])
        .args(["--http-01-port", &http01_port.to_string()])
        .args(["--agree-tos", "--register-unsafely-without-email"])
        .args(["--cert-name", "interop", "--key-type", "ecdsa"]);
    if let Some((kid, hmac)) = &endpoint.eab {
        // `--flag=value`: a base64url key starts with '-' one time in 64 (see lego above).
        cmd.arg(format!("--eab-kid={kid}"))
            .arg(format!("--eab-hmac-key={hmac}"));
    }
    for id in identifiers {
        if id.parse::<IpAddr>().is_ok() {
            cmd.args(["--ip-address", id]);
        } else {
            cmd.args(["-d", id]);
        }
    }
    let output = run(cmd, CLIENT_TIMEOUT);
    let config_dir = dir.path().join("config");
    let live = config_dir.join("live").join("interop");
    let cert = CertbotCert {
        cert_path: live.join("cert.pem"),
        chain_path: live.join("chain.pem"),
        fullchain_path: live.join("fullchain.pem"),
        key_path: live.join("privkey.pem"),
        config_dir,
        dir,
        output,
    };
    if cert.output.success() {
        return Ok(cert);
    }
    // certbot 5.8 bug: after saving an IP certificate whose subject CN holds
    // the IP, its deploy-hook step re-parses the CN as a DNS name and aborts.
    // The certificate was issued and saved; the server did nothing wrong.
    let known_bug = cert
        .output
        .combined()
        .contains("is an IP address. The Let's Encrypt");
    if known_bug && cert.cert_path.is_file() {
        eprintln!(
            "NOTE: certbot hit its IP-in-subject-CN bug after saving the certificate; \
             accepting the saved certificate\n{}",
            cert.output
        );
        return Ok(cert);
    }
    Err(cert.output)
}

/// `certbot renew` of the lineage [`certbot_certonly`] saved (its renewal configuration
/// keeps the standalone authenticator and port). certbot >= 4.1 asks the server's ACME
/// Renewal Information (RFC 9773) whether the certificate is due.
pub(crate) fn certbot_renew(endpoint: &AcmeEndpoint, cert: &CertbotCert) -> CmdOutput {
    let mut cmd = certbot_base(endpoint, cert.dir.path(), "renew");
    cmd.args(["--cert-name", "interop", "--no-random-sleep-on-renew"]);
    run(cmd, CLIENT_TIMEOUT)
}

/// `certbot revoke --cert-path ... --reason keycompromise`.
pub(crate) fn certbot_revoke(
    endpoint: &AcmeEndpoint,
    cert: &CertbotCert,
) -> Result<CmdOutput, CmdOutput> {
    let mut cmd = certbot_base(endpoint, cert.dir.path(), "revoke");
    cmd.arg("--cert-path").arg(&cert.cert_path).args([
        "--reason",
        "keycompromise",
        "--no-delete-after-revoke",
    ]);
    run(cmd, CLIENT_TIMEOUT).into_result()
}

// ---------------------------------------------------------------------------
// openssl
// ---------------------------------------------------------------------------

/// `openssl verify -CAfile root -untrusted chain leaf` (prints on failure).
pub(crate) fn openssl_verify(root_pem: &Path, chain_pem: &Path, leaf_pem: &Path) -> bool {
    openssl_verify_with(root_pem, chain_pem, leaf_pem, &[])
}

/// [`openssl_verify`] plus `-x509_strict -purpose sslserver`.
pub(crate) fn openssl_verify_strict(root_pem: &Path, chain_pem: &Path, leaf_pem: &Path) -> bool {
    openssl_verify_with(
        root_pem,
        chain_pem,
        leaf_pem,
        &["-x509_strict", "-purpose", "sslserver"],
    )
}

fn openssl_verify_with(root_pem: &Path, chain_pem: &Path, leaf_pem: &Path, extra: &[&str]) -> bool {
    let mut cmd = Command::new(Tool::Openssl.path());
    cmd.arg("verify")
        .args(extra)
        .arg("-CAfile")
        .arg(root_pem)
        .arg("-untrusted")
        .arg(chain_pem)
        .arg(leaf_pem);
    let out = run(cmd, Duration::from_secs(30));
    if !out.success() {
        eprintln!("openssl verify failed\n{out}");
    }
    out.success()
}

/// `openssl x509 -noout -text` of the first certificate in `pem`.
pub(crate) fn openssl_text(pem: &Path) -> String {
    let mut cmd = Command::new(Tool::Openssl.path());
    cmd.args(["x509", "-noout", "-text", "-in"]).arg(pem);
    let out = run(cmd, Duration::from_secs(30));
    assert!(out.success(), "openssl x509 failed\n{out}");
    out.stdout
}

/// The PEM blocks (with armor) in `text`.
pub(crate) fn pem_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("-----BEGIN ") {
            current = Some(String::new());
        }
        if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
        }
        if line.starts_with("-----END ") {
            if let Some(block) = current.take() {
                blocks.push(block);
            }
        }
    }
    blocks
}

/// The `fleetca-agent` binary beside this test's target directory, or `None` (skip) outside CI.
pub(crate) fn agent_bin(test: &str) -> Option<std::path::PathBuf> {
    let bin = std::env::var_os("FLEETCA_AGENT_BIN")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.join("fleetca-agent"))
        })?;
    let found = bin.is_file();
    gate(
        test,
        found,
        "fleetca-agent is missing (cargo build -p fleetca-agent)",
    )
    .then_some(bin)
}
