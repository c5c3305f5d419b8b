//! Certificate Transparency logs of a tenant: configuration checks, `add-pre-chain`
//! submission (RFC 6962 §4.1) in parallel with a per-log timeout and hedging, verification of
//! each returned SCT, and the choice of SCTs that satisfies the browsers' CT policies.
//!
//! Policy (Chrome CT policy; Apple's is the same for these counts): SCTs from at least 2
//! distinct logs run by at least 2 distinct operators, 3 SCTs when the certificate's validity
//! exceeds 180 days. Only network I/O happens here; the RA decides what a shortfall means.

mod submit;

use crate::datadir::CtLogSection;
use base64::Engine;
use pki::ct::{LogKey, Sct};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

pub use submit::SubmitError;

/// Validity above which a certificate needs 3 SCTs instead of 2 (Chrome and Apple CT
/// policies: "lifetime of 180 days or less" needs 2).
pub const LONG_LIFETIME: Duration = Duration::from_secs(180 * 86400);

/// How many SCTs a certificate valid for `validity` (notAfter − notBefore + 1 s, RFC 5280
/// §4.1.2.5) needs.
pub fn scts_needed(validity: Duration) -> usize {
    if validity > LONG_LIFETIME {
        3
    } else {
        2
    }
}

/// One configured log.
#[derive(Debug)]
pub struct CtLog {
    /// The `add-pre-chain` endpoint.
    pub endpoint: String,
    /// The base URL as configured (the metrics label).
    pub url: String,
    /// Who runs it.
    pub operator: String,
    /// Its key (and id).
    pub key: LogKey,
}

/// Why a tenant's CT configuration was refused at load.
#[derive(Debug, thiserror::Error)]
#[error("[ca] ct_logs: {0}")]
pub struct ConfigError(String);

/// Checks `[ca] ct_logs` / `ct_required` against the policy for the tenant's longest
/// certificate validity, and parses the logs. `Ok(None)`: this tenant does not use CT.
pub fn logs_from_config(
    logs: &[CtLogSection],
    required: bool,
    longest_validity: Duration,
) -> Result<Option<Vec<CtLog>>, ConfigError> {
    let mut parsed: Vec<CtLog> = Vec::new();
    for (i, l) in logs.iter().enumerate() {
        let what = format!("log {} ({})", i + 1, l.url);
        let url = url::Url::parse(&l.url).map_err(|e| ConfigError(format!("{what}: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
            return Err(ConfigError(format!("{what}: not an http(s) URL")));
        }
        if l.operator.trim().is_empty() {
            return Err(ConfigError(format!("{what}: operator is empty")));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(l.public_key.trim())
            .map_err(|e| ConfigError(format!("{what}: public_key is not base64: {e}")))?;
        let key = LogKey::from_spki_der(&der)
            .map_err(|e| ConfigError(format!("{what}: public_key: {e}")))?;
        if parsed.iter().any(|p| p.key.id() == key.id()) {
            return Err(ConfigError(format!("{what}: the same key as another log")));
        }
        let endpoint = format!("{}/ct/v1/add-pre-chain", l.url.trim_end_matches('/'));
        parsed.push(CtLog {
            endpoint,
            url: l.url.clone(),
            operator: l.operator.trim().to_string(),
            key,
        });
    }
    if !required {
        return Ok(None);
    }
    let operators: BTreeSet<&str> = parsed.iter().map(|l| l.operator.as_str()).collect();
    if parsed.len() < 2 || operators.len() < 2 {
        return Err(ConfigError(format!(
            "ct_required needs at least 2 logs from at least 2 operators (Chrome and Apple CT \
             policies); {} log(s) from {} operator(s) configured",
            parsed.len(),
            operators.len()
        )));
    }
    let needed = scts_needed(longest_validity);
    if parsed.len() < needed {
        return Err(ConfigError(format!(
            "certificates valid for {} days need {needed} SCTs (more than {} days: CT policy), \
             but only {} logs are configured; add logs or shorten the profile",
            longest_validity.as_secs().div_ceil(86400),
            LONG_LIFETIME.as_secs() / 86400,
            parsed.len()
        )));
    }
    Ok(Some(parsed))
}

/// Where the TLS anchors for https logs are read from (Debian's ca-certificates bundle).
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The HTTP client logs are asked with: TLS anchored at `roots_pem` (the system bundle for
/// public logs), no redirects (a log's endpoint is configured, not discovered), no retries
/// (hedging asks another log instead).
pub fn http_client(roots_pem: &str) -> anyhow::Result<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    for der in pki::cert_info::pem_to_ders(roots_pem).unwrap_or_default() {
        // A bundle may hold certificates rustls cannot use; the others still count.
        let _ = roots.add(der.into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .build()?)
}

/// A tenant's logs and how they are asked.
pub struct CtLogs {
    logs: Vec<Arc<CtLog>>,
    http: reqwest::Client,
    /// Most time one submission may take.
    pub timeout: Duration,
    /// After this long without enough SCTs, one more log is asked (hedging).
    pub hedge_after: Duration,
}

/// SCTs enough could not be had; nothing was embedded.
#[derive(Debug)]
pub struct Shortfall {
    /// SCTs needed.
    pub needed: usize,
    /// Valid SCTs received.
    pub got: usize,
    /// Distinct operators among them.
    pub operators: usize,
    /// Each failed log and why.
    pub errors: Vec<(String, SubmitError)>,
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} valid SCT(s) from {} operator(s), {} needed from at least 2 operators",
            self.got, self.operators, self.needed
        )?;
        for (log, e) in &self.errors {
            write!(f, "; {log}: {e}")?;
        }
        Ok(())
    }
}

impl CtLogs {
    /// `logs` as checked by [`logs_from_config`]; `http` carries the TLS roots for https logs.
    pub fn new(logs: Vec<CtLog>, http: reqwest::Client) -> Self {
        Self {
            logs: logs.into_iter().map(Arc::new).collect(),
            http,
            timeout: Duration::from_secs(10),
            hedge_after: Duration::from_secs(2),
        }
    }

    /// The configured logs.
    pub fn logs(&self) -> &[Arc<CtLog>] {
        &self.logs
    }

    /// The log with id `id`, if configured.
    pub fn log_by_id(&self, id: &pki::ct::LogId) -> Option<&Arc<CtLog>> {
        self.logs.iter().find(|l| l.key.id() == *id)
    }

    /// The logs in the order they are asked: operators interleaved, so that the first two
    /// asked are run by different operators when the configuration allows it.
    fn submission_order(&self) -> Vec<Arc<CtLog>> {
        let mut by_operator: Vec<Vec<Arc<CtLog>>> = Vec::new();
        for l in &self.logs {
            match by_operator.iter_mut().find(|g| g[0].operator == l.operator) {
                Some(g) => g.push(l.clone()),
                None => by_operator.push(vec![l.clone()]),
            }
        }
        let mut out = Vec::with_capacity(self.logs.len());
        let mut round = 0;
        while out.len() < self.logs.len() {
            for g in &by_operator {
                if let Some(l) = g.get(round) {
                    out.push(l.clone());
                }
            }
            round += 1;
        }
        out
    }

    /// Submits the precertificate `chain[0]` (with its issuer chain after it) to the logs and
    /// returns verified SCTs satisfying the policy for `validity`, ordered by log. Starts
    /// with as many logs as SCTs are needed; asks one more whenever a log fails or
    /// [`CtLogs::hedge_after`] passes without the policy being met. Every SCT is verified
    /// against its log's key over `issuer_spki` and `tbs_without_poison` before it counts.
    pub async fn collect(
        &self,
        chain: &[Vec<u8>],
        issuer_spki: &[u8],
        tbs_without_poison: &[u8],
        validity: Duration,
    ) -> Result<Vec<Sct>, Shortfall> {
        let needed = scts_needed(validity);
        let order = self.submission_order();
        let job = Arc::new(submit::Job::new(chain, issuer_spki, tbs_without_poison));
        let mut tasks = tokio::task::JoinSet::new();
        let mut next = 0;
        let start = |tasks: &mut tokio::task::JoinSet<_>, next: &mut usize| {
            if let Some(log) = order.get(*next) {
                *next += 1;
                let (log, job, http, timeout) =
                    (log.clone(), job.clone(), self.http.clone(), self.timeout);
                tasks.spawn(async move {
                    let r = submit::submit(&http, &log, &job, timeout).await;
                    (log, r)
                });
            }
        };
        for _ in 0..needed {
            start(&mut tasks, &mut next);
        }
        let mut got: Vec<(Arc<CtLog>, Sct)> = Vec::new();
        let mut errors = Vec::new();
        loop {
            if let Some(chosen) = choose(&got, needed) {
                // Dropping the JoinSet aborts the submissions still running.
                return Ok(chosen);
            }
            if tasks.is_empty() {
                if next < order.len() {
                    start(&mut tasks, &mut next);
                    continue;
                }
                let operators: BTreeSet<&str> =
                    got.iter().map(|(l, _)| l.operator.as_str()).collect();
                return Err(Shortfall {
                    needed,
                    got: got.len(),
                    operators: operators.len(),
                    errors,
                });
            }
            tokio::select! {
                done = tasks.join_next() => match done {
                    Some(Ok((log, Ok(sct)))) => got.push((log, sct)),
                    Some(Ok((log, Err(e)))) => {
                        errors.push((log.url.clone(), e));
                        start(&mut tasks, &mut next);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "a CT submission task failed");
                        start(&mut tasks, &mut next);
                    }
                    None => {}
                },
                _ = tokio::time::sleep(self.hedge_after), if next < order.len() => {
                    start(&mut tasks, &mut next);
                }
            }
        }
    }
}

/// SCTs from `got` that meet the policy (`needed` from distinct logs, at least 2 distinct
/// operators), one per operator first; `None` if `got` cannot.
fn choose(got: &[(Arc<CtLog>, Sct)], needed: usize) -> Option<Vec<Sct>> {
    let operators: BTreeSet<&str> = got.iter().map(|(l, _)| l.operator.as_str()).collect();
    if got.len() < needed || operators.len() < 2 {
        return None;
    }
    let mut chosen: Vec<usize> = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, (l, _)) in got.iter().enumerate() {
        if seen.insert(l.operator.as_str()) {
            chosen.push(i);
        }
    }
    for i in 0..got.len() {
        if chosen.len() >= needed {
            break;
        }
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen.truncate(needed.max(2));
    chosen.sort_unstable();
    Some(chosen.into_iter().map(|i| got[i].1.clone()).collect())
}

#[cfg(test)]
mod tests;
