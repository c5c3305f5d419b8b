//! The `Signer` role: the only thing that touches a CA private key.
//!
//! All certificate and CRL signing in this crate goes through [`Signer`], so a PKCS#11 signer
//! is one more implementation. [`RcgenSigner`] adapts any `&dyn Signer` to rcgen's
//! [`rcgen::SigningKey`] while keeping the signer's own error (rcgen only carries a unit
//! `RemoteKeyError`).

use std::cell::RefCell;
use std::path::Path;

use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm, SigningKey};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::PkiError;

/// Something that signs with a CA key it does not reveal.
pub trait Signer: Send + Sync {
    /// The key's SubjectPublicKeyInfo, DER (RFC 5280 §4.1.2.7).
    fn public_key_der(&self) -> &[u8];
    /// The signature algorithm the key signs with (RFC 5280 §4.1.1.2).
    fn algorithm(&self) -> &'static SignatureAlgorithm;
    /// Signs `msg` (the DER of a TBSCertificate, TBSCertList or CertificationRequestInfo).
    /// The result is in X.509 form: DER `ECDSA-Sig-Value` for ECDSA (RFC 3279 §2.2.3),
    /// PKCS#1 v1.5 for RSA.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, PkiError>;
    /// Checks that the key can sign now (an HSM token may be removed or reset), without
    /// signing. A key in memory always can.
    fn check_available(&self) -> Result<(), PkiError> {
        Ok(())
    }
    /// Whether a signature waits on I/O (an HSM, a network): such a signer is called from a
    /// thread that may block. A key in memory signs in microseconds and does not.
    fn blocks(&self) -> bool {
        false
    }
}

/// A signer backed by a key file (or any rcgen [`KeyPair`] held in memory).
pub struct FileSigner {
    key: KeyPair,
    spki: Vec<u8>,
}

impl FileSigner {
    /// Wraps a key pair held in memory.
    pub fn new(key: KeyPair) -> Self {
        let spki = key.subject_public_key_info();
        FileSigner { key, spki }
    }

    /// Loads a PKCS#8 PEM key file; see [`crate::keys::load_key_pem`].
    pub fn load(path: &Path, passphrase: Option<&[u8]>) -> Result<Self, PkiError> {
        crate::keys::load_key_pem(path, passphrase).map(FileSigner::new)
    }

    /// The wrapped key pair (for writing it to disk at creation time).
    pub fn key_pair(&self) -> &KeyPair {
        &self.key
    }
}

impl std::fmt::Debug for FileSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSigner")
            .field("algorithm", self.key.algorithm())
            .finish_non_exhaustive()
    }
}

impl Signer for FileSigner {
    fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.key.algorithm()
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, PkiError> {
        SigningKey::sign(&self.key, msg).map_err(|e| PkiError::Signing(Box::new(e)))
    }
}

/// Adapts a `&dyn Signer` to rcgen's [`SigningKey`] / [`PublicKeyData`] traits.
///
/// rcgen turns a signing failure into the bare `rcgen::Error::RemoteKeyError`; the adapter
/// keeps the signer's error so [`RcgenSigner::take_error`] can return it with its source.
pub struct RcgenSigner<'a> {
    signer: &'a dyn Signer,
    raw_public_key: Vec<u8>,
    last_error: RefCell<Option<PkiError>>,
}

impl<'a> RcgenSigner<'a> {
    /// Wraps `signer`; fails if its SubjectPublicKeyInfo does not parse.
    pub fn new(signer: &'a dyn Signer) -> Result<Self, PkiError> {
        let (rest, spki) = SubjectPublicKeyInfo::from_der(signer.public_key_der())
            .map_err(PkiError::parse("signer SubjectPublicKeyInfo"))?;
        if !rest.is_empty() {
            return Err(PkiError::Parse {
                what: "signer SubjectPublicKeyInfo",
                detail: "trailing data".into(),
            });
        }
        Ok(RcgenSigner {
            signer,
            raw_public_key: spki.subject_public_key.data.to_vec(),
            last_error: RefCell::new(None),
        })
    }

    /// The signer's error from the last failed `sign`, if any.
    pub fn take_error(&self) -> Option<PkiError> {
        self.last_error.borrow_mut().take()
    }

    /// Converts an rcgen error from an operation that used this signer into a [`PkiError`],
    /// preferring the signer's own error when the failure came from signing.
    pub(crate) fn error(
        &self,
        context: &'static str,
    ) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
        move |e| match self.take_error() {
            Some(inner) => inner,
            None => PkiError::Rcgen { context, source: e },
        }
    }
}

impl PublicKeyData for RcgenSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.raw_public_key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.signer.algorithm()
    }
}

impl SigningKey for RcgenSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.signer.sign(msg).map_err(|e| {
            *self.last_error.borrow_mut() = Some(e);
            rcgen::Error::RemoteKeyError
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate, KeyType};

    struct Broken(FileSigner);

    impl Signer for Broken {
        fn public_key_der(&self) -> &[u8] {
            self.0.public_key_der()
        }
        fn algorithm(&self) -> &'static SignatureAlgorithm {
            self.0.algorithm()
        }
        fn sign(&self, _msg: &[u8]) -> Result<Vec<u8>, PkiError> {
            Err(PkiError::Signing("token removed".into()))
        }
    }

    #[test]
    fn adapter_reconstructs_spki_and_keeps_errors() {
        for kt in [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa2048] {
            let s = FileSigner::new(generate(kt).unwrap());
            let a = RcgenSigner::new(&s).unwrap();
            assert_eq!(a.subject_public_key_info(), s.public_key_der());
            assert!(!SigningKey::sign(&a, b"x").unwrap().is_empty());
        }
        let broken = Broken(FileSigner::new(generate(KeyType::EcdsaP256).unwrap()));
        let a = RcgenSigner::new(&broken).unwrap();
        assert!(SigningKey::sign(&a, b"x").is_err());
        let e = a.take_error().unwrap();
        assert!(std::error::Error::source(&e)
            .unwrap()
            .to_string()
            .contains("token removed"));
    }
}
