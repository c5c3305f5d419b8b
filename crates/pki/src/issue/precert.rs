//! Precertificates and the final certificates made from them (RFC 6962 §3.1, §3.3).
//!
//! The precertificate is issued like any certificate (checked, drafted, linted, signed) with
//! the critical poison extension added. The final certificate is not drafted again: it is
//! the precertificate's signed TBSCertificate with the poison swapped in place for the SCT
//! list ([`crate::ct`]), so that every byte a log saw is the byte a relying party sees
//! (BR §7.1.2.9: the precertificate commits the CA to exactly this certificate).

use rcgen::CustomExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{draft, IssueError, IssueRequest, IssuedCert, Issuer, LeafOptions};
use crate::ct::{self, Sct};
use crate::PkiError;

/// The poison, critical, value NULL (RFC 6962 §3.1).
pub(super) fn poison_extension() -> CustomExtension {
    let mut ext =
        CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 11129, 2, 4, 3], vec![0x05, 0x00]);
    ext.set_criticality(true);
    ext
}

impl Issuer {
    /// [`Issuer::issue_with`], as a precertificate: the same checks and lint, plus the
    /// critical CT poison. Its serial is the final certificate's.
    pub fn issue_precert(
        &self,
        req: &IssueRequest,
        opts: &LeafOptions,
    ) -> Result<IssuedCert, IssueError> {
        self.issue_inner(req, opts, true)
    }

    /// The issuing CA's DER SubjectPublicKeyInfo (the `issuer_key_hash` input of RFC 6962
    /// §3.2 for precertificates this CA signs itself).
    pub fn spki_der(&self) -> &[u8] {
        self.signer.public_key_der()
    }

    /// The final certificate for `precert_der` (a precertificate this CA signed) with `scts`
    /// embedded: the precertificate's TBSCertificate with the poison replaced by the SCT list,
    /// signed. The SCTs must have been verified by the caller; this checks only that the
    /// result differs from the precertificate in that one extension.
    pub fn finish_precert(
        &self,
        precert_der: &[u8],
        scts: &[Sct],
    ) -> Result<IssuedCert, IssueError> {
        let (rest, pre) = X509Certificate::from_der(precert_der)
            .map_err(|e| IssueError::Lint(format!("precertificate does not parse: {e}")))?;
        if !rest.is_empty() || pre.issuer().as_raw() != self.ca_subject_raw.as_slice() {
            return Err(IssueError::Lint(
                "the precertificate is not one of this CA's".into(),
            ));
        }
        let (_, ca) = X509Certificate::from_der(&self.cert_der)
            .map_err(PkiError::parse("issuing CA certificate"))?;
        pre.verify_signature(Some(ca.public_key()))
            .map_err(|_| IssueError::Lint("the precertificate is not signed by this CA".into()))?;
        let (tbs, algorithm) =
            ct::final_tbs(precert_der, scts).map_err(|e| IssueError::Lint(e.to_string()))?;
        let der = draft::sign_tbs(&tbs, &algorithm, self.signer.as_ref())?;
        let same = ct::cert_tbs_without_sct_list(&der)
            .map_err(|e| IssueError::Lint(e.to_string()))?
            == ct::precert_tbs_without_poison(precert_der)
                .map_err(|e| IssueError::Lint(e.to_string()))?;
        if !same {
            return Err(IssueError::Lint(
                "the final certificate differs from its precertificate beyond the SCT list".into(),
            ));
        }
        Ok(IssuedCert {
            der,
            serial: pre.raw_serial().to_vec(),
            not_before: pre.validity().not_before.to_datetime(),
            not_after: pre.validity().not_after.to_datetime(),
        })
    }
}
