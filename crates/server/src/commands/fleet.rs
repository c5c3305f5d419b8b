//! Fleet-wide certificate actions: `fleetca cert revoke-many` (revoke every selected
//! certificate, each audited, then re-sign the CRLs so CRL and OCSP show them at once) and
//! `fleetca cert expiring` (what expires within a window).

use super::admin::{cli_actor, now_unix, parse_duration, rfc3339, AdminContext};
use super::select::CertSelection;
use super::KeyProtection;
use crate::clock::SystemClock;
use crate::sa::{AuditEntry, CertRecord, CertSelector};
use anyhow::Context;
use clap::Args;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `fleetca cert revoke-many` options.
#[derive(Debug, Args)]
pub struct RevokeManyArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// Which certificates (the same selectors as `fleetca renew-early`); `--all` needs
    /// `--tenant`.
    #[command(flatten)]
    pub select: CertSelection,
    /// Reason (RFC 5280 §5.3.1, as BR §7.2.2 allows): unspecified, keyCompromise,
    /// affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn, or its code.
    #[arg(long, value_parser = super::cert::parse_reason)]
    pub reason: u8,
    /// Only list what would be revoked.
    #[arg(long)]
    pub dry_run: bool,
    /// Passphrase for encrypted issuing CA keys (to re-sign the CRLs).
    #[command(flatten)]
    pub keys: KeyProtection,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `fleetca cert expiring` options.
#[derive(Debug, Args)]
pub struct ExpiringArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// Window from now: `7d`, `36h`, `2w`, ...
    #[arg(long, value_parser = parse_duration)]
    pub within: std::time::Duration,
    /// Only this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Also list revoked certificates (default: only those still in use).
    #[arg(long)]
    pub include_revoked: bool,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

fn names(c: &CertRecord) -> Vec<&str> {
    c.names.iter().map(|n| n.value.as_str()).collect()
}

fn record_json(c: &CertRecord) -> serde_json::Value {
    json!({
        "id": c.id,
        "serial": c.serial,
        "tenant": c.tenant,
        "account_id": c.account_id,
        "order_id": c.order_id,
        "names": names(c),
        "not_before": c.not_before,
        "not_after": c.not_after,
        "revoked_at": c.revoked_at,
        "revocation_reason": c.revocation_reason,
    })
}

/// Revokes every selected unexpired, unrevoked certificate (one audited transaction each),
/// then re-signs the CRL of each tenant touched.
pub(crate) fn revoke_many(a: &RevokeManyArgs) -> anyhow::Result<()> {
    let sel = a.select.selector()?;
    if sel == CertSelector::All && a.select.tenant.is_none() {
        anyhow::bail!("--all revokes a whole issuing CA's certificates: name it with --tenant");
    }
    let ctx = AdminContext::open(&a.data_dir)?;
    let now = now_unix();
    let selected = ctx.block_on(ctx.db.select_certs(a.select.tenant.as_deref(), &sel, now))?;
    let (already, todo): (Vec<_>, Vec<_>) =
        selected.into_iter().partition(|c| c.revoked_at.is_some());
    if a.dry_run {
        if a.json {
            println!(
                "{}",
                json!({
                    "dry_run": true,
                    "selection": a.select.describe(),
                    "would_revoke": todo.iter().map(record_json).collect::<Vec<_>>(),
                    "already_revoked": already.iter().map(|c| c.serial.as_str()).collect::<Vec<_>>(),
                })
            );
        } else {
            for c in &todo {
                println!("{} {} {}", c.serial, c.tenant, names(c).join(","));
            }
            eprintln!(
                "dry run: would revoke {} certificate(s) ({} already revoked)",
                todo.len(),
                already.len()
            );
        }
        return Ok(());
    }
    // Load every issuing CA involved first: revocations whose CRL cannot be re-signed are
    // refused up front rather than left unpublished.
    let pass = a.keys.passphrase()?;
    // Keyed by issuing CA id: after a rollover one tenant has several CAs, each with its CRL.
    let issuers: BTreeMap<String, String> = todo
        .iter()
        .map(|c| (c.issuer_id().to_string(), c.tenant.clone()))
        .collect();
    let configs = ctx.dd.load_tenant_configs()?;
    let mut cas = BTreeMap::new();
    for (id, t) in &issuers {
        let cfg = configs
            .iter()
            .find(|c| &c.ca.name == t)
            .ok_or_else(|| anyhow::anyhow!("tenant {t:?} is not configured"))?;
        let ca = super::load::load_issuer_by_id(
            &ctx.dd,
            cfg,
            id,
            pass.as_deref(),
            a.keys.pkcs11_pin_file.as_deref(),
        )
        .with_context(|| format!("loading the issuing CA {id:?} of tenant {t:?}"))?;
        cas.insert(id.clone(), ca);
    }
    let actor = cli_actor();
    let selection = a.select.describe();
    let mut revoked = Vec::new();
    let mut raced = Vec::new();
    for c in &todo {
        let at = now_unix();
        let mut after = record_json(c);
        after["revoked_at"] = json!(at);
        after["revocation_reason"] = json!(a.reason);
        after["selection"] = json!(selection);
        let audit = AuditEntry {
            at,
            actor: actor.clone(),
            action: "cert.revoke".into(),
            tenant: Some(c.tenant.clone()),
            object: Some(c.serial.clone()),
            before: Some(record_json(c).to_string()),
            after: Some(after.to_string()),
        };
        if ctx.block_on(ctx.db.revoke_cert_audited(&c.id, at, a.reason, &audit))? {
            revoked.push(c);
        } else {
            raced.push(c.serial.clone());
        }
    }
    let mut crls = BTreeMap::new();
    for (t, ca) in &cas {
        let crl = ctx
            .block_on(ca.publish_crl(ctx.db.as_ref(), &SystemClock))
            .with_context(|| format!("the certificates are revoked, but re-signing the CRL of issuing CA {t:?} failed (serve re-signs it within 5 minutes)"))?;
        crls.insert(t.clone(), crl.number);
    }
    ctx.block_on(ctx.db.append_audit(&AuditEntry {
        at: now_unix(),
        actor,
        action: "cert.revoke_many".into(),
        tenant: a.select.tenant.clone(),
        object: Some(selection.clone()),
        before: None,
        after: Some(
            json!({
                "reason": a.reason,
                "revoked": revoked.iter().map(|c| c.serial.as_str()).collect::<Vec<_>>(),
                "already_revoked": already.iter().map(|c| c.serial.as_str()).collect::<Vec<_>>(),
            })
            .to_string(),
        ),
    }))?;
    if a.json {
        println!(
            "{}",
            json!({
                "selection": selection,
                "reason": a.reason,
                "revoked": revoked.iter().map(|c| c.serial.as_str()).collect::<Vec<_>>(),
                "already_revoked": already.iter().map(|c| c.serial.as_str()).chain(raced.iter().map(String::as_str)).collect::<Vec<_>>(),
                "crl_numbers": crls,
            })
        );
    } else {
        for c in &revoked {
            println!("{}", c.serial);
        }
        eprintln!(
            "revoked {} certificate(s) (reason {}), {} already revoked; CRLs re-signed: {}",
            revoked.len(),
            a.reason,
            already.len() + raced.len(),
            crls.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

/// Lists unexpired certificates whose notAfter falls within the window, soonest first.
pub(crate) fn expiring(a: &ExpiringArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    let now = now_unix();
    let until = now.saturating_add(i64::try_from(a.within.as_secs()).unwrap_or(i64::MAX));
    let mut certs: Vec<CertRecord> = ctx
        .block_on(
            ctx.db
                .select_certs(a.tenant.as_deref(), &CertSelector::All, now),
        )?
        .into_iter()
        .filter(|c| c.not_after <= until && (a.include_revoked || c.revoked_at.is_none()))
        .collect();
    certs.sort_by(|x, y| (x.not_after, &x.serial).cmp(&(y.not_after, &y.serial)));
    if a.json {
        let v: Vec<_> = certs.iter().map(record_json).collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    println!(
        "{:<34} {:<12} {:<21} NAMES",
        "SERIAL", "TENANT", "NOT AFTER"
    );
    for c in &certs {
        println!(
            "{:<34} {:<12} {:<21} {}",
            c.serial,
            c.tenant,
            rfc3339(c.not_after),
            names(c).join(",")
        );
    }
    Ok(())
}
