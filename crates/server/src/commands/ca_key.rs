//! Where an issuing CA's key lives: a PKCS#8 file in the data directory (`ca/NAME/key.pem`,
//! optionally PBES2-encrypted) or, with `--pkcs11-module`/`--pkcs11-token`, a key pair
//! generated inside a PKCS#11 token (BR §6.2.7 wants CA keys in hardware). The CA code sees
//! only `dyn Signer` either way.

use crate::datadir::{CaConfig, DataDir, Pkcs11Section};
use anyhow::Context;
use clap::Args;
use pki::keys::KeyType;
use pki::pkcs11::Pkcs11Signer;
use pki::signer::{FileSigner, Signer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Options of the commands that create an issuing CA key (`init`, `tenant add`, `subca csr`).
/// The PIN file is `--pkcs11-pin-file` of [`super::KeyProtection`], which `serve` and the
/// operator commands that sign (CRLs) share.
#[derive(Debug, Args, Clone, Default)]
pub struct Pkcs11Args {
    /// Generate the issuing CA key inside this PKCS#11 module's token (the HSM's shared
    /// library, e.g. /usr/lib/softhsm/libsofthsm2.so); needs --pkcs11-token and
    /// --pkcs11-pin-file. No key file is written.
    #[arg(long, env = "FLEETCA_PKCS11_MODULE", requires = "pkcs11_token")]
    pub pkcs11_module: Option<PathBuf>,
    /// Label of the token (slot) that generates and keeps the key.
    #[arg(long, env = "FLEETCA_PKCS11_TOKEN", requires = "pkcs11_module")]
    pub pkcs11_token: Option<String>,
}

/// Reads the PIN for a token key; a PKCS#11 key without a PIN file is a clear error.
fn pin(pin_file: Option<&Path>, what: &str) -> anyhow::Result<String> {
    let file = pin_file.ok_or_else(|| {
        anyhow::anyhow!(
            "{what} is in a PKCS#11 token: pass --pkcs11-pin-file FILE (or FLEETCA_PKCS11_PIN_FILE)"
        )
    })?;
    Ok(pki::pkcs11::read_pin_file(file)?)
}

/// Makes tenant `tenant`'s issuing CA key: in the token when `p11` names one (returning the
/// section to record in the tenant's configuration), else as `key.pem` in the data directory.
pub(super) fn create_issuing_key(
    dd: &DataDir,
    tenant: &str,
    key_type: KeyType,
    passphrase: Option<&[u8]>,
    p11: &Pkcs11Args,
    pin_file: Option<&Path>,
) -> anyhow::Result<(Arc<dyn Signer>, Option<Pkcs11Section>)> {
    create_key_at(
        &dd.ca_key(tenant),
        tenant,
        key_type,
        passphrase,
        p11,
        pin_file,
    )
}

/// [`create_issuing_key`] writing a file key to `key_file`.
pub(super) fn create_key_at(
    key_file: &Path,
    tenant: &str,
    key_type: KeyType,
    passphrase: Option<&[u8]>,
    p11: &Pkcs11Args,
    pin_file: Option<&Path>,
) -> anyhow::Result<(Arc<dyn Signer>, Option<Pkcs11Section>)> {
    let (Some(module), Some(token)) = (&p11.pkcs11_module, &p11.pkcs11_token) else {
        let key = pki::keys::generate(key_type)?;
        pki::keys::write_key_pem(key_file, &key, passphrase)?;
        return Ok((Arc::new(FileSigner::new(key)), None));
    };
    let pin = pin(
        pin_file,
        &format!("the issuing CA key of tenant {tenant:?}"),
    )?;
    // A random suffix: a token may hold the keys of several data directories, and a label
    // is never reused for a new key (Pkcs11Signer::generate refuses a taken label).
    let section = Pkcs11Section {
        module: module.clone(),
        token: token.clone(),
        key: format!("fleetca-{tenant}-{:016x}", rand::random::<u64>()),
    };
    let signer = Pkcs11Signer::generate(&section.key_ref(), &pin, key_type)
        .with_context(|| format!("generating the issuing CA key in PKCS#11 token {token:?}"))?;
    Ok((Arc::new(signer), Some(section)))
}

/// Opens the issuing CA key of `cfg`'s tenant, wherever `init` put it.
pub(crate) fn open_issuing_key(
    dd: &DataDir,
    cfg: &CaConfig,
    passphrase: Option<&[u8]>,
    pin_file: Option<&Path>,
) -> anyhow::Result<Arc<dyn Signer>> {
    open_key(
        &cfg.ca.name,
        &dd.ca_key(&cfg.ca.name),
        cfg.ca.pkcs11.as_ref(),
        passphrase,
        pin_file,
    )
}

/// Opens an issuing CA key of tenant `name`: in the token `pkcs11` names, else the file
/// `key_file` (a retired CA's key sits in its own directory, see `commands::rollover`).
pub(crate) fn open_key(
    name: &str,
    key_file: &Path,
    pkcs11: Option<&Pkcs11Section>,
    passphrase: Option<&[u8]>,
    pin_file: Option<&Path>,
) -> anyhow::Result<Arc<dyn Signer>> {
    match pkcs11 {
        Some(p11) => {
            let pin = pin(pin_file, &format!("the issuing CA key of tenant {name:?}"))?;
            let signer = Pkcs11Signer::open(&p11.key_ref(), &pin).with_context(|| {
                format!(
                    "opening the issuing CA key of tenant {name:?} in PKCS#11 token {:?}",
                    p11.token
                )
            })?;
            Ok(Arc::new(signer))
        }
        None => Ok(Arc::new(
            FileSigner::load(key_file, passphrase)
                .with_context(|| format!("loading {}", key_file.display()))?,
        )),
    }
}
