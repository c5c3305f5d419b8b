//! Checks on the unsigned draft certificate before the CA key signs it (Boulder's linter).

use std::collections::BTreeSet;
use std::net::IpAddr;

use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::Oid;
use x509_parser::prelude::{FromDer, X509Certificate, X509Version};

use crate::identifier::Identifier;
use crate::policy::Permitted;
use crate::serial::SERIAL_LEN;

/// What the certificate must say.
pub(super) struct Expected<'a> {
    pub(super) identifiers: &'a [Identifier],
    pub(super) common_name: Option<&'a Identifier>,
    pub(super) spki_der: &'a [u8],
    pub(super) serial: Vec<u8>,
    pub(super) not_before: OffsetDateTime,
    pub(super) not_after: OffsetDateTime,
    pub(super) is_rsa: bool,
    pub(super) client_auth: bool,
    pub(super) issuer_subject_raw: &'a [u8],
    pub(super) issuer_ski: Option<&'a [u8]>,
    pub(super) permitted: &'a Permitted,
    /// Whether a CRL distribution point must be present (absent otherwise).
    pub(super) crl_dp: bool,
    /// The OCSP URL authorityInformationAccess must carry (none otherwise).
    pub(super) ocsp_url: Option<&'a str>,
    /// Whether this is a precertificate: the critical CT poison must be present (RFC 6962
    /// §3.1), and absent otherwise.
    pub(super) precert: bool,
}

/// The subjectKeyIdentifier of a certificate, if present.
pub(super) fn subject_key_id(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
}

fn ensure(ok: bool, msg: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(msg.to_string())
    }
}

/// Parses `der` and checks the invariants of a fleetca DV subscriber certificate.
pub(super) fn lint_leaf(der: &[u8], want: &Expected<'_>) -> Result<(), String> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("does not parse: {e}"))?;
    ensure(rest.is_empty(), "trailing data")?;
    ensure(cert.version() == X509Version::V3, "not X.509 v3")?;

    // RFC 5280 §4.1.2.2, BR §7.1: positive, at most 20 octets, at least 64 random bits.
    let serial = cert.raw_serial();
    ensure(
        serial == want.serial.as_slice(),
        "serial differs from the one chosen",
    )?;
    ensure(
        serial.len() == SERIAL_LEN && serial[0] & 0x80 == 0 && serial[0] != 0,
        "serial is not a positive 16-octet number",
    )?;
    ensure(
        cert.issuer().as_raw() == want.issuer_subject_raw,
        "issuer name differs from the CA's subject",
    )?;
    ensure(
        cert.validity().not_before.to_datetime() == want.not_before
            && cert.validity().not_after.to_datetime() == want.not_after,
        "validity differs from the request",
    )?;
    ensure(
        cert.public_key().raw == want.spki_der,
        "subject public key differs from the CSR's",
    )?;

    // Subject: empty or a single commonName that is one of the identifiers (BR §7.1.2.7.2).
    let cns: Vec<&str> = cert
        .subject()
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .collect();
    let attr_count = cert.subject().iter_attributes().count();
    match want.common_name {
        Some(cn) => ensure(
            attr_count == 1 && cns == [cn.value().as_str()],
            "subject is not exactly the expected commonName",
        )?,
        None => ensure(attr_count == 0, "subject is not empty")?,
    }

    // subjectAltName equals the identifiers; critical iff the subject is empty.
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("subjectAltName: {e}"))?
        .ok_or("no subjectAltName")?;
    ensure(
        san.critical == (attr_count == 0),
        "subjectAltName criticality wrong (RFC 5280 §4.2.1.6)",
    )?;
    let mut names = BTreeSet::new();
    for g in &san.value.general_names {
        let id = match g {
            GeneralName::DNSName(d) => {
                let id = Identifier::parse_dns(d).map_err(|e| e.to_string())?;
                ensure(id.value() == *d, "dNSName not in canonical form")?;
                id
            }
            GeneralName::IPAddress(b) => Identifier::Ip(match b.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(*b).map_err(|e| e.to_string())?),
                16 => IpAddr::from(<[u8; 16]>::try_from(*b).map_err(|e| e.to_string())?),
                _ => return Err("iPAddress of bad length".into()),
            }),
            other => return Err(format!("unexpected SAN entry {other}")),
        };
        names.insert(id);
    }
    let wanted: BTreeSet<Identifier> = want.identifiers.iter().cloned().collect();
    ensure(
        names == wanted && san.value.general_names.len() == wanted.len(),
        "SANs differ from the identifiers",
    )?;
    for id in &names {
        want.permitted.check(id).map_err(|e| e.to_string())?;
    }

    // basicConstraints cA false (BR §7.1.2.7.8).
    let bc = cert
        .basic_constraints()
        .map_err(|e| format!("basicConstraints: {e}"))?;
    ensure(
        bc.is_some_and(|b| !b.value.ca),
        "basicConstraints is not CA:FALSE",
    )?;

    // keyUsage critical: digitalSignature, + keyEncipherment for RSA (BR §7.1.2.7.11).
    let ku = cert
        .key_usage()
        .map_err(|e| format!("keyUsage: {e}"))?
        .ok_or("no keyUsage")?;
    ensure(ku.critical, "keyUsage not critical")?;
    let expected_bits: u16 = if want.is_rsa { 0b101 } else { 0b001 };
    ensure(ku.value.flags == expected_bits, "keyUsage bits wrong")?;

    // extKeyUsage: serverAuth (+ clientAuth), nothing else (BR §7.1.2.7.10).
    let eku = cert
        .extended_key_usage()
        .map_err(|e| format!("extKeyUsage: {e}"))?
        .ok_or("no extKeyUsage")?
        .value;
    ensure(
        eku.server_auth
            && eku.client_auth == want.client_auth
            && !eku.any
            && !eku.code_signing
            && !eku.email_protection
            && !eku.time_stamping
            && !eku.ocsp_signing
            && eku.other.is_empty(),
        "extKeyUsage wrong",
    )?;

    let dv = Oid::from(&[2, 23, 140, 1, 2, 1]).map_err(|e| format!("{e:?}"))?;
    let mut has_policy = false;
    let mut has_aia = false;
    let mut ocsp: Vec<String> = Vec::new();
    let mut has_cdp = false;
    let mut aki_ok = false;
    let mut poison = false;
    let poison_oid =
        Oid::from(&[1, 3, 6, 1, 4, 1, 11129, 2, 4, 3]).map_err(|e| format!("{e:?}"))?;
    for ext in cert.extensions() {
        if ext.oid == poison_oid {
            ensure(
                ext.critical && ext.value == [0x05, 0x00],
                "CT poison must be critical with value NULL (RFC 6962 §3.1)",
            )?;
            ensure(!poison, "CT poison twice")?;
            poison = true;
            continue;
        }
        match ext.parsed_extension() {
            ParsedExtension::CertificatePolicies(p) => {
                has_policy = p.iter().any(|pi| pi.policy_id == dv);
            }
            ParsedExtension::AuthorityInfoAccess(a) => {
                let ca_issuers =
                    Oid::from(&[1, 3, 6, 1, 5, 5, 7, 48, 2]).map_err(|e| format!("{e:?}"))?;
                let id_ocsp =
                    Oid::from(&[1, 3, 6, 1, 5, 5, 7, 48, 1]).map_err(|e| format!("{e:?}"))?;
                has_aia = a.accessdescs.iter().any(|d| {
                    d.access_method == ca_issuers
                        && matches!(d.access_location, GeneralName::URI(u) if u.starts_with("http://"))
                });
                ocsp = a
                    .accessdescs
                    .iter()
                    .filter(|d| d.access_method == id_ocsp)
                    .filter_map(|d| match d.access_location {
                        GeneralName::URI(u) => Some(u.to_string()),
                        _ => None,
                    })
                    .collect();
            }
            ParsedExtension::CRLDistributionPoints(_) => has_cdp = true,
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki_ok = match (want.issuer_ski, &aki.key_identifier) {
                    (Some(ski), Some(k)) => k.0 == ski,
                    (None, Some(_)) => true,
                    _ => false,
                };
            }
            ParsedExtension::UnsupportedExtension { .. } | ParsedExtension::ParseError { .. } => {
                return Err(format!("unexpected or unparseable extension {}", ext.oid));
            }
            _ => {}
        }
    }
    ensure(
        has_policy,
        "no 2.23.140.1.2.1 certificate policy (BR §7.1.2.7.9)",
    )?;
    ensure(has_aia, "no caIssuers HTTP URL (BR §7.1.2.7.7)")?;
    ensure(
        has_cdp == want.crl_dp,
        "CRL distribution point presence differs from the profile (BR §7.1.2.11.2)",
    )?;
    ensure(
        ocsp == want
            .ocsp_url
            .map(|u| vec![u.to_string()])
            .unwrap_or_default(),
        "OCSP URL in authorityInformationAccess differs from the profile (BR §7.1.2.7.7)",
    )?;
    ensure(aki_ok, "authorityKeyIdentifier does not match the CA's SKI")?;
    ensure(
        poison == want.precert,
        "CT poison presence differs from the request (RFC 6962 §3.1)",
    )?;
    Ok(())
}
