//! The order journal: a renewal survives a power cut or SIGKILL at any step
//! and is finished, not started over.
//!
//! Without it an interrupted renewal leaves an order on the server that
//! already `replaces` the installed certificate (RFC 9773 §5); every later
//! newOrder with `replaces` is refused with `alreadyReplaced` until that order
//! expires, and a certificate issued but not installed (full disk) is lost.
//!
//! The journal lives in the state file (no extra file to write) and records:
//! - [`Step::Ordering`]: the new certificate key and the names, stored
//!   *before* newOrder;
//! - [`Step::Ordered`]: the order URL, stored as soon as the server gives it;
//! - [`Step::Staged`]: the downloaded set is durable in a version directory
//!   (`install::stage`) that `current` does not point at yet; stored before
//!   the swap, together with `reload_pending`.
//!
//! The steps between (challenges answered, finalized, downloaded) are not
//! stored: the order object on the server says where it stands
//! (`Session::complete` picks up from any status), and every stored step
//! costs two fsyncs of flash. Per renewal the state file is written three
//! times (four with a reload command or a health check, to clear
//! `reload_pending`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::acme::Session;
use crate::challenge::Responders;
use crate::config::Settings;
use crate::error::{AgentError, Result};
use crate::install::{self, CertSet};
use crate::keys;
use crate::log;
use crate::schedule::CertInfo;
use crate::state::State;

/// How far the renewal in flight got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Key made; newOrder may or may not have reached the server.
    Ordering,
    /// The order exists at `order_url`.
    Ordered,
    /// The certificate is in version directory `version`, not yet (or no
    /// longer, after a rollback) in use.
    Staged,
}

/// The renewal in flight.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Step reached.
    pub step: Step,
    /// The names ordered (lower case, as in the CSR).
    pub names: Vec<String>,
    /// The new certificate key (PKCS#8 PEM) until the set is staged; the
    /// state file is written 0600 like key.pem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pem: Option<String>,
    /// The order URL once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_url: Option<String>,
    /// The staged version directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The version in use when staging, to go back to if the new one fails
    /// its health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<u64>,
    /// The certificate profile (draft-aaron-acme-profiles) the order was
    /// placed with: an order is resumed only under the same `--profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The install was already reported (exit 24, reload failed): finishing
    /// its reload later is not a new renewal (exit 0, not 10).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reported: bool,
}

impl fmt::Debug for Journal {
    // By hand so that the key never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("step", &self.step)
            .field("names", &self.names)
            .field("order_url", &self.order_url)
            .field("version", &self.version)
            .field("previous", &self.previous)
            .field("profile", &self.profile)
            .field("reported", &self.reported)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Whether an order is in flight (not yet staged).
    pub fn in_flight(&self) -> bool {
        matches!(self.step, Step::Ordering | Step::Ordered)
    }
}

fn same_names(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

/// The ACME problem type of a server error (`urn:ietf:params:acme:error:<t>`
/// gives `<t>`), as `http::server_error` puts it at the head of `detail`.
fn problem(e: &AgentError) -> Option<&str> {
    match e {
        AgentError::Server { detail, .. } => detail
            .strip_prefix("urn:ietf:params:acme:error:")?
            .split(':')
            .next(),
        _ => None,
    }
}

/// Whether a failed `complete` means the journaled order cannot finish (it
/// is invalid, gone, or gave an unusable certificate) so the next attempt
/// must order again. Network errors, timeouts and 5xx keep it.
fn order_is_dead(e: &AgentError) -> bool {
    match e {
        AgentError::Challenge(_) => true,
        // No HTTP status: the order's own state (invalid, no certificate
        // URL, not a PEM chain, a certificate for another key).
        AgentError::Server { status: None, .. } => true,
        AgentError::Server {
            status: Some(s), ..
        } => (400..500).contains(s) && problem(e) != Some("rateLimited"),
        _ => false,
    }
}

/// What [`obtain_staged`] needs besides the session.
pub struct Request<'a> {
    /// The names to certify.
    pub names: &'a [String],
    /// ARI certID of the installed certificate, if the server has ARI and
    /// the names still overlap it.
    pub replaces: Option<String>,
    /// The key of the installed certificate, to reuse (`--reuse-key`); a
    /// new key is made otherwise.
    pub reuse: Option<String>,
}

/// Obtains a certificate and stages it (durable, not in use), resuming the
/// journaled order when there is one for the same names. On return the
/// journal is at [`Step::Staged`] and stored; `rollback::finish` swaps it in.
pub fn obtain_staged(
    settings: &Settings,
    session: &mut Session,
    responders: &mut Responders<'_>,
    state: &mut State,
    req: Request<'_>,
) -> Result<CertInfo> {
    let state_dir = settings.state_dir()?;
    let out_dir = settings.out_dir()?;
    let resumed = state.journal.take().filter(|j| {
        j.in_flight()
            && same_names(&j.names, req.names)
            && j.profile == settings.profile
            && j.key_pem
                .as_deref()
                .is_some_and(|k| keys::parse_cert_key(k).is_ok())
    });
    let was_resumed = resumed.is_some();
    let mut journal = match resumed {
        Some(j) => {
            log::info(format!(
                "resuming the interrupted renewal ({})",
                j.order_url.as_deref().unwrap_or("order not yet placed")
            ));
            j
        }
        None => {
            let key = match &req.reuse {
                Some(pem) => keys::parse_cert_key(pem)?,
                None => keys::generate_cert_key(settings.key_type.unwrap_or_default())?,
            };
            Journal {
                step: Step::Ordering,
                names: req.names.to_vec(),
                key_pem: Some(keys::cert_key_pem(&key)),
                order_url: None,
                version: None,
                previous: None,
                profile: settings.profile.clone(),
                reported: false,
            }
        }
    };
    let key_pem = journal.key_pem.clone().unwrap_or_default();
    let key = keys::parse_cert_key(&key_pem)?;
    if journal.step == Step::Ordering {
        state.journal = Some(journal.clone());
        state.store(&state_dir)?;
        let url = place_order(session, responders, req.names, req.replaces.as_deref())?;
        journal.order_url = Some(url);
        journal.step = Step::Ordered;
        state.journal = Some(journal.clone());
        state.store(&state_dir)?;
        install::test_pause("after-new-order");
    }
    let order_url = journal.order_url.clone().unwrap_or_default();
    let csr = keys::build_csr(&key, req.names)?;
    let fetched = session
        .complete(&order_url, &csr, responders, settings.order_timeout())
        .and_then(|pem| checked_set(&pem, &key, &order_url));
    let (set, info) = match fetched {
        Ok(v) => v,
        Err(e) if order_is_dead(&e) && was_resumed => {
            // The interrupted order died meanwhile (e.g. its challenge was
            // tried while the agent was down): this attempt orders afresh
            // instead of failing once more. No loop: the journal is gone.
            log::warn(format!(
                "interrupted order {order_url} cannot finish ({e}); ordering again"
            ));
            state.journal = None;
            state.store(&state_dir)?;
            return obtain_staged(settings, session, responders, state, req);
        }
        Err(e) => {
            state.journal = if order_is_dead(&e) {
                log::warn(format!(
                    "order {order_url} cannot finish; the next attempt orders again"
                ));
                None
            } else {
                Some(journal)
            };
            state.store(&state_dir)?;
            return Err(e);
        }
    };
    let previous = install::current_version(out_dir);
    let version = install::stage(out_dir, &set, &mut |step| {
        install::test_pause(step);
        Ok(())
    })?;
    journal.step = Step::Staged;
    journal.key_pem = None;
    journal.version = Some(version);
    journal.previous = previous;
    state.profile = journal.profile.clone();
    state.journal = Some(journal);
    state.revoked_serial = None;
    state.ari_window = None;
    state.ari_next_check = None;
    state.rolled_back = false;
    state.reload_pending = crate::rollback::post_install_steps(settings);
    if !state.reload_pending {
        // Nothing is left after the swap, so this is the last write of the
        // renewal (see the module doc).
        state.last_success = Some(crate::http::now_unix());
    }
    state.store(&state_dir)?;
    Ok(info)
}

/// The downloaded chain as a set, checked to certify `key`.
fn checked_set(pem: &str, key: &rcgen::KeyPair, url: &str) -> Result<(CertSet, CertInfo)> {
    let certs = keys::pem_certs(pem);
    let set = CertSet {
        key_pem: keys::cert_key_pem(key),
        cert_pem: certs
            .first()
            .map(|c| keys::pem_encode("CERTIFICATE", c))
            .unwrap_or_default(),
        chain_pem: certs
            .iter()
            .skip(1)
            .map(|c| keys::pem_encode("CERTIFICATE", c))
            .collect(),
    };
    // No HTTP status: `order_is_dead` then orders again.
    let info = set.leaf().map_err(|e| AgentError::Server {
        url: url.to_owned(),
        status: None,
        detail: format!("unusable certificate chain: {e}"),
    })?;
    Ok((set, info))
}

/// newOrder with `replaces`, and what to do when the server refuses it:
/// - `alreadyReplaced` (another order already replaces the certificate: one
///   whose journal was lost): finish that order if the account's orders
///   list shows it still open, else order without `replaces`;
/// - `malformed` (e.g. the names no longer overlap the certificate's) or
///   `unauthorized` (the certificate is another account's): order without
///   `replaces`.
///
/// Ordering without `replaces` loses only the ARI rate-limit exemption
/// (RFC 9773 §5); refusing to renew would lock the device out.
fn place_order(
    session: &mut Session,
    responders: &Responders<'_>,
    names: &[String],
    replaces: Option<&str>,
) -> Result<String> {
    let Some(replaces) = replaces else {
        return session.new_order(names, responders, None);
    };
    match session.new_order(names, responders, Some(replaces)) {
        Ok(url) => Ok(url),
        Err(e) if problem(&e) == Some("alreadyReplaced") => {
            log::warn(format!("{e}; looking for that order"));
            if let Some(url) = find_open_order(session, names)? {
                log::info(format!("finishing the open order {url}"));
                return Ok(url);
            }
            log::warn("no open order for these names; ordering without replaces");
            session.new_order(names, responders, None)
        }
        // `unauthorized`: the certificate belongs to another account (the
        // account key was lost and a new account made).
        Err(e) if matches!(problem(&e), Some("malformed" | "unauthorized")) => {
            log::warn(format!("{e}; ordering without replaces"));
            session.new_order(names, responders, None)
        }
        Err(e) => Err(e),
    }
}

/// How many orders of the account's list are read, newest first.
const MAX_ORDERS_SCANNED: usize = 20;
/// How many pages of the orders list are followed.
const MAX_ORDER_PAGES: usize = 10;

/// An order of this account for exactly `names` (and the `--profile`, if
/// one is set) that can still be finished
/// with a new CSR (pending, ready, or processing). A `valid` one cannot be
/// used: its certificate is for a key this device no longer has.
fn find_open_order(session: &mut Session, names: &[String]) -> Result<Option<String>> {
    let urls = session.list_orders_pages(MAX_ORDER_PAGES)?;
    for url in urls.iter().rev().take(MAX_ORDERS_SCANNED) {
        let Ok(order) = session.fetch_order(url) else {
            continue;
        };
        let ordered: Vec<String> = order
            .identifiers
            .iter()
            .filter(|i| i.r#type == "dns" || i.r#type == "ip")
            .map(|i| i.value.to_ascii_lowercase())
            .collect();
        // Under `--profile`, only an order for that profile (one placed
        // before the profile was changed would certify the old one).
        let profile_ok = session.profile.is_none() || order.profile == session.profile;
        if same_names(&ordered, names)
            && profile_ok
            && matches!(order.status.as_str(), "pending" | "ready" | "processing")
        {
            return Ok(Some(url.clone()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status: Option<u16>, detail: &str) -> AgentError {
        AgentError::Server {
            url: "u".into(),
            status,
            detail: detail.into(),
        }
    }

    #[test]
    fn problem_types() {
        let e = server(
            Some(409),
            "urn:ietf:params:acme:error:alreadyReplaced: this certificate has already been replaced",
        );
        assert_eq!(problem(&e), Some("alreadyReplaced"));
        assert_eq!(problem(&server(Some(500), "unexpected response")), None);
        assert!(order_is_dead(&server(
            Some(404),
            "urn:ietf:params:acme:error:malformed: x"
        )));
        assert!(!order_is_dead(&server(Some(503), "x")));
        assert!(!order_is_dead(&server(
            Some(429),
            "urn:ietf:params:acme:error:rateLimited: slow down"
        )));
        assert!(order_is_dead(&server(None, "order is invalid")));
        assert!(!order_is_dead(&AgentError::Timeout("t".into())));
    }

    #[test]
    fn journal_debug_hides_the_key() {
        let j = Journal {
            step: Step::Ordering,
            names: vec!["a.example".into()],
            key_pem: Some("-----BEGIN PRIVATE KEY-----secret".into()),
            order_url: None,
            version: None,
            previous: None,
            profile: None,
            reported: false,
        };
        assert!(!format!("{j:?}").contains("secret"));
        let back: Journal = serde_json::from_str(&serde_json::to_string(&j).unwrap()).unwrap();
        assert_eq!(back, j);
    }
}
