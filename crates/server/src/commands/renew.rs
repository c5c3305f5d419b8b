//! `fleetca renew-early`: move the ACME Renewal Information window (RFC 9773 §4.2) of a set of
//! certificates to now, so ARI-aware clients replace them at their next poll — the tool for an
//! incident (a key compromise, a mis-issuance) that must not wait for expiry.

use super::admin::{cli_actor, now_unix, AdminContext};
use crate::sa::{AuditEntry, CertSelector};
use clap::{ArgGroup, Args};
use std::path::PathBuf;

/// How long the "renew now" window stays open. Clients pick a random time inside it
/// (RFC 9773 §4.2), so a short window still spreads a fleet a little.
const WINDOW_SECS: i64 = 3600;

/// `fleetca renew-early`
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("selector").required(true).args(["serial", "account", "suffix", "issued_before", "all"])))]
pub struct RenewEarlyArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// Only this tenant's certificates (default: every tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// One certificate by serial (hex, any case, colons allowed).
    #[arg(long)]
    pub serial: Option<String>,
    /// Every certificate of this account id.
    #[arg(long)]
    pub account: Option<String>,
    /// Every certificate naming this DNS name or a name under it.
    #[arg(long)]
    pub suffix: Option<String>,
    /// Every certificate issued before this RFC 3339 time.
    #[arg(long)]
    pub issued_before: Option<String>,
    /// Every unexpired certificate.
    #[arg(long)]
    pub all: bool,
}

fn selector(a: &RenewEarlyArgs) -> anyhow::Result<CertSelector> {
    Ok(if let Some(s) = &a.serial {
        let hex: String = s
            .chars()
            .filter(|c| *c != ':')
            .collect::<String>()
            .to_ascii_lowercase();
        let trimmed = hex.trim_start_matches("00");
        if trimmed.is_empty() || !trimmed.chars().all(|c| c.is_ascii_hexdigit()) {
            anyhow::bail!("--serial {s:?} is not a hex serial number");
        }
        CertSelector::Serial(trimmed.to_string())
    } else if let Some(acct) = &a.account {
        CertSelector::Account(acct.clone())
    } else if let Some(suffix) = &a.suffix {
        CertSelector::Suffix(suffix.clone())
    } else if let Some(t) = &a.issued_before {
        let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map_err(|e| anyhow::anyhow!("--issued-before {t:?} is not RFC 3339: {e}"))?;
        CertSelector::IssuedBefore(t.unix_timestamp())
    } else {
        CertSelector::All
    })
}

/// Sets the selected certificates' ARI window to [now, now + 1 h] and prints how many.
pub(crate) fn run(a: &RenewEarlyArgs) -> anyhow::Result<()> {
    let sel = selector(a)?;
    let ctx = AdminContext::open(&a.data_dir)?;
    let now = now_unix();
    let certs = ctx.block_on(ctx.db.select_certs(a.tenant.as_deref(), &sel, now))?;
    let ids: Vec<String> = certs.iter().map(|c| c.id.clone()).collect();
    let n = ctx.block_on(
        ctx.db
            .set_renewal_overrides(&ids, now, now + WINDOW_SECS, now),
    )?;
    ctx.block_on(
        ctx.db.append_audit(&AuditEntry {
            at: now,
            actor: cli_actor(),
            action: "cert.renew_early".into(),
            tenant: a.tenant.clone(),
            object: Some(format!("{sel:?}")),
            before: None,
            after: Some(
                serde_json::json!({
                    "certificates": n,
                    "serials": certs.iter().map(|c| c.serial.as_str()).collect::<Vec<_>>(),
                })
                .to_string(),
            ),
        }),
    )?;
    for c in &certs {
        println!("{}", c.serial);
    }
    eprintln!("renewal window moved to now for {n} certificate(s)");
    Ok(())
}
