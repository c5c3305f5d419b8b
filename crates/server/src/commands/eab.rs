//! `fleetca eab create|list|revoke`: External Account Binding credentials (RFC 8555 §7.3.4).
//! The HMAC key is printed once, by `create`, and never logged; the database holds it sealed
//! under `DIR/eab.key` (see `ra::eab`).

use super::admin::{cli_actor, now_unix, parse_duration, rfc3339, AdminContext};
use crate::ra::EabKeyring;
use crate::sa::EabKeyRecord;
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;

/// `fleetca eab ...`
#[derive(Debug, Subcommand)]
pub enum EabCommand {
    /// Create a credential; prints its key id and base64url HMAC key (shown only this once).
    Create(CreateArgs),
    /// List credentials (never their keys).
    List(ListArgs),
    /// Revoke a credential so no further account can be created with it.
    Revoke(RevokeArgs),
}

/// `fleetca eab create` options.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// Tenant whose accounts the credential may create.
    #[arg(long, default_value = crate::datadir::DEFAULT_TENANT)]
    pub tenant: String,
    /// How many accounts it may create (default 1: one device).
    #[arg(long, default_value_t = 1)]
    pub uses: u32,
    /// Lifetime, e.g. `30d`, `12h` (default: no expiry).
    #[arg(long, value_parser = parse_duration)]
    pub expires: Option<std::time::Duration>,
    /// Print `{"kid": ..., "hmac_key": ...}`.
    #[arg(long)]
    pub json: bool,
}

/// `fleetca eab list` options.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// Only this tenant's credentials.
    #[arg(long)]
    pub tenant: Option<String>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `fleetca eab revoke` options.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// The key id.
    pub kid: String,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// Runs an `eab` subcommand.
pub(crate) fn run(cmd: &EabCommand) -> anyhow::Result<()> {
    match cmd {
        EabCommand::Create(a) => create(a),
        EabCommand::List(a) => list(a),
        EabCommand::Revoke(a) => revoke(a),
    }
}

fn status(k: &EabKeyRecord, now: i64) -> &'static str {
    crate::admin::ops::eab_status(k, now)
}

fn create(a: &CreateArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    super::tenant::require_tenant(&ctx.dd, &a.tenant)?;
    if a.uses == 0 {
        anyhow::bail!("--uses must be at least 1");
    }
    let keyring = EabKeyring::load_or_create(&ctx.dd.eab_key())
        .with_context(|| format!("loading {}", ctx.dd.eab_key().display()))?;
    let new = ctx.block_on(crate::admin::ops::create_eab(
        ctx.db.as_ref(),
        &keyring,
        &a.tenant,
        a.uses,
        a.expires,
        &cli_actor(),
    ))?;
    let (kid, key_b64, rec) = (new.kid, new.hmac_key, new.record);
    if a.json {
        println!("{}", json!({ "kid": kid, "hmac_key": key_b64 }));
    } else {
        println!("kid: {kid}");
        println!("hmac_key: {key_b64}");
        eprintln!(
            "Tenant {:?}, {} use(s){}. The HMAC key is not shown again; give both values to the client (certbot/lego --eab-kid/--eab-hmac-key).",
            a.tenant,
            a.uses,
            rec.expires_at
                .map(|e| format!(", expires {}", rfc3339(e)))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn list(a: &ListArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    let keys = ctx.block_on(ctx.db.list_eab_keys(a.tenant.as_deref()))?;
    let now = now_unix();
    if a.json {
        let v: Vec<_> = keys
            .iter()
            .map(|k| crate::admin::ops::eab_json(k, now))
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    println!(
        "{:<28} {:<12} {:>9} {:<21} STATUS",
        "KID", "TENANT", "USES", "EXPIRES"
    );
    for k in &keys {
        println!(
            "{:<28} {:<12} {:>9} {:<21} {}",
            k.kid,
            k.tenant,
            format!("{}/{}", k.uses, k.max_uses),
            k.expires_at.map(rfc3339).unwrap_or_else(|| "never".into()),
            status(k, now)
        );
    }
    Ok(())
}

fn revoke(a: &RevokeArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    if !ctx.block_on(crate::admin::ops::revoke_eab(
        ctx.db.as_ref(),
        &a.kid,
        &cli_actor(),
    ))? {
        anyhow::bail!("no unrevoked EAB credential with key id {:?}", a.kid);
    }
    if a.json {
        println!("{}", json!({ "kid": a.kid, "status": "revoked" }));
    } else {
        println!("revoked {}", a.kid);
    }
    Ok(())
}
