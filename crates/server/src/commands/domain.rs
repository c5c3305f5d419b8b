//! `fleetca domain add|validate|list|remove`: tenant domains (issue 17). A tenant proves
//! control of a parent domain by DNS once per reuse period; accounts created with its EAB
//! credentials then get names at or below it without a challenge (see `ra::domains`).

use super::admin::{cli_actor, now_unix, rfc3339, AdminContext};
use crate::ra::{DomainError, DomainPolicy};
use crate::sa::{DomainMethod, TenantDomainRecord};
use clap::{Args, Subcommand};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `fleetca domain ...`
#[derive(Debug, Subcommand)]
pub enum DomainCommand {
    /// Add a parent domain; prints the TXT record to publish.
    Add(AddArgs),
    /// Check the domain's TXT record (and CAA) now and record the result.
    Validate(ValidateArgs),
    /// List a tenant's domains.
    List(ListArgs),
    /// Remove a domain: names under it need challenges again from the next order on.
    Remove(RemoveArgs),
}

/// Options every `domain` subcommand has.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// The tenant.
    #[arg(long, default_value = crate::datadir::DEFAULT_TENANT)]
    pub tenant: String,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `fleetca domain add` options.
#[derive(Debug, Args)]
pub struct AddArgs {
    #[command(flatten)]
    common: Common,
    /// The parent domain (e.g. `routers.example.com`).
    pub name: String,
    /// How it is proved: `dns-01` (a random value, BR §3.2.2.4.7) or `dns-persist-01` (a
    /// persistent record, BR §3.2.2.4.22).
    #[arg(long, value_parser = parse_method, required_unless_present = "trusted")]
    pub method: Option<DomainMethod>,
    /// Private trust only: the vendor owns the domain, no DNS proof (audited).
    #[arg(long, conflicts_with = "method")]
    pub trusted: bool,
}

/// `fleetca domain validate` options.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    common: Common,
    /// The domain.
    pub name: String,
    /// Lab/test only: the DNS server to ask (default: the system resolver).
    #[arg(long, env = "FLEETCA_DNS_RESOLVER", value_parser = super::parse_socket)]
    pub dns_resolver: Option<SocketAddr>,
}

/// `fleetca domain list` options.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    common: Common,
}

/// `fleetca domain remove` options.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    common: Common,
    /// The domain.
    pub name: String,
}

fn parse_method(s: &str) -> Result<DomainMethod, String> {
    match DomainMethod::parse(s)? {
        DomainMethod::Trusted => Err("use --trusted (private trust only)".into()),
        m => Ok(m),
    }
}

/// Runs a `domain` subcommand.
pub(crate) fn run(cmd: &DomainCommand) -> anyhow::Result<()> {
    match cmd {
        DomainCommand::Add(a) => add(a),
        DomainCommand::Validate(a) => validate(a),
        DomainCommand::List(a) => list(a),
        DomainCommand::Remove(a) => remove(a),
    }
}

/// The tenant's domain policy, from its configuration.
fn policy(ctx: &AdminContext, tenant: &str) -> anyhow::Result<DomainPolicy> {
    super::tenant::require_tenant(&ctx.dd, tenant)?;
    let cfg = ctx
        .dd
        .load_tenant_configs()?
        .into_iter()
        .find(|c| c.ca.name == tenant)
        .ok_or_else(|| anyhow::anyhow!("no tenant {tenant:?}"))?;
    Ok(DomainPolicy::from_config(&cfg.ca))
}

fn add(a: &AddArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.common.data_dir)?;
    let p = policy(&ctx, &a.common.tenant)?;
    let method = if a.trusted {
        DomainMethod::Trusted
    } else {
        a.method
            .ok_or_else(|| anyhow::anyhow!("--method or --trusted is required"))?
    };
    let rec = ctx.block_on(crate::ra::add_domain(
        ctx.db.as_ref(),
        &p,
        &a.name,
        method,
        &cli_actor(),
        now_unix(),
    ))?;
    if a.common.json {
        println!(
            "{}",
            json!({ "txt_name": rec.txt_name, "txt_value": rec.txt_value, "domain": rec.summary_json(now_unix()) })
        );
    } else if let (Some(n), Some(v)) = (&rec.txt_name, &rec.txt_value) {
        println!("{n}. IN TXT \"{v}\"");
        eprintln!(
            "Publish this record, then run `fleetca domain validate --tenant {} {}`.{}",
            p.tenant,
            rec.name,
            rec.value_expires
                .map(|e| format!(" The value is usable until {}.", rfc3339(e)))
                .unwrap_or_default()
        );
    } else {
        println!(
            "{} is trusted for tenant {:?} until {} (no DNS proof; audited).",
            rec.name,
            p.tenant,
            rec.expires_at.map(rfc3339).unwrap_or_default()
        );
    }
    Ok(())
}

fn validate(a: &ValidateArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.common.data_dir)?;
    let p = policy(&ctx, &a.common.tenant)?;
    let va = crate::va::Va::new(crate::va::VaConfig {
        dns_resolver: a.dns_resolver,
        ..Default::default()
    })?;
    // The same corroboration as the server's (BR §3.2.2.9): the remote perspectives of
    // fleetca.toml's [mpic], when it lists any, must see the record and pass CAA too.
    let va = super::serve::with_perspectives(va, &ctx.dd, &ctx.dd.load_config()?)?;
    let now = now_unix();
    match ctx.block_on(crate::ra::validate_domain(
        ctx.db.as_ref(),
        &va,
        &p,
        &a.name,
        &cli_actor(),
        now,
    )) {
        Ok(rec) => {
            if a.common.json {
                println!("{}", rec.summary_json(now));
            } else {
                println!(
                    "{} is valid for tenant {:?} until {}",
                    rec.name,
                    p.tenant,
                    rec.expires_at.map(rfc3339).unwrap_or_default()
                );
            }
            Ok(())
        }
        Err(DomainError::Validation { name, error }) => {
            if a.common.json {
                println!(
                    "{}",
                    json!({ "name": name, "status": "invalid", "error": {
                        "type": format!("urn:ietf:params:acme:error:{}", error.acme_type()),
                        "detail": error.detail() } })
                );
            }
            anyhow::bail!(
                "validation of {name} failed ({}): {}",
                error.acme_type(),
                error.detail()
            )
        }
        Err(e) => Err(e.into()),
    }
}

fn list(a: &ListArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.common.data_dir)?;
    super::tenant::require_tenant(&ctx.dd, &a.common.tenant)?;
    let rows: Vec<TenantDomainRecord> =
        ctx.block_on(ctx.db.list_domains(Some(&a.common.tenant)))?;
    let now = now_unix();
    if a.common.json {
        let v: Vec<_> = rows.iter().map(|d| d.summary_json(now)).collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    println!(
        "{:<32} {:<15} {:<8} {:<21} TXT",
        "DOMAIN", "METHOD", "STATUS", "EXPIRES"
    );
    for d in &rows {
        let s = d.summary_json(now);
        println!(
            "{:<32} {:<15} {:<8} {:<21} {}",
            d.name,
            d.method.as_str(),
            s["status"].as_str().unwrap_or(""),
            d.expires_at.map(rfc3339).unwrap_or_else(|| "-".into()),
            d.txt_name.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

fn remove(a: &RemoveArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.common.data_dir)?;
    let p = policy(&ctx, &a.common.tenant)?;
    ctx.block_on(crate::ra::remove_domain(
        ctx.db.as_ref(),
        &p,
        &a.name,
        &cli_actor(),
        now_unix(),
    ))?;
    if a.common.json {
        println!("{}", json!({ "removed": a.name, "tenant": p.tenant }));
    } else {
        println!("removed {} from tenant {:?}", a.name, p.tenant);
    }
    Ok(())
}
