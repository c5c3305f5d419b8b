//! `fleetca root sign-crl`: the offline root's ceremony command. With `init --root-key-out`
//! the root key never sits in the data directory and `serve` never reads it; the root's CRL
//! (BR §4.9.7: at most 12 months) is re-signed here, on the machine that holds the key, and
//! copied back into `DIR/root/crl.der`. `fleetca tenant add --root-key FILE` is the other
//! command that reads the root key.

use super::KeyProtection;
use crate::datadir::{write_atomic, DataDir};
use anyhow::Context;
use clap::{Args, Subcommand};
use pki::crl::RevokedEntry;
use pki::signer::{FileSigner, Signer};
use std::path::PathBuf;
use time::{Duration, OffsetDateTime};

/// `fleetca root ...`
#[derive(Debug, Subcommand)]
pub enum RootCommand {
    /// Sign a new root CRL with the root key and install it as DIR/root/crl.der (restart
    /// `serve` to publish it). Revocations listed by the previous root CRL are kept.
    SignCrl(SignCrlArgs),
}

/// `fleetca root sign-crl` options.
#[derive(Debug, Args)]
pub struct SignCrlArgs {
    /// Data directory.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
    pub data_dir: PathBuf,
    /// The root key (the file `init --root-key-out` wrote; encrypted: pass the key
    /// passphrase).
    #[arg(long, value_name = "FILE")]
    pub root_key: PathBuf,
    /// Also list this tenant's issuing CA certificate as revoked (keyCompromise is not
    /// assumed: no reason code); repeatable.
    #[arg(long = "revoke-tenant", value_name = "TENANT")]
    pub revoke_tenants: Vec<String>,
    /// Also list this issuing CA certificate (PEM file) as revoked: for a CA that is no longer
    /// a tenant's active one, such as one retired by `tenant rollover` after a key compromise
    /// (`ca/NAME/retired/ID/cert.pem`). It must have been issued by this root; repeatable.
    #[arg(long = "revoke-ca-cert", value_name = "FILE")]
    pub revoke_ca_certs: Vec<PathBuf>,
    /// Days until nextUpdate (BR §4.9.7: at most 365).
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// The root key's passphrase.
    #[command(flatten)]
    pub keys: KeyProtection,
}

/// Runs a `root` subcommand.
pub(crate) fn run(cmd: &RootCommand) -> anyhow::Result<()> {
    match cmd {
        RootCommand::SignCrl(a) => sign_crl(a),
    }
}

fn sign_crl(a: &SignCrlArgs) -> anyhow::Result<()> {
    if !(1..=365).contains(&a.days) {
        anyhow::bail!("--days must be between 1 and 365 (BR §4.9.7)");
    }
    let dd = DataDir::new(&a.data_dir);
    let root_pem = std::fs::read_to_string(dd.root_cert())
        .with_context(|| format!("reading {}", dd.root_cert().display()))?;
    let root_der = pki::cert_info::pem_to_ders(&root_pem)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("{} holds no certificate", dd.root_cert().display()))?;
    let root = FileSigner::load(&a.root_key, a.keys.passphrase()?.as_deref())
        .with_context(|| format!("loading the root key {}", a.root_key.display()))?;
    if pki::cert_info::spki_der_of(&root_der)? != root.public_key_der() {
        anyhow::bail!(
            "{} is not the key of the root in {}",
            a.root_key.display(),
            dd.root_cert().display()
        );
    }
    let now = OffsetDateTime::now_utc();
    let (mut entries, prev_number) = previous_crl(&dd)?;
    let mut to_revoke = Vec::new();
    for tenant in &a.revoke_tenants {
        super::tenant::require_tenant(&dd, tenant)?;
        to_revoke.push(dd.ca_cert(tenant));
    }
    to_revoke.extend(a.revoke_ca_certs.iter().cloned());
    for path in &to_revoke {
        let pem =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let der = pki::cert_info::pem_to_ders(&pem)?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("{} holds no certificate", path.display()))?;
        // A root CRL lists only certificates this root issued (RFC 5280 §5: a CRL's entries
        // are the issuer's own); anything else is an operator mistake worth stopping for.
        if !issued_by(&der, &root_der) {
            anyhow::bail!(
                "{} was not issued by this data directory's root",
                path.display()
            );
        }
        let serial = pki::cert_info::serial_of(&der)?;
        if !entries.iter().any(|e| e.serial == serial) {
            entries.push(RevokedEntry {
                serial,
                revoked_at: now,
                reason: None,
            });
        }
    }
    // CRL numbers only increase (RFC 5280 §5.2.3).
    let number = (now.unix_timestamp() as u64).max(prev_number + 1);
    let crl = pki::crl::build_crl(
        &root_der,
        &root,
        &entries,
        now,
        now + Duration::days(i64::from(a.days)),
        number,
        None,
    )?;
    write_atomic(&dd.root_crl(), &crl, 0o644)?;
    println!(
        "Signed root CRL number {number} ({} revoked) into {}; restart `fleetca serve` to publish it.",
        entries.len(),
        dd.root_crl().display()
    );
    Ok(())
}

/// Whether the certificate `der` names `root_der`'s subject as issuer and carries its signature.
fn issued_by(der: &[u8], root_der: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, root))) = (
        x509_parser::parse_x509_certificate(der),
        x509_parser::parse_x509_certificate(root_der),
    ) else {
        return false;
    };
    cert.issuer() == root.subject() && cert.verify_signature(Some(root.public_key())).is_ok()
}

/// The entries and number of the root CRL in the data directory, if there is one.
fn previous_crl(dd: &DataDir) -> anyhow::Result<(Vec<RevokedEntry>, u64)> {
    let Ok(der) = std::fs::read(dd.root_crl()) else {
        return Ok((Vec::new(), 0));
    };
    let (_, crl) = x509_parser::parse_x509_crl(&der)
        .map_err(|e| anyhow::anyhow!("parsing {}: {e}", dd.root_crl().display()))?;
    let number = crl
        .crl_number()
        .and_then(|n| u64::try_from(n.clone()).ok())
        .unwrap_or(0);
    let entries = crl
        .iter_revoked_certificates()
        .map(|r| {
            Ok(RevokedEntry {
                serial: r.raw_serial().to_vec(),
                revoked_at: r.revocation_date.to_datetime(),
                reason: r.reason_code().map(|(_, c)| c.0).filter(|c| *c != 0),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((entries, number))
}
