//! Small read-only views of certificates for the server (storage keys, ARI, downloads).

use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::PkiError;

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(PkiError::parse("certificate"))?;
    if !rest.is_empty() {
        return Err(PkiError::Parse {
            what: "certificate",
            detail: "trailing data".into(),
        });
    }
    Ok(cert)
}

/// The certificate's SubjectPublicKeyInfo, DER (RFC 5280 §4.1.2.7).
pub fn spki_der_of(cert_der: &[u8]) -> Result<Vec<u8>, PkiError> {
    Ok(parse(cert_der)?.public_key().raw.to_vec())
}

/// The certificate's serial number as unsigned big-endian octets without leading zeros
/// (RFC 5280 §4.1.2.2).
pub fn serial_of(cert_der: &[u8]) -> Result<Vec<u8>, PkiError> {
    Ok(parse(cert_der)?.serial.to_bytes_be())
}

/// The certificate's notAfter (RFC 5280 §4.1.2.5).
pub fn not_after_of(cert_der: &[u8]) -> Result<OffsetDateTime, PkiError> {
    Ok(parse(cert_der)?.validity().not_after.to_datetime())
}

/// PEM-encodes DER with the given label (`CERTIFICATE`, `X509 CRL`, ...; RFC 7468), LF
/// line endings.
pub fn der_to_pem(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Decodes every PEM block in `pem_text`, in order (for example a certificate chain).
pub fn pem_to_ders(pem_text: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let blocks = pem::parse_many(pem_text).map_err(PkiError::Pem)?;
    Ok(blocks.into_iter().map(|p| p.into_contents()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate, KeyType};
    use crate::signer::FileSigner;

    #[test]
    fn views_and_pem_round_trip() {
        let s = FileSigner::new(generate(KeyType::EcdsaP256).unwrap());
        let der = crate::ca::create_root("R", &s, None).unwrap();
        assert_eq!(
            spki_der_of(&der).unwrap(),
            crate::Signer::public_key_der(&s)
        );
        assert_eq!(serial_of(&der).unwrap().len(), 16);
        assert!(not_after_of(&der).unwrap() > OffsetDateTime::now_utc());
        let two = der_to_pem("CERTIFICATE", &der) + &der_to_pem("CERTIFICATE", &der);
        assert_eq!(pem_to_ders(&two).unwrap(), vec![der.clone(), der.clone()]);
        assert!(pem_to_ders("not pem at all").unwrap().is_empty());
        assert!(spki_der_of(&der[..10]).is_err());
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(serial_of(&trailing).is_err());
    }
}
