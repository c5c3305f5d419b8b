//! `fleetca tenant add|update|disable|enable|list` (and `rollover`, in its own module): the issuing CAs (tenants) of a data directory. The tenant in
//! `fleetca.toml` (normally `default`) comes from `init`; each further tenant has its own
//! name-constrained issuing CA under the same private root, its own `ca/NAME/tenant.toml`
//! (policy, EAB requirement), its own directory `/acme/NAME/directory` and its own accounts.

use super::admin::{cli_actor, now_unix, AdminContext};
use super::{KeyProtection, Pkcs11Args};
use crate::datadir::{CaConfig, CaSection, DataDir, Trust};
use crate::sa::AuditEntry;
use anyhow::Context;
use clap::{Args, Subcommand};
use pki::keys::KeyType;
use serde_json::json;
use std::path::PathBuf;

/// `fleetca tenant ...`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create another issuing CA with its own ACME directory, policy and accounts.
    Add(Box<AddArgs>),
    /// Change a tenant's policy (EAB requirement, CAA identities, attestation roots).
    Update(UpdateArgs),
    /// Stop a tenant's ACME service; its CRL, OCSP and CA certificate stay published.
    Disable(StateArgs),
    /// Serve a disabled tenant's ACME directory again.
    Enable(StateArgs),
    /// List the tenants.
    List(ListArgs),
    /// Replace the tenant's issuing CA with a new one (new key, same constraints); the old
    /// one keeps serving CRLs, OCSP and ARI for its certificates until they expire.
    Rollover(Box<super::rollover::RolloverArgs>),
}

/// `fleetca tenant update` options; what is not given stays as it is. A running `serve`
/// applies the change on SIGHUP or `POST /api/reload`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Tenant name.
    pub name: String,
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// Require (true) or stop requiring (false) an External Account Binding for newAccount
    /// (RFC 8555 §7.3.4).
    #[arg(long)]
    pub eab_required: Option<bool>,
    /// Replace the CAA issuer domain names (RFC 8659 §4.2); repeatable.
    #[arg(long = "caa-identity")]
    pub caa_identities: Vec<String>,
    /// Replace the manufacturing CA roots for `device-attest-01` (PEM files; relative paths
    /// are under the data directory); repeatable.
    #[arg(long = "attestation-root")]
    pub attestation_roots: Vec<String>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `fleetca tenant disable|enable` options.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// Tenant name (not the tenant of fleetca.toml).
    pub name: String,
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
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
    /// `private` (signed now by this data directory's root) or `public` (a key and a CSR
    /// for a publicly trusted root to sign; install its answer with `fleetca subca import
    /// --tenant NAME`).
    #[arg(long, default_value = "private", value_parser = parse_trust)]
    pub trust: Trust,
    /// organizationName of the issuing CA (private trust: default the main tenant's);
    /// required for public trust (BR §7.1.2.10.2), where it is also the directoryName Name
    /// Constraint.
    #[arg(long)]
    pub organization: Option<String>,
    /// countryName of the issuing CA, two upper-case letters (private trust: default the
    /// main tenant's); required for public trust (BR §7.1.2.10.2).
    #[arg(long, value_parser = super::init::parse_country)]
    pub country: Option<String>,
    /// commonName of the issuing CA (default `fleetca NAME issuing CA`).
    #[arg(long)]
    pub common_name: Option<String>,
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
        TenantCommand::Update(a) => update(a),
        TenantCommand::Disable(a) => set_disabled(a, true),
        TenantCommand::Enable(a) => set_disabled(a, false),
        TenantCommand::List(a) => list(a),
        TenantCommand::Rollover(a) => super::rollover::run(a),
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

/// What a new tenant is made of (`tenant add`, `POST /api/tenants`).
pub(crate) struct NewTenant {
    pub(crate) name: String,
    /// Private (signed here, by the private root) or public (a CSR for an outside root).
    pub(crate) trust: Trust,
    /// Subject organizationName / countryName / commonName; a private tenant inherits the
    /// main tenant's when not given.
    pub(crate) organization: Option<String>,
    pub(crate) country: Option<String>,
    pub(crate) common_name: Option<String>,
    pub(crate) permit: Vec<String>,
    pub(crate) eab_required: bool,
    pub(crate) caa_identities: Vec<String>,
    pub(crate) client_auth: bool,
    pub(crate) lifetime_days: Option<u32>,
    pub(crate) issuing_key_type: KeyType,
    pub(crate) ocsp_signer: bool,
}

/// Creates tenant `t` in `dd`: its configuration, then (private trust) its issuing CA under
/// the private root and its `tenant.toml`. A public-trust configuration is returned unsaved:
/// [`add_public`] makes its key and CSR. Nothing is written if a check fails.
pub(crate) fn create(
    dd: &DataDir,
    t: &NewTenant,
    keys: &KeyProtection,
    pkcs11: &Pkcs11Args,
    root_key: Option<&std::path::Path>,
) -> anyhow::Result<CaConfig> {
    if !valid_name(&t.name) {
        anyhow::bail!(
            "tenant name {:?}: use 1-32 lower-case letters, digits and '-'",
            t.name
        );
    }
    if t.permit.is_empty() {
        anyhow::bail!("a tenant needs at least one permitted name (--permit)");
    }
    let main = dd.load_config()?;
    if t.trust == Trust::Private && main.ca.trust != Trust::Private {
        anyhow::bail!("this data directory has no private root (it was set up with `fleetca subca`); additional tenants need one");
    }
    if tenant_names(dd)?.contains(&t.name) || dd.ca_dir(&t.name).exists() {
        anyhow::bail!(
            "tenant {:?} already exists in {}",
            t.name,
            dd.path().display()
        );
    }
    let lifetime_days = t.lifetime_days.unwrap_or(main.ca.lifetime_days);
    let caa_identities = if t.caa_identities.is_empty() {
        main.ca.caa_identities.clone()
    } else {
        t.caa_identities
            .iter()
            .map(|i| caa_identity(i))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let max = pki::issue::MAX_LEAF_LIFETIME.whole_days() as u32;
    if !(1..=max).contains(&lifetime_days) {
        anyhow::bail!("--lifetime-days must be between 1 and {max} (BR §6.3.2)");
    }
    // The permitted names must parse before any key is made.
    pki::policy::Permitted::parse(&t.permit)
        .map_err(|e| anyhow::anyhow!("invalid permitted name: {e}"))?;
    // A public-trust tenant's subject names the vendor it issues for, so it never inherits
    // the main tenant's.
    let (organization, country) = match t.trust {
        Trust::Private => (
            t.organization.clone().or(main.ca.organization.clone()),
            t.country.clone().or(main.ca.country.clone()),
        ),
        Trust::Public => (t.organization.clone(), t.country.clone()),
    };
    let mut cfg = CaConfig {
        mpic: None,
        ca: CaSection {
            name: t.name.clone(),
            trust: t.trust,
            permit: t.permit.clone(),
            client_auth: t.client_auth,
            lifetime_days,
            eab_required: t.eab_required,
            caa_identities,
            attestation_roots: Vec::new(),
            attested_names: Vec::new(),
            domain_reuse_days: None,
            pkcs11: None,
            organization,
            country,
            common_name: t.common_name.clone(),
            issuer: None,
            disabled: false,
            ct_logs: Vec::new(),
            ct_required: None,
            ..main.ca.clone()
        },
    };
    if t.trust == Trust::Public {
        return Ok(cfg);
    }
    cfg.ca.pkcs11 = super::init::create_tenant_ca(
        dd,
        &cfg,
        t.issuing_key_type,
        keys,
        pkcs11,
        root_key,
        t.ocsp_signer,
    )?;
    // tenant.toml last: its presence is what makes the tenant exist for `serve`.
    dd.save_tenant_config(&cfg)?;
    Ok(cfg)
}

fn add(a: &AddArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    let dd = &ctx.dd;
    let new = NewTenant {
        name: a.name.clone(),
        trust: a.trust,
        organization: a.organization.clone(),
        country: a.country.clone(),
        common_name: a.common_name.clone(),
        permit: a.permit.clone(),
        eab_required: a.eab_required,
        caa_identities: a.caa_identities.clone(),
        client_auth: a.client_auth,
        lifetime_days: a.lifetime_days,
        issuing_key_type: a.issuing_key_type,
        ocsp_signer: a.ocsp_signer,
    };
    let cfg = create(dd, &new, &a.keys, &a.pkcs11, a.root_key.as_deref())?;
    if a.trust == Trust::Public {
        return add_public(&ctx, a, cfg);
    }
    let summary = audit_added(&ctx, &cfg)?;
    if a.json {
        println!("{summary}");
    } else {
        println!(
            "Created tenant {:?} (issuing CA {}) permitted {}; ACME directory /acme/{}/directory. A running `fleetca serve` loads it on SIGHUP (systemctl reload) or POST /api/reload.",
            a.name,
            dd.ca_cert(&a.name).display(),
            a.permit.join(", "),
            a.name
        );
    }
    Ok(())
}

/// Records `tenant.add` in the audit log; returns the tenant's summary.
fn audit_added(ctx: &AdminContext, cfg: &CaConfig) -> anyhow::Result<serde_json::Value> {
    let summary = tenant_json(cfg);
    ctx.block_on(ctx.db.append_audit(&AuditEntry {
        at: now_unix(),
        actor: cli_actor(),
        action: "tenant.add".into(),
        tenant: Some(cfg.ca.name.clone()),
        object: Some(cfg.ca.name.clone()),
        before: None,
        after: Some(summary.to_string()),
    }))?;
    Ok(summary)
}

/// `tenant add --trust public`: the issuing CA key (in the token when `--pkcs11-*` is given)
/// and `ca/NAME/request.csr` with the subject and constraints the outside root must sign
/// (BR §7.1.2.10.2 subject, §7.1.2.5.2 Name Constraints with the directoryName). Nothing is
/// written when a check fails. `serve` skips the tenant until `subca import --tenant NAME`.
fn add_public(ctx: &AdminContext, a: &AddArgs, mut cfg: CaConfig) -> anyhow::Result<()> {
    let dd = &ctx.dd;
    if a.root_key.is_some() || a.ocsp_signer {
        anyhow::bail!("--root-key and --ocsp-signer are for private trust: an outside root signs a public-trust tenant");
    }
    if cfg.ca.country.is_none() || cfg.ca.organization.is_none() {
        anyhow::bail!("--trust public needs --country and --organization: BR §7.1.2.10.2 requires countryName and organizationName in a CA subject, and they are also its directoryName Name Constraint (BR §7.1.2.5.2)");
    }
    super::load::check_lifetime(&cfg, crate::clock::server_clock().now())?;
    let permitted = pki::policy::Permitted::parse(&cfg.ca.permit).context("invalid --permit")?;
    let profile = super::init::profile_for(&cfg, permitted);
    profile.permitted_directory_name()?;
    let dir = dd.ca_dir(&a.name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let made = (|| -> anyhow::Result<()> {
        let pass = a.keys.passphrase()?;
        let (signer, pkcs11) = super::ca_key::create_issuing_key(
            dd,
            &a.name,
            a.issuing_key_type,
            pass.as_deref(),
            &a.pkcs11,
            a.keys.pkcs11_pin_file.as_deref(),
        )?;
        cfg.ca.pkcs11 = pkcs11;
        let csr = pki::ca::subca_csr(signer.as_ref(), &profile)?;
        crate::datadir::write_atomic(&dd.ca_csr(&a.name), csr.as_bytes(), 0o644)?;
        dd.save_tenant_config(&cfg)
    })();
    if let Err(e) = made {
        // Leave no half-made tenant behind (a token key, if made, stays in the token).
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    let summary = audit_added(ctx, &cfg)?;
    if a.json {
        println!("{summary}");
    } else {
        println!(
            "Created public-trust tenant {:?} permitted {}. Have the outside root sign {}, then run `fleetca subca import --tenant {} --cert FILE --chain FILE` and reload `fleetca serve` (SIGHUP or POST /api/reload).",
            a.name,
            a.permit.join(", "),
            dd.ca_csr(&a.name).display(),
            a.name
        );
    }
    Ok(())
}

/// Rewrites `name`'s `tenant.toml` with `change` applied, and audits it as `action`.
fn change_tenant(
    data_dir: &std::path::Path,
    name: &str,
    action: &str,
    change: impl FnOnce(&mut CaConfig) -> anyhow::Result<()>,
) -> anyhow::Result<CaConfig> {
    let ctx = AdminContext::open(data_dir)?;
    let dd = &ctx.dd;
    require_tenant(dd, name)?;
    if dd.load_config()?.ca.name == name {
        anyhow::bail!("tenant {name:?} is configured in fleetca.toml; edit that file instead");
    }
    let mut cfg = dd
        .load_tenant_configs()?
        .into_iter()
        .find(|c| c.ca.name == name)
        .ok_or_else(|| anyhow::anyhow!("no tenant {name:?}"))?;
    let before = tenant_json(&cfg);
    change(&mut cfg)?;
    dd.save_tenant_config(&cfg)?;
    let after = tenant_json(&cfg);
    ctx.block_on(ctx.db.append_audit(&AuditEntry {
        at: now_unix(),
        actor: cli_actor(),
        action: action.into(),
        tenant: Some(name.to_string()),
        object: Some(name.to_string()),
        before: Some(before.to_string()),
        after: Some(after.to_string()),
    }))?;
    Ok(cfg)
}

fn update(a: &UpdateArgs) -> anyhow::Result<()> {
    let caa = a
        .caa_identities
        .iter()
        .map(|i| caa_identity(i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let dd = DataDir::new(&a.data_dir);
    for r in &a.attestation_roots {
        let path = dd.path().join(r);
        if !path.is_file() {
            anyhow::bail!("--attestation-root {r}: {} is not a file", path.display());
        }
    }
    let cfg = change_tenant(&a.data_dir, &a.name, "tenant.update", |cfg| {
        if let Some(eab) = a.eab_required {
            cfg.ca.eab_required = eab;
        }
        if !caa.is_empty() {
            cfg.ca.caa_identities = caa;
        }
        if !a.attestation_roots.is_empty() {
            cfg.ca.attestation_roots = a.attestation_roots.clone();
        }
        // The loader's own checks (roots readable, templates inside the permitted names).
        super::load::load_attestation_roots(&dd, cfg)?;
        super::load::load_attested_names(cfg)?;
        Ok(())
    })?;
    if a.json {
        println!("{}", tenant_json(&cfg));
    } else {
        println!(
            "Updated tenant {:?}. A running `fleetca serve` applies it on SIGHUP or POST /api/reload.",
            a.name
        );
    }
    Ok(())
}

fn set_disabled(a: &StateArgs, disabled: bool) -> anyhow::Result<()> {
    let action = if disabled {
        "tenant.disable"
    } else {
        "tenant.enable"
    };
    change_tenant(&a.data_dir, &a.name, action, |cfg| {
        cfg.ca.disabled = disabled;
        Ok(())
    })?;
    println!(
        "Tenant {:?} {}. A running `fleetca serve` applies it on SIGHUP or POST /api/reload.",
        a.name,
        if disabled {
            "disabled (its CRL and OCSP stay published)"
        } else {
            "enabled"
        }
    );
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
        "disabled": cfg.ca.disabled,
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
