//! `fleetca migrate --from sqlite:PATH --to postgres://...`: moves a single-node CA to
//! PostgreSQL. Stop `serve` first; afterwards start it (or several nodes) with `--database`.

use clap::Args;

/// `fleetca migrate` options.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Source SQLite database (`sqlite:PATH`, `sqlite://PATH` or a path).
    #[arg(long)]
    pub from: String,
    /// Target PostgreSQL database (`postgres://...`), empty; its schema is created.
    #[arg(long)]
    pub to: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the migration.
pub(crate) fn run(a: &MigrateArgs) -> anyhow::Result<()> {
    let path = a
        .from
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    if !(a.to.starts_with("postgres://") || a.to.starts_with("postgresql://")) {
        anyhow::bail!("--to must be a postgres:// URL");
    }
    if !std::path::Path::new(path).is_file() {
        anyhow::bail!("{path} is not a SQLite database file");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let src = crate::sa::SqliteStorage::open(std::path::Path::new(path)).await?;
        let dst = crate::sa::PgStorage::connect(&a.to).await?;
        crate::sa::sqlite_to_postgres(&src, &dst).await
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for (table, n) in &report.rows {
            println!("{table:<20} {n}");
        }
        println!(
            "certificate digest (SHA-256, both sides): {}",
            report.certificate_digest
        );
    }
    Ok(())
}
