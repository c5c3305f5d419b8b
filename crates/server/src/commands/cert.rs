//! `fleetca cert list|show|revoke` (and `revoke-many|expiring`, in `fleet`): issued certificates, for the operator. Revocation is
//! audited and re-signs the tenant's CRL at once through its issuing CA.

use super::admin::{cli_actor, now_unix, rfc3339, AdminContext};
use super::KeyProtection;
use crate::sa::{AdminCert, CertQuery};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;

/// `fleetca cert ...`
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Search certificates by name, serial or account, newest first.
    List(ListArgs),
    /// Show one certificate (details and PEM).
    Show(ShowArgs),
    /// Revoke a certificate and re-sign the CRL.
    Revoke(RevokeArgs),
    /// Revoke every certificate of a serial, account, name suffix or issuing CA (tenant).
    RevokeMany(super::fleet::RevokeManyArgs),
    /// List unexpired certificates whose notAfter falls within a window from now.
    Expiring(super::fleet::ExpiringArgs),
}

/// `fleetca cert list` options.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// Only this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// A DNS name or suffix (matches names under it) or an IP address.
    #[arg(long)]
    pub name: Option<String>,
    /// Serial number (hex).
    #[arg(long)]
    pub serial: Option<String>,
    /// Account id.
    #[arg(long)]
    pub account: Option<String>,
    /// Most results.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `fleetca cert show` options.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// Serial number (hex).
    pub serial: String,
    /// Tenant, when the serial is not unique across tenants.
    #[arg(long)]
    pub tenant: Option<String>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `fleetca cert revoke` options.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// Serial number (hex).
    pub serial: String,
    /// Tenant, when the serial is not unique across tenants.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Reason (RFC 5280 §5.3.1, as BR §7.2.2 allows): unspecified, keyCompromise,
    /// affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn, or its code.
    #[arg(long, default_value = "unspecified", value_parser = parse_reason)]
    pub reason: u8,
    /// Passphrase for an encrypted issuing CA key (to re-sign the CRL).
    #[command(flatten)]
    pub keys: KeyProtection,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// BR §7.2.2 permits these CRL reason codes for subscriber certificates.
pub(crate) fn parse_reason(s: &str) -> Result<u8, String> {
    let code = match s.to_ascii_lowercase().as_str() {
        "unspecified" | "0" => 0,
        "keycompromise" | "key-compromise" | "1" => 1,
        "affiliationchanged" | "affiliation-changed" | "3" => 3,
        "superseded" | "4" => 4,
        "cessationofoperation" | "cessation-of-operation" | "5" => 5,
        "privilegewithdrawn" | "privilege-withdrawn" | "9" => 9,
        _ => {
            return Err(format!(
            "{s:?}: use unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation or privilegeWithdrawn"
        ))
        }
    };
    Ok(code)
}

/// Runs a `cert` subcommand.
pub(crate) fn run(cmd: &CertCommand) -> anyhow::Result<()> {
    match cmd {
        CertCommand::List(a) => list(a),
        CertCommand::Show(a) => show(a),
        CertCommand::Revoke(a) => revoke(a),
        CertCommand::RevokeMany(a) => super::fleet::revoke_many(a),
        CertCommand::Expiring(a) => super::fleet::expiring(a),
    }
}

fn names(c: &AdminCert) -> String {
    c.names
        .iter()
        .map(|n| n.value.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn status(c: &AdminCert, now: i64) -> &'static str {
    crate::admin::ops::cert_status(c, now)
}

fn cert_json(c: &AdminCert, now: i64) -> serde_json::Value {
    crate::admin::ops::cert_json(c, now)
}

fn list(a: &ListArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    let certs = ctx.block_on(ctx.db.find_certs(&CertQuery {
        tenant: a.tenant.clone(),
        name: a.name.clone(),
        serial: a.serial.clone(),
        account_id: a.account.clone(),
        limit: a.limit,
    }))?;
    let now = now_unix();
    if a.json {
        let v: Vec<_> = certs.iter().map(|c| cert_json(c, now)).collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    println!(
        "{:<34} {:<12} {:<8} {:<21} NAMES",
        "SERIAL", "TENANT", "STATUS", "NOT AFTER"
    );
    for c in &certs {
        println!(
            "{:<34} {:<12} {:<8} {:<21} {}",
            c.serial,
            c.tenant,
            status(c, now),
            rfc3339(c.not_after),
            names(c)
        );
    }
    Ok(())
}

/// The certificate's embedded SCTs (RFC 6962 §3.3) and its stored precertificate, if it was
/// issued with CT: `{pem, awaiting_final}`; `awaiting_final` while the logs have not given
/// SCTs enough (the row then holds the precertificate itself).
fn ct_json(
    ctx: &AdminContext,
    c: &AdminCert,
) -> anyhow::Result<(serde_json::Value, serde_json::Value)> {
    let scts: Vec<serde_json::Value> = pki::ct::scts_of_cert(&c.der)
        .map_err(|e| anyhow::anyhow!("the stored certificate's SCT list: {e}"))?
        .iter()
        .map(|s| {
            json!({
                "log_id": s.log_id.to_string(),
                "timestamp_ms": s.timestamp_ms,
                "hash_alg": s.hash_alg,
                "sig_alg": s.sig_alg,
            })
        })
        .collect();
    let pre = ctx.block_on(ctx.db.precert_of_order(&c.order_id))?;
    let pre = match pre {
        Some(p) if p.cert.id == c.id => json!({
            "pem": pki::cert_info::der_to_pem("CERTIFICATE", &p.precert_der),
            "awaiting_final": p.awaiting_final(),
        }),
        _ => serde_json::Value::Null,
    };
    Ok((json!(scts), pre))
}

/// The one certificate with `serial` (in `tenant` if given).
fn find_one(ctx: &AdminContext, serial: &str, tenant: Option<&str>) -> anyhow::Result<AdminCert> {
    let mut found = ctx.block_on(ctx.db.find_certs(&CertQuery {
        tenant: tenant.map(str::to_string),
        serial: Some(serial.to_string()),
        ..CertQuery::default()
    }))?;
    match found.len() {
        0 => anyhow::bail!("no certificate with serial {serial}"),
        1 => Ok(found.remove(0)),
        _ => anyhow::bail!("serial {serial} exists in several tenants; add --tenant"),
    }
}

fn show(a: &ShowArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    let c = find_one(&ctx, &a.serial, a.tenant.as_deref())?;
    let pem = pki::cert_info::der_to_pem("CERTIFICATE", &c.der);
    let now = now_unix();
    if a.json {
        let mut v = cert_json(&c, now);
        v["pem"] = json!(pem);
        let (scts, precert) = ct_json(&ctx, &c)?;
        v["scts"] = scts;
        v["precertificate"] = precert;
        println!("{v}");
        return Ok(());
    }
    println!("serial:     {}", c.serial);
    println!("tenant:     {}", c.tenant);
    println!("status:     {}", status(&c, now));
    println!("names:      {}", names(&c));
    println!("not before: {}", rfc3339(c.not_before));
    println!("not after:  {}", rfc3339(c.not_after));
    println!("issued:     {}", rfc3339(c.issued_at));
    println!("account:    {}", c.account_id);
    println!("order:      {}", c.order_id);
    if let Some(r) = c.revoked_at {
        println!(
            "revoked:    {} (reason {})",
            rfc3339(r),
            c.revocation_reason.unwrap_or(0)
        );
    }
    print!("{pem}");
    Ok(())
}

fn revoke(a: &RevokeArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    let c = find_one(&ctx, &a.serial, a.tenant.as_deref())?;
    if c.revoked_at.is_some() {
        anyhow::bail!("certificate {} is already revoked", c.serial);
    }
    let cfg = ctx
        .dd
        .load_tenant_configs()?
        .into_iter()
        .find(|t| t.ca.name == c.tenant)
        .ok_or_else(|| anyhow::anyhow!("tenant {:?} is not configured", c.tenant))?;
    // Load the issuing CA first: a revocation whose CRL cannot be re-signed is refused
    // rather than left unpublished.
    let pass = a.keys.passphrase()?;
    // The CA that signed it, which may be one retired by `tenant rollover`.
    let ca = super::load::load_issuer_by_id(
        &ctx.dd,
        &cfg,
        c.issuer_id(),
        pass.as_deref(),
        a.keys.pkcs11_pin_file.as_deref(),
    )
    .with_context(|| format!("loading the issuing CA of tenant {:?}", c.tenant))?;
    let crl_number = ctx
        .block_on(crate::admin::ops::revoke_cert(
            ctx.db.as_ref(),
            &ca,
            &c,
            a.reason,
            &cli_actor(),
        ))
        .map_err(anyhow::Error::from)?;
    if a.json {
        println!(
            "{}",
            json!({"serial": c.serial, "status": "revoked", "reason": a.reason, "crl_number": crl_number})
        );
    } else {
        println!(
            "revoked {} (reason {}); CRL {} re-signed",
            c.serial, a.reason, crl_number
        );
    }
    Ok(())
}
