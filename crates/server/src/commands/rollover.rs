//! `fleetca tenant rollover NAME`: replaces a tenant's issuing CA with a new one (new key, same
//! name constraints and profile, signed by the root) without touching what the old one issued.
//!
//! The active CA always lives in `ca/NAME/{key,cert}.pem`, so every command that signs with the
//! active CA is unchanged. The old CA moves to `ca/NAME/retired/<id>/` with an `issuer.toml`
//! naming its id (and its PKCS#11 key, if any); `serve` loads it as a retired CA that signs
//! no certificate but keeps answering CRL, OCSP, ARI and chain requests for the certificates it
//! issued, which record its id (`certificates.issuer`). A CA's id names its URLs
//! (`/crl/<id>.crl`, `/ocsp/<id>`, `/ca/<id>.cer`): the tenant's first CA has the tenant's
//! name, later ones `<name>_g<N>` (`_` cannot occur in a tenant name, so the two never
//! collide). Each new CA also gets a subject of its own (`... issuing CA G<N>`): relying
//! parties that look issuers up by name (RFC 5280 §6.1) never confuse the two keys.

use super::admin::{cli_actor, now_unix, AdminContext};
use super::{KeyProtection, Pkcs11Args};
use crate::datadir::{write_atomic, CaConfig, DataDir, RetiredIssuer, Trust};
use crate::sa::{AuditEntry, CertSelector};
use anyhow::Context;
use clap::Args;
use pki::keys::KeyType;
use pki::policy::Permitted;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// `fleetca tenant rollover` options.
#[derive(Debug, Args)]
pub struct RolloverArgs {
    /// The tenant whose issuing CA is replaced.
    pub name: String,
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// Also ask every live certificate of the tenant's older CAs to renew now: their ACME
    /// Renewal Information window (RFC 9773) is moved to the past, as `renew-early` does.
    #[arg(long)]
    pub renew_all: bool,
    /// The new issuing CA's key type.
    #[arg(long, default_value = "p256")]
    pub issuing_key_type: KeyType,
    /// Key encryption (the root key's passphrase, also used for the new key).
    #[command(flatten)]
    pub keys: KeyProtection,
    /// The new issuing CA key in a PKCS#11 token (HSM) instead of a file.
    #[command(flatten)]
    pub pkcs11: Pkcs11Args,
    /// The root key, when it is offline (`init --root-key-out`). Default: root/key.pem.
    #[arg(long, value_name = "FILE")]
    pub root_key: Option<PathBuf>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// The files of an issuing CA's directory that belong to the CA (the tenant's configuration
/// and its retired CAs stay where they are).
const CA_FILES: [&str; 3] = ["cert.pem", "key.pem", "chain.pem"];

/// Runs `tenant rollover`.
pub(crate) fn run(a: &RolloverArgs) -> anyhow::Result<()> {
    let ctx = AdminContext::open(&a.data_dir)?;
    let dd = &ctx.dd;
    let mut cfg = dd
        .load_tenant_configs()?
        .into_iter()
        .find(|c| c.ca.name == a.name)
        .ok_or_else(|| anyhow::anyhow!("no tenant {:?} in {}", a.name, dd.path().display()))?;
    if cfg.ca.trust != Trust::Private {
        anyhow::bail!(
            "tenant {:?} is publicly trusted: its new issuing CA must be signed by the outside root, which `tenant rollover` does not do yet (see docs/rollover-backup.md)",
            a.name
        );
    }
    let name = cfg.ca.name.clone();
    let ca_dir = dd.ca_dir(&name);
    let old_id = cfg.ca.issuer_id().to_string();
    let retired = super::load::retired_issuers(dd, &name)?;
    let taken = |id: &str| id == old_id || retired.iter().any(|(r, _)| r.id == id);
    let mut generation = retired.len() + 2;
    while taken(&format!("{name}_g{generation}")) {
        generation += 1;
    }
    let new_id = format!("{name}_g{generation}");
    let old_dir = dd.retired_dir(&name).join(&old_id);
    if old_dir.exists() {
        anyhow::bail!(
            "{} exists: an earlier rollover did not finish; check the tenant's files (docs/rollover-backup.md) before trying again",
            old_dir.display()
        );
    }
    let staging = ca_dir.join(".rollover");
    if staging.exists() {
        anyhow::bail!(
            "{} exists: an earlier rollover did not finish; remove it (it holds only the unused new key) and try again",
            staging.display()
        );
    }

    // 1. The new CA, beside the old one: nothing `serve` reads changes yet.
    let pass = a.keys.passphrase()?;
    let pass = pass.as_deref();
    let (root, root_der) = super::init::load_root(dd, a.root_key.as_deref(), pass)?;
    private_dir(&staging)?;
    let (signer, pkcs11) = super::ca_key::create_key_at(
        &staging.join("key.pem"),
        &name,
        a.issuing_key_type,
        pass,
        &a.pkcs11,
        a.keys.pkcs11_pin_file.as_deref(),
    )?;
    let permitted = Permitted::parse(&cfg.ca.permit).context("invalid permit")?;
    let mut profile = super::init::profile_for(&cfg, permitted);
    profile.common_name = format!("{} G{generation}", profile.common_name);
    let ca_der =
        pki::ca::create_issuing_ca(&root_der, &root, signer.public_key_der(), &profile, None)?;
    write_atomic(
        &staging.join("cert.pem"),
        pki::cert_info::der_to_pem("CERTIFICATE", &ca_der).as_bytes(),
        0o644,
    )?;

    // 2. The old CA's copy under retired/; issuer.toml last, as it makes the copy a CA.
    private_dir(&dd.retired_dir(&name))?;
    private_dir(&old_dir)?;
    for f in CA_FILES {
        if ca_dir.join(f).exists() {
            // fs::copy keeps the mode (0600 for the key).
            std::fs::copy(ca_dir.join(f), old_dir.join(f))
                .with_context(|| format!("copying {} to {}", f, old_dir.display()))?;
        }
    }
    let meta = RetiredIssuer {
        id: old_id.clone(),
        pkcs11: cfg.ca.pkcs11.clone(),
    };
    write_atomic(
        &old_dir.join("issuer.toml"),
        toml::to_string_pretty(&meta)?.as_bytes(),
        0o644,
    )?;

    // 3. The new CA takes the active place, then the configuration names it.
    if staging.join("key.pem").exists() {
        std::fs::rename(staging.join("key.pem"), ca_dir.join("key.pem"))?;
    } else if ca_dir.join("key.pem").exists() {
        // The new key is in a token; the old key file now lives only under retired/.
        std::fs::remove_file(ca_dir.join("key.pem"))?;
    }
    std::fs::rename(staging.join("cert.pem"), ca_dir.join("cert.pem"))?;
    // A delegated OCSP responder certifies for the CA that issued it: the old one's goes
    // (the retired CA signs its OCSP answers itself), the new CA gets its own.
    let had_responder = crate::ca::ocsp_signer::configured(&ca_dir);
    for f in [
        crate::ca::ocsp_signer::key_path(&ca_dir),
        crate::ca::ocsp_signer::cert_path(&ca_dir),
    ] {
        if f.exists() {
            std::fs::remove_file(f)?;
        }
    }
    if had_responder {
        crate::ca::ocsp_signer::create(
            &ca_dir,
            &ca_der,
            signer.as_ref(),
            pass,
            time::OffsetDateTime::now_utc(),
        )?;
    }
    cfg.ca.issuer = Some(new_id.clone());
    cfg.ca.pkcs11 = pkcs11;
    save(dd, &cfg)?;
    std::fs::remove_dir_all(&staging)?;

    // 4. What the old CAs still answer for, and --renew-all.
    let now = now_unix();
    let live: Vec<_> = ctx
        .block_on(ctx.db.select_certs(Some(&name), &CertSelector::All, now))?
        .into_iter()
        .filter(|c| c.issuer_id() != new_id)
        .collect();
    let last_expiry = live.iter().map(|c| c.not_after).max();
    if a.renew_all && !live.is_empty() {
        let ids: Vec<String> = live.iter().map(|c| c.id.clone()).collect();
        ctx.block_on(ctx.db.set_renewal_overrides(
            &ids,
            now - crate::admin::ops::RENEW_EARLY_WINDOW_SECS,
            now,
            now,
        ))?;
    }
    let summary = json!({
        "tenant": name,
        "issuer": new_id,
        "retired": old_id,
        "certificate": ca_dir.join("cert.pem"),
        "live_certificates_of_older_cas": live.len(),
        "last_expiry": last_expiry,
        "renew_all": a.renew_all,
    });
    ctx.block_on(ctx.db.append_audit(&AuditEntry {
        at: now,
        actor: cli_actor(),
        action: "tenant.rollover".into(),
        tenant: Some(name.clone()),
        object: Some(new_id.clone()),
        before: Some(json!({ "issuer": old_id }).to_string()),
        after: Some(summary.to_string()),
    }))?;
    if a.json {
        println!("{summary}");
    } else {
        println!(
            "Tenant {name:?}: new issuing CA {new_id:?} ({}); {old_id:?} is retired to {}.",
            ca_dir.join("cert.pem").display(),
            old_dir.display()
        );
        println!(
            "{} live certificate(s) of older CAs{}; their CRLs and OCSP keep being served. Restart `fleetca serve` to issue from the new CA.",
            live.len(),
            match last_expiry {
                Some(t) => format!(" (the last expires at {t}, UNIX time)"),
                None => String::new(),
            }
        );
        if a.renew_all {
            println!("Their ACME Renewal Information now says: renew now.");
        }
    }
    Ok(())
}

fn save(dd: &DataDir, cfg: &CaConfig) -> anyhow::Result<()> {
    if dd.load_config()?.ca.name == cfg.ca.name {
        dd.save_config(cfg)
    } else {
        dd.save_tenant_config(cfg)
    }
}

/// Creates `dir` (and its parents) private to the CA's user: it holds CA keys.
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}
