//! The one place that names the crypto provider.
//!
//! Every other module reaches signatures, digests, HMAC and randomness through
//! `crate::crypto`, so adding a `ring` feature (the device agent wants ring for
//! its size) only touches this file. ring and aws-lc-rs share the API of the
//! re-exported modules; the few calls where they differ are wrapped below.

#[cfg(not(feature = "aws-lc-rs"))]
compile_error!("acme-types needs a crypto provider: enable the `aws-lc-rs` feature");

#[cfg(feature = "aws-lc-rs")]
pub(crate) use aws_lc_rs::{digest, hmac, rand, signature};

use signature::{EcdsaKeyPair, EcdsaSigningAlgorithm, RsaKeyPair, VerificationAlgorithm};

/// Whether `bytes` is a public key the provider accepts for `alg`: for ECDSA
/// this is the on-curve check of an uncompressed point (RFC 7518 §6.2.1, the
/// invalid-curve attack). ring has no equivalent; a ring build would skip this
/// check and rely on verification failing for a bad point.
pub(crate) fn public_key_is_valid(alg: &'static dyn VerificationAlgorithm, bytes: &[u8]) -> bool {
    signature::ParsedPublicKey::new(alg, bytes).is_ok()
}

/// Loads an ECDSA PKCS#8 key (ring's version of this call takes an RNG).
pub(crate) fn ecdsa_from_pkcs8(
    alg: &'static EcdsaSigningAlgorithm,
    pkcs8: &[u8],
) -> Option<EcdsaKeyPair> {
    EcdsaKeyPair::from_pkcs8(alg, pkcs8).ok()
}

/// Generates an RSA key pair and returns it as PKCS#8 v1 DER. ring cannot
/// generate RSA keys; a ring build would return `None`.
pub(crate) fn rsa_generate_pkcs8(bits: u32) -> Option<Vec<u8>> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::KeySize;
    let size = match bits {
        2048 => KeySize::Rsa2048,
        3072 => KeySize::Rsa3072,
        4096 => KeySize::Rsa4096,
        _ => return None,
    };
    let pair = RsaKeyPair::generate(size).ok()?;
    let der = pair.as_der().ok()?;
    Some(der.as_ref().to_vec())
}

/// The RSA public key of a key pair as big-endian `(n, e)` without leading
/// zeros (ring names the accessor `public()`, aws-lc-rs `public_key()`).
pub(crate) fn rsa_public_components(pair: &RsaKeyPair) -> (Vec<u8>, Vec<u8>) {
    use signature::KeyPair;
    let public = pair.public_key();
    (
        public.modulus().big_endian_without_leading_zero().to_vec(),
        public.exponent().big_endian_without_leading_zero().to_vec(),
    )
}
