//! The one place that names the crypto provider.
//!
//! Every other module reaches signatures, digests, HMAC and randomness through
//! `crate::crypto`. Two providers are supported: `aws-lc-rs` (default; the
//! server uses it) and `ring` (the device agent uses it for a smaller binary).
//! When both features are on (workspace feature unification), aws-lc-rs wins.
//! ring and aws-lc-rs share the API of the re-exported modules; the few calls
//! where they differ are wrapped below.

#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!("acme-types needs a crypto provider: enable the `aws-lc-rs` or `ring` feature");

#[cfg(feature = "aws-lc-rs")]
pub(crate) use aws_lc_rs::{digest, hmac, rand, signature};

#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
pub(crate) use ring::{digest, hmac, rand, signature};

#[cfg(feature = "aws-lc-rs")]
pub(crate) use aws_lc_provider::*;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
pub(crate) use ring_provider::*;

#[cfg(feature = "aws-lc-rs")]
mod aws_lc_provider {
    use super::signature::{
        self, EcdsaKeyPair, EcdsaSigningAlgorithm, RsaKeyPair, VerificationAlgorithm,
    };

    /// Whether `bytes` is a public key the provider accepts for `alg`: for
    /// ECDSA this is the on-curve check of an uncompressed point (RFC 7518
    /// §6.2.1, the invalid-curve attack).
    pub(crate) fn public_key_is_valid(
        alg: &'static dyn VerificationAlgorithm,
        bytes: &[u8],
    ) -> bool {
        signature::ParsedPublicKey::new(alg, bytes).is_ok()
    }

    /// Loads an ECDSA PKCS#8 key.
    pub(crate) fn ecdsa_from_pkcs8(
        alg: &'static EcdsaSigningAlgorithm,
        pkcs8: &[u8],
    ) -> Option<EcdsaKeyPair> {
        EcdsaKeyPair::from_pkcs8(alg, pkcs8).ok()
    }

    /// Generates an RSA key pair and returns it as PKCS#8 v1 DER.
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

    /// The signature length of an RSA key pair.
    pub(crate) fn rsa_signature_len(pair: &RsaKeyPair) -> usize {
        pair.public_modulus_len()
    }

    /// The RSA public key of a key pair as big-endian `(n, e)` without
    /// leading zeros.
    pub(crate) fn rsa_public_components(pair: &RsaKeyPair) -> (Vec<u8>, Vec<u8>) {
        use signature::KeyPair;
        let public = pair.public_key();
        (
            public.modulus().big_endian_without_leading_zero().to_vec(),
            public.exponent().big_endian_without_leading_zero().to_vec(),
        )
    }
}

#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
mod ring_provider {
    use super::signature::{
        EcdsaKeyPair, EcdsaSigningAlgorithm, RsaKeyPair, VerificationAlgorithm,
    };

    /// Whether `bytes` is an acceptable public key. ring has no parse-only
    /// check, so an uncompressed EC point is checked through what ring does
    /// have: ECDH against an ephemeral key, which rejects points that are not
    /// on the curve (RFC 7518 §6.2.1, the invalid-curve attack). Ed25519 keys
    /// (32 bytes, length checked by the caller) are accepted here; ring's
    /// verification rejects an undecodable point later.
    pub(crate) fn public_key_is_valid(
        _alg: &'static dyn VerificationAlgorithm,
        bytes: &[u8],
    ) -> bool {
        use ring::agreement;
        let curve = match (bytes.first(), bytes.len()) {
            (Some(0x04), 65) => &agreement::ECDH_P256,
            (Some(0x04), 97) => &agreement::ECDH_P384,
            (_, 32) => return true,
            _ => return false,
        };
        let rng = ring::rand::SystemRandom::new();
        let Ok(mine) = agreement::EphemeralPrivateKey::generate(curve, &rng) else {
            return false;
        };
        let peer = agreement::UnparsedPublicKey::new(curve, bytes);
        agreement::agree_ephemeral(mine, &peer, |_| ()).is_ok()
    }

    /// Loads an ECDSA PKCS#8 key (ring's version of this call takes an RNG).
    pub(crate) fn ecdsa_from_pkcs8(
        alg: &'static EcdsaSigningAlgorithm,
        pkcs8: &[u8],
    ) -> Option<EcdsaKeyPair> {
        EcdsaKeyPair::from_pkcs8(alg, pkcs8, &ring::rand::SystemRandom::new()).ok()
    }

    /// ring cannot generate RSA keys: always `None` (the caller reports
    /// [`crate::sign::SignError::Generate`]). RSA keys made elsewhere load
    /// and sign normally.
    pub(crate) fn rsa_generate_pkcs8(_bits: u32) -> Option<Vec<u8>> {
        None
    }

    /// The signature length of an RSA key pair.
    pub(crate) fn rsa_signature_len(pair: &RsaKeyPair) -> usize {
        pair.public().modulus_len()
    }

    /// The RSA public key of a key pair as big-endian `(n, e)` without
    /// leading zeros (ring names the accessor `public()`).
    pub(crate) fn rsa_public_components(pair: &RsaKeyPair) -> (Vec<u8>, Vec<u8>) {
        let c: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
        let trim = |v: Vec<u8>| {
            let skip = v.iter().take_while(|b| **b == 0).count();
            v[skip..].to_vec()
        };
        (trim(c.n), trim(c.e))
    }
}
