//! Scheduled upkeep that `serve` runs besides answering requests: expiry hygiene (pruning
//! stale orders, authorizations, challenges and, if configured, long-expired certificates) and
//! re-issuing delegated OCSP responder certificates. `fleetca prune` runs one pruning pass by
//! hand.
//!
//! What is kept, and why:
//! - An order that produced a certificate, with its authorizations and challenges, stays as
//!   long as the certificate row: it is the validation evidence for that certificate
//!   (BR §5.4.1 wants validation records kept).
//! - Certificate rows are kept by default (`--cert-retention-days` unset): the audit trail and
//!   `fleetca cert` search need them; CRLs drop entries once a certificate expires anyway, and
//!   OCSP answers `unknown` for a pruned serial, which is fine after expiry.
//! - Everything else expired more than `--prune-after-days` ago (default 30) is deleted:
//!   pending/invalid orders nobody finalized, their authorizations and challenges.

use super::admin::{cli_actor, now_unix, parse_duration, AdminContext};
use crate::clock::Clock;
use crate::datadir::DataDir;
use crate::sa::{AuditEntry, Database};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Pruning policy, shared by `serve` and `prune`.
#[derive(Debug, Args, Clone)]
pub struct PrunePolicy {
    /// Delete orders, authorizations and challenges that expired more than this many days ago
    /// (orders that produced a kept certificate stay, with their authorizations).
    #[arg(long, env = "FLEETCA_PRUNE_AFTER_DAYS", default_value_t = 30)]
    pub prune_after_days: u32,
    /// Also delete certificates expired more than this many days ago (default: keep them for
    /// the audit trail).
    #[arg(long, env = "FLEETCA_CERT_RETENTION_DAYS")]
    pub cert_retention_days: Option<u32>,
}

impl PrunePolicy {
    /// (cutoff for orders/authorizations, cutoff for certificates) at `now`.
    fn cutoffs(&self, now: i64) -> (i64, Option<i64>) {
        (
            now - i64::from(self.prune_after_days) * 86400,
            self.cert_retention_days.map(|d| now - i64::from(d) * 86400),
        )
    }
}

/// `serve`'s housekeeping options.
#[derive(Debug, Args, Clone)]
pub struct HousekeepingArgs {
    /// How often to prune expired rows (`6h`, `1d`, ...; `0` turns pruning off).
    #[arg(long, env = "FLEETCA_PRUNE_INTERVAL", default_value = "1h", value_parser = parse_interval)]
    pub prune_interval: Duration,
    /// What to prune.
    #[command(flatten)]
    pub policy: PrunePolicy,
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
}

/// `fleetca prune` options.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// What to prune.
    #[command(flatten)]
    pub policy: PrunePolicy,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// One pruning pass; audited when it deleted anything.
pub(crate) async fn prune_once(
    db: &dyn Database,
    policy: &PrunePolicy,
    now: i64,
    actor: &str,
) -> anyhow::Result<crate::sa::PruneReport> {
    let (cutoff, cert_cutoff) = policy.cutoffs(now);
    let report = db.prune_expired(cutoff, cert_cutoff).await?;
    if !report.is_empty() {
        db.append_audit(&AuditEntry {
            at: now,
            actor: actor.into(),
            action: "housekeeping.prune".into(),
            tenant: None,
            object: None,
            before: None,
            after: Some(
                serde_json::json!({
                    "deleted": report,
                    "expired_before": cutoff,
                    "certs_expired_before": cert_cutoff,
                })
                .to_string(),
            ),
        })
        .await?;
    }
    Ok(report)
}

/// Runs `fleetca prune`.
pub(crate) fn run_prune(a: &PruneArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    let report = ctx.block_on(prune_once(
        ctx.db.as_ref(),
        &a.policy,
        now_unix(),
        &cli_actor(),
    ))?;
    if a.json {
        println!("{}", serde_json::to_value(report)?);
    } else {
        println!(
            "deleted {} certificate(s), {} order(s), {} authorization(s), {} challenge(s)",
            report.certificates, report.orders, report.authzs, report.challenges
        );
    }
    Ok(())
}

/// Starts the pruning schedule (unless the interval is 0). The first pass runs one interval
/// after start, so a restart loop does not hammer the database.
pub(crate) fn spawn_pruner(db: Arc<dyn Database>, clock: Arc<dyn Clock>, args: &HousekeepingArgs) {
    if args.prune_interval.is_zero() {
        tracing::info!("pruning of expired rows is off (--prune-interval 0)");
        return;
    }
    let interval = args.prune_interval;
    let policy = args.policy.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            tick.tick().await;
            match prune_once(db.as_ref(), &policy, clock.unix(), "serve:housekeeping").await {
                Ok(r) if !r.is_empty() => tracing::info!(
                    certificates = r.certificates,
                    orders = r.orders,
                    authzs = r.authzs,
                    challenges = r.challenges,
                    "pruned expired rows"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "pruning expired rows failed"),
            }
        }
    });
}

/// Re-issues each served tenant's delegated OCSP responder certificate when a third of its
/// validity remains, checking every 6 hours (the tenant loader installs it at load).
pub(crate) fn spawn_ocsp_refresher(
    dd: DataDir,
    tenants: Arc<crate::tenant::TenantSet>,
    passphrase: Option<Vec<u8>>,
    clock: Arc<dyn Clock>,
) {
    tokio::spawn(async move {
        let every = Duration::from_secs(6 * 3600);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            for t in tenants.all() {
                match t.ca.refresh_ocsp_responder(
                    &dd.ca_dir(&t.name),
                    passphrase.as_deref(),
                    clock.now(),
                ) {
                    Ok((_, true)) => {
                        tracing::info!(tenant = %t.name, "re-issued the OCSP responder certificate")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(tenant = %t.name, error = %e, "re-issuing the OCSP responder certificate failed")
                    }
                }
            }
        }
    });
}

/// How often `serve` checks that each tenant's CA key can sign (an HSM token can be removed
/// or reset at any time; `fleetca_signer_available` shows it between signatures too).
const SIGNER_CHECK_EVERY: Duration = Duration::from_secs(15);

/// Checks every served tenant's CA key now and every [`SIGNER_CHECK_EVERY`], logging each
/// change.
pub(crate) fn spawn_signer_monitor(tenants: Arc<crate::tenant::TenantSet>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SIGNER_CHECK_EVERY);
        let mut was_ok: std::collections::HashMap<String, bool> = Default::default();
        loop {
            tick.tick().await;
            for tenant in tenants.all() {
                let ok = was_ok.entry(tenant.name.clone()).or_insert(true);
                check_signer(&tenant, ok).await;
            }
        }
    });
}

/// One check of `tenant`'s CA key; `was_ok` is the previous result, updated.
async fn check_signer(tenant: &crate::tenant::Tenant, was_ok: &mut bool) {
    let ca = tenant.ca.clone();
    // The check talks to the token: off the async workers.
    let Ok(r) = tokio::task::spawn_blocking(move || ca.check_signer()).await else {
        return;
    };
    match (&r, *was_ok) {
        (Err(e), true) => {
            tracing::error!(tenant = %tenant.name, error = %e, source = ?std::error::Error::source(e), "the CA signing key is unavailable")
        }
        (Ok(()), false) => {
            tracing::info!(tenant = %tenant.name, "the CA signing key is available again")
        }
        _ => {}
    }
    *was_ok = r.is_ok();
}

/// Re-issues the HTTPS certificate from the server TLS CA when it is due (a third of its
/// validity left, or its file missing), checking every `every`, and swaps it into `current`,
/// which every TLS listener's handshakes read: no restart.
pub(crate) fn spawn_tls_renewer(
    dd: DataDir,
    current: Arc<super::load::ServerCert>,
    every: Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            let (dir, cert) = (dd.clone(), current.clone());
            let refreshed =
                tokio::task::spawn_blocking(move || super::load::refresh_server_tls(&dir, &cert))
                    .await;
            match refreshed {
                Ok(Ok(true)) => tracing::info!("serving the re-issued HTTPS certificate"),
                Ok(Ok(false)) | Err(_) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "re-issuing the HTTPS certificate failed")
                }
            }
        }
    });
}
