//! `fleetca account list|deactivate`: ACME accounts, for the operator.

use super::admin::{cli_actor, rfc3339, AdminContext};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;

/// `fleetca account ...`
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// List accounts, newest first.
    List(ListArgs),
    /// Deactivate an account (RFC 8555 §7.3.6): it can no longer sign requests.
    Deactivate(DeactivateArgs),
}

/// `fleetca account list` options.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// Only this tenant's accounts.
    #[arg(long)]
    pub tenant: Option<String>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `fleetca account deactivate` options.
#[derive(Debug, Args)]
pub struct DeactivateArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// Account id (the last segment of the account URL).
    pub id: String,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// Runs an `account` subcommand.
pub(crate) fn run(cmd: &AccountCommand) -> anyhow::Result<()> {
    match cmd {
        AccountCommand::List(a) => list(a),
        AccountCommand::Deactivate(a) => deactivate(a),
    }
}

fn list(a: &ListArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    let accts = ctx.block_on(ctx.db.list_accounts(a.tenant.as_deref()))?;
    if a.json {
        println!("{}", serde_json::to_string(&accts)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<12} {:<12} {:<21} CONTACT",
        "ID", "TENANT", "STATUS", "CREATED"
    );
    for x in &accts {
        println!(
            "{:<24} {:<12} {:<12} {:<21} {}",
            x.id,
            x.tenant,
            x.status,
            rfc3339(x.created_at),
            x.contact.join(",")
        );
    }
    Ok(())
}

fn deactivate(a: &DeactivateArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    let id = a.id.rsplit('/').next().unwrap_or(&a.id).to_string();
    if ctx
        .block_on(crate::admin::ops::deactivate_account(
            ctx.db.as_ref(),
            &id,
            &cli_actor(),
        ))?
        .is_none()
    {
        anyhow::bail!("no valid account with id {id:?}");
    }
    if a.json {
        println!("{}", json!({"id": id, "status": "deactivated"}));
    } else {
        println!("deactivated account {id}");
    }
    Ok(())
}
