//! Multi-Perspective Issuance Corroboration (CA/B Forum BR §3.2.2.9).
//!
//! A primary VA (this node) decides a validation or a CAA check itself, then asks every
//! configured remote network perspective (`fleetca perspective`, see [`server`]) to make the
//! same check from its own network with its own DNS resolver, all in parallel and within one
//! time budget. The result stands only if the perspectives corroborate it as the BR quorum
//! ([`quorum`]) requires; a perspective that is down, slow or answers nonsense counts as
//! non-corroborating. Each attempt yields a [`Corroboration`]: the audit evidence (every
//! perspective's answer) that is stored with the authorization.
//!
//! The channel is HTTPS with mutual TLS (BR: "authenticated and encrypted"): the perspective
//! accepts only clients whose certificate chains to its `--client-ca`, and the primary trusts
//! only perspective certificates that chain to `[mpic] ca`.
//!
//! The API for other parts of the CA is on [`super::Va`]: `validate` and `check_caa` corroborate
//! on their own when perspectives are configured, `check_dns_txt` does a plain TXT check (a
//! parent-domain proof, say) the same way, and `corroborate` runs only the remote part of any
//! [`Check`].

pub mod quorum;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{ChallengeKind, Target, VaError, ValidationError, ValidationRequest};
pub use quorum::{QuorumRule, Rir};

/// The path every perspective serves.
pub const VALIDATE_PATH: &str = "/v1/validate";

/// Largest answer read from a perspective.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// `[mpic]` in `fleetca.toml`: the remote perspectives this CA's nodes ask, and the TLS
/// material they use to do so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MpicSection {
    /// Client certificate chain (PEM) the CA nodes present to perspectives.
    pub client_cert: PathBuf,
    /// Its private key (PEM, mode 0600).
    pub client_key: PathBuf,
    /// CA certificate(s) (PEM) perspective server certificates must chain to.
    pub ca: PathBuf,
    /// Seconds the primary waits for all perspectives together.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// The perspectives (`[[mpic.perspectives]]`).
    #[serde(default)]
    pub perspectives: Vec<PerspectiveEntry>,
}

fn default_timeout_secs() -> u64 {
    15
}

/// One remote network perspective.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerspectiveEntry {
    /// Its base URL (`https://host:port`).
    pub url: String,
    /// The RIR service region it (and its DNS resolver) is in.
    pub region: Rir,
}

/// What a perspective is asked to check (the JSON body of `POST /v1/validate`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Check {
    /// A challenge, then CAA for the method used (as [`super::Va::validate`]).
    Challenge {
        /// The identifier.
        identifier: Target,
        /// Whether the order asked for `*.` + the name.
        wildcard: bool,
        /// The challenge type.
        kind: ChallengeKind,
        /// The challenge token.
        token: String,
        /// The key authorization.
        key_authorization: String,
        /// Account URL (RFC 8657 `accounturi`).
        account_uri: String,
        /// The tenant's CAA identities.
        caa_identities: Vec<String>,
        /// The tenant's permitted subtrees (`--permit` syntax), the only hosts an http-01
        /// redirect may lead to.
        permitted: Vec<String>,
    },
    /// A CAA check alone (the finalize recheck, BR §3.2.2.8).
    Caa {
        /// The name (without `*.`).
        name: String,
        /// `issuewild` instead of `issue`.
        wildcard: bool,
        /// Account URL (RFC 8657 `accounturi`).
        account_uri: String,
        /// Validation method (RFC 8657 `validationmethods`).
        method: ChallengeKind,
        /// The tenant's CAA identities.
        caa_identities: Vec<String>,
    },
    /// A TXT record at `name` must hold exactly `expected`.
    DnsTxt {
        /// The record's owner name.
        name: String,
        /// The value.
        expected: String,
    },
}

impl Check {
    /// The remote form of a challenge validation.
    pub fn challenge(req: &ValidationRequest) -> Check {
        let mut permitted: Vec<String> = req.permitted.dns.iter().map(|d| d.to_string()).collect();
        permitted.extend(req.permitted.ip.iter().map(|n| n.to_string()));
        Check::Challenge {
            identifier: req.target.clone(),
            wildcard: req.wildcard,
            kind: req.kind,
            token: req.token.clone(),
            key_authorization: req.key_authorization.clone(),
            account_uri: req.account_uri.clone(),
            caa_identities: req.caa_identities.clone(),
            permitted,
        }
    }

    /// Short description for evidence and logs (no secrets: the key authorization is public).
    pub fn describe(&self) -> String {
        match self {
            Check::Challenge {
                identifier,
                wildcard,
                kind,
                ..
            } => format!(
                "{kind} for {}{identifier}",
                if *wildcard { "*." } else { "" }
            ),
            Check::Caa { name, wildcard, .. } => {
                format!("CAA for {}{name}", if *wildcard { "*." } else { "" })
            }
            Check::DnsTxt { name, .. } => format!("TXT at {name}"),
        }
    }
}

/// A perspective's answer (the JSON response of `POST /v1/validate`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The region the perspective says it is in.
    pub region: Rir,
    /// Whether the check passed there.
    pub pass: bool,
    /// On failure: the ACME problem type short name (`dns`, `caa`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// On failure: the perspective's own fixed-text reason (never remote content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One perspective's part in a [`Corroboration`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerspectiveResult {
    /// Its position in `[[mpic.perspectives]]`, from 1 (how problems name it).
    pub index: usize,
    /// Its configured URL.
    pub url: String,
    /// Its configured region.
    pub region: Rir,
    /// Whether it corroborated the primary's determination.
    pub corroborates: bool,
    /// The ACME problem type it reported, or `connection` when it gave no usable answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Why it did not corroborate (its reason, or why there was no answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long it took, in milliseconds.
    pub millis: u64,
}

/// The evidence of one corroboration attempt, kept with the authorization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Corroboration {
    /// What was checked ([`Check::describe`]).
    pub check: String,
    /// When (UNIX seconds).
    pub at: i64,
    /// Non-corroborating perspectives the rule allowed.
    pub max_non_corroborating: usize,
    /// RIR regions the corroborating perspectives had to span.
    pub min_regions: usize,
    /// Whether the quorum was met.
    pub corroborated: bool,
    /// Why not, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Every perspective's answer, in configuration order.
    pub perspectives: Vec<PerspectiveResult>,
}

impl Corroboration {
    /// The problem an ACME client sees when the quorum was not met: the most common problem
    /// type among the dissenters, naming which perspectives (number and region) disagreed and
    /// how, never what they saw.
    pub fn to_error(&self) -> ValidationError {
        let dissent: Vec<&PerspectiveResult> = self
            .perspectives
            .iter()
            .filter(|p| !p.corroborates)
            .collect();
        let mut kinds: Vec<(&str, usize)> = Vec::new();
        for p in &dissent {
            let k = p.problem.as_deref().unwrap_or("connection");
            match kinds.iter_mut().find(|(n, _)| *n == k) {
                Some((_, c)) => *c += 1,
                None => kinds.push((k, 1)),
            }
        }
        let top = kinds
            .iter()
            .max_by_key(|(_, c)| *c)
            .map_or("connection", |(k, _)| *k);
        let who: Vec<String> = dissent
            .iter()
            .map(|p| {
                format!(
                    "perspective {} ({}): {}",
                    p.index,
                    p.region,
                    p.problem.as_deref().unwrap_or("connection")
                )
            })
            .collect();
        let detail = format!(
            "{}: the primary validation succeeded but {}; did not corroborate: {}",
            self.check,
            self.failure.as_deref().unwrap_or("the quorum was not met"),
            who.join(", ")
        );
        error_of_kind(top, detail)
    }
}

/// The [`ValidationError`] for an ACME problem short name (unknown names: `connection`).
fn error_of_kind(kind: &str, detail: String) -> ValidationError {
    match kind {
        "dns" => ValidationError::Dns(detail),
        "incorrectResponse" => ValidationError::IncorrectResponse(detail),
        "unauthorized" => ValidationError::Unauthorized(detail),
        "tls" => ValidationError::Tls(detail),
        "caa" => ValidationError::Caa(detail),
        "malformed" => ValidationError::Malformed(detail),
        _ => ValidationError::Connection(detail),
    }
}

/// The known problem short names; anything else a perspective reports is recorded as this.
fn known_problem(kind: &str) -> String {
    const KNOWN: [&str; 7] = [
        "dns",
        "connection",
        "incorrectResponse",
        "unauthorized",
        "tls",
        "caa",
        "malformed",
    ];
    if KNOWN.contains(&kind) {
        kind.to_string()
    } else {
        "serverInternal".to_string()
    }
}

/// The configured perspectives and the mutual-TLS client that asks them. Cheap to share.
pub struct Perspectives {
    entries: Vec<PerspectiveEntry>,
    http: reqwest::Client,
    timeout: Duration,
}

impl std::fmt::Debug for Perspectives {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Perspectives")
            .field("entries", &self.entries)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Perspectives {
    /// Builds the client from `[mpic]`; relative paths are under `base` (the data directory).
    pub fn from_config(section: &MpicSection, base: &Path) -> Result<Perspectives, VaError> {
        let path = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let certs = read_certs(&path(&section.client_cert))?;
        let key = read_key(&path(&section.client_key))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in read_certs(&path(&section.ca))? {
            roots
                .add(c)
                .map_err(|e| VaError::Tls(format!("[mpic] ca: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| VaError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| VaError::Tls(format!("[mpic] client certificate and key: {e}")))?;
        let timeout = Duration::from_secs(section.timeout_secs.max(1));
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .no_proxy()
            .timeout(timeout)
            .build()
            .map_err(|e| VaError::Tls(e.to_string()))?;
        for p in &section.perspectives {
            let u = url::Url::parse(&p.url)
                .map_err(|e| VaError::Tls(format!("[mpic] perspective url {:?}: {e}", p.url)))?;
            if u.scheme() != "https" {
                return Err(VaError::Tls(format!(
                    "[mpic] perspective url {:?} must be https (BR 3.2.2.9: authenticated and \
                     encrypted)",
                    p.url
                )));
            }
        }
        Ok(Perspectives {
            entries: section.perspectives.clone(),
            http,
            timeout,
        })
    }

    /// How many perspectives are configured.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Asks every perspective to make `check` and applies the quorum rule in force today.
    pub async fn corroborate(&self, check: &Check) -> Corroboration {
        let now = time::OffsetDateTime::now_utc();
        let rule = QuorumRule::for_day(self.entries.len(), now.date());
        let mut tasks = tokio::task::JoinSet::new();
        for (i, entry) in self.entries.iter().enumerate() {
            let http = self.http.clone();
            let entry = entry.clone();
            let check = check.clone();
            let budget = self.timeout;
            tasks.spawn(async move {
                let started = Instant::now();
                let outcome = tokio::time::timeout(budget, ask(&http, &entry, &check))
                    .await
                    .unwrap_or_else(|_| Err(format!("no answer within {}s", budget.as_secs())));
                let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                (i, entry, outcome, millis)
            });
        }
        let mut results = Vec::with_capacity(self.entries.len());
        while let Some(joined) = tasks.join_next().await {
            let Ok((i, entry, outcome, millis)) = joined else {
                continue;
            };
            let (corroborates, problem, reason) = match outcome {
                Ok(a) if a.region != entry.region => (
                    false,
                    Some("serverInternal".to_string()),
                    Some(format!(
                        "reports region {} but is configured as {}",
                        a.region, entry.region
                    )),
                ),
                Ok(a) if a.pass => (true, None, None),
                Ok(a) => (
                    false,
                    Some(known_problem(a.problem.as_deref().unwrap_or(""))),
                    a.reason.map(|r| super::truncate(&r, 300)),
                ),
                Err(why) => (false, Some("connection".to_string()), Some(why)),
            };
            results.push(PerspectiveResult {
                index: i + 1,
                url: entry.url.clone(),
                region: entry.region,
                corroborates,
                problem,
                reason,
                millis,
            });
        }
        // A task that panicked left no result: it did not corroborate.
        for (i, entry) in self.entries.iter().enumerate() {
            if !results.iter().any(|r| r.index == i + 1) {
                results.push(PerspectiveResult {
                    index: i + 1,
                    url: entry.url.clone(),
                    region: entry.region,
                    corroborates: false,
                    problem: Some("serverInternal".into()),
                    reason: Some("the request task failed".into()),
                    millis: 0,
                });
            }
        }
        results.sort_by_key(|r| r.index);
        let answers: Vec<(Rir, bool)> =
            results.iter().map(|r| (r.region, r.corroborates)).collect();
        let verdict = quorum::evaluate(rule, &answers);
        let enforced = quorum::phase_on(now.date()).is_none_or(|p| p.enforced);
        let corroborated = verdict.is_ok() || !enforced;
        if let Err(f) = &verdict {
            tracing::warn!(check = %check.describe(), failure = %f, enforced, "multi-perspective corroboration failed");
        }
        Corroboration {
            check: check.describe(),
            at: now.unix_timestamp(),
            max_non_corroborating: rule.max_non_corroborating,
            min_regions: rule.min_regions,
            corroborated,
            failure: verdict.err().map(|f| f.to_string()),
            perspectives: results,
        }
    }
}

/// One request to one perspective; the error is a fixed description (no remote content).
async fn ask(
    http: &reqwest::Client,
    entry: &PerspectiveEntry,
    check: &Check,
) -> Result<Answer, String> {
    let url = format!("{}{VALIDATE_PATH}", entry.url.trim_end_matches('/'));
    let resp = http.post(&url).json(check).send().await.map_err(|e| {
        if e.is_timeout() {
            "no answer in time".to_string()
        } else if e.is_connect() {
            "could not connect (or the TLS handshake failed)".to_string()
        } else {
            "the request failed".to_string()
        }
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("answered HTTP {}", status.as_u16()));
    }
    let mut resp = resp;
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|_| "the answer was cut off".to_string())?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err("the answer is too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|_| "the answer is not a perspective answer".into())
}

pub(crate) fn read_certs(
    path: &Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, VaError> {
    let text = std::fs::read(path)
        .map_err(|e| VaError::Tls(format!("reading {}: {e}", path.display())))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut text.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| VaError::Tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(VaError::Tls(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

pub(crate) fn read_key(path: &Path) -> Result<rustls_pki_types::PrivateKeyDer<'static>, VaError> {
    let text = std::fs::read(path)
        .map_err(|e| VaError::Tls(format!("reading {}: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut text.as_slice())
        .map_err(|e| VaError::Tls(format!("{}: {e}", path.display())))?
        .ok_or_else(|| VaError::Tls(format!("{} holds no PEM private key", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(index: usize, region: Rir, problem: Option<&str>) -> PerspectiveResult {
        PerspectiveResult {
            index,
            url: format!("https://10.9.8.{index}:8444"),
            region,
            corroborates: problem.is_none(),
            problem: problem.map(str::to_string),
            reason: problem.map(|_| "TXT value hijacked-secret-value seen".to_string()),
            millis: 1,
        }
    }

    #[test]
    fn problem_names_dissenters_by_number_and_region_only() {
        let ev = Corroboration {
            check: "dns-01 for a.example".into(),
            at: 0,
            max_non_corroborating: 1,
            min_regions: 2,
            corroborated: false,
            failure: Some("2 remote network perspective(s) did not corroborate".into()),
            perspectives: vec![
                result(1, Rir::Arin, None),
                result(2, Rir::Ripe, Some("caa")),
                result(3, Rir::Apnic, Some("caa")),
                result(4, Rir::Arin, Some("connection")),
            ],
        };
        let e = ev.to_error();
        assert_eq!(e.acme_type(), "caa");
        let d = e.detail();
        assert!(d.contains("perspective 2 (RIPE): caa"), "{d}");
        assert!(d.contains("perspective 4 (ARIN): connection"), "{d}");
        assert!(!d.contains("perspective 1"), "{d}");
        assert!(!d.contains("10.9.8"), "{d}");
        assert!(!d.contains("hijacked"), "{d}");
    }

    #[test]
    fn unknown_problem_names_are_not_trusted() {
        assert_eq!(known_problem("caa"), "caa");
        assert_eq!(known_problem("<script>"), "serverInternal");
        assert!(matches!(
            error_of_kind("serverInternal", String::new()),
            ValidationError::Connection(_)
        ));
    }

    #[test]
    fn check_wire_format_is_stable() {
        let c = Check::DnsTxt {
            name: "_p.a.example".into(),
            expected: "v".into(),
        };
        let j = serde_json::to_value(&c).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"check": "dns-txt", "name": "_p.a.example", "expected": "v"})
        );
        assert!(serde_json::from_value::<Check>(serde_json::json!({"check": "shell"})).is_err());
        let a: Answer =
            serde_json::from_value(serde_json::json!({"region": "RIPE", "pass": true})).unwrap();
        assert_eq!(a.region, Rir::Ripe);
    }
}
