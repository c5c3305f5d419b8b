//! The OCSP responder's signing side (RFC 6960), in two steps so [`super::status`] can reuse
//! a signed answer: `IssuingCa::ocsp_statuses` reads every asked-about certificate's status
//! from storage as it is now, `IssuingCa::sign_ocsp` signs an answer for those statuses.
//! Responses are signed by the delegated responder of [`super::ocsp_signer`] when one is
//! installed.

use super::IssuingCa;
use crate::sa::Storage;
use pki::ocsp::{self, CertStatus, OcspError, OcspQuery};
use std::time::Duration;
use time::OffsetDateTime;

/// How long a response is valid (nextUpdate - thisUpdate). BR §4.9.10 wants at least 8 hours
/// and at most 10 days; a day keeps relying parties' copies fresh.
pub const OCSP_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// An OCSP answer ready for HTTP.
#[derive(Clone, Debug)]
pub struct OcspAnswer {
    /// The DER OCSPResponse (successful or an error status).
    pub der: Vec<u8>,
    /// thisUpdate (UNIX seconds), for `Last-Modified`; `None` for error responses.
    pub this_update: Option<i64>,
    /// nextUpdate (UNIX seconds), for `Expires`.
    pub next_update: Option<i64>,
    /// Whether shared caches may keep it (not for nonce'd or error responses).
    pub cacheable: bool,
}

impl IssuingCa {
    /// Parses a DER OCSPRequest for this CA and reads the status of each certificate asked
    /// about: `good`, `revoked` (time and reason) or `unknown`. Fails with `unauthorized` for
    /// certificates of other issuers (RFC 6960 §2.3), `malformedRequest` for garbage,
    /// `tryLater` while the database is unreachable, `internalError` otherwise.
    pub(crate) async fn ocsp_statuses(
        &self,
        sa: &dyn Storage,
        request_der: &[u8],
    ) -> Result<(OcspQuery, Vec<CertStatus>), OcspError> {
        let query = ocsp::parse_request(request_der, &self.cert_der)?;
        let mut statuses = Vec::with_capacity(query.certs.len());
        for c in &query.certs {
            let serial = super::hex(&c.serial);
            let rec = sa
                .get_cert_by_serial(&self.tenant, &serial)
                .await
                .map_err(|e| {
                    // An outage is "ask again shortly" (tryLater), not a responder fault.
                    if e.is_unavailable() {
                        OcspError::TryLater(e.to_string())
                    } else {
                        OcspError::Internal(e.to_string())
                    }
                })?;
            // A serial of the same tenant signed by another of its CAs (before or after a
            // rollover) is not this CA's to vouch for.
            let rec = rec.filter(|r| r.issuer_id() == self.name);
            statuses.push(match rec {
                None => CertStatus::Unknown,
                Some(r) => match r.revoked_at {
                    None => CertStatus::Good,
                    Some(at) => CertStatus::Revoked {
                        at: OffsetDateTime::from_unix_timestamp(at)
                            .map_err(|e| OcspError::Internal(e.to_string()))?,
                        reason: r.revocation_reason,
                    },
                },
            });
        }
        Ok((query, statuses))
    }

    /// Signs the answer to `query` reporting `statuses`, valid from `now`. Signs with the
    /// CA's key or its delegated responder's: blocks on an HSM, so callers whose signer
    /// [blocks](IssuingCa::signer_blocks) run it on the blocking pool. A CA key that cannot
    /// sign (an HSM token removed or reset) gives `tryLater`.
    pub(crate) fn sign_ocsp(
        &self,
        query: &OcspQuery,
        statuses: &[CertStatus],
        now: OffsetDateTime,
    ) -> Result<OcspAnswer, OcspError> {
        let mut next = now + OCSP_VALIDITY;
        // A delegated responder (RFC 6960 §4.2.2.2) signs while its certificate is valid; the
        // CA key takes over if it lapsed (serve re-issues it long before).
        let responder = self
            .ocsp_responder()
            .filter(|r| r.not_before <= now.unix_timestamp() && now.unix_timestamp() < r.not_after);
        let der = match responder {
            Some(r) => {
                // A response must not outlive the certificate that vouches for its signature.
                if let Ok(end) = OffsetDateTime::from_unix_timestamp(r.not_after) {
                    next = next.min(end);
                }
                ocsp::build_delegated_response(
                    &self.cert_der,
                    &r.cert_der,
                    r.signer.as_ref(),
                    query,
                    statuses,
                    now,
                    next,
                )?
            }
            None => ocsp::build_response(
                &self.cert_der,
                self.signer.as_ref(),
                query,
                statuses,
                now,
                next,
            )
            .map_err(|e| match e {
                // The CA key is away (an HSM token removed or reset): "ask again shortly"
                // (RFC 6960 §2.3 tryLater), and fleetca_signer_available drops to 0.
                OcspError::Signing(p @ pki::PkiError::Signing(_)) => {
                    crate::metrics::signer_available(&self.name, false);
                    OcspError::TryLater(p.to_string())
                }
                other => other,
            })?,
        };
        Ok(OcspAnswer {
            der,
            this_update: Some(now.unix_timestamp()),
            next_update: Some(next.unix_timestamp()),
            cacheable: !query.has_nonce(),
        })
    }

    /// Counts one OCSP answer in `fleetca_ocsp_responses_total` and turns a failure into the
    /// OCSP error response (RFC 6960 §2.3) a relying party gets, logging responder faults.
    pub(crate) fn ocsp_outcome(&self, answer: Result<OcspAnswer, OcspError>) -> OcspAnswer {
        crate::metrics::ocsp_response(&self.name, answer.is_ok());
        match answer {
            Ok(a) => a,
            Err(e) => {
                match &e {
                    OcspError::Internal(_) | OcspError::Signing(_) => {
                        tracing::error!(error = %e, tenant = %self.name, "OCSP response failed")
                    }
                    OcspError::TryLater(_) => {
                        tracing::warn!(error = %e, tenant = %self.name, "OCSP answered tryLater")
                    }
                    _ => {}
                }
                OcspAnswer {
                    der: ocsp::error_response(&e),
                    this_update: None,
                    next_update: None,
                    cacheable: false,
                }
            }
        }
    }
}
