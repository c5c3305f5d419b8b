//! `fleetca tenant add|list`: the issuing CAs (tenants) of a data directory. The tenant in
//! `fleetca.toml` (normally `default`) comes from `init`; each further tenant has its own
//! name-constrained issuing CA under the same private root, its own `ca/NAME/tenant.toml`
//! (policy, EAB requirement), its own directory `/acme/NAME/directory` and its own accounts.

use super::admin::{cli_actor, now_unix, AdminContext};
use super::{KeyProtection, Pkcs11Args};
use crate::datadir::{CaConfig, CaSection, DataDir, Trust};
use crate::sa::AuditEntry;
use clap::{Args, Subcommand};
use pki::keys::KeyType;
use serde_json::json;
use std::path::PathBuf;

/// `fleetca tenant ...`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create another issuing CA with its own ACME directory, policy and accounts.
    Add(Box<AddArgs>),
    /// List the tenants.
    List(ListArgs),
}

/// `fleetca tenant add` options.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Tenant name: lower-case letters, digits and `-`, at most 32 (the `<tenant>` in URLs).
    pub name: String,
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// A permitted DNS suffix or IP range of this tenant's issuing CA; repeatable.
    #[arg(long, required = true)]
    pub permit: Vec<String>,
    /// Require an External Account Binding for newAccount (RFC 8555 §7.3.4).
    #[arg(long)]
    pub eab_required: bool,
    /// CAA issuer domain name that identifies this tenant's CA to domain owners (RFC 8659
    /// §4.2; its `meta.caaIdentities`); repeatable. Default: the main tenant's.
    #[arg(long = "caa-identity")]
    pub caa_identities: Vec<String>,
    /// `private` (under this data directory's root). `public` is not available for extra
    /// tenants yet (use `fleetca subca` for the default tenant).
    #[arg(long, default_value = "private", value_parser = parse_trust)]
    pub trust: Trust,
    /// Issuing CA key type.
    #[arg(long, default_value = "p256")]
    pub issuing_key_type: KeyType,
    /// Also allow clientAuth.
    #[arg(long)]
    pub client_auth: bool,
    /// End-entity lifetime in days (default: the main tenant's).
    #[arg(long)]
    pub lifetime_days: Option<u32>,
    /// Also create a delegated OCSP responder certificate (as `fleetca init --ocsp-signer`).
    #[arg(long)]
    pub ocsp_signer: bool,
    /// Key encryption (the root key's passphrase, also used for the new key).
    #[command(flatten)]
    pub keys: KeyProtection,
    /// This tenant's issuing CA key in a PKCS#11 token (HSM) instead of a file.
    #[command(flatten)]
    pub pkcs11: Pkcs11Args,
    /// The root key, when it is offline (`init --root-key-out`): the new issuing CA is
    /// signed with it. Default: the data directory's root/key.pem.
    #[arg(long, value_name = "FILE")]
    pub root_key: Option<PathBuf>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `fleetca tenant list` options.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

fn parse_trust(s: &str) -> Result<Trust, String> {
    match s {
        "private" => Ok(Trust::Private),
        "public" => Ok(Trust::Public),
        _ => Err(format!("{s:?}: use private or public")),
    }
}

/// Runs a `tenant` subcommand.
pub(crate) fn run(cmd: &TenantCommand) -> anyhow::Result<()> {
    match cmd {
        TenantCommand::Add(a) => add(a),
        TenantCommand::List(a) => list(a),
    }
}

/// The tenant names of a data directory.
pub(crate) fn tenant_names(dd: &DataDir) -> anyhow::Result<Vec<String>> {
    Ok(dd
        .load_tenant_configs()?
        .into_iter()
        .map(|c| c.ca.name)
        .collect())
}

/// Fails unless `name` is a tenant of `dd`.
pub(crate) fn require_tenant(dd: &DataDir, name: &str) -> anyhow::Result<()> {
    let names = tenant_names(dd)?;
    if names.iter().any(|n| n == name) {
        Ok(())
    } else {
        anyhow::bail!(
            "no tenant {name:?} in {} (tenants: {})",
            dd.path().display(),
            names.join(", ")
        )
    }
}

fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
}

/// A `--caa-identity` as CAA `issue` values name issuers (RFC 8659 §4.2 `issuer-domain-name`:
/// dot-separated labels of letters, digits and inner `-`), lower-cased; anything else could
/// never match a record.
fn caa_identity(s: &str) -> anyhow::Result<String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if s.len() > 253 || !s.split('.').all(label_ok) {
        anyhow::bail!("--caa-identity {s:?} is not a domain name (RFC 8659 §4.2)");
    }
    Ok(s.to_ascii_lowercase())
}

fn add(a: &AddArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    let dd = &ctx.dd;
    if !valid_name(&a.name) {
        anyhow::bail!(
            "tenant name {:?}: use 1-32 lower-case letters, digits and '-'",
            a.name
        );
    }
    if a.trust == Trust::Public {
        anyhow::bail!("--trust public is not available for additional tenants yet");
    }
    let main = dd.load_config()?;
    if main.ca.trust != Trust::Private {
        anyhow::bail!("this data directory has no private root (it was set up with `fleetca subca`); additional tenants need one");
    }
    if tenant_names(dd)?.contains(&a.name) || dd.ca_dir(&a.name).exists() {
        anyhow::bail!(
            "tenant {:?} already exists in {}",
            a.name,
            dd.path().display()
        );
    }
    let lifetime_days = a.lifetime_days.unwrap_or(main.ca.lifetime_days);
    let caa_identities = if a.caa_identities.is_empty() {
        main.ca.caa_identities.clone()
    } else {
        a.caa_identities
            .iter()
            .map(|i| caa_identity(i))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let max = pki::issue::MAX_LEAF_LIFETIME.whole_days() as u32;
    if !(1..=max).contains(&lifetime_days) {
        anyhow::bail!("--lifetime-days must be between 1 and {max} (BR §6.3.2)");
    }
    let mut cfg = CaConfig {
        ca: CaSection {
            name: a.name.clone(),
            trust: a.trust,
            permit: a.permit.clone(),
            client_auth: a.client_auth,
            lifetime_days,
            eab_required: a.eab_required,
            caa_identities,
            attestation_roots: Vec::new(),
            attested_names: Vec::new(),
            domain_reuse_days: None,
            pkcs11: None,
            ..main.ca.clone()
        },
    };
    cfg.ca.pkcs11 = super::init::create_tenant_ca(
        dd,
        &cfg,
        a.issuing_key_type,
        &a.keys,
        &a.pkcs11,
        a.root_key.as_deref(),
        a.ocsp_signer,
    )?;
    // tenant.toml last: its presence is what makes the tenant exist for `serve`.
    dd.save_tenant_config(&cfg)?;
    let summary = tenant_json(&cfg);
    ctx.block_on(ctx.db.append_audit(&AuditEntry {
        at: now_unix(),
        actor: cli_actor(),
        action: "tenant.add".into(),
        tenant: Some(a.name.clone()),
        object: Some(a.name.clone()),
        before: None,
        after: Some(summary.to_string()),
    }))?;
    if a.json {
        println!("{summary}");
    } else {
        println!(
            "Created tenant {:?} (issuing CA {}) permitted {}; ACME directory /acme/{}/directory. Restart `fleetca serve` to load it.",
            a.name,
            dd.ca_cert(&a.name).display(),
            a.permit.join(", "),
            a.name
        );
    }
    Ok(())
}

fn tenant_json(cfg: &CaConfig) -> serde_json::Value {
    json!({
        "name": cfg.ca.name,
        "trust": cfg.ca.trust,
        "permit": cfg.ca.permit,
        "eab_required": cfg.ca.eab_required,
        "caa_identities": cfg.ca.caa_identities,
        "lifetime_days": cfg.ca.lifetime_days,
        "challenge_types": cfg.ca.challenge_types,
    })
}

fn list(a: &ListArgs) -> anyhow::Result<()> {
    let dd = DataDir::new(&a.data_dir);
    let cfgs = dd.load_tenant_configs()?;
    if a.json {
        let v: Vec<_> = cfgs.iter().map(tenant_json).collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    for c in &cfgs {
        println!(
            "{:<16} {:<8} eab_required={:<5} permit={}",
            c.ca.name,
            match c.ca.trust {
                Trust::Private => "private",
                Trust::Public => "public",
            },
            c.ca.eab_required,
            c.ca.permit.join(",")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn tenant_names_are_url_safe() {
        for ok in ["a", "vendor-1", "acme2"] {
            assert!(super::valid_name(ok), "{ok}");
        }
        for bad in ["", "A", "a/b", "-x", "a.b", &"x".repeat(33)] {
            assert!(!super::valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn caa_identities_are_issuer_domain_names() {
        assert_eq!(
            super::caa_identity("CA-B.Fleetca.test").unwrap(),
            "ca-b.fleetca.test"
        );
        for bad in ["", "ca..test", "-ca.test", "ca.test.", "ca b.test", "ca;x"] {
            assert!(super::caa_identity(bad).is_err(), "{bad}");
        }
    }
}
