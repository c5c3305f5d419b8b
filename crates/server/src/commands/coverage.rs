//! `fleetca coverage`: which certificates are about to leave their devices uncovered
//! (docs/coverage.md), and the coverage options `serve` shares with it: the thresholds of the
//! policy states and the refresher that keeps `cert_coverage` and the
//! `fleetca_certificates{tenant,state}` gauges current.

use super::admin::{parse_duration, AdminContext};
use crate::clock::Clock;
use crate::ra::coverage::{
    share_ppm, sync, CoverageConfig, DEFAULT_EXPIRING_SHARE, POLL_WRITE_INTERVAL_SECS,
};
use crate::sa::{CoverageFilter, CoveragePolicy, CoverageRow, CoverageState, Database};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The thresholds of `expiring` and `silent`. `serve` and `fleetca coverage` must be given the
/// same values (the environment variables make that easy) for the CLI, the API and the gauges
/// to agree.
#[derive(Debug, Args, Clone)]
pub struct CoveragePolicyArgs {
    /// `expiring`: less than this share of a certificate's lifetime left (0 < share < 1).
    #[arg(long, env = "FLEETCA_COVERAGE_EXPIRING_SHARE", default_value_t = DEFAULT_EXPIRING_SHARE, value_parser = parse_share)]
    pub coverage_expiring_share: f64,
    /// `silent`: no renewalInfo poll and no issuance to the account for this long (`36h`,
    /// `3d`; at least twice the 6 h poll interval).
    #[arg(long, env = "FLEETCA_COVERAGE_SILENT_AFTER", default_value = "2d", value_parser = parse_silent)]
    pub coverage_silent_after: Duration,
}

impl CoveragePolicyArgs {
    /// The storage form.
    pub fn policy(&self) -> CoveragePolicy {
        CoveragePolicy {
            expiring_ppm: share_ppm(self.coverage_expiring_share),
            silent_after: i64::try_from(self.coverage_silent_after.as_secs())
                .unwrap_or(i64::MAX / 4),
        }
    }
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!("{s:?} is not a share between 0 and 1 (e.g. 0.1)")),
    }
}

/// A poll is recorded at most once per interval, so a shorter silent period would call a
/// device that polls on time silent.
fn parse_silent(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.as_secs() < 2 * POLL_WRITE_INTERVAL_SECS as u64 {
        return Err(format!(
            "{s:?} is shorter than twice the renewalInfo poll interval ({}h)",
            2 * POLL_WRITE_INTERVAL_SECS / 3600
        ));
    }
    Ok(d)
}

/// `serve`'s coverage options.
#[derive(Debug, Args, Clone)]
pub struct CoverageServeArgs {
    /// Thresholds.
    #[command(flatten)]
    pub policy: CoveragePolicyArgs,
    /// How often the refresher copies new certificates and revocations into the coverage table
    /// and recomputes the `fleetca_certificates` gauges.
    #[arg(long, env = "FLEETCA_COVERAGE_REFRESH", default_value = "60s", value_parser = parse_duration)]
    pub coverage_refresh: Duration,
    /// `explanationURL` of the "renew now" renewalInfo answers for overdue and expiring
    /// certificates (default: the server's own `<tenant>/renewal-explanation` page).
    #[arg(long, env = "FLEETCA_COVERAGE_EXPLANATION_URL")]
    pub coverage_explanation_url: Option<String>,
}

impl CoverageServeArgs {
    /// What the RA needs.
    pub fn config(&self, db: Arc<dyn Database>) -> CoverageConfig {
        CoverageConfig {
            store: db,
            policy: self.policy.policy(),
            explanation_url: self.coverage_explanation_url.clone(),
        }
    }
}

/// `fleetca coverage`
#[derive(Debug, Args)]
pub struct CoverageArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// Only this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only these states (comma-separated: ok, due, overdue, expiring, silent, revoked,
    /// expired; default: all).
    #[arg(long, value_delimiter = ',', value_parser = parse_state)]
    pub state: Option<Vec<CoverageState>>,
    /// Counts per tenant and state instead of certificates.
    #[arg(long)]
    pub summary: bool,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
    /// Print how long the refresher pass, the counts and the first page took (stderr): the
    /// benchmark of the dashboard and gauge queries (`fleetca bench-seed` first).
    #[arg(long)]
    pub timing: bool,
    /// Thresholds.
    #[command(flatten)]
    pub policy: CoveragePolicyArgs,
}

/// One state of a `--state a,b` list.
pub(crate) fn parse_state(s: &str) -> Result<CoverageState, String> {
    s.trim().parse()
}

/// Page size of the listing walk.
const PAGE: u32 = 1000;

/// Catches the coverage table up (so certificates issued since `serve`'s last refresh are
/// listed too), then prints the listing or the counts.
pub(crate) fn run(a: &CoverageArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    let policy = a.policy.policy();
    // The server's clock: a debug build's test offset applies here as in `serve`.
    let now = crate::clock::server_clock().unix();
    let t = Instant::now();
    let synced = ctx.block_on(sync(ctx.db.as_ref()))?;
    let sync_time = t.elapsed();
    let t = Instant::now();
    let counts = ctx.block_on(ctx.db.coverage_counts(now, &policy))?;
    let count_time = t.elapsed();
    let t = Instant::now();
    let worst = ctx.block_on(ctx.db.coverage_list(
        now,
        &policy,
        &CoverageFilter {
            tenant: a.tenant.clone(),
            states: CoverageState::AT_RISK.to_vec(),
            after: None,
            limit: 10,
        },
    ))?;
    let worst_time = t.elapsed();
    if a.timing {
        let total: i64 = counts.iter().map(|c| c.count).sum();
        eprintln!(
            "coverage over {total} certificates: refresher pass {:.3}s ({} copied), counts {:.3}s, \
             worst offenders {:.3}s ({} rows)",
            sync_time.as_secs_f64(),
            synced.certificates,
            count_time.as_secs_f64(),
            worst_time.as_secs_f64(),
            worst.len()
        );
    }
    if a.summary {
        let counts: Vec<_> = counts
            .into_iter()
            .filter(|c| a.tenant.as_ref().is_none_or(|t| *t == c.tenant))
            .filter(|c| a.state.as_ref().is_none_or(|s| s.contains(&c.state)))
            .collect();
        if a.json {
            println!("{}", serde_json::to_string(&counts)?);
        } else {
            println!("{:<16} {:<9} {:>10}", "TENANT", "STATE", "COUNT");
            for c in &counts {
                println!("{:<16} {:<9} {:>10}", c.tenant, c.state, c.count);
            }
        }
        return Ok(());
    }
    let filter = CoverageFilter {
        tenant: a.tenant.clone(),
        states: a.state.clone().unwrap_or_default(),
        after: None,
        limit: PAGE,
    };
    let t = Instant::now();
    let rows = ctx.block_on(list_all(ctx.db.as_ref(), now, &policy, filter))?;
    if a.timing {
        eprintln!(
            "listing {} certificates took {:.3}s",
            rows.len(),
            t.elapsed().as_secs_f64()
        );
    }
    if a.json {
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        println!(
            "{:<34} {:<10} {:<9} {:<20} {:<20} {:<20} NAMES",
            "SERIAL", "TENANT", "STATE", "NOT_AFTER", "WINDOW_END", "LAST_SEEN"
        );
        for r in &rows {
            println!(
                "{:<34} {:<10} {:<9} {:<20} {:<20} {:<20} {}",
                r.serial,
                r.tenant,
                r.state,
                crate::clock::rfc3339(r.not_after),
                crate::clock::rfc3339(r.window_end),
                crate::clock::rfc3339(r.last_seen),
                r.names.join(",")
            );
        }
    }
    Ok(())
}

/// Every row `filter` selects, page by page.
pub(crate) async fn list_all(
    db: &dyn Database,
    now: i64,
    policy: &CoveragePolicy,
    mut filter: CoverageFilter,
) -> anyhow::Result<Vec<CoverageRow>> {
    let mut out = Vec::new();
    loop {
        let page = db.coverage_list(now, policy, &filter).await?;
        let full = page.len() == filter.limit as usize;
        if let Some(last) = page.last() {
            filter.after = Some((last.not_after, last.cert_id.clone()));
        }
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// `serve`'s refresher: every `every`, copies new certificates and revocations into the
/// coverage table, then sets `fleetca_certificates{tenant,state}` from one index-backed count
/// (a scrape reads the gauges, never the database). Every known tenant gets every state, so a
/// state that empties drops to 0 instead of keeping its last value.
pub(crate) fn spawn_refresher(
    db: Arc<dyn Database>,
    clock: Arc<dyn Clock>,
    policy: CoveragePolicy,
    tenants: Vec<String>,
    every: Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = refresh(db.as_ref(), clock.as_ref(), &policy, &tenants).await {
                tracing::warn!(error = %e, "coverage refresh failed; the gauges keep their last values");
            }
        }
    });
}

async fn refresh(
    db: &dyn Database,
    clock: &dyn Clock,
    policy: &CoveragePolicy,
    tenants: &[String],
) -> anyhow::Result<()> {
    sync(db).await?;
    let counts = db.coverage_counts(clock.unix(), policy).await?;
    let mut all: std::collections::BTreeMap<(String, CoverageState), i64> = tenants
        .iter()
        .flat_map(|t| CoverageState::ALL.map(|s| ((t.clone(), s), 0)))
        .collect();
    for c in counts {
        *all.entry((c.tenant, c.state)).or_default() += c.count;
    }
    for ((tenant, state), n) in all {
        crate::metrics::coverage(&tenant, state.as_str(), n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::commands::{Cli, Command};
    use crate::sa::CoverageState;
    use clap::{CommandFactory, Parser};

    #[test]
    fn state_lists_parse_on_coverage_and_renew_early() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["fleetca", "coverage", "--state", "due,overdue"]).unwrap();
        let Some(Command::Coverage(a)) = cli.command else {
            panic!("not coverage")
        };
        assert_eq!(
            a.state,
            Some(vec![CoverageState::Due, CoverageState::Overdue])
        );
        let cli = Cli::try_parse_from(["fleetca", "renew-early", "--all", "--state", "expiring"])
            .unwrap();
        let Some(Command::RenewEarly(a)) = cli.command else {
            panic!("not renew-early")
        };
        assert_eq!(a.state, Some(vec![CoverageState::Expiring]));
        assert!(Cli::try_parse_from(["fleetca", "coverage", "--state", "late"]).is_err());
        assert!(
            Cli::try_parse_from(["fleetca", "coverage", "--coverage-silent-after", "1h"]).is_err()
        );
    }
}
