//! Parsing ACME finalize CSRs (RFC 8555 §7.4, RFC 2986) with x509-parser.
//!
//! rcgen's CSR parser refuses unknown extensions (a must-staple CSR fails, STACK pitfall 2),
//! so the CSR is parsed and its signature verified here and only the SubjectPublicKeyInfo is
//! handed to rcgen.

use std::collections::BTreeSet;
use std::net::IpAddr;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::identifier::Identifier;
use crate::issue::IssueError;

/// What fleetca uses from a CSR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsrInfo {
    /// The distinct identifiers named in the CSR (subjectAltName dNSName and iPAddress
    /// entries, plus the commonName), canonical and sorted.
    pub identifiers: Vec<Identifier>,
    /// The subject commonName as written in the CSR, if any.
    pub common_name: Option<String>,
    /// The requested SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
}

/// Parses a DER CSR and verifies its self-signature. Fails with [`IssueError::BadCsr`] on
/// malformed DER, trailing data, a bad signature, more than one commonName or
/// subjectAltName extension, SAN entries other than dNSName/iPAddress, or names that are not
/// valid identifiers; with [`IssueError::BadPublicKey`] when the key breaks BR §6.1.5/§6.1.6
/// (checked before the signature, which aws-lc cannot verify for weak keys).
pub fn parse_csr(der: &[u8]) -> Result<CsrInfo, IssueError> {
    let bad = |m: String| IssueError::BadCsr(m);
    let (rest, csr) =
        X509CertificationRequest::from_der(der).map_err(|e| bad(format!("malformed CSR: {e}")))?;
    if !rest.is_empty() {
        return Err(bad("trailing data after the CSR".into()));
    }
    let info = &csr.certification_request_info;
    // Judge the key first: aws-lc cannot verify signatures by weak keys (RSA-1024), and the
    // client should hear `badPublicKey`, not `badCSR`.
    crate::issue::check_public_key(info.subject_pki.raw, &[], &[])?;
    csr.verify_signature()
        .map_err(|e| bad(format!("CSR signature does not verify: {e}")))?;

    let mut identifiers = BTreeSet::new();
    let mut common_names = info.subject.iter_common_name();
    let common_name = match common_names.next() {
        Some(cn) => Some(
            cn.as_str()
                .map_err(|e| bad(format!("commonName is not a string: {e}")))?
                .to_string(),
        ),
        None => None,
    };
    if common_names.next().is_some() {
        return Err(bad("more than one commonName".into()));
    }
    if let Some(cn) = &common_name {
        let id = Identifier::parse_any(cn)
            .map_err(|e| bad(format!("commonName is not a valid identifier: {e}")))?;
        identifiers.insert(id);
    }

    let mut san_seen = false;
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            if san_seen {
                return Err(bad("more than one subjectAltName extension".into()));
            }
            san_seen = true;
            for name in &san.general_names {
                let id = match name {
                    GeneralName::DNSName(d) => {
                        Identifier::parse_dns(d).map_err(|e| bad(format!("subjectAltName: {e}")))?
                    }
                    GeneralName::IPAddress(b) => {
                        Identifier::Ip(ip_from_bytes(b).ok_or_else(|| {
                            bad(format!("subjectAltName iPAddress of {} octets", b.len()))
                        })?)
                    }
                    other => {
                        return Err(bad(format!(
                            "subjectAltName entry {other} is not a DNS name or IP address"
                        )))
                    }
                };
                identifiers.insert(id);
            }
        }
    }
    if identifiers.is_empty() {
        return Err(bad("the CSR names no identifiers".into()));
    }
    Ok(CsrInfo {
        identifiers: identifiers.into_iter().collect(),
        common_name,
        spki_der: info.subject_pki.raw.to_vec(),
    })
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}
