//! `fleetca admin token create|list|revoke`: bearer tokens for the admin API (see
//! `admin::auth`). The token is printed once by `create`; only its SHA-256 is stored.

use super::admin::{cli_actor, now_unix, rfc3339, AdminContext};
use crate::admin::auth::{Scope, TokenStore};
use crate::sa::AuditEntry;
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;

/// `fleetca admin ...`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Admin API bearer tokens.
    Token {
        /// What to do.
        #[command(subcommand)]
        cmd: TokenCommand,
    },
}

/// `fleetca admin token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints it once.
    Create(CreateArgs),
    /// List tokens (ids and scopes, never the tokens).
    List(ListArgs),
    /// Revoke a token by id.
    Revoke(RevokeArgs),
}

/// `fleetca admin token create` options.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// Comma-separated scopes: read, write, admin (each includes the ones before it).
    #[arg(long, value_delimiter = ',', required = true, value_parser = Scope::parse)]
    pub scopes: Vec<Scope>,
    /// A note on who or what the token is for.
    #[arg(long)]
    pub label: Option<String>,
    /// Print `{"id": ..., "token": ..., "scopes": [...]}`.
    #[arg(long)]
    pub json: bool,
}

/// `fleetca admin token list` options.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `fleetca admin token revoke` options.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// Token id (the part between the dots).
    pub id: String,
}

/// Runs an `admin` subcommand.
pub(crate) fn run(cmd: &AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Token {
            cmd: TokenCommand::Create(a),
        } => create(a),
        AdminCommand::Token {
            cmd: TokenCommand::List(a),
        } => list(a),
        AdminCommand::Token {
            cmd: TokenCommand::Revoke(a),
        } => revoke(a),
    }
}

/// The database's token store, after importing a token file an older version left.
fn token_store(ctx: &AdminContext) -> anyhow::Result<TokenStore> {
    let store = TokenStore::new(ctx.db.clone());
    ctx.block_on(store.import_legacy_file(&ctx.dd))?;
    Ok(store)
}

fn audit(ctx: &AdminContext, action: &str, id: &str, after: Option<String>) -> anyhow::Result<()> {
    ctx.block_on(ctx.db.append_audit(&AuditEntry {
        at: now_unix(),
        actor: cli_actor(),
        action: action.into(),
        tenant: None,
        object: Some(format!("token:{id}")),
        before: None,
        after,
    }))?;
    Ok(())
}

fn create(a: &CreateArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    let store = token_store(&ctx)?;
    let (rec, token) = ctx.block_on(store.create(&a.scopes, a.label.clone(), now_unix()))?;
    let scopes: Vec<&str> = rec.scopes.iter().map(|s| s.as_str()).collect();
    audit(
        &ctx,
        "admin_token.create",
        &rec.id,
        Some(json!({ "id": rec.id, "scopes": scopes, "label": rec.label }).to_string()),
    )?;
    if a.json {
        println!(
            "{}",
            json!({ "id": rec.id, "token": token, "scopes": scopes })
        );
    } else {
        println!("{token}");
        eprintln!(
            "Token {} with scopes {}; it is not shown again. Use it as `Authorization: Bearer <token>`.",
            rec.id,
            scopes.join(",")
        );
    }
    Ok(())
}

fn list(a: &ListArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    let store = token_store(&ctx)?;
    let tokens = ctx.block_on(store.list())?;
    if a.json {
        let v: Vec<_> = tokens
            .iter()
            .map(|t| json!({"id": t.id, "scopes": t.scopes, "label": t.label, "created_at": t.created_at, "revoked_at": t.revoked_at}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    println!(
        "{:<14} {:<18} {:<21} {:<9} LABEL",
        "ID", "SCOPES", "CREATED", "STATUS"
    );
    for t in &tokens {
        let scopes: Vec<&str> = t.scopes.iter().map(|s| s.as_str()).collect();
        println!(
            "{:<14} {:<18} {:<21} {:<9} {}",
            t.id,
            scopes.join(","),
            rfc3339(t.created_at),
            if t.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            },
            t.label.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

fn revoke(a: &RevokeArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    let store = token_store(&ctx)?;
    if !ctx.block_on(store.revoke(&a.id, now_unix()))? {
        anyhow::bail!("no active admin token with id {:?}", a.id);
    }
    audit(&ctx, "admin_token.revoke", &a.id, None)?;
    println!("revoked admin token {}", a.id);
    Ok(())
}
