//! `fleetca init`: creates a private root, a technically constrained issuing CA (BR §7.1.2.5)
//! for the `default` tenant, the root's CRL, and the server's HTTPS certificate.

use super::{KeyProtection, Pkcs11Args};
use crate::ca::tls_cert;
use crate::datadir::{write_atomic, CaConfig, CaSection, DataDir, Trust, DEFAULT_TENANT};
use anyhow::Context;
use clap::Args;
use pki::ca::{CaProfile, CaSubject};
use pki::keys::KeyType;
use pki::policy::Permitted;
use pki::signer::{FileSigner, Signer};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// `fleetca init` options.
#[derive(Debug, Args, Clone)]
pub struct InitArgs {
    /// Data directory to create.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// A permitted DNS suffix (`routers.example.com`) or IP range (`10.0.0.0/8`); repeatable.
    #[arg(long, required = true)]
    pub permit: Vec<String>,
    /// Root key type: p256, p384, rsa2048, rsa3072, rsa4096.
    #[arg(long, default_value = "p384")]
    pub root_key_type: KeyType,
    /// Issuing CA key type.
    #[arg(long, default_value = "p256")]
    pub issuing_key_type: KeyType,
    /// Also allow clientAuth in the issuing CA's EKU and issued certificates.
    #[arg(long)]
    pub client_auth: bool,
    /// Organization name for the CA certificates.
    #[arg(long)]
    pub organization: Option<String>,
    /// Country (two upper-case letters, ISO 3166-1) for the CA certificates' subjects
    /// (BR §7.1.2.10.2).
    #[arg(long, value_parser = parse_country)]
    pub country: Option<String>,
    /// Plain-HTTP base URL for CRL and caIssuers pointers in certificates.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub public_base_url: String,
    /// CAA issuer domain name that authorizes this CA (RFC 8659); repeatable.
    #[arg(long = "caa-identity", default_value = "fleetca.invalid")]
    pub caa_identities: Vec<String>,
    /// End-entity certificate lifetime in days (BR §6.3.2 caps it at 200 since 2026-03-15).
    #[arg(long, default_value_t = 30)]
    pub lifetime_days: u32,
    /// Extra names (DNS or IP) for the server's HTTPS certificate, besides localhost,
    /// 127.0.0.1 and ::1; repeatable.
    #[arg(long = "tls-name")]
    pub tls_names: Vec<String>,
    /// Require an External Account Binding for newAccount (RFC 8555 §7.3.4); make the
    /// credentials with `fleetca eab create`.
    #[arg(long)]
    pub eab_required: bool,
    /// Also create a delegated OCSP responder certificate (RFC 6960 §4.2.2.2: EKU
    /// OCSPSigning, ocsp-nocheck, 90 days, re-issued by `serve`) whose key signs OCSP
    /// responses instead of the issuing CA key. Off by default: `serve` holds the CA key
    /// anyway, and responses stay smaller without the responder certificate.
    #[arg(long)]
    pub ocsp_signer: bool,
    /// Key encryption.
    #[command(flatten)]
    pub keys: KeyProtection,
    /// Issuing CA key in a PKCS#11 token (HSM) instead of a file.
    #[command(flatten)]
    pub pkcs11: Pkcs11Args,
    /// Offline root: write the root key (encrypted with the key passphrase, which is then
    /// required) to this file instead of the data directory. `serve` never needs it; root
    /// CRLs and new tenants are signed with `fleetca root sign-crl` / `fleetca tenant add`
    /// and `--root-key FILE`.
    #[arg(long, value_name = "FILE")]
    pub root_key_out: Option<PathBuf>,
}

impl InitArgs {
    /// The defaults `serve` uses when it initialises a data directory itself.
    pub fn defaults(data_dir: PathBuf, permit: Vec<String>, keys: KeyProtection) -> Self {
        Self {
            data_dir,
            permit,
            root_key_type: KeyType::EcdsaP384,
            issuing_key_type: KeyType::EcdsaP256,
            client_auth: false,
            organization: None,
            country: None,
            public_base_url: "http://127.0.0.1:8080".into(),
            caa_identities: vec!["fleetca.invalid".into()],
            lifetime_days: 30,
            tls_names: Vec::new(),
            eab_required: false,
            ocsp_signer: false,
            keys,
            pkcs11: Pkcs11Args::default(),
            root_key_out: None,
        }
    }
}

/// A `--country`: an ISO 3166-1 alpha-2 code as BR §7.1.4.2 wants it in countryName, two
/// upper-case letters (checked before any key is made).
pub(super) fn parse_country(s: &str) -> Result<String, String> {
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?}: use the two upper-case letters of an ISO 3166-1 country code"
        ))
    }
}

/// Checks the options shared by `init` and `subca csr` and builds the config and CA profile.
pub(super) fn prepare(dd: &DataDir, ca: CaSection) -> anyhow::Result<(CaConfig, CaProfile)> {
    if dd.is_initialized() {
        anyhow::bail!(
            "{} already holds a CA ({} exists); refusing to overwrite it",
            dd.path().display(),
            dd.config().display()
        );
    }
    let max = pki::issue::MAX_LEAF_LIFETIME.whole_days() as u32;
    if !(1..=max).contains(&ca.lifetime_days) {
        anyhow::bail!("--lifetime-days must be between 1 and {max} (BR §6.3.2)");
    }
    let permitted = Permitted::parse(&ca.permit).context("invalid --permit")?;
    let cfg = CaConfig {
        mpic: None,
        ca: CaSection {
            public_base_url: ca.public_base_url.trim_end_matches('/').to_string(),
            ..ca
        },
    };
    let profile = profile_for(&cfg, permitted);
    // Key directories are private to the CA's user; certificates inside them are public anyway.
    for dir in [
        dd.path().to_path_buf(),
        dd.root_key().with_file_name(""),
        dd.ca_dir(DEFAULT_TENANT),
        dd.tls_key().with_file_name(""),
    ] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    }
    Ok((cfg, profile))
}

/// The `[ca]` section for a new data directory.
pub(super) fn new_section(
    trust: Trust,
    permit: &[String],
    client_auth: bool,
    organization: &Option<String>,
    public_base_url: &str,
    caa: &[String],
    lifetime_days: u32,
) -> CaSection {
    CaSection {
        name: DEFAULT_TENANT.into(),
        trust,
        permit: permit.to_vec(),
        client_auth,
        public_base_url: public_base_url.to_string(),
        caa_identities: caa.to_vec(),
        lifetime_days,
        organization: organization.clone(),
        country: None,
        common_name: None,
        terms_of_service: None,
        website: None,
        challenge_types: crate::datadir::default_challenges(),
        eab_required: false,
        rate_limits: Default::default(),
        attestation_roots: Vec::new(),
        attested_names: Vec::new(),
        domain_reuse_days: None,
        pkcs11: None,
        issuer: None,
        disabled: false,
        ct_logs: Vec::new(),
        ct_required: None,
    }
}

/// The `pki` profile of the tenant's issuing CA.
pub(super) fn profile_for(cfg: &CaConfig, permitted: Permitted) -> CaProfile {
    CaProfile {
        permitted,
        client_auth: cfg.ca.client_auth,
        crl_base_url: cfg.ca.public_base_url.clone(),
        organization: cfg.ca.organization.clone(),
        common_name: cfg
            .ca
            .common_name
            .clone()
            .unwrap_or_else(|| format!("fleetca {} issuing CA", cfg.ca.name)),
        country: cfg.ca.country.clone(),
        trust: match cfg.ca.trust {
            Trust::Private => pki::ca::CaTrust::Private,
            Trust::Public => pki::ca::CaTrust::Public,
        },
    }
}

/// Runs `init`.
pub(crate) fn run(a: &InitArgs) -> anyhow::Result<()> {
    let dd = DataDir::new(&a.data_dir);
    let section = CaSection {
        eab_required: a.eab_required,
        country: a.country.clone(),
        ..new_section(
            Trust::Private,
            &a.permit,
            a.client_auth,
            &a.organization,
            &a.public_base_url,
            &a.caa_identities,
            a.lifetime_days,
        )
    };
    let pass = a.keys.passphrase()?;
    let pass = pass.as_deref();
    if let Some(out) = &a.root_key_out {
        if pass.is_none() {
            anyhow::bail!("--root-key-out writes the root key outside the data directory, encrypted: pass --key-passphrase-file or --key-passphrase-env (or FLEETCA_KEY_PASSPHRASE)");
        }
        if out.exists() {
            anyhow::bail!("{} exists; refusing to overwrite a key", out.display());
        }
    }
    let (mut cfg, profile) = prepare(&dd, section)?;

    let root_key = pki::keys::generate(a.root_key_type)?;
    let root_key_path = a.root_key_out.clone().unwrap_or_else(|| dd.root_key());
    pki::keys::write_key_pem(&root_key_path, &root_key, pass)?;
    let root = FileSigner::new(root_key);
    let subject = CaSubject {
        common_name: "fleetca root CA".into(),
        organization: a.organization.clone(),
        country: a.country.clone(),
    };
    let root_der = pki::ca::create_root_with_subject(&subject, &root, None)?;
    write_atomic(
        &dd.root_cert(),
        pki::cert_info::der_to_pem("CERTIFICATE", &root_der).as_bytes(),
        0o644,
    )?;

    let (ca_signer, pkcs11) = super::ca_key::create_issuing_key(
        &dd,
        DEFAULT_TENANT,
        a.issuing_key_type,
        pass,
        &a.pkcs11,
        a.keys.pkcs11_pin_file.as_deref(),
    )?;
    cfg.ca.pkcs11 = pkcs11;
    let ca_der =
        pki::ca::create_issuing_ca(&root_der, &root, ca_signer.public_key_der(), &profile, None)?;
    write_atomic(
        &dd.ca_cert(DEFAULT_TENANT),
        pki::cert_info::der_to_pem("CERTIFICATE", &ca_der).as_bytes(),
        0o644,
    )?;
    if a.ocsp_signer {
        crate::ca::ocsp_signer::create(
            &dd.ca_dir(DEFAULT_TENANT),
            &ca_der,
            ca_signer.as_ref(),
            pass,
            OffsetDateTime::now_utc(),
        )?;
    }

    write_root_crl(&dd, &root_der, &root)?;
    write_server_tls_ca(&dd, &root_der, &root, &a.tls_names)?;
    dd.save_config(&cfg)?;
    println!(
        "Created a private root and the issuing CA \"{DEFAULT_TENANT}\" in {}",
        dd.path().display()
    );
    println!("Permitted: {}", a.permit.join(", "));
    println!("Root certificate: {}", dd.root_cert().display());
    if let Some(out) = &a.root_key_out {
        println!(
            "Root key (encrypted): {}; keep it offline. `serve` does not need it.",
            out.display()
        );
    }
    Ok(())
}

/// Creates another tenant's name-constrained issuing CA under the private root (`fleetca
/// tenant add`): a new key in `DIR/ca/NAME/key.pem` (encrypted with `pass` when given) or in
/// the PKCS#11 token `p11` names, and its certificate signed by the root. Returns the token
/// section to record, if any. Kept here with `init` so the root key is handled in one place.
#[allow(clippy::too_many_arguments)]
pub(super) fn create_tenant_ca(
    dd: &DataDir,
    cfg: &CaConfig,
    issuing_key_type: KeyType,
    keys: &KeyProtection,
    p11: &Pkcs11Args,
    root_key: Option<&Path>,
    ocsp_signer: bool,
) -> anyhow::Result<Option<crate::datadir::Pkcs11Section>> {
    let pass = keys.passphrase()?;
    let pass = pass.as_deref();
    let name = &cfg.ca.name;
    let permitted = Permitted::parse(&cfg.ca.permit).context("invalid --permit")?;
    let profile = profile_for(cfg, permitted);
    let (root, root_der) = load_root(dd, root_key, pass)?;
    let dir = dd.ca_dir(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let (ca_signer, pkcs11) = super::ca_key::create_issuing_key(
        dd,
        name,
        issuing_key_type,
        pass,
        p11,
        keys.pkcs11_pin_file.as_deref(),
    )?;
    let ca_der =
        pki::ca::create_issuing_ca(&root_der, &root, ca_signer.public_key_der(), &profile, None)?;
    write_atomic(
        &dd.ca_cert(name),
        pki::cert_info::der_to_pem("CERTIFICATE", &ca_der).as_bytes(),
        0o644,
    )?;
    if ocsp_signer {
        crate::ca::ocsp_signer::create(
            &dir,
            &ca_der,
            ca_signer.as_ref(),
            pass,
            OffsetDateTime::now_utc(),
        )?;
    }
    Ok(pkcs11)
}

/// The private root's key (`root_key`, else the data directory's; an offline root needs the
/// option) and certificate, for signing a new issuing CA.
pub(super) fn load_root(
    dd: &DataDir,
    root_key: Option<&Path>,
    pass: Option<&[u8]>,
) -> anyhow::Result<(FileSigner, Vec<u8>)> {
    let root_key = root_key.map_or_else(|| dd.root_key(), Path::to_path_buf);
    if !root_key.exists() {
        anyhow::bail!(
            "{} has no private root key ({}); a new private-trust issuing CA is signed by the root: pass --root-key FILE (the key `init --root-key-out` wrote)",
            dd.path().display(),
            root_key.display()
        );
    }
    let root = FileSigner::load(&root_key, pass)
        .with_context(|| format!("loading the root key {}", root_key.display()))?;
    let root_pem = std::fs::read_to_string(dd.root_cert())
        .with_context(|| format!("reading {}", dd.root_cert().display()))?;
    let root_der = pki::cert_info::pem_to_ders(&root_pem)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("{} holds no certificate", dd.root_cert().display()))?;
    Ok((root, root_der))
}

/// The root's CRL (BR §4.9.7: a root's CRL is valid for at most 12 months). It lists no
/// revoked issuing CA; re-run when one must be revoked.
pub(super) fn write_root_crl(
    dd: &DataDir,
    root_der: &[u8],
    root: &dyn Signer,
) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    let crl = pki::crl::build_crl(
        root_der,
        root,
        &[],
        now,
        now + Duration::days(365),
        now.unix_timestamp() as u64,
        None,
    )?;
    write_atomic(&dd.root_crl(), &crl, 0o644)
}

/// Creates the server TLS CA under the root (see [`tls_cert`]), constrained to localhost,
/// loopback and `extra` names, then the server's HTTPS certificate under it.
pub(super) fn write_server_tls_ca(
    dd: &DataDir,
    root_der: &[u8],
    root: &dyn Signer,
    extra: &[String],
) -> anyhow::Result<()> {
    let names = tls_cert::server_names(extra);
    let key = pki::keys::generate(KeyType::EcdsaP256)?;
    let ca_der = tls_cert::create_server_tls_ca(root_der, root, &key, &names)?;
    pki::keys::write_key_pem(&dd.tls_ca_key(), &key, None)?;
    write_atomic(
        &dd.tls_ca_cert(),
        pki::cert_info::der_to_pem("CERTIFICATE", &ca_der).as_bytes(),
        0o644,
    )?;
    write_server_tls(dd, &ca_der, &FileSigner::new(key), &names)
}

/// Generates the server key and a certificate for `names`, issued by `anchor`.
pub(super) fn write_server_tls(
    dd: &DataDir,
    anchor_der: &[u8],
    anchor: &dyn Signer,
    names: &[String],
) -> anyhow::Result<()> {
    let key = pki::keys::generate(KeyType::EcdsaP256)?;
    let cert = tls_cert::issue_server_cert(anchor_der, anchor, &key, names)?;
    if dd.tls_key().exists() {
        std::fs::remove_file(dd.tls_key())?;
    }
    pki::keys::write_key_pem(&dd.tls_key(), &key, None)?;
    let mut chain = pki::cert_info::der_to_pem("CERTIFICATE", &cert);
    chain.push_str(&pki::cert_info::der_to_pem("CERTIFICATE", anchor_der));
    write_atomic(&dd.tls_cert(), chain.as_bytes(), 0o644)
}
