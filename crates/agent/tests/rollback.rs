//! Checked install with rollback against `fleetca serve` (issue 14, defect
//! 2): a reload lost to a crash right after the swap is run by the next
//! run; a failing `--check-cmd` or a service that does not serve the new
//! certificate (`--check-tls`, a real TLS server) puts the previous
//! certificate back, reloads again, says `rolled back` and exits non-zero,
//! keeping the new certificate staged for the next attempt.

mod fleetca_server;
mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fleetca_server::*;

/// The version directory `current` points at.
fn current_target(out: &Path) -> PathBuf {
    std::fs::read_link(out.join("current")).unwrap()
}

#[test]
fn reload_lost_after_a_crash_right_after_the_swap_is_run_next_time() {
    let Some(srv) = Server::start("rollback_reload_lost") else {
        return;
    };
    let name = "r1.routers.example.com";
    let out = srv.tmp.path().join("out");
    let reloads = srv.tmp.path().join("reloads.log");
    let reload = format!("echo reload >> {}", reloads.display());
    let flags = ["--domain", name, "--reload-cmd", reload.as_str()];
    let (code, _, err) = srv.run(&out, &[&flags[..], &["issue"]].concat());
    assert_eq!(code, 10, "{err}");
    assert_eq!(lines(&reloads), 1);
    // "prune" comes after the swap and the links: the new certificate is in
    // place, the service still has the old one in memory.
    let old = installed_serial(&out);
    let (paused, log) = kill_at(
        srv.command(&out, &[&flags[..], &["renew", "--force"]].concat()),
        "prune",
    );
    assert!(paused, "{log}");
    assert_ne!(installed_serial(&out), old, "killed after the swap");
    assert_eq!(lines(&reloads), 1);
    // A plain renew (nothing due) must still reload.
    let (code, _, err) = srv.run(&out, &[&flags[..], &["renew"]].concat());
    assert_eq!(code, 10, "renew after a crash after the swap: {err}");
    assert_eq!(lines(&reloads), 2, "the lost reload was not run");
    assert_eq!(status(&srv, &out)["reload_pending"], false);
    let (code, _, err) = srv.run(&out, &[&flags[..], &["renew"]].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines(&reloads), 2);
}

#[test]
fn failing_check_cmd_serves_the_previous_certificate_again() {
    let Some(srv) = Server::start("rollback_check_cmd") else {
        return;
    };
    let name = "r2.routers.example.com";
    let out = srv.tmp.path().join("out");
    let reloads = srv.tmp.path().join("reloads.log");
    let reload = format!(
        "readlink {} >> {}",
        out.join("current").display(),
        reloads.display()
    );
    let flags = ["--domain", name, "--reload-cmd", reload.as_str()];
    let (code, _, err) = srv.run(&out, &[&flags[..], &["issue"]].concat());
    assert_eq!(code, 10, "{err}");
    let old_serial = installed_serial(&out);
    let old_target = current_target(&out);
    let issued = srv.issued(name);

    let (code, _, err) = srv.run(
        &out,
        &[&flags[..], &["--check-cmd", "exit 3", "renew", "--force"]].concat(),
    );
    assert_ne!(code, 0, "a failed check must exit non-zero: {err}");
    assert_ne!(code, 10, "{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(srv.issued(name), issued + 1);
    // The previous certificate is served again: the link points back and the
    // reload ran for the new one and again for the old one.
    assert_eq!(current_target(&out), old_target);
    assert_eq!(installed_serial(&out), old_serial);
    let reload_log = std::fs::read_to_string(&reloads).unwrap();
    let seen: Vec<&str> = reload_log.lines().collect();
    assert_eq!(seen.len(), 3, "{reload_log}");
    assert_ne!(
        seen[1], seen[0],
        "the new version was reloaded: {reload_log}"
    );
    assert_eq!(
        seen[2], seen[0],
        "the old version was reloaded again: {reload_log}"
    );
    let st = status(&srv, &out);
    assert_eq!(st["rolled_back"], true, "{st}");
    assert_eq!(st["consecutive_failures"], 1, "{st}");
    assert!(
        st["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("health check")),
        "{st}"
    );
    // The new certificate is kept staged.
    let staged = out.join(seen[1].trim());
    assert!(staged.join("cert.pem").exists(), "staged version removed");

    // The next attempt (the check passes now) installs the staged
    // certificate without ordering another.
    let (code, _, err) = srv.run(
        &out,
        &[&flags[..], &["--check-cmd", "true", "renew"]].concat(),
    );
    assert_eq!(code, 10, "{err}");
    assert_eq!(
        srv.issued(name),
        issued + 1,
        "the staged certificate was reused"
    );
    assert_eq!(current_target(&out), PathBuf::from(seen[1].trim()));
    let st = status(&srv, &out);
    assert_eq!(st["rolled_back"], false, "{st}");
    assert_eq!(st["consecutive_failures"], 0, "{st}");
    assert!(st["last_success"].is_string(), "{st}");
}

/// `--hook-timeout` applies to `--check-cmd`: a check that hangs is killed
/// and counts as failed, so the previous certificate is put back.
#[test]
fn hanging_check_cmd_is_killed_and_rolls_back() {
    let Some(srv) = Server::start("rollback_check_timeout") else {
        return;
    };
    let name = "r4.routers.example.com";
    let out = srv.tmp.path().join("out");
    let flags = ["--domain", name];
    let (code, _, err) = srv.run(&out, &[&flags[..], &["issue"]].concat());
    assert_eq!(code, 10, "{err}");
    let old_serial = installed_serial(&out);
    // Long enough to tell a kill from a check that ended by itself.
    let (code, _, err) = srv.run(
        &out,
        &[
            &flags[..],
            &[
                "--check-cmd",
                "sleep 20",
                "--hook-timeout",
                "1",
                "renew",
                "--force",
            ],
        ]
        .concat(),
    );
    assert_eq!(code, 27, "a hanging check must fail the install: {err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert_eq!(installed_serial(&out), old_serial);
    assert_eq!(status(&srv, &out)["rolled_back"], true);
}

/// A TLS service on 127.0.0.1 that serves `out`'s certificate: read once at
/// start (`live` false: a service whose reload does nothing) or at every
/// connection (`live` true: a service that reloads at once).
fn tls_service(out: &Path, live: bool) -> u16 {
    use fleetca_agent::keys;
    let load = |out: &Path| -> Arc<rustls::ServerConfig> {
        let chain: Vec<rustls_pki_types::CertificateDer<'static>> =
            keys::pem_certs(&std::fs::read_to_string(out.join("fullchain.pem")).unwrap())
                .into_iter()
                .map(Into::into)
                .collect();
        let key_der = keys::pem_decode(
            &std::fs::read_to_string(out.join("key.pem")).unwrap(),
            "PRIVATE KEY",
        )
        .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(key_der.into());
        Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
        )
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fixed = load(out);
    let out = out.to_owned();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { continue };
            let config = if live { load(&out) } else { fixed.clone() };
            let Ok(mut conn) = rustls::ServerConnection::new(config) else {
                continue;
            };
            let _ = sock.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            while conn.is_handshaking() {
                if conn.complete_io(&mut sock).is_err() {
                    break;
                }
            }
            conn.send_close_notify();
            let _ = conn.complete_io(&mut sock);
        }
    });
    port
}

#[test]
fn check_tls_compares_the_served_certificate() {
    let Some(srv) = Server::start("rollback_check_tls") else {
        return;
    };
    let name = "r3.routers.example.com";
    let out = srv.tmp.path().join("out");
    let (code, _, err) = srv.run(&out, &["--domain", name, "issue"]);
    assert_eq!(code, 10, "{err}");

    // A service that keeps serving the old certificate: rolled back.
    let stale = tls_service(&out, false);
    let old_serial = installed_serial(&out);
    let addr = format!("127.0.0.1:{stale}");
    let (code, _, err) = srv.run(
        &out,
        &["--domain", name, "--check-tls", &addr, "renew", "--force"],
    );
    assert_eq!(code, 27, "stale service: {err}");
    assert!(err.contains("does not serve the new certificate"), "{err}");
    assert_eq!(installed_serial(&out), old_serial);
    assert_eq!(status(&srv, &out)["rolled_back"], true);

    // A service that picks up the new files: the staged certificate is
    // installed and stays.
    let live = tls_service(&out, true);
    let addr = format!("127.0.0.1:{live}");
    let (code, _, err) = srv.run(&out, &["--domain", name, "--check-tls", &addr, "renew"]);
    assert_eq!(code, 10, "live service: {err}");
    assert!(err.contains("serves the new certificate"), "{err}");
    assert_ne!(installed_serial(&out), old_serial);
    assert_eq!(status(&srv, &out)["rolled_back"], false);
}
