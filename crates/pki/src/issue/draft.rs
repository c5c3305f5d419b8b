//! The certificate before the CA key signs it.
//!
//! rcgen builds and signs in one step. To lint before signing (Boulder's order), the
//! certificate is built once with [`Unsigned`] in the CA key's place: it names the CA key's
//! algorithm and public key but writes an empty signature. The linter reads that draft, and
//! only then does [`sign`] have the CA key sign the draft's TBSCertificate and put the
//! signature in. RFC 5280 §4.1.1.3: the signature covers exactly the DER of the
//! tbsCertificate, so what is signed is, byte for byte, what was linted.

use der::asn1::BitStringRef;
use der::{Decode, Encode, Header, Length, Reader, SliceReader, Tag};
use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};

use crate::signer::{RcgenSigner, Signer};
use crate::PkiError;

/// Stands in for the CA key while a draft is built: same algorithm and public key, no
/// signature. Holds no key material, so it can live in the shared [`super::Issuer`].
pub(super) struct Unsigned {
    raw_public_key: Vec<u8>,
    algorithm: &'static SignatureAlgorithm,
}

impl Unsigned {
    /// The stand-in for `signer`'s key.
    pub(super) fn for_signer(signer: &dyn Signer) -> Result<Self, PkiError> {
        Ok(Unsigned {
            raw_public_key: RcgenSigner::new(signer)?.der_bytes().to_vec(),
            algorithm: signer.algorithm(),
        })
    }
}

impl PublicKeyData for Unsigned {
    fn der_bytes(&self) -> &[u8] {
        &self.raw_public_key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }
}

impl SigningKey for Unsigned {
    fn sign(&self, _msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        Ok(Vec::new())
    }
}

/// Has `signer` sign the TBSCertificate of `draft` (a Certificate whose signatureValue is a
/// placeholder) and returns the Certificate with the real signature (RFC 5280 §4.1).
pub(super) fn sign(draft: &[u8], signer: &dyn Signer) -> Result<Vec<u8>, PkiError> {
    let (tbs, algorithm) = tbs_and_algorithm(draft).map_err(PkiError::der("draft certificate"))?;
    sign_tbs(tbs, algorithm, signer)
}

/// Has `signer` sign `tbs` (a TBSCertificate whose signature field names `algorithm`, the DER
/// AlgorithmIdentifier) and returns the Certificate (RFC 5280 §4.1).
pub(super) fn sign_tbs(
    tbs: &[u8],
    algorithm: &[u8],
    signer: &dyn Signer,
) -> Result<Vec<u8>, PkiError> {
    let signature = signer.sign(tbs)?;
    let value = BitStringRef::from_bytes(&signature)
        .and_then(|b| b.to_der())
        .map_err(PkiError::der("signatureValue"))?;
    let len = tbs.len() + algorithm.len() + value.len();
    let mut der = Header::new(
        Tag::Sequence,
        Length::try_from(len).map_err(PkiError::der("certificate length"))?,
    )
    .to_der()
    .map_err(PkiError::der("certificate header"))?;
    der.reserve(len);
    der.extend_from_slice(tbs);
    der.extend_from_slice(algorithm);
    der.extend_from_slice(&value);
    Ok(der)
}

/// The raw tbsCertificate and signatureAlgorithm of a Certificate.
fn tbs_and_algorithm(cert: &[u8]) -> der::Result<(&[u8], &[u8])> {
    let mut outer = SliceReader::new(cert)?;
    let header = Header::decode(&mut outer)?;
    header.tag().assert_eq(Tag::Sequence)?;
    let body = outer.read_slice(header.length())?;
    outer.finish()?;
    let mut fields = SliceReader::new(body)?;
    let tbs = fields.tlv_bytes()?;
    let algorithm = fields.tlv_bytes()?;
    fields.tlv_bytes()?;
    fields.finish()?;
    Ok((tbs, algorithm))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate, KeyType};
    use crate::signer::FileSigner;
    use x509_parser::prelude::{FromDer, X509Certificate};

    /// A self-signed certificate drafted with `Unsigned`, then signed: the signature verifies
    /// and the TBSCertificate is the draft's.
    #[test]
    fn signing_a_draft_keeps_its_tbs_and_verifies() {
        for kt in [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa2048] {
            let signer = FileSigner::new(generate(kt).unwrap());
            let params = rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap();
            let unsigned = Unsigned::for_signer(&signer).unwrap();
            let draft = params.self_signed(&unsigned).unwrap().der().to_vec();
            let (_, d) = X509Certificate::from_der(&draft).unwrap();
            assert!(
                d.signature_value.data.is_empty(),
                "{kt:?}: draft is unsigned"
            );

            let der = sign(&draft, &signer).unwrap();
            let (rest, c) = X509Certificate::from_der(&der).unwrap();
            assert!(rest.is_empty());
            assert_eq!(c.tbs_certificate.as_ref(), d.tbs_certificate.as_ref());
            assert_eq!(c.signature_algorithm, d.signature_algorithm);
            c.verify_signature(None)
                .unwrap_or_else(|e| panic!("{kt:?}: {e}"));
        }
    }

    #[test]
    fn refuses_what_is_not_a_certificate() {
        let signer = FileSigner::new(generate(KeyType::EcdsaP256).unwrap());
        let params = rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap();
        let draft = params
            .self_signed(&Unsigned::for_signer(&signer).unwrap())
            .unwrap()
            .der()
            .to_vec();
        let mut trailing = draft.clone();
        trailing.push(0);
        let mut set = draft.clone();
        set[0] = 0x31;
        for bad in [
            &b""[..],
            &b"\x30\x00"[..],
            &draft[..draft.len() - 1],
            &trailing,
            &set,
        ] {
            assert!(sign(bad, &signer).is_err(), "{bad:02x?}");
        }
    }
}
