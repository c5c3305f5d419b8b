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
}

/// Sets the selected certificates' ARI window to [now - 1 h, now] and prints how many.
pub(crate) fn run(a: &RenewEarlyArgs) -> anyhow::Result<()> {
    let sel = a.select.selector()?;
    let ctx = AdminContext::open(&a.data_dir)?;
    // Shared with `POST /api/renew-early`; the window is [now - 1 h, now] (see `admin::ops`).
    let serials = ctx.block_on(crate::admin::ops::renew_early(
        ctx.db.as_ref(),
        a.select.tenant.as_deref(),
        &sel,
        &a.select.describe(),
        &cli_actor(),
    ))?;
    for s in &serials {
        println!("{s}");
    }
    eprintln!(
        "renewal window moved to now for {} certificate(s)",
        serials.len()
    );
    Ok(())
}
