//! CA creation: the tenant root (BR §7.1.2.1) and its technically constrained TLS issuing CA
//! (BR §7.1.2.5), a CSR for an issuing CA signed by an outside root, and the checks an
//! imported issuing CA certificate must pass.

mod import;

use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

pub use import::{check_imported_issuing_ca, check_imported_issuing_ca_at, ImportError};

use crate::extensions::{self, POLICY_DOMAIN_VALIDATED};
use crate::policy::Permitted;
use crate::serial::random_serial;
use crate::signer::{RcgenSigner, Signer};
use crate::{CertDer, PkiError};

/// Default root lifetime: 20 years.
pub const ROOT_DEFAULT_DAYS: i64 = 20 * 365 + 5;
/// BR §7.1.2.1.1: a root certificate is valid for at most 9132 days (about 25 years).
pub const ROOT_MAX_DAYS: i64 = 9132;
/// Default issuing CA lifetime: 5 years.
pub const ISSUING_DEFAULT_DAYS: i64 = 5 * 365 + 1;

/// A certificate's validity period (RFC 5280 §4.1.2.5), whole seconds, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// First instant the certificate is valid.
    pub not_before: OffsetDateTime,
    /// Last instant the certificate is valid (inclusive, RFC 5280 §4.1.2.5).
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// `days` days starting now (truncated to the second).
    pub fn days_from_now(days: i64) -> Self {
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| OffsetDateTime::now_utc());
        Validity {
            not_before: now,
            not_after: now + Duration::days(days),
        }
    }

    fn check(&self) -> Result<(), PkiError> {
        if self.not_after <= self.not_before {
            return Err(PkiError::InvalidValidity(
                "notAfter must be after notBefore".into(),
            ));
        }
        Ok(())
    }
}

/// The subject of a CA certificate. BR §7.1.2.10.2 requires countryName, organizationName
/// and commonName in CA certificates; the first two are optional here for private PKIs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaSubject {
    /// commonName.
    pub common_name: String,
    /// organizationName.
    pub organization: Option<String>,
    /// countryName, two letters (ISO 3166-1).
    pub country: Option<String>,
}

impl CaSubject {
    fn distinguished_name(&self) -> Result<DistinguishedName, PkiError> {
        if self.common_name.trim().is_empty() {
            return Err(PkiError::InvalidProfile("commonName is empty".into()));
        }
        let mut dn = self.country_and_organization()?;
        dn.push(DnType::CommonName, self.common_name.as_str());
        Ok(dn)
    }

    /// The countryName and organizationName RDNs alone (a directoryName subtree).
    pub(crate) fn country_and_organization(&self) -> Result<DistinguishedName, PkiError> {
        let mut dn = DistinguishedName::new();
        if let Some(c) = &self.country {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(PkiError::InvalidProfile(format!(
                    "countryName {c:?} must be two upper-case letters (BR §7.1.4.2)"
                )));
            }
            let printable = rcgen::string::PrintableString::try_from(c.as_str())
                .map_err(|e| PkiError::InvalidProfile(format!("countryName: {e}")))?;
            dn.push(
                DnType::CountryName,
                rcgen::DnValue::PrintableString(printable),
            );
        }
        if let Some(o) = &self.organization {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        Ok(dn)
    }
}

/// Who anchors the issuing CA, which decides the shape of its Name Constraints and of the
/// subjects it issues.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CaTrust {
    /// Under a private root that fleetca made. Name Constraints carry dNSName/iPAddress only:
    /// rustls-webpki (many devices) rejects a certificate whose issuer constrains a name form
    /// it does not implement, and it does not implement directoryName.
    #[default]
    Private,
    /// Under a publicly trusted root: a BR technically constrained sub-CA. countryName and
    /// organizationName are required (BR §7.1.2.10.2), Name Constraints add a directoryName
    /// permitted subtree for that organisation (BR §7.1.2.5.2), leaves get an empty subject
    /// (inside that subtree, RFC 5280 §4.2.1.10) and the dated BR §6.3.2 lifetime schedule.
    Public,
}

/// Everything that shapes a tenant's issuing CA and the certificates it issues.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaProfile {
    /// The Name Constraints (BR §7.1.2.5.2) and issuance policy.
    pub permitted: Permitted,
    /// Also assert id-kp-clientAuth (BR §7.1.2.7.10 allows it next to serverAuth).
    pub client_auth: bool,
    /// `http://` base for CRL distribution points (`{base}/crl/<name>.crl`) and AIA caIssuers
    /// (`{base}/ca/<name>.cer`); BR §7.1.2.11.2 and §7.1.2.7.7 require HTTP URLs.
    pub crl_base_url: String,
    /// organizationName of the issuing CA.
    pub organization: Option<String>,
    /// commonName of the issuing CA.
    pub common_name: String,
    /// countryName of the issuing CA (BR §7.1.2.10.2).
    pub country: Option<String>,
    /// Private or public trust.
    pub trust: CaTrust,
}

impl CaProfile {
    /// For public trust, the directoryName every name under this CA must lie in (BR
    /// §7.1.2.5.2): the CA subject's countryName and organizationName, in that order and
    /// encoding. `None` for private trust. Fails when public trust lacks either attribute
    /// (BR §7.1.2.10.2 requires both in a CA subject).
    pub fn permitted_directory_name(&self) -> Result<Option<CaSubject>, PkiError> {
        if self.trust == CaTrust::Private {
            return Ok(None);
        }
        match (&self.country, &self.organization) {
            (Some(c), Some(o)) if !o.trim().is_empty() => Ok(Some(CaSubject {
                common_name: String::new(),
                organization: Some(o.clone()),
                country: Some(c.clone()),
            })),
            _ => Err(PkiError::InvalidProfile(
                "a public-trust issuing CA needs countryName and organizationName (BR §7.1.2.10.2)"
                    .into(),
            )),
        }
    }

    /// The issuing CA's subject.
    pub fn subject(&self) -> CaSubject {
        CaSubject {
            common_name: self.common_name.clone(),
            organization: self.organization.clone(),
            country: self.country.clone(),
        }
    }

    /// `{crl_base_url}/crl/{name}.crl` (RFC 5280 §4.2.1.13).
    pub fn crl_url(&self, name: &str) -> Result<String, PkiError> {
        Ok(format!("{}/crl/{name}.crl", self.base_url()?))
    }

    /// `{crl_base_url}/ca/{name}.cer` (RFC 5280 §4.2.2.1 caIssuers).
    pub fn ca_issuers_url(&self, name: &str) -> Result<String, PkiError> {
        Ok(format!("{}/ca/{name}.cer", self.base_url()?))
    }

    fn base_url(&self) -> Result<&str, PkiError> {
        let base = self.crl_base_url.trim_end_matches('/');
        let rest = base.strip_prefix("http://").ok_or_else(|| {
            PkiError::InvalidProfile(format!(
                "crl_base_url {:?} must be an http:// URL (BR §7.1.2.11.2)",
                self.crl_base_url
            ))
        })?;
        if rest.is_empty() || !base.is_ascii() || base.contains(char::is_whitespace) {
            return Err(PkiError::InvalidProfile(format!(
                "crl_base_url {:?} is not a usable URL",
                self.crl_base_url
            )));
        }
        Ok(base)
    }

    pub(crate) fn extended_key_usages(&self) -> Vec<ExtendedKeyUsagePurpose> {
        let mut ekus = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if self.client_auth {
            ekus.push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        ekus
    }
}

/// keyUsage for CA certificates: keyCertSign and cRLSign, plus digitalSignature so the CA key
/// may sign OCSP responses directly (BR §7.1.2.10.7).
fn ca_key_usages() -> Vec<KeyUsagePurpose> {
    vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ]
}

/// Creates a self-signed root with only a commonName in its subject; see
/// [`create_root_with_subject`].
pub fn create_root(
    common_name: &str,
    signer: &dyn Signer,
    validity: Option<Validity>,
) -> Result<CertDer, PkiError> {
    let subject = CaSubject {
        common_name: common_name.to_string(),
        ..CaSubject::default()
    };
    create_root_with_subject(&subject, signer, validity)
}

/// Creates a self-signed root CA certificate (BR §7.1.2.1): basicConstraints critical
/// `cA: TRUE` without pathLenConstraint, keyUsage critical keyCertSign + cRLSign +
/// digitalSignature, subject
/// and authority key identifiers, a random serial and an explicit validity (default
/// 20 years, at most 9132 days, BR §7.1.2.1.1).
pub fn create_root_with_subject(
    subject: &CaSubject,
    signer: &dyn Signer,
    validity: Option<Validity>,
) -> Result<CertDer, PkiError> {
    let validity = validity.unwrap_or_else(|| Validity::days_from_now(ROOT_DEFAULT_DAYS));
    validity.check()?;
    if validity.not_after - validity.not_before > Duration::days(ROOT_MAX_DAYS) {
        return Err(PkiError::InvalidValidity(format!(
            "a root may be valid for at most {ROOT_MAX_DAYS} days (BR §7.1.2.1.1)"
        )));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = subject.distinguished_name()?;
    params.serial_number = Some(random_serial()?);
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = ca_key_usages();
    // BR §7.1.2.1.3: the root's AKI keyIdentifier equals its SKI.
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = extensions::key_identifier(signer.public_key_der())?;
    let key = RcgenSigner::new(signer)?;
    let cert = params
        .self_signed(&key)
        .map_err(key.error("cannot build root certificate"))?;
    Ok(cert.der().to_vec())
}

/// Creates the tenant's technically constrained TLS issuing CA (BR §7.1.2.5), signed by the
/// root: basicConstraints critical `cA: TRUE, pathLenConstraint: 0`; keyUsage critical
/// keyCertSign + cRLSign + digitalSignature; extKeyUsage serverAuth (+ clientAuth); critical Name Constraints
/// from the profile (BR §7.1.2.5.2); certificatePolicies 2.23.140.1.2.1 (BR §7.1.2.10.5);
/// CRL distribution point `{base}/crl/root.crl` and AIA caIssuers `{base}/ca/root.cer`;
/// AKI, SKI; random serial; validity default 5 years, not beyond the root's.
pub fn create_issuing_ca(
    root_cert_der: &[u8],
    root: &dyn Signer,
    subca_spki_der: &[u8],
    profile: &CaProfile,
    validity: Option<Validity>,
) -> Result<CertDer, PkiError> {
    let (_, root_cert) =
        X509Certificate::from_der(root_cert_der).map_err(PkiError::parse("root certificate"))?;
    if root_cert.public_key().raw != root.public_key_der() {
        return Err(PkiError::SignerMismatch);
    }
    let validity = validity.unwrap_or_else(|| Validity::days_from_now(ISSUING_DEFAULT_DAYS));
    validity.check()?;
    if validity.not_after > root_cert.validity().not_after.to_datetime() {
        return Err(PkiError::InvalidValidity(
            "the issuing CA would outlive its root".into(),
        ));
    }
    let subject_key = rcgen::SubjectPublicKeyInfo::from_der(subca_spki_der)
        .map_err(PkiError::rcgen("unsupported issuing CA public key"))?;

    let mut params = CertificateParams::default();
    params.distinguished_name = profile.subject().distinguished_name()?;
    params.serial_number = Some(random_serial()?);
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = ca_key_usages();
    params.extended_key_usages = profile.extended_key_usages();
    params.name_constraints = Some(extensions::name_constraints(
        &profile.permitted,
        profile.permitted_directory_name()?.as_ref(),
    )?);
    params.crl_distribution_points = vec![CrlDistributionPoint {
        uris: vec![profile.crl_url("root")?],
    }];
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = extensions::key_identifier(subca_spki_der)?;
    params.custom_extensions = vec![
        extensions::certificate_policies(&[POLICY_DOMAIN_VALIDATED])?,
        extensions::authority_info_access(&profile.ca_issuers_url("root")?)?,
    ];

    let key = RcgenSigner::new(root)?;
    let issuer = rcgen::Issuer::from_ca_cert_der(&root_cert_der.to_vec().into(), &key)
        .map_err(PkiError::rcgen("cannot use root certificate as issuer"))?;
    let cert = params
        .signed_by(&subject_key, &issuer)
        .map_err(key.error("cannot build issuing CA certificate"))?;
    Ok(cert.der().to_vec())
}

/// A PKCS#10 CSR (RFC 2986) for the issuing CA, for an outside root to sign. Its extension
/// request carries the same constraints [`create_issuing_ca`] would set (basicConstraints
/// pathLen 0, keyUsage, extKeyUsage, Name Constraints), so the root can copy them.
pub fn subca_csr(signer: &dyn Signer, profile: &CaProfile) -> Result<String, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = profile.subject().distinguished_name()?;
    params.key_usages = ca_key_usages();
    params.extended_key_usages = profile.extended_key_usages();
    params.custom_extensions = vec![
        extensions::ca_path_len_zero_extension()?,
        extensions::name_constraints_extension(
            &profile.permitted,
            profile.permitted_directory_name()?.as_ref(),
        )?,
    ];
    let key = RcgenSigner::new(signer)?;
    let csr = params
        .serialize_request(&key)
        .map_err(key.error("cannot build issuing CA CSR"))?;
    csr.pem()
        .map_err(PkiError::rcgen("cannot encode CSR as PEM"))
}

#[cfg(test)]
mod tests;
