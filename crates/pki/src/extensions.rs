//! Extensions rcgen does not build, encoded with `x509-cert` / `der` types and handed to
//! rcgen as custom extensions (never hand-assembled DER).

use der::asn1::{Ia5String, ObjectIdentifier};
use der::Encode;
use rcgen::{CidrSubnet, CustomExtension, GeneralSubtree, NameConstraints};
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax, CertificatePolicies};

use crate::ca::CaSubject;
use crate::policy::Permitted;
use crate::PkiError;

/// id-ce-certificatePolicies (RFC 5280 §4.2.1.4).
pub(crate) const OID_CERTIFICATE_POLICIES: &[u64] = &[2, 5, 29, 32];
/// id-pe-authorityInfoAccess (RFC 5280 §4.2.2.1).
pub(crate) const OID_AUTHORITY_INFO_ACCESS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
/// id-ce-nameConstraints (RFC 5280 §4.2.1.10).
pub(crate) const OID_NAME_CONSTRAINTS: &[u64] = &[2, 5, 29, 30];
/// id-ce-basicConstraints (RFC 5280 §4.2.1.9).
pub(crate) const OID_BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];

/// BR §7.1.6.1 reserved policy identifier: domain-validated (2.23.140.1.2.1).
pub(crate) const POLICY_DOMAIN_VALIDATED: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.23.140.1.2.1");
/// id-ad-ocsp (RFC 5280 §4.2.2.1).
const ID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
/// id-ad-caIssuers (RFC 5280 §4.2.2.1).
const ID_AD_CA_ISSUERS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");

/// certificatePolicies with the given policy identifiers and no qualifiers (BR §7.1.2.7.9
/// and §7.1.2.10.5 discourage qualifiers other than a CPS URI). Not critical.
pub(crate) fn certificate_policies(
    policies: &[ObjectIdentifier],
) -> Result<CustomExtension, PkiError> {
    let value = CertificatePolicies(
        policies
            .iter()
            .map(|oid| PolicyInformation {
                policy_identifier: *oid,
                policy_qualifiers: None,
            })
            .collect(),
    );
    let der = value
        .to_der()
        .map_err(PkiError::der("certificatePolicies"))?;
    Ok(CustomExtension::from_oid_content(
        OID_CERTIFICATE_POLICIES,
        der,
    ))
}

/// authorityInformationAccess with one id-ad-caIssuers HTTP URL (RFC 5280 §4.2.2.1,
/// BR §7.1.2.7.7 / §7.1.2.10.3). Not critical.
pub(crate) fn authority_info_access(ca_issuers_url: &str) -> Result<CustomExtension, PkiError> {
    authority_info_access_with_ocsp(ca_issuers_url, None)
}

/// authorityInformationAccess with an optional id-ad-ocsp HTTP URL first, then the
/// id-ad-caIssuers URL (RFC 5280 §4.2.2.1, BR §7.1.2.7.7). Not critical.
pub(crate) fn authority_info_access_with_ocsp(
    ca_issuers_url: &str,
    ocsp_url: Option<&str>,
) -> Result<CustomExtension, PkiError> {
    let mut descs = Vec::new();
    if let Some(ocsp) = ocsp_url {
        let uri = Ia5String::new(ocsp).map_err(PkiError::der("OCSP URL"))?;
        descs.push(AccessDescription {
            access_method: ID_AD_OCSP,
            access_location: GeneralName::UniformResourceIdentifier(uri),
        });
    }
    let uri = Ia5String::new(ca_issuers_url).map_err(PkiError::der("caIssuers URL"))?;
    descs.push(AccessDescription {
        access_method: ID_AD_CA_ISSUERS,
        access_location: GeneralName::UniformResourceIdentifier(uri),
    });
    let value = AuthorityInfoAccessSyntax(descs);
    let der = value
        .to_der()
        .map_err(PkiError::der("authorityInformationAccess"))?;
    Ok(CustomExtension::from_oid_content(
        OID_AUTHORITY_INFO_ACCESS,
        der,
    ))
}

/// Name Constraints for a technically constrained TLS subordinate CA (BR §7.1.2.5.2):
/// the permitted DNS subtrees and IP ranges; when no IP range is permitted, all of IPv4
/// (0.0.0.0/0) and IPv6 (::/0) are excluded; when no DNS subtree is permitted, the
/// zero-length dNSName (every name) is excluded. With `directory` (public trust), also a
/// permitted directoryName subtree: BR §7.1.2.5.2 requires the directoryName form to be
/// constrained too, and the sub-CA's own organisation is the natural subtree.
pub(crate) fn name_constraints(
    permitted: &Permitted,
    directory: Option<&CaSubject>,
) -> Result<NameConstraints, PkiError> {
    let mut permitted_subtrees: Vec<GeneralSubtree> = permitted
        .dns
        .iter()
        .map(|d| GeneralSubtree::DnsName(d.to_string()))
        .collect();
    permitted_subtrees.extend(permitted.ip.iter().map(|n| {
        GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(n.network(), n.prefix_len()))
    }));
    let mut excluded_subtrees = Vec::new();
    if !permitted.permits_any_dns() {
        excluded_subtrees.push(GeneralSubtree::DnsName(String::new()));
    }
    if !permitted.permits_any_ip() {
        excluded_subtrees.push(GeneralSubtree::IpAddress(CidrSubnet::V4([0; 4], [0; 4])));
        excluded_subtrees.push(GeneralSubtree::IpAddress(CidrSubnet::V6([0; 16], [0; 16])));
    }
    if let Some(dir) = directory {
        permitted_subtrees.push(GeneralSubtree::DirectoryName(
            dir.country_and_organization()?,
        ));
    }
    Ok(NameConstraints {
        permitted_subtrees,
        excluded_subtrees,
    })
}

/// The same Name Constraints as [`name_constraints`], as a critical custom extension for a
/// CSR (rcgen refuses name constraints in CSRs).
pub(crate) fn name_constraints_extension(
    permitted: &Permitted,
    directory: Option<&CaSubject>,
) -> Result<CustomExtension, PkiError> {
    use x509_cert::ext::pkix::constraints::name::{
        GeneralSubtree as Subtree, NameConstraints as Nc,
    };
    let subtree = |base: GeneralName| Subtree {
        base,
        minimum: 0,
        maximum: None,
    };
    let dns = |s: &str| -> Result<GeneralName, PkiError> {
        Ok(GeneralName::DnsName(
            Ia5String::new(s).map_err(PkiError::der("dNSName subtree"))?,
        ))
    };
    let ip = |addr: Vec<u8>| -> Result<GeneralName, PkiError> {
        Ok(GeneralName::IpAddress(
            der::asn1::OctetString::new(addr).map_err(PkiError::der("iPAddress subtree"))?,
        ))
    };
    let mut permitted_subtrees = Vec::new();
    for d in &permitted.dns {
        permitted_subtrees.push(subtree(dns(d.as_str())?));
    }
    for n in &permitted.ip {
        let mut bytes = ip_bytes(n.network());
        bytes.extend(ip_bytes(n.netmask()));
        permitted_subtrees.push(subtree(ip(bytes)?));
    }
    if let Some(dir) = directory {
        permitted_subtrees.push(subtree(GeneralName::DirectoryName(directory_name(dir)?)));
    }
    let mut excluded_subtrees = Vec::new();
    if !permitted.permits_any_dns() {
        excluded_subtrees.push(subtree(dns("")?));
    }
    if !permitted.permits_any_ip() {
        excluded_subtrees.push(subtree(ip(vec![0; 8])?));
        excluded_subtrees.push(subtree(ip(vec![0; 32])?));
    }
    let value = Nc {
        permitted_subtrees: (!permitted_subtrees.is_empty()).then_some(permitted_subtrees),
        excluded_subtrees: (!excluded_subtrees.is_empty()).then_some(excluded_subtrees),
    };
    let der = value.to_der().map_err(PkiError::der("nameConstraints"))?;
    let mut ext = CustomExtension::from_oid_content(OID_NAME_CONSTRAINTS, der);
    ext.set_criticality(true);
    Ok(ext)
}

/// countryName (PrintableString) then organizationName (UTF8String) as an X.501 Name,
/// encoded as rcgen encodes the CA subject, so the subtree and the subject compare equal.
fn directory_name(dir: &CaSubject) -> Result<x509_cert::name::Name, PkiError> {
    use der::asn1::{Any, PrintableStringRef, Utf8StringRef};
    use der::Decode;
    use x509_cert::attr::AttributeTypeAndValue;
    use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
    const COUNTRY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.6");
    const ORGANIZATION: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
    let rdn = |oid, value: Any| {
        RelativeDistinguishedName::try_from(vec![AttributeTypeAndValue { oid, value }])
            .map_err(PkiError::der("directoryName"))
    };
    let mut rdns = Vec::new();
    if let Some(c) = &dir.country {
        let v = PrintableStringRef::new(c).map_err(PkiError::der("countryName"))?;
        rdns.push(rdn(
            COUNTRY,
            Any::encode_from(&v).map_err(PkiError::der("countryName"))?,
        )?);
    }
    if let Some(o) = &dir.organization {
        let v = Utf8StringRef::new(o).map_err(PkiError::der("organizationName"))?;
        rdns.push(rdn(
            ORGANIZATION,
            Any::encode_from(&v).map_err(PkiError::der("organizationName"))?,
        )?);
    }
    // The same DER as a Name (it has no public constructor from an RDNSequence).
    let der = RdnSequence::from(rdns)
        .to_der()
        .map_err(PkiError::der("directoryName"))?;
    Name::from_der(&der).map_err(PkiError::der("directoryName"))
}

/// basicConstraints `cA: TRUE, pathLenConstraint: 0`, critical, for a CSR.
pub(crate) fn ca_path_len_zero_extension() -> Result<CustomExtension, PkiError> {
    let value = x509_cert::ext::pkix::BasicConstraints {
        ca: true,
        path_len_constraint: Some(0),
    };
    let der = value.to_der().map_err(PkiError::der("basicConstraints"))?;
    let mut ext = CustomExtension::from_oid_content(OID_BASIC_CONSTRAINTS, der);
    ext.set_criticality(true);
    Ok(ext)
}

fn ip_bytes(ip: std::net::IpAddr) -> Vec<u8> {
    match ip {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// RFC 7093 §2 method 1: the leftmost 160 bits of the SHA-256 hash of the subjectPublicKey
/// BIT STRING value. Used for subjectKeyIdentifier (RFC 5280 §4.2.1.2).
pub(crate) fn key_identifier(spki_der: &[u8]) -> Result<rcgen::KeyIdMethod, PkiError> {
    use x509_parser::prelude::FromDer;
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(PkiError::parse("SubjectPublicKeyInfo"))?;
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki.subject_public_key.data);
    Ok(rcgen::KeyIdMethod::PreSpecified(
        digest.as_ref()[..20].to_vec(),
    ))
}
