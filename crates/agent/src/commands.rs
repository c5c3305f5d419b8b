//! The subcommands: issue, renew, revoke, rotate-key, status, run.

use std::time::Duration;

use crate::acme::{fetch_renewal_info, Eab, Session};
use crate::challenge::Responders;
use crate::config::Settings;
use crate::error::{exit, AgentError, Result};
use crate::http::{now_unix, AcmeHttp};
use crate::install::{self, CertSet};
use crate::jitter::Jitter;
use crate::journal;
use crate::keys;
use crate::log;
use crate::outcome;
use crate::rollback;
use crate::schedule::{effective_now, fmt_time, CertInfo};
use crate::state::State;

/// The installed certificate, parsed. A set whose certificate does not
/// parse or does not match its key counts as not installed (with a
/// warning), so the agent issues a fresh one instead of stopping.
pub fn installed(settings: &Settings) -> Result<Option<(CertSet, CertInfo)>> {
    let Some(set) = install::read_current(settings.out_dir()?) else {
        return Ok(None);
    };
    match set.leaf() {
        Ok(info) => Ok(Some((set, info))),
        Err(e) => {
            log::warn(format!(
                "installed certificate unusable ({e}); a new one will be issued"
            ));
            Ok(None)
        }
    }
}

/// After an unreadable state file was rebuilt nobody knows whether a reload
/// was pending: reload once more (harmless) rather than leave the service
/// on an old certificate.
fn heal(settings: &Settings, state: &mut State) {
    if state.rebuilt && rollback::post_install_steps(settings) {
        state.reload_pending = true;
    }
}

fn domains(settings: &Settings, current: Option<&CertInfo>) -> Result<Vec<String>> {
    if !settings.domain.is_empty() {
        return Ok(settings
            .domain
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect());
    }
    match current {
        Some(c) if !c.names.is_empty() => Ok(c.names.clone()),
        _ => Err(AgentError::Config(
            "at least one --domain is required".into(),
        )),
    }
}

/// The time before which the local clock is certainly wrong: the newest of
/// the build time, the installed certificate's notBefore and the last server
/// `Date` seen. TLS certificates are never checked at an earlier time.
pub fn trusted_floor(state: &State, current: Option<&CertInfo>) -> i64 {
    crate::tls::build_time()
        .max(current.map_or(0, |c| c.not_before))
        .max(state.last_server_date.unwrap_or(0))
}

/// Connects and records the server's `Date` in `state` (stored with the
/// next `state.store`).
fn connect(
    settings: &Settings,
    state: &mut State,
    current: Option<&(CertSet, CertInfo)>,
) -> Result<AcmeHttp> {
    let floor = trusted_floor(state, current.map(|c| &c.1));
    let http = AcmeHttp::connect(
        settings.server_url()?,
        settings.server_root.as_deref(),
        floor,
    )?;
    if let Some(d) = http.server_date {
        // Moved only by a day or more: a no-op check must not rewrite the
        // state file (flash wear), and a floor a day old is as good.
        if state.last_server_date.is_none_or(|o| d >= o + 86_400) {
            state.last_server_date = Some(d);
        }
    }
    Ok(http)
}

/// draft-aaron-acme-profiles: a client names only a profile the directory
/// advertises in `meta.profiles`; a server that knows no profiles would
/// silently issue its default instead, so that is refused too.
fn check_profile(settings: &Settings, http: &AcmeHttp) -> Result<()> {
    let Some(want) = settings.profile.as_deref() else {
        return Ok(());
    };
    match http
        .directory
        .meta
        .as_ref()
        .and_then(|m| m.profiles.as_ref())
    {
        Some(p) if p.contains_key(want) => Ok(()),
        Some(p) => Err(AgentError::Config(format!(
            "--profile {want}: the server offers only {}",
            p.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
        ))),
        None => Err(AgentError::Config(format!(
            "--profile {want}: the server advertises no certificate profiles"
        ))),
    }
}

fn open_session(settings: &Settings, http: AcmeHttp, state: &mut State) -> Result<Session> {
    check_profile(settings, &http)?;
    let state_dir = settings.state_dir()?;
    let (key, _) = keys::load_or_create_account_key(&state_dir, settings.account_key_type())?;
    let eab = match (&settings.eab_kid, &settings.eab_hmac_key_file) {
        (Some(kid), Some(file)) => {
            let text = std::fs::read_to_string(file).map_err(|e| AgentError::io(file, e))?;
            let hmac_key = acme_types::b64::decode(text.trim()).map_err(|_| {
                AgentError::Config(format!("{}: EAB HMAC key is not base64url", file.display()))
            })?;
            Some(Eab {
                kid: kid.clone(),
                hmac_key,
            })
        }
        (None, None) => None,
        _ => {
            return Err(AgentError::Config(
                "--eab-kid and --eab-hmac-key-file go together".into(),
            ))
        }
    };
    let directory = http.directory_url.clone();
    let mut session = Session::open(http, key, settings.contact.as_deref(), eab.as_ref())?;
    session.profile = settings.profile.clone();
    state.directory = Some(directory);
    state.account_url = Some(session.kid.clone());
    Ok(session)
}

/// Obtains and installs a certificate. `fresh_key` makes a new certificate
/// key; otherwise the installed one is reused.
fn obtain_and_install(
    settings: &Settings,
    http: AcmeHttp,
    state: &mut State,
    current: Option<&(CertSet, CertInfo)>,
    fresh_key: bool,
) -> Result<()> {
    let names = domains(settings, current.map(|c| &c.1))?;
    let replaces = match (&http.directory.renewal_info, current) {
        (Some(_), Some((_, info))) => info.ari_cert_id(),
        _ => None,
    };
    let mut responders = Responders::new(settings)?;
    let mut session = open_session(settings, http, state)?;
    let reuse = match current {
        Some((set, _)) if !fresh_key => Some(set.key_pem.clone()),
        _ => None,
    };
    let request = journal::Request {
        names: &names,
        replaces,
        reuse,
    };
    journal::obtain_staged(settings, &mut session, &mut responders, state, request)?;
    drop(responders);
    rollback::finish(settings, state, true)?;
    Ok(())
}

/// `issue` / `rotate-key`: always obtains a new certificate with a new key.
pub fn issue(settings: &Settings) -> Result<i32> {
    let state_dir = settings.state_dir()?;
    let mut state = State::load(&state_dir)?;
    heal(settings, &mut state);
    // A staged certificate of an interrupted run is installed first: it is
    // already issued, and ordering another would waste it.
    if rollback::finish(settings, &mut state, false)? {
        return Ok(exit::RENEWED);
    }
    let current = installed(settings)?;
    let http = connect(settings, &mut state, current.as_ref())?;
    obtain_and_install(settings, http, &mut state, current.as_ref(), true)?;
    Ok(exit::RENEWED)
}

/// When the installed certificate is due, and why.
pub struct Due {
    /// Renewal time (Unix seconds).
    pub at: i64,
    /// "ari", "default" or "revoked".
    pub source: &'static str,
}

fn due_time(state: &State, info: &CertInfo, jitter: &Jitter) -> Due {
    let serial_hex: String = info.serial.iter().map(|b| format!("{b:02x}")).collect();
    if state.revoked_serial.as_deref() == Some(&serial_hex) {
        return Due {
            at: 0,
            source: "revoked",
        };
    }
    match state.ari_window {
        Some((s, e)) => Due {
            at: info.ari_renewal_time(s, e, jitter),
            source: "ari",
        },
        None => Due {
            at: info.default_renewal_time(jitter),
            source: "default",
        },
    }
}

/// `renew`: renews when due (or forced). Returns 0 or 10.
pub fn renew(settings: &Settings, force: bool) -> Result<i32> {
    renew_with(settings, force, !force)
}

/// The time for decisions made without contacting the server (`status`,
/// the saved waits of a one-shot `renew`): the local clock corrected by the
/// last session's offset when that lands nearer the last server `Date` than
/// the raw clock does (a clock years ahead stays corrected, so a valid
/// certificate does not show as expired; a clock fixed since is used as is).
pub fn offline_now(state: &State, cert: Option<&CertInfo>) -> (i64, crate::schedule::Clock) {
    let local = now_unix();
    let skew = match (state.schedule_skew, state.last_server_date) {
        (Some(s), Some(d)) if (local + s - d).abs() < (local - d).abs() => Some(s),
        _ => None,
    };
    effective_now(local, skew, cert)
}

/// The longest wait before asking renewalInfo again (a day).
const ARI_RECHECK_MAX: i64 = 86_400;

/// What a one-shot `renew` was told to wait for, checked before any
/// request: the server's Retry-After, and renewalInfo's next check (RFC 9773
/// §4.3.2) while the saved window is not open. `Some(exit code)` to stop.
fn saved_wait(
    settings: &Settings,
    state: &State,
    current: Option<&(CertSet, CertInfo)>,
) -> Result<Option<i32>> {
    // Both waits are bounded, so a clock stepped back since they were saved
    // (NTP fixing a clock that ran ahead) cannot stretch them.
    let local = now_unix();
    let pending = |t: i64, max: u64| local < t && t - local <= max as i64;
    if let Some(t) = state
        .retry_not_before
        .filter(|t| pending(*t, outcome::MAX_RETRY_AFTER))
    {
        let msg = format!(
            "the server asked not to be contacted before {} (Retry-After); not contacting it \
             (--force overrides)",
            fmt_time(t)
        );
        return match current {
            Some(_) => {
                log::info(msg);
                Ok(Some(exit::NOTHING_TO_DO))
            }
            None => Err(AgentError::Server {
                url: settings.server_url()?.to_owned(),
                status: None,
                detail: format!("no certificate installed and {msg}"),
            }),
        };
    }
    let (Some((_, info)), Some(check)) = (current, state.ari_next_check) else {
        return Ok(None);
    };
    // ari_next_check is on the clock of the schedule that saved it.
    let (now, _) = offline_now(state, Some(info));
    let due = due_time(state, info, &Jitter::existing(&settings.state_dir()?));
    if now < check && check - now <= ARI_RECHECK_MAX && now < due.at {
        log::info(format!(
            "not due until {} ({}); next renewalInfo check at {}",
            fmt_time(due.at),
            due.source,
            fmt_time(check)
        ));
        return Ok(Some(exit::NOTHING_TO_DO));
    }
    Ok(None)
}

/// `renew` with `honour_saved` (one-shot runs): stop early per `saved_wait`.
/// The daemon schedules its own waits and passes `false`.
pub fn renew_with(settings: &Settings, force: bool, honour_saved: bool) -> Result<i32> {
    let state_dir = settings.state_dir()?;
    let mut state = State::load(&state_dir)?;
    heal(settings, &mut state);
    // An interrupted renewal is finished before anything else, and with
    // --force too: it is the renewal asked for, so no second certificate.
    if rollback::finish(settings, &mut state, false)? {
        return Ok(exit::RENEWED);
    }
    let current = installed(settings)?;
    if honour_saved {
        if let Some(code) = saved_wait(settings, &state, current.as_ref())? {
            return Ok(code);
        }
    }
    let jitter = Jitter::for_device(&state_dir, settings.account_key_type())?;
    let mut http = connect(settings, &mut state, current.as_ref())?;
    state.retry_not_before = None;
    let Some(cur) = current.as_ref() else {
        log::info("no certificate installed; issuing");
        obtain_and_install(settings, http, &mut state, None, true)?;
        return Ok(exit::RENEWED);
    };
    if state.journal.as_ref().is_some_and(|j| j.in_flight()) {
        obtain_and_install(settings, http, &mut state, Some(cur), !settings.reuse_key)?;
        return Ok(exit::RENEWED);
    }
    let mut ari_retry = None;
    let window_before = state.ari_window;
    if let Some(id) = cur.1.ari_cert_id() {
        match fetch_renewal_info(&mut http, &id) {
            Ok(Some((s, e, retry))) => {
                state.ari_window = Some((s, e));
                ari_retry = Some(retry);
            }
            Ok(None) => state.ari_window = None,
            Err(AgentError::RetryLater { retry_after, error }) => {
                // RFC 9773 §4.3.3: on an error, retry after the Retry-After.
                ari_retry = Some(Some(retry_after));
                log::warn(format!("renewalInfo: {error}; using the saved schedule"));
            }
            Err(e) => log::warn(format!("renewalInfo: {e}; using the default schedule")),
        }
    }
    let local = now_unix();
    let (now, clock) = effective_now(local, http.clock_skew, Some(&cur.1));
    if let Some(n) = clock.note() {
        log::warn(n);
    }
    state.schedule_clock = Some(clock.label().to_owned());
    state.schedule_skew = Some(now - local);
    let due = due_time(&state, &cur.1, &jitter);
    if !force && now < due.at {
        // RFC 9773 §4.3.2: check renewalInfo again after its Retry-After
        // (default 6 h), kept between a minute and a day.
        // A next check still ahead for an unchanged window is kept:
        // recomputing it from `now` would rewrite the state file on every
        // check (flash wear).
        let keep =
            state.ari_window == window_before && state.ari_next_check.is_some_and(|c| c > now);
        if !keep {
            state.ari_next_check = ari_retry.map(|r| {
                let secs = r.map_or(6 * 3600, |d| d.as_secs().clamp(60, ARI_RECHECK_MAX as u64));
                now + secs as i64
            });
        }
        state.next_attempt = Some(state.ari_next_check.map_or(due.at, |c| c.min(due.at)));
        state.store(&state_dir)?;
        log::info(format!(
            "not due until {} ({})",
            fmt_time(due.at),
            due.source
        ));
        return Ok(exit::NOTHING_TO_DO);
    }
    obtain_and_install(settings, http, &mut state, Some(cur), !settings.reuse_key)?;
    Ok(exit::RENEWED)
}

/// `revoke`: revokes the installed certificate.
pub fn revoke(settings: &Settings, reason: Option<i64>) -> Result<i32> {
    let state_dir = settings.state_dir()?;
    let mut state = State::load(&state_dir)?;
    let cur = installed(settings)?
        .ok_or_else(|| AgentError::Config("no certificate installed".into()))?;
    let http = connect(settings, &mut state, Some(&cur))?;
    let (set, info) = cur;
    let mut session = open_session(settings, http, &mut state)?;
    let der = keys::pem_certs(&set.cert_pem).remove(0);
    session.revoke(&der, reason)?;
    state.revoked_serial = Some(info.serial.iter().map(|b| format!("{b:02x}")).collect());
    state.store(&state_dir)?;
    log::info("certificate revoked");
    Ok(exit::NOTHING_TO_DO)
}

/// `status`: prints names, expiry, renewal window and next attempt.
pub fn status(settings: &Settings) -> Result<i32> {
    let state_dir = settings.state_dir()?;
    let state = State::load(&state_dir)?;
    let current = installed(settings)?;
    let jitter = Jitter::existing(&state_dir);
    let (now, clock) = offline_now(&state, current.as_ref().map(|c| &c.1));
    let out = match &current {
        None => serde_json::json!({
            "installed": false,
            "next_attempt": state.next_attempt.map(fmt_time),
            "retry_not_before": state.retry_not_before.map(fmt_time),
            "profile": settings.profile,
        }),
        Some((_, info)) => {
            let due = due_time(&state, info, &jitter);
            serde_json::json!({
                "installed": true,
                "names": info.names,
                "not_before": fmt_time(info.not_before),
                "not_after": fmt_time(info.not_after),
                "expired": now >= info.not_after,
                "renewal_source": due.source,
                "renewal_window": state.ari_window.map(|(s, e)| [fmt_time(s), fmt_time(e)]),
                "renew_at": fmt_time(due.at),
                "next_attempt": fmt_time(state.next_attempt.unwrap_or(due.at)),
                "reload_pending": state.reload_pending,
                "revoked": due.source == "revoked",
                "next_ari_check": state.ari_next_check.map(fmt_time),
                "schedule_clock": state.schedule_clock,
                "clock_note": clock.note(),
                "retry_not_before": state.retry_not_before.map(fmt_time),
                "profile": state.profile,
            })
        }
    };
    let mut out = out;
    // Health, in every mode (one-shot commands record it too, see
    // `outcome.rs`).
    if let serde_json::Value::Object(m) = &mut out {
        m.insert("last_error".into(), serde_json::json!(state.last_error));
        m.insert(
            "consecutive_failures".into(),
            serde_json::json!(state.failures),
        );
        m.insert(
            "last_success".into(),
            serde_json::json!(state.last_success.map(fmt_time)),
        );
        m.insert("rolled_back".into(), serde_json::json!(state.rolled_back));
        m.insert(
            "renewal_in_progress".into(),
            serde_json::json!(state.journal.as_ref().and_then(|j| match j.step {
                journal::Step::Ordering => Some("ordering"),
                journal::Step::Ordered => Some("ordered"),
                journal::Step::Staged if state.rolled_back => Some("staged (rolled back)"),
                journal::Step::Staged => None,
            })),
        );
    }
    if settings.json {
        println!("{out}");
    } else if let serde_json::Value::Object(m) = &out {
        for (k, v) in m {
            if !v.is_null() {
                println!("{k}: {}", v.to_string().trim_matches('"'));
            }
        }
    }
    Ok(exit::NOTHING_TO_DO)
}

/// `run`: renews forever. The first attempt waits for the boot conditions
/// asked for and a per-device splay; failures back off exponentially with
/// per-device jitter up to a cap (or for the server's Retry-After),
/// whether or not the certificate is still valid.
pub fn run(settings: &Settings) -> Result<i32> {
    const BASE: u64 = 60;
    const CAP: u64 = 6 * 3600;
    let state_dir = settings.state_dir()?;
    // The daemon ends only on a usage error: a state dir it cannot write
    // yet (full disk) is retried by the first attempt like any local fault.
    let jitter = match Jitter::for_device(&state_dir, settings.account_key_type()) {
        Ok(j) => j,
        Err(e) if e.is_transient() => {
            log::warn(format!("{e}; start-up splay without the device seed"));
            Jitter::existing(&state_dir)
        }
        Err(e) => return Err(e),
    };
    crate::boot::before_first_attempt(settings, &jitter)?;
    loop {
        let result = renew_with(settings, false, false);
        if result.as_ref().is_err_and(|e| !e.is_transient()) {
            return result;
        }
        let mut st = State::load(&state_dir).unwrap_or_default();
        outcome::apply(&mut st, &result);
        let sleep = match &result {
            Ok(_) => {
                // next_attempt is on the clock the schedule was made with.
                let now = now_unix() + st.schedule_skew.unwrap_or(0);
                let next = st.next_attempt.unwrap_or(now + 3600);
                (next - now).clamp(60, 12 * 3600) as u64
            }
            Err(e) => {
                let now = now_unix();
                // Re-read: the account key may have been made (or remade)
                // since start-up.
                let jitter = Jitter::existing(&state_dir);
                let wait = match e {
                    AgentError::RetryLater { retry_after, .. } => jitter
                        .after_retry_after(outcome::retry_after_secs(*retry_after), st.failures),
                    _ => jitter.backoff(st.failures, BASE, CAP),
                };
                st.next_attempt = Some(now + wait as i64);
                log::error(format!(
                    "{e}; retrying in {wait}s (at {})",
                    fmt_time(now + wait as i64)
                ));
                wait
            }
        };
        // A full disk must not end the daemon: it retries anyway.
        if let Err(e) = st.store(&state_dir) {
            log::warn(format!("state: {e}"));
        }
        std::thread::sleep(Duration::from_secs(sleep));
    }
}
