//! More end-to-end tests against Pebble: EAB, rotate-key, webroot, a failing
//! reload command, challenge preference order and a device clock stuck in
//! 1970/2000. (Ed25519 account keys are tested against fleetca: Pebble 2.4
//! answers badPublicKey for them.)

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use support::*;

struct Lab {
    _cts: ChallTestSrv,
    pebble: Pebble,
    tmp: tempfile::TempDir,
    http_port: u16,
    tls_port: u16,
}

fn lab(test: &str, extra: serde_json::Value) -> Option<Lab> {
    if !require(test, Path::new("/usr/bin/pebble")) {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cts = ChallTestSrv::start(tmp.path());
    let (http_port, tls_port) = (free_port(), free_port());
    let pebble = Pebble::start_with(tmp.path(), cts.dns_port, http_port, tls_port, extra);
    Some(Lab {
        _cts: cts,
        pebble,
        tmp,
        http_port,
        tls_port,
    })
}

impl Lab {
    fn out(&self) -> PathBuf {
        self.tmp.path().join("out")
    }

    /// Common flags plus `extra`, then the command.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--server".into(),
            self.pebble.directory.clone(),
            "--server-root".into(),
            self.pebble.tls_ca.display().to_string(),
            "--out-dir".into(),
            self.out().display().to_string(),
            "--http-port".into(),
            self.http_port.to_string(),
            "--tls-port".into(),
            self.tls_port.to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    fn run(&self, extra: &[&str]) -> (i32, String, String) {
        self.run_env(extra, &[])
    }

    fn run_env(&self, extra: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let a = self.args(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        agent_env(&a, env)
    }

    fn status(&self, extra: &[&str]) -> serde_json::Value {
        let mut a = extra.to_vec();
        a.extend(["--json", "status"]);
        let (code, out, err) = self.run(&a);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(out.trim()).unwrap()
    }
}

const EAB_KEY: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";

#[test]
fn eab_required_by_pebble() {
    let Some(lab) = lab(
        "eab",
        serde_json::json!({"externalAccountBindingRequired": true,
                           "externalAccountMACKeys": {"kid-1": EAB_KEY}}),
    ) else {
        return;
    };
    let (code, _, err) = lab.run(&["--domain", "eab.example", "issue"]);
    assert_eq!(code, 21, "issue without EAB must fail: {err}");
    assert!(err.contains("externalAccountRequired"), "{err}");

    let key_file = lab.tmp.path().join("eab.key");
    std::fs::write(&key_file, format!("{EAB_KEY}\n")).unwrap();
    let kf = key_file.to_str().unwrap();
    let (code, out, err) = lab.run(&[
        "--domain",
        "eab.example",
        "--eab-kid",
        "kid-1",
        "--eab-hmac-key-file",
        kf,
        "issue",
    ]);
    assert_eq!(code, 10, "issue with EAB: {err}");
    assert!(
        !err.contains(EAB_KEY) && !out.contains(EAB_KEY),
        "HMAC key logged"
    );
    assert_complete_set(&lab.out(), false);
}

#[test]
fn rotate_key_keeps_old_key_until_the_new_cert_is_installed() {
    let Some(lab) = lab("rotate_key", serde_json::json!({})) else {
        return;
    };
    let (code, _, err) = lab.run(&["--domain", "rot.example", "issue"]);
    assert_eq!(code, 10, "{err}");
    let old_key = std::fs::read_to_string(lab.out().join("key.pem")).unwrap();

    // rotate-key that cannot reach the server changes nothing.
    let dead = format!("https://127.0.0.1:{}/dir", free_port());
    let mut a = lab.args(&["--domain", "rot.example", "rotate-key"]);
    a[1] = dead;
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (code, _, err) = agent(&a);
    assert_eq!(code, 20, "{err}");
    assert_eq!(
        std::fs::read_to_string(lab.out().join("key.pem")).unwrap(),
        old_key
    );

    let (code, _, err) = lab.run(&["--domain", "rot.example", "rotate-key"]);
    assert_eq!(code, 10, "{err}");
    assert_complete_set(&lab.out(), false);
    let new_key = std::fs::read_to_string(lab.out().join("key.pem")).unwrap();
    assert_ne!(new_key, old_key, "rotate-key must make a new key");
    // The previous version (with the old key) is kept next to the new one.
    let kept: Vec<String> = std::fs::read_dir(lab.out().join(".versions"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("key.pem")).ok())
        .collect();
    assert!(kept.contains(&old_key) && kept.contains(&new_key));
}

/// A static file server for `root` on `port` (the device's web server).
fn serve_dir(root: PathBuf, port: u16) {
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let n = c.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let resp = match std::fs::read(root.join(path.trim_start_matches('/'))) {
                Ok(b) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        b.len()
                    )
                    .into_bytes();
                    r.extend(b);
                    r
                }
                Err(_) => {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_vec()
                }
            };
            let _ = c.write_all(&resp);
        }
    });
}

#[test]
fn webroot_http01() {
    let Some(lab) = lab("webroot", serde_json::json!({})) else {
        return;
    };
    let webroot = lab.tmp.path().join("www");
    std::fs::create_dir_all(&webroot).unwrap();
    serve_dir(webroot.clone(), lab.http_port);
    let wr = webroot.to_str().unwrap();
    let (code, _, err) = lab.run(&["--domain", "web.example", "--webroot", wr, "issue"]);
    assert_eq!(code, 10, "{err}");
    assert_complete_set(&lab.out(), false);
    let left: Vec<_> = std::fs::read_dir(webroot.join(".well-known/acme-challenge"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "challenge files left behind");
}

#[test]
fn failing_reload_is_reported_and_retried() {
    let Some(lab) = lab("reload", serde_json::json!({})) else {
        return;
    };
    let calls = lab.tmp.path().join("reload-calls");
    let ok = lab.tmp.path().join("reload-ok");
    // Fails the first time, succeeds after.
    let cmd = format!(
        "echo x >> {c}; test -f {o} || {{ touch {o}; exit 1; }}",
        c = calls.display(),
        o = ok.display()
    );
    let (code, _, err) = lab.run(&["--domain", "rl.example", "--reload-cmd", &cmd, "issue"]);
    assert_eq!(code, 24, "{err}");
    assert!(err.contains("will retry"), "{err}");
    let cert = assert_complete_set(&lab.out(), false).unwrap();
    assert_eq!(lab.status(&[])["reload_pending"], true);

    // The next renew check (not due) retries the reload and keeps the cert.
    let (code, _, err) = lab.run(&["--domain", "rl.example", "--reload-cmd", &cmd, "renew"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&calls).unwrap().lines().count(), 2);
    assert_eq!(lab.status(&[])["reload_pending"], false);
    assert_eq!(assert_complete_set(&lab.out(), false).unwrap(), cert);
}

#[test]
fn challenge_preference_per_identifier() {
    let Some(lab) = lab("challenge_pref", serde_json::json!({})) else {
        return;
    };
    let hook = lab._cts.hook_script(lab.tmp.path());
    // tls-alpn-01 first; the wildcard only offers dns-01, so it falls back.
    let (code, _, err) = lab.run(&[
        "--domain",
        "pref.example",
        "--domain",
        "*.pref.example",
        "--challenge",
        "tls-alpn-01",
        "--challenge",
        "dns-01",
        "--dns-hook",
        hook.to_str().unwrap(),
        "issue",
    ]);
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("pref.example: using tls-alpn-01"), "{err}");
    assert!(err.contains("*.pref.example: using dns-01"), "{err}");
    assert!(!err.contains(" pref.example: using dns-01"), "{err}");
    assert_complete_set(&lab.out(), false);
}

#[test]
fn clock_in_1970_or_2000_does_not_renew_and_schedules_by_server_time() {
    let Some(lab) = lab("clock", serde_json::json!({})) else {
        return;
    };
    let (code, _, err) = lab.run(&["--domain", "clk.example", "issue"]);
    assert_eq!(code, 10, "{err}");
    let cert = assert_complete_set(&lab.out(), false).unwrap();
    for fake in ["0", "946684800"] {
        let env = [("FLEETCA_AGENT_FAKE_NOW", fake)];
        let (code, _, err) = lab.run_env(&["--domain", "clk.example", "renew"], &env);
        assert_eq!(code, 0, "clock at {fake}: renewed early: {err}");
        assert!(err.contains("scheduling by server time"), "{err}");
        assert_eq!(assert_complete_set(&lab.out(), false).unwrap(), cert);
        let v = lab.status(&[]);
        assert_eq!(v["schedule_clock"], "server time", "{v}");
        assert_eq!(v["expired"], false, "{v}");
    }
    // The fake clock also drives the TLS verifier's time: with the clock at
    // 1970 the server certificate is checked at the trusted floor (build
    // time, installed notBefore, last server Date), so renew still connects.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab.out().join(".state/state.json")).unwrap())
            .unwrap();
    assert!(
        state["last_server_date"].as_i64().unwrap() > 1_700_000_000,
        "{state}"
    );
    let env = [("FLEETCA_AGENT_FAKE_NOW", "0")];
    let (code, _, err) = lab.run_env(&["--domain", "clk.example", "renew", "--force"], &env);
    assert_eq!(code, 10, "forced renew with the clock at 1970: {err}");
    assert!(err.contains("trusted floor"), "{err}");
    assert_ne!(assert_complete_set(&lab.out(), false).unwrap(), cert);
    // A fresh device (no state, no certificate) at 1970: floor = build time.
    let out2 = lab.tmp.path().join("out-1970");
    let mut a = lab.args(&["--domain", "clk2.example", "issue"]);
    a[5] = out2.display().to_string();
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (code, _, err) = agent_env(&a, &env);
    assert_eq!(code, 10, "issue with the clock at 1970: {err}");
    assert_complete_set(&out2, false);
}
