//! End-to-end against Pebble (+ pebble-challtestsrv for DNS).

mod support;

use std::path::Path;

use support::*;

fn common<'a>(p: &'a Pebble, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--server",
        &p.directory,
        "--server-root",
        p.tls_ca.to_str().unwrap(),
        "--out-dir",
        out,
    ];
    v.extend_from_slice(extra);
    v
}

fn check_pair(out: &Path) {
    let (c, k) = pubkeys(&out.join("cert.pem"), &out.join("key.pem"));
    assert!(!c.is_empty());
    assert_eq!(c, k, "installed key and certificate do not match");
    let full = std::fs::read_to_string(out.join("fullchain.pem")).unwrap();
    let cert = std::fs::read_to_string(out.join("cert.pem")).unwrap();
    assert!(full.starts_with(&cert));
}

#[test]
fn pebble_http01_issue_status_renew_revoke() {
    if !require("pebble_http01", Path::new("/usr/bin/pebble")) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cts = ChallTestSrv::start(tmp.path());
    let http_port = free_port();
    let pebble = Pebble::start(tmp.path(), cts.dns_port, http_port, free_port());
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap().to_owned();
    let hp = http_port.to_string();
    let marker = tmp.path().join("reloaded");
    let reload = format!("touch {}", marker.display());
    let args = common(
        &pebble,
        &out_s,
        &[
            "--domain",
            "dev1.routers.example.com",
            "--challenge",
            "http-01",
            "--http-port",
            &hp,
            "--reload-cmd",
            &reload,
        ],
    );

    let mut a = args.clone();
    a.push("issue");
    let (code, _, err) = agent(&a);
    assert_eq!(code, 10, "issue failed: {err}");
    check_pair(&out);
    assert!(marker.exists(), "reload command did not run");
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(out.join("key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);

    // Not due: renew does nothing.
    let mut a = args.clone();
    a.push("renew");
    let (code, _, err) = agent(&a);
    assert_eq!(code, 0, "renew: {err}");

    let mut a = args.clone();
    a.extend(["--json", "status"]);
    let (code, stdout, _) = agent(&a);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["names"][0], "dev1.routers.example.com");
    assert!(v["not_after"].is_string() && v["renew_at"].is_string());

    // Forced renewal makes a new key.
    let old_key = std::fs::read_to_string(out.join("key.pem")).unwrap();
    let mut a = args.clone();
    a.extend(["renew", "--force"]);
    let (code, _, err) = agent(&a);
    assert_eq!(code, 10, "renew --force: {err}");
    check_pair(&out);
    assert_ne!(
        old_key,
        std::fs::read_to_string(out.join("key.pem")).unwrap()
    );

    let mut a = args.clone();
    a.extend(["revoke", "--reason", "keyCompromise"]);
    let (code, _, err) = agent(&a);
    assert_eq!(code, 0, "revoke: {err}");
    let mut a = args.clone();
    a.extend(["--json", "status"]);
    let (_, stdout, _) = agent(&a);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["revoked"], true);
    // A revoked certificate is due at once.
    let mut a = args.clone();
    a.push("renew");
    let (code, _, err) = agent(&a);
    assert_eq!(code, 10, "renew after revoke: {err}");
    check_pair(&out);
}

#[test]
fn pebble_dns01_issue() {
    if !require("pebble_dns01", Path::new("/usr/bin/pebble")) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cts = ChallTestSrv::start(tmp.path());
    let pebble = Pebble::start(tmp.path(), cts.dns_port, free_port(), free_port());
    let hook = cts.hook_script(tmp.path());
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap().to_owned();
    let mut a = common(
        &pebble,
        &out_s,
        &[
            "--domain",
            "gw.routers.example.com",
            "--domain",
            "*.gw.routers.example.com",
            "--challenge",
            "dns-01",
            "--dns-hook",
            hook.to_str().unwrap(),
            "--key-type",
            "p384",
        ],
    );
    a.push("issue");
    let (code, _, err) = agent(&a);
    assert_eq!(code, 10, "issue failed: {err}");
    check_pair(&out);
    let calls = std::fs::read_to_string(tmp.path().join("hook-calls.log")).unwrap();
    assert!(
        calls.contains("add _acme-challenge.gw.routers.example.com"),
        "{calls}"
    );
    assert!(
        calls.contains("del _acme-challenge.gw.routers.example.com"),
        "{calls}"
    );
}

#[test]
fn pebble_tls_alpn01_issue() {
    if !require("pebble_tlsalpn", Path::new("/usr/bin/pebble")) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cts = ChallTestSrv::start(tmp.path());
    let tls_port = free_port();
    let pebble = Pebble::start(tmp.path(), cts.dns_port, free_port(), tls_port);
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap().to_owned();
    let tp = tls_port.to_string();
    let mut a = common(
        &pebble,
        &out_s,
        &[
            "--domain",
            "ap.routers.example.com",
            "--challenge",
            "tls-alpn-01",
            "--tls-port",
            &tp,
        ],
    );
    a.push("issue");
    let (code, _, err) = agent(&a);
    assert_eq!(code, 10, "issue failed: {err}");
    check_pair(&out);
}
