//! Checked install with rollback: the staged version is swapped in, the
//! service reloaded and, optionally, checked (`--check-cmd`, `--check-tls`);
//! if the check fails the previous version is swapped back and the service
//! reloaded again, so a certificate the service cannot use never stays in
//! place. The failed version stays staged and the next attempt retries it.
//!
//! `reload_pending` is stored with the staged journal step *before* the
//! swap (`journal::obtain_staged`), so a crash right after the swap still
//! reloads on the next run instead of leaving the old certificate in the
//! service's memory.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::config::Settings;
use crate::error::{AgentError, Result};
use crate::http::now_unix;
use crate::install;
use crate::journal::Step;
use crate::keys;
use crate::log;
use crate::schedule::CertInfo;
use crate::state::State;

/// How long `--check-tls` keeps trying for the new certificate: a reloaded
/// service may take a moment to serve it.
const CHECK_TLS_WINDOW: Duration = Duration::from_secs(10);

/// Whether anything runs after the swap (then `reload_pending` is set).
pub fn post_install_steps(settings: &Settings) -> bool {
    settings.reload_cmd.is_some() || settings.check_cmd.is_some() || settings.check_tls.is_some()
}

/// Finishes what an earlier install left: swaps in a staged version that is
/// not in use (interrupted before the swap, or rolled back last time), and
/// runs the pending reload and health check. Returns whether a renewal was
/// completed now (to report with exit 10): not when only the reload of an
/// install already reported (exit 24) was retried. Needs no network.
/// `just_issued`: the staged set was downloaded in this run, so it is not
/// checked for expiry against the local clock (which may run ahead, see
/// `tls.rs`).
pub fn finish(settings: &Settings, state: &mut State, just_issued: bool) -> Result<bool> {
    let out = settings.out_dir()?;
    let state_dir = settings.state_dir()?;
    let staged = state
        .journal
        .as_ref()
        .filter(|j| j.step == Step::Staged)
        .and_then(|j| Some((j.version?, j.previous)));
    let current = install::current_version(out);
    let Some((n, previous)) = staged else {
        // A state file from before the journal, or rebuilt: reload only.
        if state.reload_pending {
            reload(settings)?;
            state.reload_pending = false;
            state.store(&state_dir)?;
        }
        return Ok(false);
    };
    if current == Some(n) && !state.reload_pending {
        return Ok(false);
    }
    let Some(info) = usable(state, out, n, just_issued) else {
        log::warn(format!("staged version {n} is unusable; dropping it"));
        state.journal = None;
        state.rolled_back = false;
        state.store(&state_dir)?;
        return Ok(false);
    };
    // The version to go back to: the one in use now, or the one in use
    // when staging (after a crash right after the swap).
    let back = current.filter(|c| *c != n).or(previous);
    if current != Some(n) {
        // Retrying a rolled-back version, or one a crash left staged: its
        // reload and check are pending again, stored before the swap.
        let pending = post_install_steps(settings);
        if state.reload_pending != pending || state.rolled_back {
            state.reload_pending = pending;
            state.rolled_back = false;
            state.store(&state_dir)?;
        }
        install::activate(out, n, back, &mut |step| {
            install::test_pause(step);
            Ok(())
        })?;
        log::info(format!(
            "installed certificate for {} (notAfter {})",
            info.names.join(","),
            crate::schedule::fmt_time(info.not_after)
        ));
    }
    install::test_pause("after-swap");
    let swapped = current != Some(n);
    if !state.reload_pending {
        return Ok(true);
    }
    if let Err(e) = reload(settings) {
        if let Some(j) = state.journal.as_mut().filter(|j| !j.reported) {
            j.reported = true;
            state.store(&state_dir)?;
        }
        return Err(e);
    }
    let reported = state.journal.as_ref().is_some_and(|j| j.reported);
    match check(settings, out, n) {
        Ok(()) => {
            state.reload_pending = false;
            state.rolled_back = false;
            state.journal = None;
            state.last_success = Some(now_unix());
            state.store(&state_dir)?;
            Ok(swapped || !reported)
        }
        Err(why) => {
            let Some(p) = back.filter(|p| install::read_version(out, *p).is_some()) else {
                // First install: nothing to go back to, and a certificate
                // the check dislikes beats none.
                state.reload_pending = false;
                state.journal = None;
                state.store(&state_dir)?;
                return Err(AgentError::Check(format!(
                    "{why}; no previous certificate to go back to"
                )));
            };
            install::activate(out, p, Some(n), &mut |_| Ok(()))?;
            log::error(format!(
                "health check failed ({why}); rolled back to the previous certificate"
            ));
            if let Err(e) = reload(settings) {
                log::error(format!("reload after the rollback: {e}"));
            }
            state.reload_pending = false;
            state.rolled_back = true;
            state.store(&state_dir)?;
            Err(AgentError::Check(format!(
                "{why}; rolled back, the new certificate stays staged for the next attempt"
            )))
        }
    }
}

/// The staged version's leaf, if the set is complete, matches its key and
/// has not expired (an expired staged certificate is not worth retrying;
/// the local clock is corrected as for `status`).
fn usable(state: &State, out: &std::path::Path, n: u64, just_issued: bool) -> Option<CertInfo> {
    let info = install::read_version(out, n)?.leaf().ok()?;
    (just_issued || info.not_after > crate::commands::offline_now(state, Some(&info)).0)
        .then_some(info)
}

/// Runs a hook command with `--hook-timeout` (see `hooks.rs`: one that runs
/// over is killed with its process group and counts as failed); the reason
/// on failure.
fn run_hook(settings: &Settings, cmd: &str) -> std::result::Result<(), String> {
    match crate::hooks::run(
        cmd,
        &[],
        settings.hook_timeout(),
        crate::hooks::Output::Inherit,
    ) {
        Ok(r) if r.success() => Ok(()),
        Ok(r) => Err(format!("`{cmd}` {}", r.describe())),
        Err(e) => Err(format!("`{cmd}`: {e}")),
    }
}

/// Runs the reload command (if any).
fn reload(settings: &Settings) -> Result<()> {
    let Some(cmd) = settings.reload_cmd.as_deref() else {
        return Ok(());
    };
    run_hook(settings, cmd).map_err(|why| AgentError::Reload(format!("{why}; will retry")))?;
    log::info("reload command succeeded");
    Ok(())
}

/// Runs the configured health checks for version `n`; the reason on failure.
fn check(settings: &Settings, out: &std::path::Path, n: u64) -> std::result::Result<(), String> {
    if let Some(cmd) = settings.check_cmd.as_deref() {
        run_hook(settings, cmd)?;
        log::info("health check command succeeded");
    }
    if let Some(addr) = settings.check_tls.as_deref() {
        let set = install::read_version(out, n).ok_or("the staged set is gone")?;
        let der = keys::pem_certs(&set.cert_pem)
            .into_iter()
            .next()
            .ok_or("the staged cert.pem holds no certificate")?;
        let names = CertInfo::parse(&der).map(|i| i.names).unwrap_or_default();
        let deadline = Instant::now() + CHECK_TLS_WINDOW;
        loop {
            let served = served_certificate(addr, names.first().map(String::as_str));
            match served {
                Ok(got) if got == der => {
                    log::info(format!("{addr} serves the new certificate"));
                    break;
                }
                _ if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(250));
                }
                Ok(_) => return Err(format!("{addr} does not serve the new certificate")),
                Err(e) => return Err(format!("{addr}: {e}")),
            }
        }
    }
    Ok(())
}

/// The end-entity certificate `addr` presents in a TLS handshake, sent
/// `name` as SNI. Nothing is trusted here: the only question is whether the
/// service presents the certificate just installed, and completing the
/// handshake (its signature is verified) proves it holds the key.
fn served_certificate(addr: &str, name: Option<&str>) -> std::result::Result<Vec<u8>, String> {
    let sock_addr = addr
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let sni = name
        .map(|n| n.trim_start_matches("*.").to_owned())
        .unwrap_or_else(|| host.trim_matches(['[', ']']).to_owned());
    let server_name = ServerName::try_from(sni).map_err(|e| e.to_string())?;
    let capture = Arc::new(Capture {
        seen: Mutex::new(None),
        provider: crate::http::crypto_provider(),
    });
    let config = ClientConfig::builder_with_provider(crate::http::crypto_provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let mut conn =
        ClientConnection::new(Arc::new(config), server_name).map_err(|e| e.to_string())?;
    let mut sock = TcpStream::connect_timeout(&sock_addr, Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let io_timeout = Some(Duration::from_secs(5));
    sock.set_read_timeout(io_timeout)
        .map_err(|e| e.to_string())?;
    sock.set_write_timeout(io_timeout)
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    // Close politely; the answer is already known.
    conn.send_close_notify();
    let _ = conn.write_tls(&mut sock);
    let _ = sock.flush();
    let _ = sock.read(&mut [0u8; 1]);
    let seen = capture
        .seen
        .lock()
        .map_err(|_| "lock poisoned")?
        .take()
        .ok_or("no certificate presented")?;
    Ok(seen)
}

/// A verifier that records the presented end-entity certificate and checks
/// only the handshake signature.
#[derive(Debug)]
struct Capture {
    seen: Mutex<Option<Vec<u8>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut g) = self.seen.lock() {
            *g = Some(end_entity.to_vec());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
