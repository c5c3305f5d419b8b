//! Certificate revocation lists (RFC 5280 §5, BR §7.2), built by rcgen and signed through
//! a [`Signer`].

use rcgen::{
    CertificateRevocationListParams, CrlDistributionPoint, CrlIssuingDistributionPoint, CrlScope,
    KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;

use crate::signer::{RcgenSigner, Signer};
use crate::PkiError;

/// One revoked certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The certificate's serial number (big-endian, as stored).
    pub serial: Vec<u8>,
    /// When the CA processed the revocation (RFC 5280 §5.1.2.6 revocationDate).
    pub revoked_at: OffsetDateTime,
    /// RFC 5280 §5.3.1 reason code; `None` or 0 (unspecified) omits the extension.
    pub reason: Option<u8>,
}

fn reason_from_code(code: u8) -> Result<RevocationReason, PkiError> {
    Ok(match code {
        0 => RevocationReason::Unspecified,
        1 => RevocationReason::KeyCompromise,
        2 => RevocationReason::CaCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        6 => RevocationReason::CertificateHold,
        8 => RevocationReason::RemoveFromCrl,
        9 => RevocationReason::PrivilegeWithdrawn,
        10 => RevocationReason::AaCompromise,
        other => {
            return Err(PkiError::InvalidCrlEntry(format!(
                "reason code {other} is not defined in RFC 5280 §5.3.1"
            )))
        }
    })
}

/// Builds and signs a CRL for the CA in `issuer_cert_der` (RFC 5280 §5): version 2,
/// authorityKeyIdentifier equal to the CA's SKI and cRLNumber (§5.2.1, §5.2.3).
///
/// With `idp_url` set (the issuing CA's CRL), a critical Issuing Distribution Point with that
/// URL and onlyContainsUserCerts is added (§5.2.5), matching the CRL distribution point in
/// the certificates the CA issues; the root's CRL passes `None`.
pub fn build_crl(
    issuer_cert_der: &[u8],
    signer: &dyn Signer,
    entries: &[RevokedEntry],
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
    crl_number: u64,
    idp_url: Option<&str>,
) -> Result<Vec<u8>, PkiError> {
    if crate::cert_info::spki_der_of(issuer_cert_der)? != signer.public_key_der() {
        return Err(PkiError::SignerMismatch);
    }
    let revoked_certs = entries
        .iter()
        .map(|e| {
            if e.serial.is_empty() || e.serial.len() > 20 {
                return Err(PkiError::InvalidCrlEntry(format!(
                    "serial of {} octets (RFC 5280 §4.1.2.2 allows 1 to 20)",
                    e.serial.len()
                )));
            }
            Ok(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&e.serial),
                revocation_time: e.revoked_at,
                reason_code: e.reason.map(reason_from_code).transpose()?,
                invalidity_date: None,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let key = RcgenSigner::new(signer)?;
    let issuer = rcgen::Issuer::from_ca_cert_der(&issuer_cert_der.to_vec().into(), &key)
        .map_err(PkiError::rcgen("cannot use certificate as CRL issuer"))?;
    // Reuse the CA's own SKI so the CRL's AKI matches it exactly.
    let ski = x509_parser::parse_x509_certificate(issuer_cert_der)
        .ok()
        .and_then(|(_, c)| {
            c.iter_extensions()
                .find_map(|ext| match ext.parsed_extension() {
                    x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                        Some(k.0.to_vec())
                    }
                    _ => None,
                })
        });
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from_slice(&crl_number.to_be_bytes()),
        issuing_distribution_point: idp_url.map(|url| CrlIssuingDistributionPoint {
            distribution_point: CrlDistributionPoint {
                uris: vec![url.to_string()],
            },
            scope: Some(CrlScope::UserCertsOnly),
        }),
        revoked_certs,
        key_identifier_method: ski.map_or(KeyIdMethod::Sha256, KeyIdMethod::PreSpecified),
    };
    let crl = params
        .signed_by(&issuer)
        .map_err(key.error("cannot build CRL"))?;
    Ok(crl.der().to_vec())
}
