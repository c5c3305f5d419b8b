//! Public trust: `fleetca subca csr` makes the issuing CA key and a CSR carrying the intended
//! constraints; `fleetca subca import` installs what the outside root signed, after checking it.

use super::{KeyProtection, Pkcs11Args};
use crate::datadir::{write_atomic, DataDir, Trust, DEFAULT_TENANT};
use anyhow::Context;
use clap::Args;
use pki::keys::KeyType;
use pki::policy::Permitted;
use pki::signer::FileSigner;
use std::path::PathBuf;

/// `fleetca subca csr` options.
#[derive(Debug, Args)]
pub struct CsrArgs {
    /// Data directory to create.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// A permitted DNS suffix or IP range; repeatable.
    #[arg(long, required = true)]
    pub permit: Vec<String>,
    /// Issuing CA key type.
    #[arg(long, default_value = "p256")]
    pub key_type: KeyType,
    /// Also request clientAuth.
    #[arg(long)]
    pub client_auth: bool,
    /// organizationName of the CA subject; required (BR §7.1.2.10.2).
    #[arg(long, required = true)]
    pub organization: Option<String>,
    /// countryName of the CA subject, two upper-case letters; required (BR §7.1.2.10.2).
    #[arg(long, required = true, value_parser = super::init::parse_country)]
    pub country: Option<String>,
    /// commonName of the CA subject (default `fleetca default issuing CA`).
    #[arg(long)]
    pub common_name: Option<String>,
    /// Plain-HTTP base URL for CRL and caIssuers pointers in issued certificates.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub public_base_url: String,
    /// CAA issuer domain name of this CA; repeatable.
    #[arg(long = "caa-identity", default_value = "fleetca.invalid")]
    pub caa_identities: Vec<String>,
    /// End-entity lifetime in days.
    #[arg(long, default_value_t = 30)]
    pub lifetime_days: u32,
    /// Key encryption.
    #[command(flatten)]
    pub keys: KeyProtection,
    /// Issuing CA key in a PKCS#11 token (HSM) instead of a file.
    #[command(flatten)]
    pub pkcs11: Pkcs11Args,
}

/// `fleetca subca import` options.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Data directory made by `subca csr` or holding a `tenant add --trust public` tenant.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// The public-trust tenant whose certificate this is (default: the data directory's main
    /// tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// The issuing CA certificate (PEM) the outside root returned.
    #[arg(long = "cert", value_name = "FILE", conflicts_with = "cert")]
    pub cert_file: Option<PathBuf>,
    /// The chain above it (PEM), issuer first, up to and including the root.
    #[arg(long = "chain", value_name = "FILE", conflicts_with = "chain")]
    pub chain_file: Option<PathBuf>,
    /// As `--cert` (positional form).
    #[arg(required_unless_present = "cert_file")]
    pub cert: Option<PathBuf>,
    /// As `--chain` (positional form).
    pub chain: Option<PathBuf>,
    /// Passphrase for the encrypted issuing CA key.
    #[command(flatten)]
    pub keys: KeyProtection,
}

/// Runs `subca csr`.
pub(crate) fn csr(a: &CsrArgs) -> anyhow::Result<()> {
    let dd = DataDir::new(&a.data_dir);
    let section = crate::datadir::CaSection {
        country: a.country.clone(),
        common_name: a.common_name.clone(),
        ..super::init::new_section(
            Trust::Public,
            &a.permit,
            a.client_auth,
            &a.organization,
            &a.public_base_url,
            &a.caa_identities,
            a.lifetime_days,
        )
    };
    super::load::check_lifetime(
        &crate::datadir::CaConfig {
            ca: section.clone(),
            mpic: None,
        },
        crate::clock::server_clock().now(),
    )?;
    // The subject is checked before any key is made (BR §7.1.2.10.2).
    super::init::profile_for(
        &crate::datadir::CaConfig {
            ca: section.clone(),
            mpic: None,
        },
        Permitted::parse(&a.permit)?,
    )
    .permitted_directory_name()?;
    let (mut cfg, profile) = super::init::prepare(&dd, section)?;
    let pass = a.keys.passphrase()?;
    let (signer, pkcs11) = super::ca_key::create_issuing_key(
        &dd,
        DEFAULT_TENANT,
        a.key_type,
        pass.as_deref(),
        &a.pkcs11,
        a.keys.pkcs11_pin_file.as_deref(),
    )?;
    cfg.ca.pkcs11 = pkcs11;
    let csr = pki::ca::subca_csr(signer.as_ref(), &profile)?;
    write_atomic(&dd.ca_csr(DEFAULT_TENANT), csr.as_bytes(), 0o644)?;
    // The HTTPS listener needs a certificate before the outside root answers; a local TLS
    // root anchors it (clients trust tls/root.pem, printed by `fleetca ca root`).
    let tls_root_key = pki::keys::generate(KeyType::EcdsaP256)?;
    let tls_root = crate::ca::tls_cert::create_tls_root(&tls_root_key)?;
    write_atomic(
        &dd.tls_root(),
        pki::cert_info::der_to_pem("CERTIFICATE", &tls_root).as_bytes(),
        0o644,
    )?;
    super::init::write_server_tls(
        &dd,
        &tls_root,
        &FileSigner::new(tls_root_key),
        &crate::ca::tls_cert::server_names(&[]),
    )?;
    dd.save_config(&cfg)?;
    eprintln!("Wrote the issuing CA key and {}; have the outside root sign it, then run `fleetca subca import`.", dd.ca_csr(DEFAULT_TENANT).display());
    print!("{csr}");
    Ok(())
}

/// Runs `subca import`.
pub(crate) fn import(a: &ImportArgs) -> anyhow::Result<()> {
    let dd = DataDir::new(&a.data_dir);
    let cfg = match &a.tenant {
        None => dd.load_config()?,
        Some(t) => {
            super::tenant::require_tenant(&dd, t)?;
            dd.load_tenant_configs()?
                .into_iter()
                .find(|c| &c.ca.name == t)
                .ok_or_else(|| anyhow::anyhow!("no tenant {t:?}"))?
        }
    };
    if cfg.ca.trust != Trust::Public {
        anyhow::bail!(
            "tenant {:?} of {} is a private-trust CA; subca import is for CAs made with `subca csr` or `tenant add --trust public`",
            cfg.ca.name,
            dd.path().display()
        );
    }
    let name = cfg.ca.name.clone();
    let cert_path = a
        .cert_file
        .as_ref()
        .or(a.cert.as_ref())
        .ok_or_else(|| anyhow::anyhow!("pass the certificate with --cert FILE"))?;
    let chain_path = a.chain_file.as_ref().or(a.chain.as_ref());
    let read = |p: &PathBuf| -> anyhow::Result<Vec<Vec<u8>>> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        Ok(pki::cert_info::pem_to_ders(&text)?)
    };
    let cert = read(cert_path)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("{} holds no certificate", cert_path.display()))?;
    let chain = match chain_path {
        Some(p) => read(p)?,
        None => Vec::new(),
    };
    let signer = super::ca_key::open_issuing_key(
        &dd,
        &cfg,
        a.keys.passphrase()?.as_deref(),
        a.keys.pkcs11_pin_file.as_deref(),
    )?;
    let permitted = Permitted::parse(&cfg.ca.permit)?;
    let profile = super::init::profile_for(&cfg, permitted);
    pki::ca::check_imported_issuing_ca(&cert, &chain, signer.as_ref(), &profile)
        .context("the certificate cannot be used as this issuing CA")?;
    write_atomic(
        &dd.ca_cert(&name),
        pki::cert_info::der_to_pem("CERTIFICATE", &cert).as_bytes(),
        0o644,
    )?;
    let chain_pem: String = chain
        .iter()
        .map(|c| pki::cert_info::der_to_pem("CERTIFICATE", c))
        .collect();
    write_atomic(&dd.ca_chain(&name), chain_pem.as_bytes(), 0o644)?;
    println!(
        "Imported the issuing CA certificate of tenant {name:?}; restart `fleetca serve --data-dir {}` to issue with it.",
        dd.path().display()
    );
    Ok(())
}
