//! The agent's state: one small JSON file in the state dir, written
//! atomically and only when it changes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{AgentError, Result};
use crate::fsutil;

/// Persistent state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Directory URL the account belongs to.
    pub directory: Option<String>,
    /// Account URL (the JWS `kid`).
    pub account_url: Option<String>,
    /// The reload command still has to succeed for the installed version.
    pub reload_pending: bool,
    /// Consecutive failures (for backoff).
    pub failures: u32,
    /// Next attempt (Unix seconds), as last scheduled.
    pub next_attempt: Option<i64>,
    /// Last error, short.
    pub last_error: Option<String>,
    /// Serial (hex) of a certificate this agent revoked.
    pub revoked_serial: Option<String>,
    /// ARI suggested window for the installed certificate (Unix seconds).
    pub ari_window: Option<(i64, i64)>,
    /// When to fetch renewalInfo again (its Retry-After, RFC 9773 §4.3.2).
    pub ari_next_check: Option<i64>,
    /// Which clock the last schedule was made with ("local clock",
    /// "server time" or "certificate notBefore").
    pub schedule_clock: Option<String>,
    /// Seconds added to the local clock for that schedule.
    pub schedule_skew: Option<i64>,
    /// The newest `Date` the server sent (Unix seconds): part of the trusted
    /// time floor for TLS certificate checks (see `tls.rs`).
    pub last_server_date: Option<i64>,
    /// The server refused with Retry-After (429/503): not before this time
    /// (Unix seconds) does a one-shot `renew` contact it again, unless forced.
    pub retry_not_before: Option<i64>,
    /// The certificate profile (draft-aaron-acme-profiles) the installed
    /// certificate was ordered with.
    pub profile: Option<String>,
    /// The renewal in flight (see `journal.rs`): resumed after a restart.
    pub journal: Option<crate::journal::Journal>,
    /// The last staged certificate failed its health check and the previous
    /// one was put back (see `rollback.rs`).
    pub rolled_back: bool,
    /// When a certificate was last installed or a run of failures ended
    /// (Unix seconds). A no-op check does not refresh it: that would
    /// rewrite the state file on every check (flash wear).
    pub last_success: Option<i64>,
    /// Set when the file on disk was unreadable and this state was rebuilt
    /// (never stored).
    #[serde(skip)]
    pub rebuilt: bool,
}

/// Where the state file lives.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("state.json")
}

impl State {
    /// Loads the state (missing file: default state). A file that does not
    /// parse (torn by a broken flash, edited by hand) is not fatal: the state
    /// is rebuilt from what is on disk (the account is found again with the
    /// account key, the certificate is read from the out-dir) and `rebuilt`
    /// is set; the next store replaces the file.
    pub fn load(state_dir: &Path) -> Result<State> {
        let p = path(state_dir);
        match std::fs::read(&p) {
            Ok(b) => Ok(serde_json::from_slice(&b).unwrap_or_else(|e| {
                crate::log::warn(format!(
                    "{}: unreadable ({e}); rebuilding the state",
                    p.display()
                ));
                State {
                    rebuilt: true,
                    ..State::default()
                }
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(AgentError::io(&p, e)),
        }
    }

    /// Stores the state if it changed.
    pub fn store(&self, state_dir: &Path) -> Result<()> {
        fsutil::create_dir_private(state_dir)?;
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| AgentError::Key(e.to_string()))?;
        fsutil::write_if_changed(&path(state_dir), &bytes, 0o600)?;
        Ok(())
    }
}
