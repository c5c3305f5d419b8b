//! Client-side account keys and JWS signing (RFC 8555 §6.2, RFC 7515 §7.2.2),
//! for tests and the device agent.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::b64;
use crate::crypto::{self, rand, signature};
use crate::jwk::{EcCurve, Jwk, JwkError, OkpCurve};

/// Why a key could not be loaded, generated or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The PKCS#8 document is not a supported key (P-256, P-384, Ed25519, RSA).
    #[error("unsupported or invalid PKCS#8 private key")]
    UnsupportedKey,
    /// The key loaded but its public key is not acceptable (e.g. RSA < 2048).
    #[error("account key not acceptable: {0}")]
    BadPublicKey(#[from] JwkError),
    /// The provider failed to generate a key.
    #[error("key generation failed")]
    Generate,
    /// The provider failed to sign (RNG failure).
    #[error("signing failed")]
    Sign,
    /// The payload could not be serialized to JSON.
    #[error("payload serialization failed: {0}")]
    Payload(String),
}

/// Which kind of account key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountKeyKind {
    /// ECDSA P-256 with SHA-256, JWS `ES256` (RFC 7518 §3.4).
    EcdsaP256,
    /// ECDSA P-384 with SHA-384, JWS `ES384` (RFC 7518 §3.4).
    EcdsaP384,
    /// Ed25519, JWS `EdDSA` (RFC 8037 §3.1).
    Ed25519,
    /// RSA-2048 with PKCS#1 v1.5 SHA-256, JWS `RS256` (RFC 7518 §3.3).
    Rsa2048,
}

enum Inner {
    Ecdsa(signature::EcdsaKeyPair),
    Ed25519(signature::Ed25519KeyPair),
    Rsa(signature::RsaKeyPair),
}

/// An account private key with its public JWK.
pub struct AccountKey {
    inner: Inner,
    kind: AccountKeyKind,
    pkcs8: Vec<u8>,
    jwk: Jwk,
}

impl fmt::Debug for AccountKey {
    /// Shows the kind and thumbprint, never key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKey")
            .field("kind", &self.kind)
            .field("thumbprint", &self.jwk.thumbprint())
            .finish_non_exhaustive()
    }
}

fn ec_jwk(crv: EcCurve, point: &[u8]) -> Result<Jwk, SignError> {
    let len = crv.coordinate_len();
    match point.split_first() {
        Some((0x04, rest)) if rest.len() == 2 * len => Ok(Jwk::Ec {
            crv,
            x: rest[..len].to_vec(),
            y: rest[len..].to_vec(),
        }),
        _ => Err(SignError::UnsupportedKey),
    }
}

impl AccountKey {
    /// Generates a new key of `kind` with the provider's secure RNG.
    pub fn generate(kind: AccountKeyKind) -> Result<AccountKey, SignError> {
        let rng = rand::SystemRandom::new();
        let pkcs8 = match kind {
            AccountKeyKind::EcdsaP256 => signature::EcdsaKeyPair::generate_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &rng,
            )
            .map_err(|_| SignError::Generate)?
            .as_ref()
            .to_vec(),
            AccountKeyKind::EcdsaP384 => signature::EcdsaKeyPair::generate_pkcs8(
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                &rng,
            )
            .map_err(|_| SignError::Generate)?
            .as_ref()
            .to_vec(),
            AccountKeyKind::Ed25519 => signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| SignError::Generate)?
                .as_ref()
                .to_vec(),
            AccountKeyKind::Rsa2048 => {
                crypto::rsa_generate_pkcs8(2048).ok_or(SignError::Generate)?
            }
        };
        Self::from_pkcs8_der(&pkcs8)
    }

    /// Loads a PKCS#8 private key (RFC 5208 / RFC 5958): ECDSA P-256 or P-384,
    /// Ed25519 (v1 or v2), or RSA of 2048 to 8192 bits.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<AccountKey, SignError> {
        use signature::KeyPair;
        let curves = [
            (
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                EcCurve::P256,
                AccountKeyKind::EcdsaP256,
            ),
            (
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                EcCurve::P384,
                AccountKeyKind::EcdsaP384,
            ),
        ];
        let (inner, kind, jwk) = 'found: {
            for (alg, crv, kind) in curves {
                if let Some(pair) = crypto::ecdsa_from_pkcs8(alg, der) {
                    let jwk = ec_jwk(crv, pair.public_key().as_ref())?;
                    break 'found (Inner::Ecdsa(pair), kind, jwk);
                }
            }
            if let Ok(pair) = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
                let jwk = Jwk::Okp {
                    crv: OkpCurve::Ed25519,
                    x: pair.public_key().as_ref().to_vec(),
                };
                break 'found (Inner::Ed25519(pair), AccountKeyKind::Ed25519, jwk);
            }
            if let Ok(pair) = signature::RsaKeyPair::from_pkcs8(der) {
                let (n, e) = crypto::rsa_public_components(&pair);
                break 'found (Inner::Rsa(pair), AccountKeyKind::Rsa2048, Jwk::Rsa { n, e });
            }
            return Err(SignError::UnsupportedKey);
        };
        jwk.validate()?;
        Ok(AccountKey {
            inner,
            kind,
            pkcs8: der.to_vec(),
            jwk,
        })
    }

    /// The PKCS#8 DER this key was generated as or loaded from.
    pub fn to_pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key kind. Any RSA key reports [`AccountKeyKind::Rsa2048`]; its size
    /// is in the JWK.
    pub fn kind(&self) -> AccountKeyKind {
        self.kind
    }

    /// The public JWK (RFC 7517).
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The JWS `alg` for this key: ES256, ES384, EdDSA or RS256.
    pub fn alg(&self) -> &'static str {
        self.jwk.alg()
    }

    /// Signs `msg` for a JWS (RFC 7515 §5.1): ECDSA as fixed-width `r || s`
    /// (RFC 7518 §3.4), not DER.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = rand::SystemRandom::new();
        match &self.inner {
            Inner::Ecdsa(pair) => pair
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignError::Sign),
            Inner::Ed25519(pair) => Ok(pair.sign(msg).as_ref().to_vec()),
            Inner::Rsa(pair) => {
                let mut sig = vec![0u8; crypto::rsa_signature_len(pair)];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(|_| SignError::Sign)?;
                Ok(sig)
            }
        }
    }
}

/// How a signed request names its key (RFC 8555 §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwsKey {
    /// Embed the signing key's public JWK (newAccount, revocation by cert key).
    Jwk,
    /// Name the account by its URL.
    Kid(String),
}

/// The protected header fields a client chooses (RFC 8555 §6.2); `alg` comes
/// from the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwsHeader {
    /// `jwk` or `kid`.
    pub key: JwsKey,
    /// The anti-replay nonce (§6.5); `None` only for the inner keyChange JWS.
    pub nonce: Option<String>,
    /// The request URL (§6.4).
    pub url: String,
}

/// Signs `payload` as a flattened JSON JWS (RFC 7515 §7.2.2) for an ACME
/// request. An empty payload produces POST-as-GET (`"payload": ""`, §6.3).
pub fn sign_jws(key: &AccountKey, header: &JwsHeader, payload: &[u8]) -> Result<Value, SignError> {
    let mut protected = Map::new();
    protected.insert("alg".into(), Value::String(key.alg().into()));
    match &header.key {
        JwsKey::Jwk => {
            protected.insert("jwk".into(), key.jwk().to_json());
        }
        JwsKey::Kid(kid) => {
            protected.insert("kid".into(), Value::String(kid.clone()));
        }
    }
    if let Some(nonce) = &header.nonce {
        protected.insert("nonce".into(), Value::String(nonce.clone()));
    }
    protected.insert("url".into(), Value::String(header.url.clone()));
    let protected_b64 = b64::encode(Value::Object(protected).to_string().as_bytes());
    let payload_b64 = b64::encode(payload);
    let signing_input = format!("{protected_b64}.{payload_b64}");
    let sig = key.sign(signing_input.as_bytes())?;
    let mut out = Map::new();
    out.insert("protected".into(), Value::String(protected_b64));
    out.insert("payload".into(), Value::String(payload_b64));
    out.insert("signature".into(), Value::String(b64::encode(&sig)));
    Ok(Value::Object(out))
}

/// [`sign_jws`] with a payload serialized from `payload` as JSON.
pub fn sign_jws_json<T: Serialize>(
    key: &AccountKey,
    header: &JwsHeader,
    payload: &T,
) -> Result<Value, SignError> {
    let bytes = serde_json::to_vec(payload).map_err(|e| SignError::Payload(e.to_string()))?;
    sign_jws(key, header, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs8_round_trip_all_kinds() {
        for kind in [
            AccountKeyKind::EcdsaP256,
            AccountKeyKind::EcdsaP384,
            AccountKeyKind::Ed25519,
            AccountKeyKind::Rsa2048,
        ] {
            if kind == AccountKeyKind::Rsa2048 && !cfg!(feature = "aws-lc-rs") {
                // ring cannot generate RSA keys.
                assert_eq!(AccountKey::generate(kind).unwrap_err(), SignError::Generate);
                continue;
            }
            let key = AccountKey::generate(kind).unwrap();
            assert_eq!(key.kind(), kind);
            let again = AccountKey::from_pkcs8_der(key.to_pkcs8_der()).unwrap();
            assert_eq!(again.jwk(), key.jwk());
            assert_eq!(again.kind(), kind);
            let sig = key.sign(b"msg").unwrap();
            key.jwk().verify(key.alg(), b"msg", &sig).unwrap();
            again.jwk().verify(again.alg(), b"msg", &sig).unwrap();
        }
    }

    #[test]
    fn ecdsa_signatures_are_fixed_width() {
        let p256 = AccountKey::generate(AccountKeyKind::EcdsaP256).unwrap();
        assert_eq!(p256.sign(b"x").unwrap().len(), 64);
        let p384 = AccountKey::generate(AccountKeyKind::EcdsaP384).unwrap();
        assert_eq!(p384.sign(b"x").unwrap().len(), 96);
    }

    #[test]
    fn rejects_garbage_pkcs8() {
        assert_eq!(
            AccountKey::from_pkcs8_der(b"nope").unwrap_err(),
            SignError::UnsupportedKey
        );
    }

    #[test]
    fn debug_does_not_leak_key() {
        let key = AccountKey::generate(AccountKeyKind::Ed25519).unwrap();
        let s = format!("{key:?}");
        assert!(s.contains("thumbprint"));
        assert!(!s.contains(&b64::encode(key.to_pkcs8_der())));
    }
}
