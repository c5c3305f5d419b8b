//! End-to-end against `fleetca serve` (binary from FLEETCA_BIN or
//! target/debug/fleetca; this test builds nothing itself).

mod support;

use std::path::Path;
use std::process::Command;

use support::fleetca::*;
use support::*;

/// The installed leaf: (serial as lower-case hex without leading 00, PEM).
fn installed_serial(out: &Path) -> (String, String) {
    let pem = assert_complete_set(out, false).unwrap();
    let der = fleetca_agent::keys::pem_certs(&pem).remove(0);
    let info = fleetca_agent::schedule::CertInfo::parse(&der).unwrap();
    let bytes: Vec<u8> = info
        .serial
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    (bytes.iter().map(|b| format!("{b:02x}")).collect(), pem)
}

#[test]
fn fleetca_http01_issue_revoke_and_ed25519_account() {
    let bin = fleetca_bin();
    if !require("fleetca_http01 (run `cargo build -p fleetca` first)", &bin) {
        return;
    }
    let srv = Server::start(&bin);
    let (tmp, root, http_port, _server) = (&srv.tmp, &srv.root, srv.http_port, &srv.guard);
    let dir_url = srv.dir_url.clone();
    let out_dir = tmp.path().join("out");
    let hp = http_port.to_string();
    let base = [
        "--server",
        dir_url.as_str(),
        "--server-root",
        root.to_str().unwrap(),
        "--out-dir",
        out_dir.to_str().unwrap(),
        "--domain",
        "cpe1.routers.example.com",
        "--challenge",
        "http-01",
        "--http-port",
        hp.as_str(),
    ];
    let mut a = base.to_vec();
    a.push("issue");
    let (code, _, err) = agent(&a);
    assert_eq!(code, 10, "issue against fleetca: {err}\n{}", _server.log());
    let (c, k) = pubkeys(&out_dir.join("cert.pem"), &out_dir.join("key.pem"));
    assert_eq!(c, k);

    let mut a = base.to_vec();
    a.extend(["revoke", "--reason", "superseded"]);
    let (code, _, err) = agent(&a);
    assert_eq!(code, 0, "revoke against fleetca: {err}");

    // An Ed25519 account key (EdDSA JWS, RFC 8037) in a fresh state dir.
    let out2 = tmp.path().join("out-ed25519");
    let mut a = base.to_vec();
    a[5] = out2.to_str().unwrap();
    a.extend(["--account-key-type", "ed25519", "issue"]);
    let (code, _, err) = agent(&a);
    assert_eq!(
        code,
        10,
        "Ed25519 account against fleetca: {err}\n{}",
        _server.log()
    );
    let pem = std::fs::read_to_string(out2.join(".state/account.key")).unwrap();
    let der = fleetca_agent::keys::pem_decode(&pem, "PRIVATE KEY").unwrap();
    let key = acme_types::sign::AccountKey::from_pkcs8_der(&der).unwrap();
    assert_eq!(key.alg(), "EdDSA");
    let (c, k) = pubkeys(&out2.join("cert.pem"), &out2.join("key.pem"));
    assert_eq!(c, k);
}

#[test]
fn fleetca_dns01_and_tls_alpn01_issue() {
    let bin = fleetca_bin();
    if !require("fleetca_dns01 (run `cargo build -p fleetca` first)", &bin) {
        return;
    }
    let srv = Server::start(&bin);
    let hook = srv.cts.hook_script(srv.tmp.path());

    // dns-01 through the hook (pebble-challtestsrv's /set-txt), a wildcard.
    let out = srv.tmp.path().join("out-dns");
    let (code, _, err) = srv.run(
        &out,
        &[
            "--domain",
            "*.cpe2.routers.example.com",
            "--domain",
            "cpe2.routers.example.com",
            "--challenge",
            "dns-01",
            "--dns-hook",
            hook.to_str().unwrap(),
            "issue",
        ],
        &[],
    );
    assert_eq!(
        code,
        10,
        "dns-01 against fleetca: {err}\n{}",
        srv.guard.log()
    );
    let pem = assert_complete_set(&out, false).unwrap();
    let der = fleetca_agent::keys::pem_certs(&pem).remove(0);
    let info = fleetca_agent::schedule::CertInfo::parse(&der).unwrap();
    assert!(
        info.names
            .contains(&"*.cpe2.routers.example.com".to_owned()),
        "{:?}",
        info.names
    );
    let calls = std::fs::read_to_string(srv.tmp.path().join("hook-calls.log")).unwrap();
    assert!(
        calls.contains("add _acme-challenge.cpe2.routers.example.com"),
        "{calls}"
    );
    assert!(
        calls.contains("del _acme-challenge.cpe2.routers.example.com"),
        "{calls}"
    );

    // tls-alpn-01 with the built-in listener on fleetca's --tlsalpn01-port.
    let out = srv.tmp.path().join("out-alpn");
    let (code, _, err) = srv.run(
        &out,
        &[
            "--domain",
            "cpe3.routers.example.com",
            "--challenge",
            "tls-alpn-01",
            "issue",
        ],
        &[],
    );
    assert_eq!(
        code,
        10,
        "tls-alpn-01 against fleetca: {err}\n{}",
        srv.guard.log()
    );
    let (c, k) = pubkeys(&out.join("cert.pem"), &out.join("key.pem"));
    assert_eq!(c, k);
}

#[test]
fn fleetca_ari_renew_early_drives_renewal() {
    let bin = fleetca_bin();
    if !require("fleetca_ari (run `cargo build -p fleetca` first)", &bin) {
        return;
    }
    let srv = Server::start(&bin);
    let out = srv.tmp.path().join("out");
    let flags = [
        "--domain",
        "cpe4.routers.example.com",
        "--challenge",
        "http-01",
    ];
    fn with<'a>(flags: &[&'a str], cmd: &[&'a str]) -> Vec<&'a str> {
        let mut v = flags.to_vec();
        v.extend_from_slice(cmd);
        v
    }
    let (code, _, err) = srv.run(&out, &with(&flags, &["issue"]), &[]);
    assert_eq!(code, 10, "issue: {err}\n{}", srv.guard.log());
    let (old_serial, old_pem) = installed_serial(&out);

    // Fresh certificate: the server's window is in the middle third.
    let (code, _, err) = srv.run(&out, &with(&flags, &["renew"]), &[]);
    assert_eq!(
        code,
        0,
        "renew of a fresh certificate: {err}\n{}",
        srv.guard.log()
    );
    assert!(err.contains("(ari)"), "{err}");
    assert_eq!(installed_serial(&out).1, old_pem);

    let printed = srv.admin(&["renew-early", "--serial", &old_serial]);
    assert!(
        printed.to_ascii_lowercase().contains(&old_serial),
        "{printed}"
    );

    // The new window is [now, now + 1 h] and the agent picks a time in it
    // (RFC 9773 §4.2); and a one-shot renew does not ask renewalInfo again
    // before the Retry-After of the last answer (fleetca: 6 h, RFC 9773
    // §4.3.2). So run it with its clock just past that (still within a day
    // of the server's Date, so its own clock is used).
    let ahead = (fleetca_agent::http::now_unix() + 6 * 3600 + 100).to_string();
    let env = [("FLEETCA_AGENT_FAKE_NOW", ahead.as_str())];
    let (code, _, err) = srv.run(&out, &with(&flags, &["renew"]), &env);
    assert_eq!(
        code,
        10,
        "renew after renew-early: {err}\n{}",
        srv.guard.log()
    );
    let (new_serial, new_pem) = installed_serial(&out);
    assert_ne!(new_serial, old_serial);
    assert_ne!(new_pem, old_pem);

    // The old certificate was replaced, not revoked: still valid.
    let show = srv.admin(&["cert", "show", &old_serial, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(
        v["status"], "valid",
        "old certificate after renewal: {show}"
    );
    let old_der = fleetca_agent::keys::pem_certs(&old_pem).remove(0);
    let old_info = fleetca_agent::schedule::CertInfo::parse(&old_der).unwrap();
    assert!(old_info.not_after > fleetca_agent::http::now_unix());

    // The server stored the `replaces` link (order_lifecycle.replaces_cert_id).
    // This server runs on a SQLite file in its data dir, so the database is always there;
    // only the sqlite3 shell may be missing, and that goes through the shared gate.
    let db = srv
        .database()
        .unwrap_or_else(|| panic!("no SQLite database in {}", srv.data.display()));
    if gate(
        "fleetca_ari (replaces link)",
        Path::new("/usr/bin/sqlite3").exists(),
        "/usr/bin/sqlite3 missing",
    ) {
        let q = format!(
            "SELECT old.serial FROM order_lifecycle ol \
             JOIN certificates old ON old.id = ol.replaces_cert_id \
             JOIN certificates new ON new.order_id = ol.order_id \
             WHERE new.serial = '{new_serial}';"
        );
        let o = Command::new("sqlite3").arg(&db).arg(q).output().unwrap();
        let got = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            got.trim(),
            old_serial,
            "replaces link: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
