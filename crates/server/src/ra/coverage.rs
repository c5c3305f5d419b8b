//! Continuous coverage (docs/coverage.md): which certificates are about to leave their devices
//! uncovered. The storage side (`sa::coverage`) defines each state in SQL; this module keeps
//! `cert_coverage` current (the refresher), steers ARI answers for certificates in trouble, and
//! records renewalInfo polls cheaply.

use super::ari::default_window;
use crate::sa::{CoveragePolicy, CoverageStore, NewCoverage, SaError, StoredIdentifier};

/// How far behind its newest mark the refresher looks again: a certificate whose transaction
/// committed this much later than its `issued_at` (signing under load, a node's clock behind
/// another's) is still picked up. Rows already copied are skipped by the query itself.
pub const SYNC_SLACK_SECS: i64 = 600;

/// Certificates copied per transaction.
const SYNC_BATCH: u32 = 2000;

/// Default `expiring` threshold: a tenth of the lifetime left (3 days of a 30-day
/// certificate, 14 hours of a 6-day one), well after the default window closes at two thirds.
pub const DEFAULT_EXPIRING_SHARE: f64 = 0.10;

/// Default `silent` period: two days without a renewalInfo poll or an issuance. An ARI client
/// polls every `Retry-After` (6 h, RFC 9773 §4.3), so this is eight missed polls.
pub const DEFAULT_SILENT_AFTER_SECS: i64 = 2 * 86_400;

/// A renewalInfo poll is written at most once per this interval per certificate: the
/// `Retry-After` the server sends (RFC 9773 §4.3), so a well-behaved client causes one write
/// per poll interval and a misbehaving one no more.
pub const POLL_WRITE_INTERVAL_SECS: i64 = super::ari::ARI_RETRY_AFTER_SECS as i64;

/// What coverage needs at request time: its storage, the thresholds, and the page ARI answers
/// for a certificate in trouble link to (`explanationURL`, RFC 9773 §4.2).
#[derive(Clone)]
pub struct CoverageConfig {
    /// The coverage table.
    pub store: std::sync::Arc<dyn CoverageStore>,
    /// Thresholds.
    pub policy: CoveragePolicy,
    /// `explanationURL` of a "renew now" answer; `None`: the server's own page.
    pub explanation_url: Option<String>,
}

/// What one refresher pass copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Certificates copied into `cert_coverage`.
    pub certificates: u64,
    /// Revocations seen.
    pub revocations: u64,
}

/// The lineage key of a name set: sorted, lower-case `type:value`, space-separated (DNS names
/// and IP addresses contain no spaces). Two certificates with the same key to the same
/// account cover the same device.
pub fn names_key(names_json: &str) -> Result<String, SaError> {
    let names: Vec<StoredIdentifier> = serde_json::from_str(names_json)
        .map_err(|e| SaError::Corrupt(format!("certificate names: {e}")))?;
    let mut keys: Vec<String> = names
        .iter()
        .map(|n| format!("{}:{}", n.kind, n.value.to_ascii_lowercase()))
        .collect();
    keys.sort();
    keys.dedup();
    Ok(keys.join(" "))
}

/// One refresher pass: copies every certificate issued since the last pass, and every
/// revocation, into `cert_coverage`. Idempotent, so several nodes (or the CLI) may run it.
pub async fn sync(store: &dyn CoverageStore) -> Result<SyncReport, SaError> {
    let mut report = SyncReport::default();
    let mut mark = store.coverage_mark("issued").await?.unwrap_or(i64::MIN / 2);
    loop {
        let pending = store
            .pending_coverage(mark - SYNC_SLACK_SECS, SYNC_BATCH)
            .await?;
        let full = pending.len() == SYNC_BATCH as usize;
        if pending.is_empty() {
            break;
        }
        let mut rows = Vec::with_capacity(pending.len());
        for cert in pending {
            let window = cert
                .override_window
                .unwrap_or_else(|| default_window(cert.not_before, cert.not_after, &cert.serial));
            rows.push(NewCoverage {
                names_key: names_key(&cert.names_json)?,
                window,
                cert,
            });
        }
        let newest = rows.iter().map(|r| r.cert.issued_at).max().unwrap_or(mark);
        store.insert_coverage(&rows).await?;
        report.certificates += rows.len() as u64;
        if newest > mark {
            mark = newest;
            store.set_coverage_mark("issued", mark).await?;
        }
        if !full {
            break;
        }
    }
    let since = store
        .coverage_mark("revoked")
        .await?
        .unwrap_or(i64::MIN / 2);
    let (seen, newest) = store.sync_revocations(since - SYNC_SLACK_SECS).await?;
    report.revocations = seen;
    if let Some(newest) = newest {
        if newest > since {
            store.set_coverage_mark("revoked", newest).await?;
        }
    }
    Ok(report)
}

/// A share (0 < share < 1) in millionths, as the state expression takes it.
pub fn share_ppm(share: f64) -> i64 {
    (share.clamp(0.0, 1.0) * 1_000_000.0).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_key_ignores_order_and_case() {
        let a =
            names_key(r#"[{"type":"dns","value":"B.example"},{"type":"dns","value":"a.example"}]"#)
                .unwrap();
        let b =
            names_key(r#"[{"type":"dns","value":"a.example"},{"type":"dns","value":"b.example"}]"#)
                .unwrap();
        assert_eq!(a, b);
        assert_eq!(a, "dns:a.example dns:b.example");
        assert!(names_key("not json").is_err());
    }
}

// The refresher over real storage, on both backends (in ra/, as they drive `sync`: storage
// imports nothing from the roles above it).
#[cfg(test)]
#[path = "coverage_tests.rs"]
mod storage_tests;
