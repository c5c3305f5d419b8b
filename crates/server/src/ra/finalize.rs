//! Finalization (RFC 8555 §7.4). CAA is first checked again where the authorization's check
//! is old (`caa_recheck`). Then three steps, each its own short storage transaction or
//! none: (1) claim the order (`processing`, under a token and a lease); (2) the tenant's issuing
//! CA checks the CSR and signs, outside storage, on the blocking pool, at most
//! `max_concurrent_signatures` at once; (3) store the certificate and mark the order valid, only
//! if the claim still holds. A slow signer (an HSM over the network) therefore delays only the
//! orders it signs, never the storage writer other requests wait for. A failed signature gives
//! the claim back; a claim whose node died is released by [`Ra::release_stale_finalize_claims`]
//! once its lease runs out, so no order stays `processing` and the client can finalize again.
//! Only the claim's holder can store, so one order never gets two stored certificates.

use super::order::OrderView;
use super::statuses::identifier_type;
use super::Ra;
use crate::error::{Error, Result};
use crate::ids::new_object_id;
use crate::sa::{AccountRecord, CertRecord, ClaimAtRead, Nonce, OrderClaim, OrderState};
use crate::tenant::Tenant;
use acme_types::problem::ProblemType;
use acme_types::wire::{IdentifierType, OrderStatus};
use pki::identifier::Identifier;
use std::sync::Arc;

/// What step 2 of finalize signs: a certificate, or with `precert` a precertificate
/// (RFC 6962 §3.1), for the CSR and the order's identifiers under `profile`.
struct SignRequest {
    csr_der: Vec<u8>,
    idents: Vec<Identifier>,
    profile: crate::ca::profile::CertProfile,
    crl_shard: Option<u32>,
    precert: bool,
}

impl SignRequest {
    fn issue_on(
        &self,
        ca: &crate::ca::IssuingCa,
        now: time::OffsetDateTime,
    ) -> Result<crate::ca::Issued> {
        let (csr, ids, profile, shard) =
            (&self.csr_der, &self.idents, &self.profile, self.crl_shard);
        if self.precert {
            ca.issue_precert_in_shard(csr, ids, now, profile, shard)
        } else {
            ca.issue_in_shard(csr, ids, now, profile, shard)
        }
    }
}

impl Ra {
    /// finalize (§7.4): only a `ready` order can be finalized (`orderNotReady` otherwise).
    pub async fn finalize(
        &self,
        tenant: &Arc<Tenant>,
        acct: &AccountRecord,
        order_id: &str,
        csr_der: Vec<u8>,
    ) -> Result<OrderView> {
        self.finalize_spending(tenant, acct, order_id, csr_der, &Nonce::Spent)
            .await
    }

    /// [`Self::finalize`] with the request's `nonce`, spent by the first read.
    pub(crate) async fn finalize_spending(
        &self,
        tenant: &Arc<Tenant>,
        acct: &AccountRecord,
        order_id: &str,
        csr_der: Vec<u8>,
        nonce: &Nonce,
    ) -> Result<OrderView> {
        let now = self.clock.now();
        let claim = OrderClaim {
            token: crate::ids::new_token(),
            until: now.unix_timestamp() + Self::secs(self.cfg.finalize_lease),
        };
        // Step 1 (claim) with the read when the storage can (PostgreSQL): only a ready
        // order none of whose checks below can refuse it is claimed there, so a refusal
        // after it is one the signing step could give too (and gives the order back).
        let at_read = ClaimAtRead {
            order_id,
            tenant: &tenant.name,
            account_id: &acct.id,
            now: now.unix_timestamp(),
            validated_since: (!self.cfg.skip_validation)
                .then(|| now.unix_timestamp() - super::caa_recheck::CAA_RECHECK_AGE_SECS),
            claim: &claim,
        };
        let (spend, order, claimed) = self.sa.claim_order_spending(&at_read, nonce).await?;
        super::settle_nonce(spend)?;
        let checked = async {
            let view = match order {
                Some(o) if super::owned_by(tenant, acct, &o.tenant, &o.account_id) => {
                    self.order_view(o).await?
                }
                _ => return Err(Error::not_found("order")),
            };
            self.finalize_checks(tenant, acct, view).await
        }
        .await;
        let (view, idents, profile) = match checked {
            Ok(c) => c,
            Err(e) => {
                if claimed {
                    self.give_back_claim(order_id, &claim).await;
                }
                return Err(e);
            }
        };
        let names = view.order.identifiers.clone();
        let profile_for_record = profile.name.clone();
        // The CRL shard is fixed now and stored in the certificate's own transaction, so a
        // revoked certificate always has its shard (sa::lifecycle).
        let cert_id = new_object_id();
        let crl_shard = if profile.crl_dp {
            tenant.ca.pick_crl_shard()
        } else {
            None
        };
        let cert_lifecycle = Some((profile_for_record.clone(), crl_shard));
        let ct_logs = tenant.ct.clone();

        // Step 1: claim (unless the read did). The lease covers the wait for a signing slot
        // and the signature, so it starts now, after the checks.
        let claim = if claimed {
            claim
        } else {
            let claim = OrderClaim {
                until: self.clock.unix() + Self::secs(self.cfg.finalize_lease),
                ..claim
            };
            if !self.sa.try_claim_order(order_id, &claim).await? {
                return Err(Error::acme(
                    ProblemType::OrderNotReady,
                    "the order was finalized by another request",
                ));
            }
            claim
        };
        // Until this request ends (stored, given back, or abandoned), a drain may release it.
        let _held = self.held.finalize(order_id, &claim.token);
        let started = std::time::Instant::now();
        // Paired with "certificate issued" below: a crash test counts finalizations in flight.
        tracing::debug!(order = %order_id, "finalizing");
        // Step 2: sign, outside any storage transaction.
        let signed = self
            .sign_claimed(
                &claim,
                tenant,
                SignRequest {
                    csr_der,
                    idents,
                    profile,
                    crl_shard,
                    precert: ct_logs.is_some(),
                },
            )
            .await;
        let issued = match signed {
            Ok(issued) => issued,
            Err(e) => {
                crate::metrics::issuance(&tenant.name, false, started.elapsed());
                // The client may correct its CSR and finalize again (§7.4): give the order back.
                // If storage is unreachable now, the sweeper releases it when the lease ends.
                if let Err(re) = self.sa.release_order_claim(order_id, &claim.token).await {
                    tracing::warn!(order = %order_id, error = %re, "could not release a finalize claim; the sweeper will");
                }
                return Err(e);
            }
        };
        let cert = CertRecord {
            id: cert_id,
            tenant: tenant.name.clone(),
            serial: issued.serial_hex,
            account_id: acct.id.clone(),
            order_id: order_id.to_string(),
            der: issued.der,
            names,
            not_before: issued.not_before,
            not_after: issued.not_after,
            issued_at: now.unix_timestamp(),
            revoked_at: None,
            revocation_reason: None,
            // `sign_claimed` signs with `tenant.ca`: the record names that CA, so its CRL,
            // OCSP responder and chain answer for the certificate after a rollover too.
            issuer: Some(tenant.ca.id().to_string()),
        };
        if ct_logs.is_some() {
            let lc = cert_lifecycle.as_ref().map(|(p, s)| (p.as_str(), *s));
            return self
                .finalize_with_ct(view, tenant, &claim, cert, lc, started)
                .await;
        }
        // Step 3: store, if the claim still holds.
        let stored = self
            .sa
            .store_certificate(
                order_id,
                &claim.token,
                &cert,
                cert_lifecycle.as_ref().map(|(p, s)| (p.as_str(), *s)),
            )
            .await;
        crate::metrics::issuance(&tenant.name, matches!(stored, Ok(true)), started.elapsed());
        match stored {
            Ok(true) => {}
            Ok(false) => {
                // The lease ran out and the sweeper gave the order back: this signature is
                // discarded, never stored or served. Logged with its serial for the audit trail.
                tracing::warn!(serial = %cert.serial, order = %order_id, "finalize claim expired before the certificate was stored; certificate discarded");
                return Err(Error::acme(
                    ProblemType::OrderNotReady,
                    "finalization took longer than its lease and was abandoned; finalize the order again",
                ));
            }
            Err(e) => {
                // Unknown whether the commit landed: the order is either valid with its
                // certificate or still claimed, and the sweeper releases it when the lease ends.
                tracing::warn!(serial = %cert.serial, order = %order_id, error = %e, "storing a signed certificate failed");
                return Err(e.into());
            }
        }
        tracing::info!(serial = %cert.serial, account = %acct.id, order = %order_id, profile = %profile_for_record, crl_shard = ?crl_shard, "certificate issued");
        // The transaction that stored the certificate set exactly these two fields, and a
        // valid order never changes again, so the answer needs no second read of the order.
        let mut view = view;
        view.order.status = OrderState::Valid;
        view.order.cert_id = Some(cert.id);
        view.status = OrderStatus::Valid;
        Ok(view)
    }

    /// Step 2 of finalize: waits for a signing slot, then checks the CSR and signs on the
    /// blocking pool (a PKCS#11 call blocks its thread). Refuses to start signing when the
    /// claim would expire before the signature is stored, so a slow queue cannot make two
    /// nodes sign for one order.
    /// What finalize checks between reading the order and claiming it: that it is ready,
    /// the names it may put in a certificate, its profile, and CAA where the validation is
    /// old (BR §3.2.2.8; a refusal leaves the order ready).
    async fn finalize_checks(
        &self,
        tenant: &Arc<Tenant>,
        acct: &AccountRecord,
        view: OrderView,
    ) -> Result<(OrderView, Vec<Identifier>, crate::ca::profile::CertProfile)> {
        if view.status != OrderStatus::Ready {
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
            .filter(|i| identifier_type(i) != IdentifierType::PermanentIdentifier)
            .map(|i| match identifier_type(i) {
                IdentifierType::Ip => Identifier::parse_ip(&i.value),
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
        // BR §3.2.2.8: a CAA check older than the recheck age is done again, before the
        // signing transaction (see `caa_recheck`); a refusal leaves the order ready.
        self.recheck_caa(tenant, acct, &view.order).await?;
        Ok((view, idents, profile))
    }

    /// Gives back a claim a refused finalize made; if storage is unreachable now, the sweeper
    /// releases it when the lease ends.
    async fn give_back_claim(&self, order_id: &str, claim: &OrderClaim) {
        if let Err(re) = self.sa.release_order_claim(order_id, &claim.token).await {
            tracing::warn!(order = %order_id, error = %re, "could not release a finalize claim; the sweeper will");
        }
    }

    async fn sign_claimed(
        &self,
        claim: &OrderClaim,
        tenant: &Arc<Tenant>,
        req: SignRequest,
    ) -> Result<crate::ca::Issued> {
        let _permit = self
            .signatures
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::internal("the signing pool is closed"))?;
        let now = self.clock.now();
        if now.unix_timestamp() + Self::secs(self.cfg.finalize_lease) / 2 > claim.until {
            return Err(Error::acme(
                ProblemType::ServerInternal,
                "the CA is busy signing; finalize again shortly",
            )
            .with_retry_after(3));
        }
        let ca = Arc::clone(&tenant.ca);
        let delay = self.cfg.signer_delay;
        if delay.is_zero() && !ca.signer_blocks() {
            // A key in memory: ~0.1 ms of CPU, cheaper here than a hop to the blocking pool.
            return req.issue_on(&ca, now);
        }
        tokio::task::spawn_blocking(move || {
            if !delay.is_zero() {
                // Lab/bench only (`serve --signer-delay-ms`): stands in for a remote HSM.
                std::thread::sleep(delay);
            }
            req.issue_on(&ca, now)
        })
        .await
        .map_err(|e| Error::internal(format!("the signing task failed: {e}")))?
    }

    /// Step 3 for a tenant that requires CT: store the precertificate `pre` (a binding
    /// commitment, BR §7.1.2.9), then ask the logs ([`Ra::complete_precert`]). The answer is
    /// the valid order, or the order still `processing` when the logs gave too few SCTs.
    async fn finalize_with_ct(
        &self,
        view: OrderView,
        tenant: &Arc<Tenant>,
        claim: &OrderClaim,
        pre: CertRecord,
        cert_lifecycle: Option<(&str, Option<u32>)>,
        started: std::time::Instant,
    ) -> Result<OrderView> {
        let order_id = view.order.id.clone();
        let logs = tenant
            .ct
            .clone()
            .ok_or_else(|| Error::internal("finalize with CT for a tenant without CT logs"))?;
        let stored = self
            .ct_store
            .store_precertificate(&order_id, &claim.token, &pre, cert_lifecycle)
            .await;
        match stored {
            Ok(true) => {}
            Ok(false) => {
                crate::metrics::issuance(&tenant.name, false, started.elapsed());
                tracing::warn!(serial = %pre.serial, order = %order_id, "finalize claim expired before the precertificate was stored; precertificate discarded");
                return Err(Error::acme(
                    ProblemType::OrderNotReady,
                    "finalization took longer than its lease and was abandoned; finalize the order again",
                ));
            }
            Err(e) => {
                crate::metrics::issuance(&tenant.name, false, started.elapsed());
                tracing::warn!(serial = %pre.serial, order = %order_id, error = %e, "storing a precertificate failed");
                return Err(e.into());
            }
        }
        tracing::info!(serial = %pre.serial, order = %order_id, "precertificate stored; asking CT logs");
        let issued = self
            .complete_precert(tenant, &logs, &order_id, claim, &pre)
            .await?;
        crate::metrics::issuance(&tenant.name, issued, started.elapsed());
        let mut view = view;
        if issued {
            view.order.status = OrderState::Valid;
            view.order.cert_id = Some(pre.id);
            view.status = OrderStatus::Valid;
        } else {
            view.order.status = OrderState::Processing;
            view.status = OrderStatus::Processing;
        }
        Ok(view)
    }

    /// Releases finalize claims whose lease ran out (their node died between claim and
    /// store): those orders are `ready` again and can be finalized anew. Several nodes may run
    /// it; each stale claim is released once.
    pub async fn release_stale_finalize_claims(&self) -> Result<usize> {
        let ids = self
            .sa
            .release_stale_order_claims(self.clock.unix())
            .await?;
        for id in &ids {
            tracing::info!(order = %id, "released a finalize claim whose lease expired");
        }
        Ok(ids.len())
    }

    /// At start-up of a single node (SQLite): every claim left behind is this process's
    /// predecessor's, which is dead, so all are released at once instead of after their lease.
    /// Several nodes (PostgreSQL) must not do this: another node may hold a live claim.
    pub async fn release_claims_of_a_dead_single_node(&self) -> Result<usize> {
        let ids = self.sa.release_stale_order_claims(i64::MAX).await?;
        if !ids.is_empty() {
            tracing::info!(
                count = ids.len(),
                "released finalize claims left by the previous process"
            );
        }
        Ok(ids.len())
    }

    /// Runs [`Ra::release_stale_finalize_claims`] every few seconds.
    pub fn spawn_finalize_sweeper(self: &Arc<Self>) {
        let ra = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                if let Err(e) = ra.release_stale_finalize_claims().await {
                    tracing::warn!(error = %e, "finalize claim sweep failed");
                }
            }
        });
    }

    /// The certificate with id `id`, if `acct` ordered it.
    pub async fn get_cert(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        id: &str,
    ) -> Result<CertRecord> {
        self.get_cert_spending(tenant, acct, id, &Nonce::Spent)
            .await
    }

    /// [`Self::get_cert`], spending a pending `nonce` with the read.
    pub(crate) async fn get_cert_spending(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        id: &str,
        nonce: &Nonce,
    ) -> Result<CertRecord> {
        let (spend, cert) = self.sa.get_cert_spending(id, nonce).await?;
        super::settle_nonce(spend)?;
        match cert {
            Some(c) if super::owned_by(tenant, acct, &c.tenant, &c.account_id) => Ok(c),
            _ => Err(Error::not_found("certificate")),
        }
    }
}
