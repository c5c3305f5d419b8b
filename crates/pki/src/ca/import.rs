//! Checks for an issuing CA certificate that an outside root signed from [`super::subca_csr`].

use std::net::IpAddr;

use ipnet::IpNet;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use super::{CaProfile, CaSubject};
use crate::identifier::DnsName;
use crate::signer::Signer;
use crate::PkiError;

/// Why an imported issuing CA certificate is unusable. Each rule has its own variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The certificate or a chain element does not parse.
    #[error("cannot parse {what}: {detail}")]
    Parse {
        /// Which certificate.
        what: String,
        /// The parser's message.
        detail: String,
    },
    /// The certificate's SubjectPublicKeyInfo is not the issuing CA key.
    #[error("the certificate does not certify the issuing CA's key")]
    KeyMismatch,
    /// basicConstraints is missing or `cA` is false (RFC 5280 §4.2.1.9).
    #[error("the certificate is not a CA certificate (basicConstraints cA is not true)")]
    NotCa,
    /// pathLenConstraint must be 0: the issuing CA issues only end-entity certificates.
    #[error("pathLenConstraint must be 0, found {0:?}")]
    PathLen(Option<u32>),
    /// keyUsage lacks keyCertSign (RFC 5280 §4.2.1.3).
    #[error("keyUsage does not include keyCertSign")]
    MissingKeyCertSign,
    /// extKeyUsage lacks id-kp-serverAuth (BR §7.1.2.5.1 requires it for a TLS CA).
    #[error("extKeyUsage does not include serverAuth")]
    MissingServerAuth,
    /// No Name Constraints extension: the CA would not be technically constrained (BR §7.1.2.5).
    #[error("the certificate has no Name Constraints extension")]
    MissingNameConstraints,
    /// A permitted dNSName subtree is not inside the tenant's permitted DNS subtrees.
    #[error("permitted DNS subtree {0:?} is outside the tenant policy")]
    DnsSubtreeOutsideProfile(String),
    /// A permitted iPAddress subtree is not inside the tenant's permitted ranges.
    #[error("permitted IP subtree {0} is outside the tenant policy")]
    IpSubtreeOutsideProfile(String),
    /// A permitted subtree could not be interpreted.
    #[error("unusable permitted subtree: {0}")]
    BadSubtree(String),
    /// DNS names are not constrained: no permitted dNSName and no zero-length exclusion
    /// (BR §7.1.2.5.2).
    #[error("DNS names are unconstrained: permit DNS subtrees or exclude the empty dNSName")]
    DnsUnconstrained,
    /// IP addresses are not constrained: no permitted iPAddress and not both 0.0.0.0/0 and
    /// ::/0 excluded (BR §7.1.2.5.2).
    #[error("IP addresses are unconstrained: permit ranges or exclude 0.0.0.0/0 and ::/0")]
    IpUnconstrained,
    /// Public trust: no permitted directoryName subtree (BR §7.1.2.5.2 requires one next to
    /// dNSName and iPAddress).
    #[error("the Name Constraints permit no directoryName subtree (BR §7.1.2.5.2 requires one for a publicly trusted sub-CA)")]
    DirectoryNameUnconstrained,
    /// Public trust: a permitted directoryName subtree is not the tenant's country and
    /// organisation.
    #[error("permitted directoryName subtree {0:?} is not this tenant's countryName and organizationName")]
    DirectoryNameOutsideProfile(String),
    /// Public trust: the certificate's subject is not the one the CSR asked for.
    #[error("the certificate's subject {0:?} is not the subject of the CSR (BR §7.1.2.10.2)")]
    SubjectMismatch(String),
    /// notBefore is in the future.
    #[error("the certificate is not valid before {0}")]
    NotYetValid(OffsetDateTime),
    /// notAfter is in the past.
    #[error("the certificate expired at {0}")]
    Expired(OffsetDateTime),
    /// The certificate's issuer is not the subject of the first chain certificate.
    #[error("chain certificate {index} is not the issuer of the certificate before it")]
    IssuerNameMismatch {
        /// Position in the chain.
        index: usize,
    },
    /// A chain certificate did not sign the certificate before it.
    #[error("chain certificate {index} did not sign the certificate before it: {detail}")]
    BadChainSignature {
        /// Position in the chain.
        index: usize,
        /// The verifier's message.
        detail: String,
    },
}

/// Checks an issuing CA certificate signed elsewhere against the tenant profile, now.
/// See [`check_imported_issuing_ca_at`].
pub fn check_imported_issuing_ca(
    cert_der: &[u8],
    chain_ders: &[Vec<u8>],
    signer: &dyn Signer,
    profile: &CaProfile,
) -> Result<(), PkiError> {
    check_imported_issuing_ca_at(
        cert_der,
        chain_ders,
        signer,
        profile,
        OffsetDateTime::now_utc(),
    )
}

/// Checks an issuing CA certificate signed elsewhere: it certifies `signer`'s key, is a CA
/// with pathLenConstraint 0 and keyCertSign, asserts serverAuth, carries Name Constraints
/// whose permitted subtrees lie inside `profile.permitted` and that constrain both DNS names
/// and IP addresses (BR §7.1.2.5.2), is valid at `now`, and each chain certificate (issuer
/// first, towards the root) signed the one before it.
pub fn check_imported_issuing_ca_at(
    cert_der: &[u8],
    chain_ders: &[Vec<u8>],
    signer: &dyn Signer,
    profile: &CaProfile,
    now: OffsetDateTime,
) -> Result<(), PkiError> {
    let cert = parse(cert_der, "the issuing CA certificate".into())?;
    if cert.public_key().raw != signer.public_key_der() {
        return Err(ImportError::KeyMismatch.into());
    }
    let bc = cert
        .basic_constraints()
        .map_err(|e| parse_err("basicConstraints", e))?
        .map(|b| b.value.clone());
    match bc {
        Some(b) if b.ca => {
            if b.path_len_constraint != Some(0) {
                return Err(ImportError::PathLen(b.path_len_constraint).into());
            }
        }
        _ => return Err(ImportError::NotCa.into()),
    }
    let ku = cert
        .key_usage()
        .map_err(|e| parse_err("keyUsage", e))?
        .map(|k| k.value.key_cert_sign());
    if ku != Some(true) {
        return Err(ImportError::MissingKeyCertSign.into());
    }
    let server_auth = cert
        .extended_key_usage()
        .map_err(|e| parse_err("extKeyUsage", e))?
        .is_some_and(|e| e.value.server_auth);
    if !server_auth {
        return Err(ImportError::MissingServerAuth.into());
    }
    check_name_constraints(&cert, profile)?;
    check_subject(&cert, profile)?;

    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    if now < not_before {
        return Err(ImportError::NotYetValid(not_before).into());
    }
    if now > not_after {
        return Err(ImportError::Expired(not_after).into());
    }

    let mut child = cert;
    for (index, der) in chain_ders.iter().enumerate() {
        let parent = parse(der, format!("chain certificate {index}"))?;
        if child.issuer().as_raw() != parent.subject().as_raw() {
            return Err(ImportError::IssuerNameMismatch { index }.into());
        }
        child
            .verify_signature(Some(parent.public_key()))
            .map_err(|e| ImportError::BadChainSignature {
                index,
                detail: e.to_string(),
            })?;
        child = parent;
    }
    Ok(())
}

fn check_name_constraints(cert: &X509Certificate<'_>, profile: &CaProfile) -> Result<(), PkiError> {
    let nc = cert
        .name_constraints()
        .map_err(|e| parse_err("nameConstraints", e))?
        .ok_or(ImportError::MissingNameConstraints)?
        .value;
    let mut permits_dns = false;
    let mut permits_ip = false;
    let mut permits_dir = false;
    let want_dir = profile.permitted_directory_name()?;
    for subtree in nc.permitted_subtrees.iter().flatten() {
        match &subtree.base {
            GeneralName::DNSName(name) => {
                permits_dns = true;
                let parsed = DnsName::parse(name)
                    .map_err(|e| ImportError::BadSubtree(format!("dNSName {name:?}: {e}")))?;
                if !profile.permitted.dns.iter().any(|t| parsed.is_within(t)) {
                    return Err(ImportError::DnsSubtreeOutsideProfile(name.to_string()).into());
                }
            }
            GeneralName::IPAddress(bytes) => {
                permits_ip = true;
                let net = subtree_net(bytes)
                    .ok_or_else(|| ImportError::BadSubtree(format!("iPAddress {bytes:02x?}")))?;
                if !profile.permitted.ip.iter().any(|p| p.contains(&net)) {
                    return Err(ImportError::IpSubtreeOutsideProfile(net.to_string()).into());
                }
            }
            GeneralName::DirectoryName(name) => {
                permits_dir = true;
                if let Some(want) = &want_dir {
                    if !same_country_and_organization(name, want) {
                        return Err(
                            ImportError::DirectoryNameOutsideProfile(name.to_string()).into()
                        );
                    }
                }
            }
            // Other name forms (rfc822Name, URI) do not widen what TLS names the CA can
            // certify.
            _ => {}
        }
    }
    let excluded: Vec<&GeneralName<'_>> = nc
        .excluded_subtrees
        .iter()
        .flatten()
        .map(|s| &s.base)
        .collect();
    let excludes_all_dns = excluded
        .iter()
        .any(|g| matches!(g, GeneralName::DNSName(n) if n.is_empty()));
    let excludes = |net: &str| {
        excluded.iter().any(|g| match g {
            GeneralName::IPAddress(b) => {
                subtree_net(b).map(|n| n.to_string()).as_deref() == Some(net)
            }
            _ => false,
        })
    };
    if !permits_dns && !excludes_all_dns {
        return Err(ImportError::DnsUnconstrained.into());
    }
    let excludes_all_ip = excludes("0.0.0.0/0") && excludes("::/0");
    if !permits_ip && !excludes_all_ip {
        return Err(ImportError::IpUnconstrained.into());
    }
    if want_dir.is_some() && !permits_dir {
        return Err(ImportError::DirectoryNameUnconstrained.into());
    }
    Ok(())
}

/// Whether `name` is exactly countryName `want.country` and organizationName
/// `want.organization`, nothing else.
fn same_country_and_organization(name: &X509Name<'_>, want: &CaSubject) -> bool {
    let attrs: Vec<_> = name.iter_attributes().collect();
    let value = |oid: &x509_parser::oid_registry::Oid<'_>| {
        attrs
            .iter()
            .filter(|a| a.attr_type() == oid)
            .map(|a| a.as_str().ok().map(str::to_string))
            .collect::<Vec<_>>()
    };
    attrs.len() == 2
        && value(&x509_parser::oid_registry::OID_X509_COUNTRY_NAME) == vec![want.country.clone()]
        && value(&x509_parser::oid_registry::OID_X509_ORGANIZATION_NAME)
            == vec![want.organization.clone()]
}

/// Public trust: the subject must carry the countryName, organizationName and commonName the
/// CSR asked for (BR §7.1.2.10.2), or the directoryName constraint would not cover it.
fn check_subject(cert: &X509Certificate<'_>, profile: &CaProfile) -> Result<(), PkiError> {
    let Some(want) = profile.permitted_directory_name()? else {
        return Ok(());
    };
    let subject = cert.subject();
    let one = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        let v: Vec<_> = it.map(|a| a.as_str().ok().map(str::to_string)).collect();
        (v.len() == 1).then(|| v[0].clone()).flatten()
    };
    let ok = one(&mut subject.iter_country()) == want.country
        && one(&mut subject.iter_organization()) == want.organization
        && one(&mut subject.iter_common_name()).as_deref() == Some(profile.common_name.as_str());
    if ok {
        Ok(())
    } else {
        Err(ImportError::SubjectMismatch(subject.to_string()).into())
    }
}

/// An iPAddress subtree is address || mask (RFC 5280 §4.2.1.10); the mask must be a prefix.
fn subtree_net(bytes: &[u8]) -> Option<IpNet> {
    let (addr, mask): (IpAddr, u32) = match bytes.len() {
        8 => {
            let a: [u8; 4] = bytes[..4].try_into().ok()?;
            let m = u32::from_be_bytes(bytes[4..].try_into().ok()?);
            if m.leading_ones() + m.trailing_zeros() != 32 {
                return None;
            }
            (IpAddr::from(a), m.leading_ones())
        }
        32 => {
            let a: [u8; 16] = bytes[..16].try_into().ok()?;
            let m = u128::from_be_bytes(bytes[16..].try_into().ok()?);
            if m.leading_ones() + m.trailing_zeros() != 128 {
                return None;
            }
            (IpAddr::from(a), m.leading_ones())
        }
        _ => return None,
    };
    let net = IpNet::new(addr, u8::try_from(mask).ok()?).ok()?;
    (net.trunc() == net).then_some(net)
}

fn parse(der: &[u8], what: String) -> Result<X509Certificate<'_>, PkiError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| ImportError::Parse {
        what: what.clone(),
        detail: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(ImportError::Parse {
            what,
            detail: "trailing data after the certificate".into(),
        }
        .into());
    }
    Ok(cert)
}

fn parse_err(what: &str, e: impl std::fmt::Display) -> ImportError {
    ImportError::Parse {
        what: what.to_string(),
        detail: e.to_string(),
    }
}
