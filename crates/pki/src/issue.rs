//! Issuing end-entity TLS certificates from a CSR (BR §7.1.2.7), lint first, then sign.
//!
//! Boulder's order: the certificate is built once with an empty signature (see `draft`),
//! parsed back and checked against the rules below, and only then is that TBSCertificate
//! signed by the CA key. A certificate that breaks a rule is never signed.

use std::collections::BTreeSet;
use std::sync::Arc;

use rcgen::{
    CertificateParams, CrlDistributionPoint, DistinguishedName, DnType, IsCa, KeyUsagePurpose,
    SanType,
};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca::{CaProfile, CaTrust};
use crate::csr::parse_csr;
use crate::extensions::{self, POLICY_DOMAIN_VALIDATED};
use crate::identifier::Identifier;
use crate::keys::KeyType;
use crate::policy::PolicyError;
use crate::serial::{random_serial, SERIAL_LEN};
use crate::signer::Signer;
use crate::{cert_info, PkiError};

mod draft;
mod key_check;
mod lint;
mod precert;

pub(crate) use key_check::check_public_key;

/// BR §6.3.2 as amended by ballot SC-081: subscriber certificates issued on or after
/// 2026-03-15 are valid for at most 200 days (100 days from 2027-03-15, 47 from 2029-03-15).
/// The absolute cap for every tenant; public trust follows [`max_leaf_lifetime`] by date.
pub const MAX_LEAF_LIFETIME: Duration = Duration::days(200);

/// The longest validity period (notBefore to notAfter inclusive) BR §6.3.2 allows for a
/// subscriber certificate whose notBefore is `at` (ballot SC-081's schedule; linters such as
/// pkilint date a certificate by its notBefore too): 398 days before 2026-03-15, 200 days
/// from then, 100 days from 2027-03-15, 47 days from 2029-03-15.
pub fn max_leaf_lifetime(at: OffsetDateTime) -> Duration {
    use time::macros::datetime;
    const SCHEDULE: [(OffsetDateTime, i64); 3] = [
        (datetime!(2029-03-15 00:00 UTC), 47),
        (datetime!(2027-03-15 00:00 UTC), 100),
        (datetime!(2026-03-15 00:00 UTC), 200),
    ];
    SCHEDULE
        .iter()
        .find(|(from, _)| at >= *from)
        .map_or(Duration::days(398), |(_, days)| Duration::days(*days))
}

/// Why a certificate was not issued. Each variant maps to one ACME problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The CSR is unparseable, its signature is bad, or its names differ from the order's
    /// identifiers (RFC 8555 §7.4: `badCSR`).
    #[error("bad CSR: {0}")]
    BadCsr(String),
    /// The CSR's key is unacceptable (BR §6.1.5, §6.1.6; RFC 8555 `badPublicKey`).
    #[error("bad public key: {0}")]
    BadPublicKey(String),
    /// An identifier is outside the tenant's permitted subtrees (`rejectedIdentifier`).
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The requested validity is unacceptable (BR §6.3.2).
    #[error("bad validity period: {0}")]
    Validity(String),
    /// The linted to-be-signed certificate broke a profile rule; nothing was signed by the
    /// CA key (`serverInternal`).
    #[error("certificate lint failed: {0}")]
    Lint(String),
    /// Building or signing failed (`serverInternal`).
    #[error("issuance failed")]
    Internal(#[from] PkiError),
}

/// An issuance request, after the server has checked the order's authorizations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueRequest {
    /// The finalize CSR, DER (RFC 8555 §7.4).
    pub csr_der: Vec<u8>,
    /// The order's identifiers; the CSR must name exactly these.
    pub identifiers: Vec<Identifier>,
    /// notBefore (truncated to the second).
    pub not_before: OffsetDateTime,
    /// notAfter (truncated to the second).
    pub not_after: OffsetDateTime,
}

/// Per-issuance choices that come from the server's certificate profile, never from the
/// client (draft-aaron-acme-profiles).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafOptions {
    /// Put the CA's CRL distribution point in the certificate. BR §7.1.2.11.2 lets a
    /// Short-lived Subscriber Certificate (at most 7 days when issued after 2026-03-15,
    /// BR §1.6.1) omit it, and only such certificates may.
    pub include_crl_dp: bool,
    /// A specific CRL URL instead of the CA's single CRL (a CRL shard, RFC 5280 §5.2.5).
    pub crl_url: Option<String>,
    /// OCSP responder URL for authorityInformationAccess (RFC 5280 §4.2.2.1, BR §7.1.2.7.7).
    pub ocsp_url: Option<String>,
}

impl Default for LeafOptions {
    /// The historical profile: CRL distribution point, no OCSP pointer.
    fn default() -> Self {
        Self {
            include_crl_dp: true,
            crl_url: None,
            ocsp_url: None,
        }
    }
}

/// BR §1.6.1 "Short-lived Subscriber Certificate" for certificates issued on or after
/// 2026-03-15: a validity period of at most 7 days (604,800 seconds). Only these may omit
/// revocation pointers.
pub const SHORT_LIVED_MAX: Duration = Duration::days(7);

/// A signed certificate and what the server stores about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCert {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Its serial number, big-endian.
    pub serial: Vec<u8>,
    /// notBefore as written.
    pub not_before: OffsetDateTime,
    /// notAfter as written.
    pub not_after: OffsetDateTime,
}

/// A tenant's issuing CA: its certificate, the signer holding its key, and its profile.
pub struct Issuer {
    name: String,
    cert_der: Vec<u8>,
    chain_ders: Vec<Vec<u8>>,
    signer: Arc<dyn Signer>,
    profile: CaProfile,
    allowed_key_types: Vec<KeyType>,
    forbidden_spkis: Vec<Vec<u8>>,
    /// The CA as rcgen's issuer of drafts: subject, key identifier, key usages, parsed once.
    drafts: rcgen::Issuer<'static, draft::Unsigned>,
    ca_subject_raw: Vec<u8>,
    ca_ski: Option<Vec<u8>>,
    ca_not_after: OffsetDateTime,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("name", &self.name)
            .field("profile", &self.profile)
            .field("allowed_key_types", &self.allowed_key_types)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// Sets up issuance for the CA certificate `cert_der` whose key `signer` holds.
    ///
    /// `name` is short (`"default"`) and names the CRL (`{base}/crl/{name}.crl`) and caIssuers
    /// (`{base}/ca/{name}.cer`) URLs. `chain_ders` are the certificates above the CA (up to
    /// the root); CSRs with any of their keys are refused. An empty `allowed_key_types`
    /// allows every [`KeyType`].
    pub fn new(
        name: &str,
        cert_der: Vec<u8>,
        chain_ders: Vec<Vec<u8>>,
        signer: Arc<dyn Signer>,
        profile: CaProfile,
        allowed_key_types: Vec<KeyType>,
    ) -> Result<Self, PkiError> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(PkiError::InvalidProfile(format!(
                "issuer name {name:?} must be letters, digits, '-' or '_'"
            )));
        }
        profile.crl_url(name)?;
        let (_, cert) = X509Certificate::from_der(&cert_der)
            .map_err(PkiError::parse("issuing CA certificate"))?;
        if cert.public_key().raw != signer.public_key_der() {
            return Err(PkiError::SignerMismatch);
        }
        let ca_subject_raw = cert.subject().as_raw().to_vec();
        let ca_ski = lint::subject_key_id(&cert);
        let ca_not_after = cert.validity().not_after.to_datetime();
        let mut forbidden_spkis = vec![signer.public_key_der().to_vec()];
        for der in &chain_ders {
            forbidden_spkis.push(cert_info::spki_der_of(der)?);
        }
        let drafts = rcgen::Issuer::from_ca_cert_der(
            &cert_der.as_slice().into(),
            draft::Unsigned::for_signer(signer.as_ref())?,
        )
        .map_err(PkiError::rcgen("cannot use the issuing CA certificate"))?;
        Ok(Issuer {
            name: name.to_string(),
            cert_der,
            chain_ders,
            signer,
            profile,
            allowed_key_types,
            forbidden_spkis,
            drafts,
            ca_subject_raw,
            ca_ski,
            ca_not_after,
        })
    }

    /// The short name used in CRL and caIssuers URLs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The issuing CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The certificates above the issuing CA, DER.
    pub fn chain_ders(&self) -> &[Vec<u8>] {
        &self.chain_ders
    }

    /// The CA's signer (also used for its CRLs).
    pub fn signer(&self) -> &Arc<dyn Signer> {
        &self.signer
    }

    /// The CA's profile.
    pub fn profile(&self) -> &CaProfile {
        &self.profile
    }

    /// Key types accepted in CSRs (empty: all).
    pub fn allowed_key_types(&self) -> &[KeyType] {
        &self.allowed_key_types
    }

    /// The URL of this CA's CRL, as put in the certificates it issues.
    pub fn crl_url(&self) -> Result<String, PkiError> {
        self.profile.crl_url(&self.name)
    }

    /// Checks the request and issues a certificate: lint an unsigned draft, then sign with
    /// the CA key (see the module docs). Every rule has its own [`IssueError`] variant.
    pub fn issue(&self, req: &IssueRequest) -> Result<IssuedCert, IssueError> {
        self.issue_with(req, &LeafOptions::default())
    }

    /// [`Issuer::issue`] with the revocation pointers chosen by `opts`. A certificate without
    /// a CRL distribution point must be short-lived (BR §7.1.2.11.2, [`SHORT_LIVED_MAX`]).
    pub fn issue_with(
        &self,
        req: &IssueRequest,
        opts: &LeafOptions,
    ) -> Result<IssuedCert, IssueError> {
        self.issue_inner(req, opts, false)
    }

    /// Builds, lints and signs the certificate (`precert`: with the CT poison, RFC 6962 §3.1).
    fn issue_inner(
        &self,
        req: &IssueRequest,
        opts: &LeafOptions,
        precert: bool,
    ) -> Result<IssuedCert, IssueError> {
        let not_before = truncate(req.not_before);
        let not_after = truncate(req.not_after);
        if not_after <= not_before {
            return Err(IssueError::Validity(
                "notAfter must be after notBefore".into(),
            ));
        }
        let max = match self.profile.trust {
            CaTrust::Private => MAX_LEAF_LIFETIME,
            CaTrust::Public => max_leaf_lifetime(not_before).min(MAX_LEAF_LIFETIME),
        };
        // RFC 5280 §4.1.2.5: the period includes both ends, hence the extra second.
        if not_after - not_before + Duration::SECOND > max {
            return Err(IssueError::Validity(format!(
                "lifetime exceeds {} days (BR §6.3.2)",
                max.whole_days()
            )));
        }
        if !opts.include_crl_dp && not_after - not_before + Duration::SECOND > SHORT_LIVED_MAX {
            return Err(IssueError::Validity(format!(
                "a certificate without a CRL distribution point must be valid for at most {} days (BR §7.1.2.11.2)",
                SHORT_LIVED_MAX.whole_days()
            )));
        }
        if not_after > self.ca_not_after {
            return Err(IssueError::Validity(
                "the certificate would outlive the issuing CA".into(),
            ));
        }

        let csr = parse_csr(&req.csr_der)?;
        let wanted: BTreeSet<&Identifier> = req.identifiers.iter().collect();
        let named: BTreeSet<&Identifier> = csr.identifiers.iter().collect();
        if wanted.is_empty() {
            return Err(IssueError::BadCsr("the order has no identifiers".into()));
        }
        if wanted != named {
            let missing: Vec<String> = wanted.difference(&named).map(|i| i.to_string()).collect();
            let extra: Vec<String> = named.difference(&wanted).map(|i| i.to_string()).collect();
            return Err(IssueError::BadCsr(format!(
                "the CSR's names differ from the order's identifiers (missing: [{}]; not in the order: [{}])",
                missing.join(", "),
                extra.join(", ")
            )));
        }
        let key_type = key_check::check_public_key(
            &csr.spki_der,
            &self.allowed_key_types,
            &self.forbidden_spkis,
        )?;
        for id in &wanted {
            self.profile.permitted.check(id)?;
        }

        let identifiers: Vec<Identifier> = wanted.into_iter().cloned().collect();
        let common_name = match &csr.common_name {
            Some(cn) => Some(
                Identifier::parse_any(cn)
                    .map_err(|e| IssueError::BadCsr(format!("commonName: {e}")))?,
            ),
            None => None,
        };
        // Under a public-trust CA the directoryName constraint (C and O of the CA) covers
        // the subject too; a DV subject may not carry O (BR §7.1.2.7.2), so the only subject
        // inside it is the empty one (RFC 5280 §4.2.1.10). The CSR's commonName is one of
        // the SANs anyway (checked above), so nothing the client asked for is lost.
        let common_name = common_name.filter(|_| self.profile.trust == CaTrust::Private);
        let serial = random_serial()?;
        let mut params = self.leaf_params(
            &identifiers,
            common_name.as_ref(),
            key_type,
            &serial,
            (not_before, not_after),
            opts,
        )?;
        if precert {
            params.custom_extensions.push(precert::poison_extension());
        }
        params.key_identifier_method = extensions::key_identifier(&csr.spki_der)?;
        let subject_key = rcgen::SubjectPublicKeyInfo::from_der(&csr.spki_der)
            .map_err(|e| IssueError::BadPublicKey(format!("unsupported key: {e}")))?;

        // Build once, unsigned; lint; then the CA key signs exactly the linted TBSCertificate.
        let expected = lint::Expected {
            identifiers: &identifiers,
            common_name: common_name.as_ref(),
            spki_der: &csr.spki_der,
            serial: serial.to_bytes(),
            not_before,
            not_after,
            is_rsa: key_type.is_rsa(),
            client_auth: self.profile.client_auth,
            issuer_subject_raw: &self.ca_subject_raw,
            issuer_ski: self.ca_ski.as_deref(),
            permitted: &self.profile.permitted,
            crl_dp: opts.include_crl_dp,
            ocsp_url: opts.ocsp_url.as_deref(),
            precert,
        };
        let draft = params
            .signed_by(&subject_key, &self.drafts)
            .map_err(PkiError::rcgen("cannot build certificate"))?
            .der()
            .to_vec();
        lint::lint_leaf(&draft, &expected).map_err(IssueError::Lint)?;
        let der = draft::sign(&draft, self.signer.as_ref())?;
        Ok(IssuedCert {
            der,
            serial: serial.to_bytes(),
            not_before,
            not_after,
        })
    }

    fn leaf_params(
        &self,
        identifiers: &[Identifier],
        common_name: Option<&Identifier>,
        key_type: KeyType,
        serial: &rcgen::SerialNumber,
        (not_before, not_after): (OffsetDateTime, OffsetDateTime),
        opts: &LeafOptions,
    ) -> Result<CertificateParams, IssueError> {
        let mut params = CertificateParams::default();
        // BR §7.1.2.7.2: a DV subject is empty or holds only a commonName that is one of
        // the SANs. An empty subject makes rcgen mark the SAN critical (RFC 5280 §4.2.1.6).
        let mut dn = DistinguishedName::new();
        if let Some(cn) = common_name {
            dn.push(DnType::CommonName, cn.value());
        }
        params.distinguished_name = dn;
        params.serial_number = Some(serial.clone());
        params.not_before = not_before;
        params.not_after = not_after;
        params.subject_alt_names = identifiers
            .iter()
            .map(|id| {
                Ok(match id {
                    Identifier::Dns(d) => SanType::DnsName(
                        d.to_string()
                            .try_into()
                            .map_err(|e| IssueError::BadCsr(format!("dNSName: {e}")))?,
                    ),
                    Identifier::Ip(ip) => SanType::IpAddress(*ip),
                })
            })
            .collect::<Result<_, IssueError>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if key_type.is_rsa() {
            // BR §7.1.2.7.11: keyEncipherment only for RSA keys.
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        params.extended_key_usages = self.profile.extended_key_usages();
        params.use_authority_key_identifier_extension = true;
        if opts.include_crl_dp {
            let url = match &opts.crl_url {
                Some(u) => u.clone(),
                None => self.profile.crl_url(&self.name)?,
            };
            params.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![url] }];
        }
        params.custom_extensions = vec![
            extensions::certificate_policies(&[POLICY_DOMAIN_VALIDATED])?,
            extensions::authority_info_access_with_ocsp(
                &self.profile.ca_issuers_url(&self.name)?,
                opts.ocsp_url.as_deref(),
            )?,
        ];
        Ok(params)
    }
}

fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

const _: () = assert!(SERIAL_LEN >= 8);

#[cfg(test)]
mod tests;
