//! OCSP (RFC 6960): parsing requests and building responses signed by the issuing CA through
//! a [`Signer`].
//!
//! `x509-ocsp` sits on the older `x509-cert` 0.2 / `der` 0.7 stack; those types stay
//! inside this module, whose interface is plain bytes and [`time::OffsetDateTime`]. The
//! response is assembled from `x509-ocsp` types and only the to-be-signed `ResponseData` goes
//! through the signer, so a PKCS#11 key works the same as a file key.

use der07::asn1::{BitString, GeneralizedTime, Null, ObjectIdentifier, OctetString};
use der07::{Any, Decode, Encode};
use time::OffsetDateTime;
use x509_cert_02::ext::pkix::CrlReason;
use x509_cert_02::ext::Extension;
use x509_cert_02::spki::AlgorithmIdentifierOwned;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus as WireStatus, OcspGeneralizedTime, OcspRequest,
    OcspResponse, Request, ResponderId, ResponseData, RevokedInfo, SingleResponse, TbsRequest,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::signer::Signer;
use crate::PkiError;

/// id-pkix-ocsp-nonce (RFC 6960 §4.4.1).
const OID_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// Why an OCSP request could not be answered with a signed response.
#[derive(Debug, thiserror::Error)]
pub enum OcspError {
    /// The request does not parse or uses an unsupported hash (`malformedRequest`).
    #[error("malformed OCSP request: {0}")]
    Malformed(String),
    /// A request names a certificate of another issuer (`unauthorized`, RFC 6960 §2.3).
    #[error("the request names a certificate of another issuer")]
    Unauthorized,
    /// Encoding or signing failed (`internalError`).
    #[error("building the OCSP response failed: {0}")]
    Internal(String),
    /// The status cannot be looked up right now, e.g. the database is unreachable
    /// (`tryLater`, RFC 6960 §2.3): the client should ask again, not treat it as a fault.
    #[error("the certificate status is unavailable for now: {0}")]
    TryLater(String),
    /// The signer failed.
    #[error(transparent)]
    Signing(#[from] PkiError),
}

/// One certificate asked about.
#[derive(Clone, Debug)]
pub struct RequestedCert {
    /// The serial number (big-endian, as in the certificate, sign octet removed).
    pub serial: Vec<u8>,
    cert_id: CertId,
}

/// A parsed OCSP request whose certificates were all issued by this CA.
#[derive(Clone, Debug)]
pub struct OcspQuery {
    /// The certificates asked about, in request order.
    pub certs: Vec<RequestedCert>,
    /// The nonce extension's value (the DER of its OCTET STRING), echoed in the response.
    nonce: Option<Extension>,
}

impl OcspQuery {
    /// Whether the request carried a nonce (then the response must not be cached).
    pub fn has_nonce(&self) -> bool {
        self.nonce.is_some()
    }
}

/// The status to report for one certificate (RFC 6960 §2.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertStatus {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked at this time, with an RFC 5280 §5.3.1 reason code.
    Revoked {
        /// revocationTime.
        at: OffsetDateTime,
        /// revocationReason (omitted when `None` or unspecified).
        reason: Option<u8>,
    },
    /// Not known to this responder.
    Unknown,
}

/// The issuer's name and key as OCSP CertIDs identify them.
struct IssuerIds {
    name_der: Vec<u8>,
    key_bits: Vec<u8>,
    spki_der: Vec<u8>,
}

fn issuer_ids(issuer_cert_der: &[u8]) -> Result<IssuerIds, PkiError> {
    let (_, cert) = X509Certificate::from_der(issuer_cert_der)
        .map_err(PkiError::parse("issuing CA certificate"))?;
    Ok(IssuerIds {
        name_der: cert.subject().as_raw().to_vec(),
        key_bits: cert.public_key().subject_public_key.data.to_vec(),
        spki_der: cert.public_key().raw.to_vec(),
    })
}

fn digest(alg: &ObjectIdentifier, data: &[u8]) -> Option<Vec<u8>> {
    let alg = if *alg == OID_SHA1 {
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY
    } else if *alg == OID_SHA256 {
        &aws_lc_rs::digest::SHA256
    } else {
        return None;
    };
    Some(aws_lc_rs::digest::digest(alg, data).as_ref().to_vec())
}

/// A DER OCSPRequest (RFC 6960 §4.1.1) for `serial` of the CA in `issuer_cert_der`, with SHA-1
/// CertID hashes (as RFC 5019 §2.1.1 asks of clients) and a nonce extension (§4.4.1) when
/// given: what a relying party sends (for tests and tooling).
pub fn build_request(
    issuer_cert_der: &[u8],
    serial: &[u8],
    nonce: Option<&[u8]>,
) -> Result<Vec<u8>, PkiError> {
    let ids = issuer_ids(issuer_cert_der)?;
    let sha1 = |d: &[u8]| {
        OctetString::new(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, d).as_ref(),
        )
        .map_err(PkiError::parse("OCSP CertID"))
    };
    let cert_id = CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: OID_SHA1,
            parameters: Some(Any::from(Null)),
        },
        issuer_name_hash: sha1(&ids.name_der)?,
        issuer_key_hash: sha1(&ids.key_bits)?,
        serial_number: x509_cert_02::serial_number::SerialNumber::new(serial)
            .map_err(PkiError::parse("OCSP serial"))?,
    };
    let ext = match nonce {
        None => None,
        Some(n) => {
            let inner = OctetString::new(n)
                .and_then(|o| o.to_der())
                .and_then(OctetString::new)
                .map_err(PkiError::parse("OCSP nonce"))?;
            Some(vec![Extension {
                extn_id: OID_NONCE,
                critical: false,
                extn_value: inner,
            }])
        }
    };
    OcspRequest {
        tbs_request: TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: vec![Request {
                req_cert: cert_id,
                single_request_extensions: None,
            }],
            request_extensions: ext,
        },
        optional_signature: None,
    }
    .to_der()
    .map_err(PkiError::parse("OCSP request"))
}

/// Parses a DER OCSPRequest (RFC 6960 §4.1.1) for the CA in `issuer_cert_der`. Every
/// requested CertID must carry this CA's name and key hashes (SHA-1 or SHA-256), else
/// [`OcspError::Unauthorized`]. Request signatures are not required and not checked.
pub fn parse_request(der: &[u8], issuer_cert_der: &[u8]) -> Result<OcspQuery, OcspError> {
    let req = OcspRequest::from_der(der).map_err(|e| OcspError::Malformed(e.to_string()))?;
    if req.tbs_request.request_list.is_empty() {
        return Err(OcspError::Malformed("empty requestList".into()));
    }
    let ids = issuer_ids(issuer_cert_der)?;
    let mut certs = Vec::new();
    for r in &req.tbs_request.request_list {
        let id = &r.req_cert;
        let alg = &id.hash_algorithm.oid;
        let (name_hash, key_hash) = match (digest(alg, &ids.name_der), digest(alg, &ids.key_bits)) {
            (Some(n), Some(k)) => (n, k),
            _ => {
                return Err(OcspError::Malformed(format!(
                    "unsupported CertID hash algorithm {alg}"
                )))
            }
        };
        if id.issuer_name_hash.as_bytes() != name_hash || id.issuer_key_hash.as_bytes() != key_hash
        {
            return Err(OcspError::Unauthorized);
        }
        let raw = id.serial_number.as_bytes();
        let start = raw
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(raw.len().saturating_sub(1));
        certs.push(RequestedCert {
            serial: raw[start..].to_vec(),
            cert_id: id.clone(),
        });
    }
    let nonce = req
        .tbs_request
        .request_extensions
        .as_ref()
        .and_then(|exts| exts.iter().find(|e| e.extn_id == OID_NONCE))
        .map(|e| Extension {
            extn_id: OID_NONCE,
            critical: false,
            extn_value: e.extn_value.clone(),
        });
    Ok(OcspQuery { certs, nonce })
}

fn gtime(t: OffsetDateTime) -> Result<OcspGeneralizedTime, OcspError> {
    let secs = u64::try_from(t.unix_timestamp())
        .map_err(|_| OcspError::Internal("time before 1970".into()))?;
    GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map(OcspGeneralizedTime)
        .map_err(|e| OcspError::Internal(e.to_string()))
}

fn reason(code: u8) -> Option<CrlReason> {
    Some(match code {
        1 => CrlReason::KeyCompromise,
        2 => CrlReason::CaCompromise,
        3 => CrlReason::AffiliationChanged,
        4 => CrlReason::Superseded,
        5 => CrlReason::CessationOfOperation,
        6 => CrlReason::CertificateHold,
        8 => CrlReason::RemoveFromCRL,
        9 => CrlReason::PrivilegeWithdrawn,
        10 => CrlReason::AaCompromise,
        _ => return None,
    })
}

/// The signatureAlgorithm for the signer's key (RFC 5758 §3.2, RFC 4055 §5, RFC 8410 §3).
fn signature_algorithm(signer: &dyn Signer) -> Result<AlgorithmIdentifierOwned, OcspError> {
    let alg = signer.algorithm();
    let (oid, null_params) = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        ("1.2.840.10045.4.3.2", false)
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        ("1.2.840.10045.4.3.3", false)
    } else if alg == &rcgen::PKCS_ED25519 {
        ("1.3.101.112", false)
    } else if alg == &rcgen::PKCS_RSA_SHA256 {
        ("1.2.840.113549.1.1.11", true)
    } else if alg == &rcgen::PKCS_RSA_SHA384 {
        ("1.2.840.113549.1.1.12", true)
    } else if alg == &rcgen::PKCS_RSA_SHA512 {
        ("1.2.840.113549.1.1.13", true)
    } else {
        return Err(OcspError::Internal(format!(
            "no OCSP signature algorithm for {alg:?}"
        )));
    };
    Ok(AlgorithmIdentifierOwned {
        oid: ObjectIdentifier::new(oid).map_err(|e| OcspError::Internal(e.to_string()))?,
        parameters: null_params.then(|| Any::from(Null)),
    })
}

/// Builds a successful OCSPResponse (RFC 6960 §4.2.1) answering every certificate of `query`
/// with the matching entry of `statuses`, signed by the CA itself (responderID byKey,
/// §4.2.2.3), with thisUpdate/nextUpdate and the request's nonce echoed (§4.4.1).
pub fn build_response(
    issuer_cert_der: &[u8],
    signer: &dyn Signer,
    query: &OcspQuery,
    statuses: &[CertStatus],
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<Vec<u8>, OcspError> {
    let ids = issuer_ids(issuer_cert_der)?;
    if ids.spki_der != signer.public_key_der() {
        return Err(OcspError::Signing(PkiError::SignerMismatch));
    }
    build(
        &ids.key_bits,
        None,
        signer,
        query,
        statuses,
        this_update,
        next_update,
    )
}

/// [`build_response`] signed by a delegated OCSP responder (RFC 6960 §4.2.2.2): `signer` holds
/// the key of `responder_cert_der`, a certificate issued directly by the CA in
/// `issuer_cert_der` with id-kp-OCSPSigning (see [`create_responder_cert`]). The responder
/// certificate is included in `certs` so relying parties can check the delegation; the
/// responderID names its key.
pub fn build_delegated_response(
    issuer_cert_der: &[u8],
    responder_cert_der: &[u8],
    signer: &dyn Signer,
    query: &OcspQuery,
    statuses: &[CertStatus],
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<Vec<u8>, OcspError> {
    let ids = issuer_ids(issuer_cert_der)?;
    let (_, responder) = X509Certificate::from_der(responder_cert_der)
        .map_err(|e| OcspError::Internal(format!("OCSP responder certificate: {e}")))?;
    if responder.issuer().as_raw() != ids.name_der.as_slice() {
        return Err(OcspError::Internal(
            "the OCSP responder certificate was not issued by this CA".into(),
        ));
    }
    if responder.public_key().raw != signer.public_key_der() {
        return Err(OcspError::Signing(PkiError::SignerMismatch));
    }
    let key_bits = responder.public_key().subject_public_key.data.to_vec();
    let cert = x509_cert_02::Certificate::from_der(responder_cert_der)
        .map_err(|e| OcspError::Internal(e.to_string()))?;
    build(
        &key_bits,
        Some(vec![cert]),
        signer,
        query,
        statuses,
        this_update,
        next_update,
    )
}

fn build(
    responder_key_bits: &[u8],
    certs: Option<Vec<x509_cert_02::Certificate>>,
    signer: &dyn Signer,
    query: &OcspQuery,
    statuses: &[CertStatus],
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<Vec<u8>, OcspError> {
    if statuses.len() != query.certs.len() {
        return Err(OcspError::Internal("one status per certificate".into()));
    }
    let this = gtime(this_update)?;
    let next = gtime(next_update)?;
    let responses = query
        .certs
        .iter()
        .zip(statuses)
        .map(|(c, s)| {
            Ok(SingleResponse {
                cert_id: c.cert_id.clone(),
                cert_status: match s {
                    CertStatus::Good => WireStatus::good(),
                    CertStatus::Unknown => WireStatus::unknown(),
                    CertStatus::Revoked { at, reason: r } => WireStatus::Revoked(RevokedInfo {
                        revocation_time: gtime(*at)?,
                        revocation_reason: r.and_then(reason),
                    }),
                },
                this_update: this,
                next_update: Some(next),
                single_extensions: None,
            })
        })
        .collect::<Result<Vec<_>, OcspError>>()?;
    let key_hash = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        responder_key_bits,
    );
    let tbs = ResponseData {
        version: Default::default(),
        responder_id: ResponderId::ByKey(
            OctetString::new(key_hash.as_ref()).map_err(|e| OcspError::Internal(e.to_string()))?,
        ),
        produced_at: this,
        responses,
        response_extensions: query.nonce.clone().map(|n| vec![n]),
    };
    let tbs_der = tbs
        .to_der()
        .map_err(|e| OcspError::Internal(e.to_string()))?;
    let signature = signer.sign(&tbs_der)?;
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: signature_algorithm(signer)?,
        signature: BitString::from_bytes(&signature)
            .map_err(|e| OcspError::Internal(e.to_string()))?,
        certs,
    };
    OcspResponse::successful(basic)
        .and_then(|r| r.to_der())
        .map_err(|e| OcspError::Internal(e.to_string()))
}

/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
const OID_OCSP_NOCHECK: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5];

/// Issues a delegated OCSP responder certificate (RFC 6960 §4.2.2.2, BR §7.1.2.8) for the key
/// `responder_spki_der`, signed by the CA in `issuer_cert_der`: extKeyUsage id-kp-OCSPSigning
/// only, keyUsage digitalSignature, id-pkix-ocsp-nocheck (so it carries no revocation
/// pointers and must stay short-lived), authority and subject key identifiers, valid from
/// `not_before` to `not_after`, subject "`<issuer CN>` OCSP Responder" with the issuer's
/// organization.
pub fn create_responder_cert(
    issuer_cert_der: &[u8],
    issuer: &dyn Signer,
    responder_spki_der: &[u8],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Vec<u8>, PkiError> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose};
    let (_, ca) = X509Certificate::from_der(issuer_cert_der)
        .map_err(PkiError::parse("issuing CA certificate"))?;
    if ca.public_key().raw != issuer.public_key_der() {
        return Err(PkiError::SignerMismatch);
    }
    if not_after <= not_before || not_after > ca.validity().not_after.to_datetime() {
        return Err(PkiError::InvalidValidity(
            "the OCSP responder certificate must end after it starts and before its CA".into(),
        ));
    }
    let cn = ca
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or("fleetca issuing CA");
    let mut dn = DistinguishedName::new();
    if let Some(o) = ca
        .subject()
        .iter_organization()
        .next()
        .and_then(|o| o.as_str().ok())
    {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, format!("{cn} OCSP Responder"));
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.serial_number = Some(crate::serial::random_serial()?);
    params.not_before = not_before;
    params.not_after = not_after;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = crate::extensions::key_identifier(responder_spki_der)?;
    params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
        OID_OCSP_NOCHECK,
        vec![0x05, 0x00],
    )];
    let subject_key = rcgen::SubjectPublicKeyInfo::from_der(responder_spki_der)
        .map_err(PkiError::rcgen("unsupported OCSP responder public key"))?;
    let key = crate::signer::RcgenSigner::new(issuer)?;
    let issuer = rcgen::Issuer::from_ca_cert_der(&issuer_cert_der.to_vec().into(), &key).map_err(
        PkiError::rcgen("cannot use the issuing CA certificate as issuer"),
    )?;
    let cert = params
        .signed_by(&subject_key, &issuer)
        .map_err(key.error("cannot build the OCSP responder certificate"))?;
    Ok(cert.der().to_vec())
}

/// An unsigned OCSPResponse with an error status (RFC 6960 §4.2.1): `malformedRequest`,
/// `internalError`, `tryLater` or `unauthorized`, chosen from the error.
pub fn error_response(err: &OcspError) -> Vec<u8> {
    let resp = match err {
        OcspError::Malformed(_) => OcspResponse::malformed_request(),
        OcspError::Unauthorized => OcspResponse::unauthorized(),
        OcspError::TryLater(_) => OcspResponse::try_later(),
        OcspError::Internal(_) | OcspError::Signing(_) => OcspResponse::internal_error(),
    };
    // A status-only response is three fixed octets; encoding cannot fail.
    resp.to_der()
        .unwrap_or_else(|_| vec![0x30, 0x03, 0x0a, 0x01, 0x02])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate, KeyType};
    use crate::signer::FileSigner;

    fn ca() -> (Vec<u8>, FileSigner) {
        let signer = FileSigner::new(generate(KeyType::EcdsaP256).unwrap());
        let der = crate::ca::create_root("ocsp test", &signer, None).unwrap();
        (der, signer)
    }

    fn request(issuer: &[u8], serial: &[u8], nonce: Option<&[u8]>) -> Vec<u8> {
        build_request(issuer, serial, nonce).unwrap()
    }

    #[test]
    fn answers_with_status_nonce_and_signature() {
        let (ca_der, signer) = ca();
        let q = parse_request(&request(&ca_der, &[0x12, 0x34], Some(b"n0nce")), &ca_der).unwrap();
        assert_eq!(q.certs[0].serial, vec![0x12, 0x34]);
        assert!(q.has_nonce());
        let now = OffsetDateTime::now_utc();
        let der = build_response(
            &ca_der,
            &signer,
            &q,
            &[CertStatus::Revoked {
                at: now,
                reason: Some(1),
            }],
            now,
            now + time::Duration::hours(24),
        )
        .unwrap();
        let resp = OcspResponse::from_der(&der).unwrap();
        let basic =
            BasicOcspResponse::from_der(resp.response_bytes.unwrap().response.as_bytes()).unwrap();
        assert!(matches!(
            basic.tbs_response_data.responses[0].cert_status,
            WireStatus::Revoked(_)
        ));
        assert_eq!(
            basic.nonce().unwrap().0.as_bytes(),
            b"n0nce",
            "nonce echoed"
        );
        // The signature verifies with the CA key over the encoded ResponseData.
        let (_, cert) = X509Certificate::from_der(&ca_der).unwrap();
        let key = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            cert.public_key().subject_public_key.data.to_vec(),
        );
        key.verify(
            &basic.tbs_response_data.to_der().unwrap(),
            basic.signature.raw_bytes(),
        )
        .unwrap();
    }

    #[test]
    fn delegated_responder_signs_and_is_included() {
        let (ca_der, ca_signer) = ca();
        let responder = FileSigner::new(generate(KeyType::EcdsaP256).unwrap());
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let cert = create_responder_cert(
            &ca_der,
            &ca_signer,
            responder.public_key_der(),
            now,
            now + time::Duration::days(90),
        )
        .unwrap();
        let (_, x) = X509Certificate::from_der(&cert).unwrap();
        let eku = x.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.ocsp_signing && !eku.server_auth);
        assert!(x
            .iter_extensions()
            .any(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.48.1.5"));
        let q = parse_request(&request(&ca_der, &[7], None), &ca_der).unwrap();
        let der = build_delegated_response(
            &ca_der,
            &cert,
            &responder,
            &q,
            &[CertStatus::Good],
            now,
            now + time::Duration::hours(24),
        )
        .unwrap();
        let resp = OcspResponse::from_der(&der).unwrap();
        let basic =
            BasicOcspResponse::from_der(resp.response_bytes.unwrap().response.as_bytes()).unwrap();
        assert_eq!(basic.certs.as_ref().map(Vec::len), Some(1));
        // The CA key is not the responder key: a mismatched signer is refused.
        assert!(build_delegated_response(
            &ca_der,
            &cert,
            &ca_signer,
            &q,
            &[CertStatus::Good],
            now,
            now
        )
        .is_err());
    }

    #[test]
    fn other_issuers_and_garbage_are_refused() {
        let (ca_der, _) = ca();
        let (other_der, _) = ca();
        assert!(matches!(
            parse_request(&request(&other_der, &[1], None), &ca_der),
            Err(OcspError::Unauthorized)
        ));
        assert!(matches!(
            parse_request(b"not der", &ca_der),
            Err(OcspError::Malformed(_))
        ));
        assert_eq!(
            error_response(&OcspError::Unauthorized),
            vec![0x30, 0x03, 0x0a, 0x01, 0x06]
        );
        // RFC 6960 §4.2.1: tryLater is 3, internalError 2.
        assert_eq!(
            error_response(&OcspError::TryLater("db down".into())),
            vec![0x30, 0x03, 0x0a, 0x01, 0x03]
        );
        assert_eq!(
            error_response(&OcspError::Internal("bug".into())),
            vec![0x30, 0x03, 0x0a, 0x01, 0x02]
        );
    }
}
