//! Public key rules for subscriber certificates (BR §6.1.5 sizes, §6.1.6 quality; Boulder's
//! `goodkey`).

use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::IssueError;
use crate::keys::KeyType;

/// BR §6.1.5: RSA moduli of at least 2048 bits; fleetca also caps them at 8192.
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

/// Checks a CSR key and returns its [`KeyType`] (RSA sizes other than 2048/3072/4096 report
/// the nearest smaller type). Refused: RSA outside 2048..=8192 bits or not a multiple of 8,
/// an even exponent or one below 65537 (BR §6.1.6), EC curves other than P-256/P-384,
/// Ed25519 and other algorithms, key types outside `allowed`, and keys in `forbidden` (the
/// issuing CA's and root's keys).
pub(crate) fn check_public_key(
    spki_der: &[u8],
    allowed: &[KeyType],
    forbidden: &[Vec<u8>],
) -> Result<KeyType, IssueError> {
    let bad = |m: String| IssueError::BadPublicKey(m);
    if forbidden.iter().any(|f| f.as_slice() == spki_der) {
        return Err(bad("the key is a CA key of this hierarchy".into()));
    }
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|e| bad(format!("malformed SubjectPublicKeyInfo: {e}")))?;
    let alg = &spki.algorithm.algorithm;
    let key_type = if *alg == OID_PKCS1_RSAENCRYPTION {
        let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
            return Err(bad("malformed RSA public key".into()));
        };
        let modulus = strip_zeros(rsa.modulus);
        let bits = match modulus.first() {
            Some(first) => modulus.len() * 8 - first.leading_zeros() as usize,
            None => 0,
        };
        if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) || bits % 8 != 0 {
            return Err(bad(format!(
                "RSA modulus of {bits} bits (BR §6.1.5: 2048 to 8192, a multiple of 8)"
            )));
        }
        let exponent = rsa
            .try_exponent()
            .map_err(|_| bad("RSA exponent is malformed or too large".into()))?;
        if exponent < 65537 || exponent % 2 == 0 {
            return Err(bad(format!(
                "RSA exponent {exponent} must be odd and at least 65537 (BR §6.1.6)"
            )));
        }
        match bits {
            b if b >= 4096 => KeyType::Rsa4096,
            b if b >= 3072 => KeyType::Rsa3072,
            _ => KeyType::Rsa2048,
        }
    } else if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        match curve {
            Some(c) if c == OID_EC_P256 => KeyType::EcdsaP256,
            Some(c) if c == OID_NIST_EC_P384 => KeyType::EcdsaP384,
            Some(c) => {
                return Err(bad(format!(
                    "EC curve {c} is not allowed (P-256 or P-384 only)"
                )))
            }
            None => return Err(bad("EC key without a named curve".into())),
        }
    } else if *alg == OID_SIG_ED25519 {
        return Err(bad(
            "Ed25519 keys are not accepted for TLS server certificates".into(),
        ));
    } else {
        return Err(bad(format!("key algorithm {alg} is not accepted")));
    };
    if !allowed.is_empty() && !allowed.contains(&key_type) {
        return Err(bad(format!(
            "key type {key_type} is not allowed by this CA"
        )));
    }
    Ok(key_type)
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}
