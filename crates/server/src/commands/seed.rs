//! `fleetca bench-seed`: adds synthetic issuance history to a data directory's database, so
//! `fleetca bench` can measure issuance with 100k or 1M certificates already stored.

use super::admin::AdminContext;
use crate::sa::SeedSpec;
use std::io::Write as _;
use std::path::PathBuf;

/// `fleetca bench-seed` options.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// Data directory (its database, SQLite or the configured PostgreSQL URL).
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// Tenant the history belongs to.
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// Certificates to add.
    #[arg(long)]
    pub count: u64,
    /// Certificates per synthetic account.
    #[arg(long, default_value_t = 10)]
    pub per_account: u64,
    /// DNS suffix of the synthetic names.
    #[arg(long, default_value = "seed.home.arpa")]
    pub suffix: String,
}

/// Runs `fleetca bench-seed`.
pub(crate) fn run(a: &SeedArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    let spec = SeedSpec {
        tenant: a.tenant.clone(),
        suffix: a.suffix.clone(),
        count: a.count,
        per_account: a.per_account,
        // The size of a P-256 leaf with two names, CDP and AIA as fleetca issues it.
        der_len: 820,
        now: super::admin::now_unix(),
    };
    let started = std::time::Instant::now();
    let step = (a.count / 20).max(1);
    ctx.block_on(ctx.db.seed_history(&spec, &|n| {
        if n % step < 200 || n == a.count {
            eprint!("\rseeded {n}/{}", a.count);
            let _ = std::io::stderr().flush();
        }
    }))?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!();
    println!(
        "added {} synthetic certificates to tenant {:?} in {secs:.1}s ({:.0}/s)",
        a.count,
        a.tenant,
        a.count as f64 / secs.max(1e-9)
    );
    Ok(())
}
