//! The delegated OCSP responder of an issuing CA (RFC 6960 §4.2.2.2, BR §7.1.2.8): a
//! short-lived certificate with id-kp-OCSPSigning and id-pkix-ocsp-nocheck, issued by the CA,
//! whose key signs OCSP responses instead of the CA key. Its key (`ocsp-key.pem`, 0600,
//! encrypted like the CA key when a passphrase is set) and certificate (`ocsp-cert.pem`) sit
//! next to the CA key in `DIR/ca/<tenant>/`; their presence is what turns delegation on.
//!
//! `fleetca init --ocsp-signer` / `tenant add --ocsp-signer` create them; `serve` loads them and
//! re-issues (new key) when a third of the validity remains, since it holds the CA key.

use super::IssuingCa;
use anyhow::Context;
use pki::signer::{FileSigner, Signer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;

/// Validity of a responder certificate. It carries ocsp-nocheck, so it cannot be revoked in
/// any way a relying party checks: it must stay short (BR §7.1.2.8 leaves the length to the CA).
pub const RESPONDER_DAYS: i64 = 90;

/// A loaded delegated responder.
pub struct OcspResponder {
    /// The responder certificate (DER), included in every response's `certs`.
    pub cert_der: Vec<u8>,
    /// Its key.
    pub signer: Arc<dyn Signer>,
    /// notBefore (UNIX seconds).
    pub not_before: i64,
    /// notAfter (UNIX seconds); the CA signs itself again once this has passed.
    pub not_after: i64,
}

impl OcspResponder {
    /// Whether a third or less of its validity remains at `now` (UNIX seconds).
    pub fn needs_renewal(&self, now: i64) -> bool {
        now >= self.not_after - (self.not_after - self.not_before) / 3
    }
}

/// `DIR/ca/<tenant>/ocsp-key.pem`.
pub fn key_path(ca_dir: &Path) -> PathBuf {
    ca_dir.join("ocsp-key.pem")
}

/// `DIR/ca/<tenant>/ocsp-cert.pem`.
pub fn cert_path(ca_dir: &Path) -> PathBuf {
    ca_dir.join("ocsp-cert.pem")
}

/// Whether the CA in `ca_dir` has a delegated responder.
pub fn configured(ca_dir: &Path) -> bool {
    cert_path(ca_dir).exists()
}

/// Loads the responder in `ca_dir`; `None` when there is none. Fails when the files exist but
/// do not parse or do not match each other.
pub fn load(ca_dir: &Path, passphrase: Option<&[u8]>) -> anyhow::Result<Option<OcspResponder>> {
    if !configured(ca_dir) {
        return Ok(None);
    }
    let pem = std::fs::read_to_string(cert_path(ca_dir))
        .with_context(|| format!("reading {}", cert_path(ca_dir).display()))?;
    let cert_der = pki::cert_info::pem_to_ders(&pem)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("{} holds no certificate", cert_path(ca_dir).display()))?;
    let signer = FileSigner::load(&key_path(ca_dir), passphrase)
        .with_context(|| format!("loading {}", key_path(ca_dir).display()))?;
    if pki::cert_info::spki_der_of(&cert_der)? != signer.public_key_der() {
        anyhow::bail!(
            "{} does not match {}",
            cert_path(ca_dir).display(),
            key_path(ca_dir).display()
        );
    }
    let (_, x) = x509_parser::parse_x509_certificate(&cert_der)
        .map_err(|e| anyhow::anyhow!("parsing the OCSP responder certificate: {e}"))?;
    Ok(Some(OcspResponder {
        not_before: x.validity().not_before.timestamp(),
        not_after: x.validity().not_after.timestamp(),
        cert_der,
        signer: Arc::new(signer),
    }))
}

/// Makes a new responder key and certificate in `ca_dir`, signed by the CA (`ca_cert_der`,
/// `ca_signer`), replacing any previous pair (key first, then certificate, each renamed into
/// place, so a reader sees either pair or a mismatch it refuses, never a half-written file).
pub fn create(
    ca_dir: &Path,
    ca_cert_der: &[u8],
    ca_signer: &dyn Signer,
    passphrase: Option<&[u8]>,
    now: OffsetDateTime,
) -> anyhow::Result<OcspResponder> {
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let ca_not_after = pki::cert_info::not_after_of(ca_cert_der)?;
    let not_after = (now + time::Duration::days(RESPONDER_DAYS)).min(ca_not_after);
    // P-256 whatever the CA key is: responses are signed often and verified by devices.
    let key = pki::keys::generate(pki::keys::KeyType::EcdsaP256)?;
    let tmp_key = ca_dir.join("ocsp-key.pem.new");
    let _ = std::fs::remove_file(&tmp_key);
    pki::keys::write_key_pem(&tmp_key, &key, passphrase)?;
    let signer = FileSigner::new(key);
    // Backdated by an hour like leaves, for relying parties whose clocks run slow.
    let not_before = now - time::Duration::hours(1);
    let cert_der = pki::ocsp::create_responder_cert(
        ca_cert_der,
        ca_signer,
        signer.public_key_der(),
        not_before,
        not_after,
    )?;
    std::fs::rename(&tmp_key, key_path(ca_dir))
        .with_context(|| format!("installing {}", key_path(ca_dir).display()))?;
    crate::datadir::write_atomic(
        &cert_path(ca_dir),
        pki::cert_info::der_to_pem("CERTIFICATE", &cert_der).as_bytes(),
        0o644,
    )?;
    Ok(OcspResponder {
        cert_der,
        signer: Arc::new(signer),
        not_before: not_before.unix_timestamp(),
        not_after: not_after.unix_timestamp(),
    })
}

/// The responder to serve for the CA (`ca_cert_der`, `ca_signer`) in `ca_dir`, if that CA has
/// one: the pair on disk, or a new one when a third of its validity remains, it does not load,
/// or it was issued by another key (the CA was re-keyed). Also whether it was re-issued.
pub fn current(
    ca_dir: &Path,
    ca_cert_der: &[u8],
    ca_signer: &dyn Signer,
    passphrase: Option<&[u8]>,
    now: OffsetDateTime,
) -> anyhow::Result<Option<(OcspResponder, bool)>> {
    if !configured(ca_dir) {
        return Ok(None);
    }
    let loaded = load(ca_dir, passphrase)
        .ok()
        .flatten()
        .filter(|r| issued_by(&r.cert_der, ca_cert_der));
    match loaded {
        Some(r) if !r.needs_renewal(now.unix_timestamp()) => Ok(Some((r, false))),
        _ => Ok(Some((
            create(ca_dir, ca_cert_der, ca_signer, passphrase, now)?,
            true,
        ))),
    }
}

impl IssuingCa {
    /// The delegated responder, if one is installed.
    pub fn ocsp_responder(&self) -> Option<Arc<OcspResponder>> {
        self.ocsp_responder
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-issues the responder in `ca_dir` with this CA's key when it is due (see
    /// [`current`]) and serves the new one from then on. Returns whether one is installed and
    /// whether it was re-issued. The CA starts with the responder its parts gave it
    /// ([`super::IssuingCaParts::ocsp_responder`]); this is the renewal `serve` runs.
    pub fn refresh_ocsp_responder(
        &self,
        ca_dir: &Path,
        passphrase: Option<&[u8]>,
        now: OffsetDateTime,
    ) -> anyhow::Result<(bool, bool)> {
        let Some((responder, renewed)) = current(
            ca_dir,
            &self.cert_der,
            self.signer.as_ref(),
            passphrase,
            now,
        )?
        else {
            return Ok((false, false));
        };
        let mut slot = self
            .ocsp_responder
            .write()
            .unwrap_or_else(|e| e.into_inner());
        // An unchanged pair keeps the served one (and the OCSP answers cached for it).
        let same = slot
            .as_ref()
            .is_some_and(|r| r.cert_der == responder.cert_der);
        if !same {
            *slot = Some(Arc::new(responder));
        }
        Ok((true, renewed))
    }
}

/// Whether `cert_der` names `ca_der`'s subject as issuer and verifies under its key.
fn issued_by(cert_der: &[u8], ca_der: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, ca))) = (
        x509_parser::parse_x509_certificate(cert_der),
        x509_parser::parse_x509_certificate(ca_der),
    ) else {
        return false;
    };
    cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_load_and_renewal_point() {
        let dir = std::env::temp_dir().join(format!("fleetca-ocsp-signer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = FileSigner::new(pki::keys::generate(pki::keys::KeyType::EcdsaP256).unwrap());
        let ca_der = pki::ca::create_root("ocsp signer test", &ca, None).unwrap();
        assert!(load(&dir, None).unwrap().is_none());
        let now = OffsetDateTime::now_utc();
        let made = create(&dir, &ca_der, &ca, None, now).unwrap();
        let loaded = load(&dir, None).unwrap().expect("responder on disk");
        assert_eq!(loaded.cert_der, made.cert_der);
        assert!(issued_by(&loaded.cert_der, &ca_der));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key_path(&dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Due once a third of the validity remains, not before.
        let t = now.unix_timestamp();
        assert!(!loaded.needs_renewal(t));
        assert!(!loaded.needs_renewal(t + 55 * 86400));
        assert!(loaded.needs_renewal(t + 61 * 86400));
        // Re-issuing replaces both files with a new key.
        let again = create(&dir, &ca_der, &ca, None, now).unwrap();
        assert_ne!(again.cert_der, made.cert_der);
        assert_eq!(load(&dir, None).unwrap().unwrap().cert_der, again.cert_der);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
