//! External Account Binding (RFC 8555 §7.3.4): CA-issued key ids and HMAC keys that let a
//! newAccount request prove it was provisioned by the tenant's operator (a factory, a batch).
//!
//! Key storage. Verifying an HMAC needs the key itself, so a one-way hash cannot be stored;
//! each key is sealed with AES-256-GCM under a 256-bit secret kept outside the database in
//! `DIR/eab.key` (mode 0600, created on first use). The tenant and kid are the GCM associated
//! data, so a sealed key copied onto another row does not open. A leaked database or backup
//! alone reveals no usable credential; the secret and the database together are as sensitive
//! as the credentials themselves, and the CA key directory already has that standing.

use super::Ra;
use crate::error::{Error, Result};
use crate::sa::{EabAccountOutcome, EabKeyRecord, EabStore, EabUnusable};
use crate::tenant::Tenant;
use acme_types::eab::ParsedEab;
use acme_types::jwk::Jwk;
use acme_types::problem::ProblemType;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use std::path::Path;
use std::sync::Arc;

/// Length of generated HMAC keys: 256 bits, the HS256 block-size guidance of RFC 7518 §3.2.
pub const HMAC_KEY_LEN: usize = 32;

/// Why the EAB secret could not be loaded or a key not sealed/opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// Reading or creating `eab.key` failed.
    #[error("EAB secret {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `eab.key` does not hold a base64url 256-bit secret.
    #[error("EAB secret {0} is not 32 base64url-encoded bytes")]
    BadSecret(String),
    /// AES-GCM failed (wrong secret, tampered row, or the random source failed).
    #[error("sealing or opening an EAB key failed (wrong eab.key or a tampered row)")]
    Crypto,
}

/// The data directory's EAB secret: seals and opens stored HMAC keys.
pub struct EabKeyring {
    key: LessSafeKey,
}

impl std::fmt::Debug for EabKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EabKeyring(..)")
    }
}

fn aad(tenant: &str, kid: &str) -> Vec<u8> {
    let mut v = b"fleetca-eab-v1\0".to_vec();
    v.extend_from_slice(tenant.as_bytes());
    v.push(0);
    v.extend_from_slice(kid.as_bytes());
    v
}

impl EabKeyring {
    /// A keyring over raw secret bytes (tests).
    pub fn from_secret(secret: &[u8; 32]) -> Result<Self, KeyringError> {
        let unbound = UnboundKey::new(&AES_256_GCM, secret).map_err(|_| KeyringError::Crypto)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Loads `path`, creating it (0600, random 256 bits) if absent. Creation is atomic (a
    /// temporary file hard-linked into place), so two processes racing to create it agree.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyringError> {
        let io = |source| KeyringError::Io {
            path: path.display().to_string(),
            source,
        };
        if !path.exists() {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut secret = [0u8; 32];
            SystemRandom::new()
                .fill(&mut secret)
                .map_err(|_| KeyringError::Crypto)?;
            let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io)?;
            f.write_all(format!("{}\n", acme_types::b64::encode(&secret)).as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io)?;
            drop(f);
            let linked = std::fs::hard_link(&tmp, path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(e)),
            }
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let bytes = acme_types::b64::decode(text.trim())
            .map_err(|_| KeyringError::BadSecret(path.display().to_string()))?;
        let secret: [u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyringError::BadSecret(path.display().to_string()))?;
        Self::from_secret(&secret)
    }

    /// Seals an HMAC key for the row (`tenant`, `kid`): nonce || ciphertext || tag.
    pub fn seal(&self, tenant: &str, kid: &str, hmac_key: &[u8]) -> Result<Vec<u8>, KeyringError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| KeyringError::Crypto)?;
        let mut buf = hmac_key.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(tenant, kid)),
                &mut buf,
            )
            .map_err(|_| KeyringError::Crypto)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens the sealed key of a stored credential.
    pub fn open(&self, rec: &EabKeyRecord) -> Result<Vec<u8>, KeyringError> {
        if rec.sealed_key.len() < NONCE_LEN {
            return Err(KeyringError::Crypto);
        }
        let (nonce, ct) = rec.sealed_key.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyringError::Crypto)?;
        let mut buf = ct.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad(&rec.tenant, &rec.kid)), &mut buf)
            .map_err(|_| KeyringError::Crypto)?;
        Ok(plain.to_vec())
    }
}

/// A fresh random HMAC key for a new credential.
pub fn generate_hmac_key() -> Result<Vec<u8>, KeyringError> {
    let mut k = vec![0u8; HMAC_KEY_LEN];
    SystemRandom::new()
        .fill(&mut k)
        .map_err(|_| KeyringError::Crypto)?;
    Ok(k)
}

/// What the registration authority needs to verify bindings: the store and the keyring.
#[derive(Clone)]
pub struct EabBackend {
    /// Credential storage.
    pub store: Arc<dyn EabStore>,
    /// Opens stored HMAC keys.
    pub keyring: Arc<EabKeyring>,
}

/// A verified binding, ready to be consumed with the account insert.
pub(super) struct VerifiedEab {
    pub(super) kid: String,
    pub(super) binding: String,
}

fn unusable(why: EabUnusable) -> Error {
    let what = match why {
        EabUnusable::Revoked => "has been revoked",
        EabUnusable::Expired => "has expired",
        EabUnusable::UsedUp => "has no uses left",
    };
    Error::unauthorized(format!("the externalAccountBinding key {what}"))
}

impl Ra {
    /// RFC 8555 §7.3.4: checks the binding's structure, that its `url` is this tenant's
    /// newAccount URL and its payload the account key, that the kid names a usable credential
    /// of this tenant, and the MAC (constant time). Spends nothing: the use is consumed with
    /// the account insert.
    pub(super) async fn verify_eab(
        &self,
        tenant: &Tenant,
        jwk: &Jwk,
        binding: &serde_json::Value,
    ) -> Result<VerifiedEab> {
        let Some(eab) = &self.eab else {
            return Err(Error::unauthorized(
                "this CA has no external account keys configured",
            ));
        };
        let eab_err = |e: acme_types::eab::EabError| Error::acme(e.problem_type(), e.to_string());
        let parsed = ParsedEab::parse(binding, &tenant.url("new-account"), jwk).map_err(eab_err)?;
        let rec = eab
            .store
            .get_eab_key(&tenant.name, parsed.kid())
            .await?
            .ok_or_else(|| {
                Error::acme(
                    ProblemType::Unauthorized,
                    "unknown externalAccountBinding key id",
                )
            })?;
        rec.check_usable(self.clock.unix()).map_err(unusable)?;
        let key = eab
            .keyring
            .open(&rec)
            .map_err(|e| Error::Internal(Box::new(e)))?;
        parsed.verify_mac(&key).map_err(eab_err)?;
        Ok(VerifiedEab {
            kid: rec.kid,
            binding: binding.to_string(),
        })
    }

    /// Inserts an account created with a verified binding, spending one use atomically.
    /// `Ok(false)` if the account key is already registered (a concurrent newAccount won).
    pub(super) async fn insert_eab_account(
        &self,
        acct: &crate::sa::AccountRecord,
        binding: &str,
    ) -> Result<Result<(), crate::sa::SaError>> {
        let Some(eab) = &self.eab else {
            return Err(Error::internal("EAB account without an EAB store"));
        };
        match eab
            .store
            .insert_account_with_eab(acct, binding, self.clock.unix())
            .await
        {
            Ok(EabAccountOutcome::Created) => Ok(Ok(())),
            // Verified a moment ago: another request spent the last use, or it was revoked.
            Ok(EabAccountOutcome::KeyUnusable) => Err(Error::unauthorized(
                "the externalAccountBinding key is no longer usable",
            )),
            Err(e) => Ok(Err(e)),
        }
    }

    /// The binding an account was created with, for the account object (§7.1.2).
    pub async fn account_binding(
        &self,
        acct: &crate::sa::AccountRecord,
    ) -> Result<Option<serde_json::Value>> {
        let (Some(_), Some(eab)) = (&acct.eab_kid, &self.eab) else {
            return Ok(None);
        };
        Ok(eab
            .store
            .get_eab_binding(&acct.id)
            .await?
            .and_then(|b| serde_json::from_str(&b).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_on_their_row() {
        let ring = EabKeyring::from_secret(&[7u8; 32]).unwrap();
        let key = generate_hmac_key().unwrap();
        let mut rec = EabKeyRecord {
            kid: "k1".into(),
            tenant: "default".into(),
            sealed_key: ring.seal("default", "k1", &key).unwrap(),
            max_uses: 1,
            uses: 0,
            expires_at: None,
            revoked_at: None,
            created_at: 0,
        };
        assert_eq!(ring.open(&rec).unwrap(), key);
        assert!(!rec.sealed_key.windows(key.len()).any(|w| w == key));
        rec.kid = "k2".into();
        assert!(ring.open(&rec).is_err());
        rec.kid = "k1".into();
        let other = EabKeyring::from_secret(&[8u8; 32]).unwrap();
        assert!(other.open(&rec).is_err());
    }

    #[test]
    fn secret_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eab.key");
        let a = EabKeyring::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let sealed = a.seal("t", "k", b"secret").unwrap();
        let b = EabKeyring::load_or_create(&path).unwrap();
        let rec = EabKeyRecord {
            kid: "k".into(),
            tenant: "t".into(),
            sealed_key: sealed,
            max_uses: 1,
            uses: 0,
            expires_at: None,
            revoked_at: None,
            created_at: 0,
        };
        assert_eq!(b.open(&rec).unwrap(), b"secret");
    }

    #[test]
    fn usability_rules() {
        let mut rec = EabKeyRecord {
            kid: "k".into(),
            tenant: "t".into(),
            sealed_key: vec![],
            max_uses: 2,
            uses: 1,
            expires_at: Some(100),
            revoked_at: None,
            created_at: 0,
        };
        assert_eq!(rec.check_usable(99), Ok(()));
        assert_eq!(rec.check_usable(100), Err(EabUnusable::Expired));
        rec.uses = 2;
        assert_eq!(rec.check_usable(0), Err(EabUnusable::UsedUp));
        rec.revoked_at = Some(5);
        assert_eq!(rec.check_usable(0), Err(EabUnusable::Revoked));
    }
}
