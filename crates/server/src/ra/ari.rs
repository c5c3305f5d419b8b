//! ACME Renewal Information (RFC 9773): the suggested renewal window of a certificate and the
//! `replaces` link a newOrder may carry.

use super::Ra;
use crate::error::{Error, Result};
use crate::sa::{CertRecord, OrderState, StoredIdentifier};
use crate::tenant::Tenant;
use acme_types::ari::CertId;
use acme_types::problem::ProblemType;

/// How long a client should wait before asking again (RFC 9773 §4.3: `Retry-After`).
pub const ARI_RETRY_AFTER_SECS: u64 = 6 * 3600;

/// A renewal window (UNIX seconds) and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenewalWindow {
    /// Window start.
    pub start: i64,
    /// Window end (> start).
    pub end: i64,
    /// Seconds the client should wait before polling again.
    pub retry_after: u64,
    /// Set when coverage steers the answer (`overdue`, `expiring`): the page explaining why
    /// the window lies in the past (RFC 9773 §4.2 `explanationURL`).
    pub explanation_url: Option<String>,
}

/// The default window (RFC 9773 §4.2 leaves it to the server): a slice a quarter as wide as
/// the middle third of the validity period, placed inside that third by a hash of the serial,
/// so a fleet issued at one instant does not renew at one instant either.
pub fn default_window(not_before: i64, not_after: i64, serial_hex: &str) -> (i64, i64) {
    let third = ((not_after - not_before) / 3).max(4);
    let first = not_before + third;
    let width = (third / 4).max(1);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, serial_hex.as_bytes());
    let mut h = [0u8; 8];
    h.copy_from_slice(&digest.as_ref()[..8]);
    let slack = u64::try_from(third - width).unwrap_or(0) + 1;
    let offset = i64::try_from(u64::from_be_bytes(h) % slack).unwrap_or(0);
    (first + offset, first + offset + width)
}

/// The stored serial form (lower-case hex, no leading zero octets) of a certID's serial.
fn serial_hex(id: &CertId) -> String {
    let start = id
        .serial
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(id.serial.len().saturating_sub(1));
    crate::ca::hex(&id.serial[start..])
}

/// An issuing CA's subjectKeyIdentifier, which its certificates carry as AKI keyIdentifier.
fn ca_key_id(ca: &crate::ca::IssuingCa) -> Result<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(ca.cert_der())
        .map_err(|e| Error::internal(format!("issuing CA certificate does not parse: {e}")))?;
    let ski = cert
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        });
    ski.ok_or_else(|| Error::internal("issuing CA certificate has no subjectKeyIdentifier"))
}

impl Ra {
    /// Finds the certificate a certID names in this tenant; `None` if none of its CAs issued it.
    /// A certID that does not parse is `malformed` (RFC 9773 §4.1).
    async fn cert_for_cert_id(&self, tenant: &Tenant, cert_id: &str) -> Result<Option<CertRecord>> {
        let id = CertId::parse(cert_id).map_err(|e| Error::malformed(e.to_string()))?;
        // Any of the tenant's CAs, retired ones included: their certificates need renewal
        // information most of all after a rollover.
        let mut issuer = None;
        for ca in tenant.issuers() {
            if id.aki_keyid == ca_key_id(ca)? {
                issuer = Some(ca);
                break;
            }
        }
        let Some(issuer) = issuer else {
            return Ok(None);
        };
        Ok(self
            .sa
            .get_cert_by_serial(&tenant.name, &serial_hex(&id))
            .await?
            .filter(|c| c.issuer_id() == issuer.id()))
    }

    /// renewalInfo (RFC 9773 §4.2): the operator's window if one was set (`renew-early`), an
    /// immediate window for a revoked certificate, else [`default_window`]. Unknown
    /// certificates are 404 (§4.1).
    pub async fn renewal_info(&self, tenant: &Tenant, cert_id: &str) -> Result<RenewalWindow> {
        let cert = self
            .cert_for_cert_id(tenant, cert_id)
            .await?
            .ok_or_else(|| Error::not_found("certificate"))?;
        let (start, end) = if let Some(at) = cert.revoked_at {
            // A revoked certificate should be replaced now: a window that has already begun.
            (at, at + 60)
        } else if let Some(w) = self.lifecycle.renewal_override(&cert.id).await? {
            w
        } else {
            default_window(cert.not_before, cert.not_after, &cert.serial)
        };
        let mut window = RenewalWindow {
            start,
            end: end.max(start + 1),
            retry_after: ARI_RETRY_AFTER_SECS,
            explanation_url: None,
        };
        if let Some(cov) = self.coverage() {
            self.note_poll(cov, &cert.id);
            self.steer(cov, tenant, &cert.id, &mut window).await?;
        }
        Ok(window)
    }

    /// Records the poll as the certificate's sign of life, off the request path (a failed
    /// write costs the device nothing; the next poll after the interval tries again).
    fn note_poll(&self, cov: &super::coverage::CoverageConfig, cert_id: &str) {
        let store = cov.store.clone();
        let id = cert_id.to_string();
        let now = self.clock.unix();
        tokio::spawn(async move {
            if let Err(e) = store
                .record_poll(&id, now, super::coverage::POLL_WRITE_INTERVAL_SECS)
                .await
            {
                tracing::warn!(error = %e, cert = %id, "recording a renewalInfo poll failed");
            }
        });
    }

    /// Closes the loop of continuous coverage: an `overdue` or `expiring` certificate gets a
    /// window that has already ended, which RFC 9773 §4.2 tells clients to act on at once,
    /// with an `explanationURL` saying why.
    async fn steer(
        &self,
        cov: &super::coverage::CoverageConfig,
        tenant: &Tenant,
        cert_id: &str,
        w: &mut RenewalWindow,
    ) -> Result<()> {
        use crate::sa::CoverageState;
        let now = self.clock.unix();
        let Some(row) = cov.store.coverage_of(cert_id, now, &cov.policy).await? else {
            return Ok(());
        };
        if matches!(row.state, CoverageState::Overdue | CoverageState::Expiring) {
            w.end = w.end.min(now);
            w.start = w.start.min(w.end - 1);
            w.explanation_url = Some(
                cov.explanation_url
                    .clone()
                    .unwrap_or_else(|| tenant.url("renewal-explanation")),
            );
        }
        Ok(())
    }

    /// Checks a newOrder's `replaces` (RFC 9773 §5) and returns the replaced certificate's id:
    /// it must name a certificate of this CA issued to the same account, sharing at least one
    /// identifier with the order, and not already replaced by another live order
    /// (`alreadyReplaced`).
    pub(crate) async fn check_replaces(
        &self,
        tenant: &Tenant,
        account_id: &str,
        identifiers: &[StoredIdentifier],
        replaces: &str,
    ) -> Result<String> {
        let cert = self
            .cert_for_cert_id(tenant, replaces)
            .await?
            .ok_or_else(|| Error::malformed("replaces names no certificate issued by this CA"))?;
        if cert.account_id != account_id {
            return Err(Error::unauthorized(
                "replaces names a certificate issued to another account",
            ));
        }
        let shares = cert.names.iter().any(|n| {
            identifiers
                .iter()
                .any(|i| i.kind == n.kind && i.value.eq_ignore_ascii_case(&n.value))
        });
        if !shares {
            return Err(Error::malformed(
                "the order shares no identifier with the certificate it replaces",
            ));
        }
        let now = self.clock.unix();
        let live = self
            .lifecycle
            .replacing_orders(&cert.id)
            .await?
            .into_iter()
            .any(|o| match o.status {
                OrderState::Valid | OrderState::Processing => true,
                OrderState::Pending => o.expires > now,
                OrderState::Invalid => false,
            });
        if live {
            return Err(Error::acme(
                ProblemType::AlreadyReplaced,
                "this certificate has already been replaced by another order",
            ));
        }
        Ok(cert.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_window_is_inside_the_middle_third_and_spread() {
        let (nb, na) = (1_000_000, 1_000_000 + 30 * 86400);
        let third = (na - nb) / 3;
        let mut starts = std::collections::BTreeSet::new();
        for i in 0..50 {
            let (s, e) = default_window(nb, na, &format!("{i:032x}"));
            assert!(s >= nb + third && e <= nb + 2 * third + 1, "{s} {e}");
            assert!(e > s);
            starts.insert(s);
            assert_eq!((s, e), default_window(nb, na, &format!("{i:032x}")));
        }
        assert!(starts.len() > 40, "windows are spread: {}", starts.len());
    }

    #[test]
    fn serial_hex_drops_the_sign_octet() {
        let id = CertId::from_unsigned_serial(&[1, 2], &[0x87, 0x65]);
        assert_eq!(serial_hex(&id), "8765");
        let id = CertId::from_unsigned_serial(&[1, 2], &[0x07, 0x65]);
        assert_eq!(serial_hex(&id), "0765");
    }
}
