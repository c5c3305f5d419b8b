//! Finalization (RFC 8555 §7.4): the CSR is checked and signed by the tenant's issuing CA
//! while the order is claimed, and the certificate is stored in the same transaction that
//! marks the order valid, so a certificate the client can see is never lost and a failed
//! finalization changes nothing.

use super::order::OrderView;
use super::Ra;
use crate::error::{Error, Result};
use crate::ids::new_object_id;
use crate::sa::{AccountRecord, CertRecord, OrderState};
use crate::tenant::Tenant;
use acme_types::problem::ProblemType;
use pki::identifier::Identifier;
use std::sync::Arc;

impl Ra {
    /// finalize (§7.4): only a `ready` order can be finalized (`orderNotReady` otherwise).
    pub async fn finalize(
        &self,
        tenant: &Arc<Tenant>,
        acct: &AccountRecord,
        order_id: &str,
        csr_der: Vec<u8>,
    ) -> Result<OrderView> {
        let view = self.get_order(tenant, acct, order_id).await?;
        if view.status != "ready" {
            return Err(Error::acme(
                ProblemType::OrderNotReady,
                format!("the order is {}, not ready", view.status),
            ));
        }
        // A `permanent-identifier` is proven by attestation but not (yet) put into the
        // certificate: the draft's privacy-preserving mode (draft-ietf-acme-device-attest §3.2).
        let idents = view
            .order
            .identifiers
            .iter()
            .filter(|i| i.kind != super::order::PERMANENT_IDENTIFIER)
            .map(|i| match i.kind.as_str() {
                "ip" => Identifier::parse_ip(&i.value),
                _ => Identifier::parse_dns(&i.value),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::internal(format!("stored identifier does not parse: {e}")))?;
        if idents.is_empty() {
            return Err(Error::acme(
                ProblemType::BadCsr,
                "this CA cannot yet issue for an order with only a permanent-identifier; \
                 add a DNS identifier",
            ));
        }
        let names = view.order.identifiers.clone();
        // The profile was fixed when the order was made; lifetime and extensions come from it
        // alone (draft-aaron-acme-profiles §4), never from the CSR.
        let profile_name = view
            .lifecycle
            .as_ref()
            .map_or(crate::ca::profile::DEFAULT_PROFILE, |l| l.profile.as_str());
        let profile = tenant.ca.profile(profile_name).cloned().ok_or_else(|| {
            Error::internal(format!(
                "the order's profile {profile_name:?} is no longer offered"
            ))
        })?;
        let profile_for_record = profile.name.clone();
        // The CRL shard is fixed now and stored in the certificate's own transaction, so a
        // revoked certificate always has its shard (sa::lifecycle); without lifecycle storage
        // there is only the single CRL.
        let cert_id = new_object_id();
        let crl_shard = match self.lifecycle() {
            Some(_) if profile.crl_dp => tenant.ca.pick_crl_shard(),
            _ => None,
        };
        let cert_lifecycle = self
            .lifecycle()
            .map(|_| (profile_for_record.clone(), crl_shard));
        let ca = Arc::clone(&tenant.ca);
        let now = self.clock.now();
        let (tenant_name, account_id, oid) =
            (tenant.name.clone(), acct.id.clone(), order_id.to_string());
        let sign = Box::new(move || -> Result<CertRecord> {
            let issued = ca.issue_in_shard(&csr_der, &idents, now, &profile, crl_shard)?;
            Ok(CertRecord {
                id: cert_id,
                tenant: tenant_name,
                serial: issued.serial_hex,
                account_id,
                order_id: oid,
                der: issued.der,
                names,
                not_before: issued.not_before,
                not_after: issued.not_after,
                issued_at: now.unix_timestamp(),
                revoked_at: None,
                revocation_reason: None,
            })
        });
        let started = std::time::Instant::now();
        // Paired with "certificate issued" below: a crash test counts finalizations in flight.
        tracing::debug!(order = %order_id, "finalizing");
        let finalized = self
            .sa
            .finalize_order(
                order_id,
                cert_lifecycle.as_ref().map(|(p, s)| (p.as_str(), *s)),
                sign,
            )
            .await;
        if !matches!(finalized, Ok(None)) {
            crate::metrics::issuance(&tenant.name, finalized.is_ok(), started.elapsed());
        }
        let cert = match finalized? {
            Some(cert) => cert,
            None => {
                return Err(Error::acme(
                    ProblemType::OrderNotReady,
                    "the order was finalized by another request",
                ))
            }
        };
        tracing::info!(serial = %cert.serial, account = %acct.id, order = %order_id, profile = %profile_for_record, crl_shard = ?crl_shard, "certificate issued");
        // The transaction that stored the certificate set exactly these two fields, and a
        // valid order never changes again, so the answer needs no second read of the order.
        let mut view = view;
        view.order.status = OrderState::Valid;
        view.order.cert_id = Some(cert.id);
        view.status = "valid";
        Ok(view)
    }

    /// The certificate with id `id`, if `acct` ordered it.
    pub async fn get_cert(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        id: &str,
    ) -> Result<CertRecord> {
        match self.sa.get_cert(id).await? {
            Some(c) if super::owned_by(tenant, acct, &c.tenant, &c.account_id) => Ok(c),
            _ => Err(Error::not_found("certificate")),
        }
    }
}
