//! `fleetca renew-early`: move the ACME Renewal Information window (RFC 9773 §4.2) of a set of
//! certificates to now, so ARI-aware clients replace them at their next poll — the tool for an
//! incident (a key compromise, a mis-issuance) that must not wait for expiry.

use super::admin::{cli_actor, AdminContext};
use super::select::CertSelection;
use clap::Args;
use std::path::PathBuf;

/// `fleetca renew-early`
#[derive(Debug, Args)]
pub struct RenewEarlyArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// Which certificates (the same selectors as `fleetca cert revoke-many`).
    #[command(flatten)]
    pub select: CertSelection,
    /// Instead of "due now", open the window now and close it after this long (`90s`, `30m`,
    /// `6h`, `2d`): ARI clients each pick a random moment inside it (RFC 9773 §4.2), so a
    /// fleet-wide renewal arrives evenly over the spread instead of as one storm.
    #[arg(long, value_parser = super::admin::parse_duration)]
    pub spread: Option<std::time::Duration>,
    /// Only the selected certificates in these coverage states (comma-separated, e.g.
    /// `overdue,expiring`; docs/coverage.md), judged with the thresholds below.
    #[arg(long, value_delimiter = ',', value_parser = super::coverage::parse_state)]
    pub state: Option<Vec<crate::sa::CoverageState>>,
    /// Coverage thresholds (the same as `serve`'s).
    #[command(flatten)]
    pub coverage: super::coverage::CoveragePolicyArgs,
}

/// Sets the selected certificates' ARI window to [now - 1 h, now] (or [now, now + spread])
/// and prints their serials.
pub(crate) fn run(a: &RenewEarlyArgs) -> anyhow::Result<()> {
    let sel = a.select.selector()?;
    let ctx = AdminContext::open(&a.data_dir)?;
    let policy = a.coverage.policy();
    let coverage = a
        .state
        .as_deref()
        .map(|states| crate::admin::ops::CoverageSelect {
            states,
            policy: &policy,
            now: crate::clock::server_clock().unix(),
        });
    // Shared with `POST /api/renew-early`; the window is [now - 1 h, now] (see `admin::ops`).
    let serials = ctx.block_on(crate::admin::ops::renew_early(
        ctx.db.as_ref(),
        a.select.tenant.as_deref(),
        &sel,
        &a.select.describe(),
        &cli_actor(),
        a.spread,
        coverage,
    ))?;
    for s in &serials {
        println!("{s}");
    }
    match a.spread {
        Some(d) if !d.is_zero() => eprintln!(
            "renewal window set to the next {}s for {} certificate(s)",
            d.as_secs(),
            serials.len()
        ),
        _ => eprintln!(
            "renewal window moved to now for {} certificate(s)",
            serials.len()
        ),
    }
    Ok(())
}
