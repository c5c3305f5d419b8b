//! Finalization with Certificate Transparency (RFC 6962; docs/ct.md). For a tenant with
//! `ct_required`, finalize's step 2 signs a precertificate and step 3 stores it; then, outside
//! any storage transaction, the logs are asked for SCTs ([`crate::ct`]). With SCTs enough the
//! final certificate (the same TBSCertificate, poison swapped for the SCT list) is signed and
//! takes the precertificate's row in one transaction with the order becoming valid. Without
//! them the order stays `processing` and the retry task here asks again later: a certificate
//! is never issued without SCTs, and the order keeps its one precertificate and serial
//! (BR §7.1.2.9: the precertificate is already a commitment to issue).

use super::Ra;
use crate::ct::CtLogs;
use crate::error::{Error, Result};
use crate::sa::{CertRecord, CtStore, OrderClaim};
use crate::tenant::Tenant;
use std::sync::Arc;
use std::time::Duration;

/// Most deferred orders one retry pass takes on.
const RETRY_BATCH: u32 = 16;

impl Ra {
    /// Asks `logs` for SCTs for the stored precertificate `pre` (its `der`) of `order_id`,
    /// held under `claim`; with SCTs enough signs and stores the final certificate
    /// (`Ok(true)`), otherwise defers the order to the retry task (`Ok(false)`).
    pub(super) async fn complete_precert(
        &self,
        tenant: &Arc<Tenant>,
        logs: &CtLogs,
        order_id: &str,
        claim: &OrderClaim,
        pre: &CertRecord,
    ) -> Result<bool> {
        let store = &self.ct_store;
        // The CA that signed the precertificate signs its final certificate, even if the
        // tenant rolled over to a new issuing CA meanwhile (the serial is that CA's).
        let issuer = tenant.issuer_of(pre).cloned().ok_or_else(|| {
            Error::internal("the precertificate's issuing CA is no longer loaded")
        })?;
        let tbs = pki::ct::precert_tbs_without_poison(&pre.der)
            .map_err(|e| Error::internal(format!("stored precertificate: {e}")))?;
        let mut chain = vec![pre.der.clone()];
        chain.extend(issuer.ct_chain());
        // RFC 5280 §4.1.2.5: both ends count, hence the extra second.
        let validity =
            Duration::from_secs(u64::try_from(pre.not_after - pre.not_before + 1).unwrap_or(0));
        let collected = logs
            .collect(&chain, issuer.spki_der(), &tbs, validity)
            .await;
        let now = self.clock.unix();
        let scts = match collected {
            // A quarter of the lease is left for signing and storing.
            Ok(scts) if now + Self::secs(self.cfg.finalize_lease) / 4 < claim.until => scts,
            Ok(_) => {
                // The claim is about to end: another node could take the order over, so no
                // final certificate is signed under it (one final certificate per serial).
                self.defer(
                    store,
                    tenant,
                    order_id,
                    claim,
                    "the finalize claim ran short",
                )
                .await?;
                return Ok(false);
            }
            Err(short) => {
                crate::metrics::ct_shortfall(&tenant.name);
                self.defer(store, tenant, order_id, claim, &short.to_string())
                    .await?;
                return Ok(false);
            }
        };
        let fin = {
            let _permit = self
                .signatures
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::internal("the signing pool is closed"))?;
            let ca = issuer;
            if ca.signer_blocks() {
                let pre_der = pre.der.clone();
                tokio::task::spawn_blocking(move || ca.finish_precert(&pre_der, &scts))
                    .await
                    .map_err(|e| Error::internal(format!("the signing task failed: {e}")))??
            } else {
                ca.finish_precert(&pre.der, &scts)?
            }
        };
        if fin.serial_hex != pre.serial {
            return Err(Error::internal("the final certificate's serial differs"));
        }
        if store
            .store_final_certificate(order_id, &claim.token, &pre.id, &fin.der)
            .await?
        {
            tracing::info!(serial = %pre.serial, account = %pre.account_id, order = %order_id, "certificate issued with SCTs");
            Ok(true)
        } else {
            tracing::warn!(serial = %pre.serial, order = %order_id, "finalize claim lost before the final certificate was stored; it was discarded");
            Ok(false)
        }
    }

    async fn defer(
        &self,
        store: &Arc<dyn CtStore>,
        tenant: &Tenant,
        order_id: &str,
        claim: &OrderClaim,
        why: &str,
    ) -> Result<()> {
        let until = self.clock.unix() + Self::secs(self.cfg.ct_retry_interval);
        tracing::warn!(tenant = %tenant.name, order = %order_id, reason = %why, "no certificate without SCTs enough; the order stays processing and is retried");
        store.defer_order(order_id, &claim.token, until).await?;
        Ok(())
    }

    /// One pass of the CT retry task: takes over orders whose precertificate still awaits its
    /// final certificate and whose claim ended (deferred, or their node died) and tries again.
    /// Returns how many were issued.
    pub async fn retry_ct_orders(&self) -> Result<usize> {
        let store = &self.ct_store;
        let now = self.clock.unix();
        let mut issued = 0;
        for order_id in store.due_precert_orders(now, RETRY_BATCH).await? {
            let claim = OrderClaim {
                token: crate::ids::new_token(),
                until: now + Self::secs(self.cfg.finalize_lease),
            };
            if !store.try_reclaim_order(&order_id, &claim, now).await? {
                continue; // another node took it
            }
            let Some(rec) = store.precert_of_order(&order_id).await? else {
                continue;
            };
            let tenant = self.tenants.get(&rec.cert.tenant);
            let Some((tenant, logs)) = tenant.and_then(|t| t.ct.clone().map(|l| (t, l))) else {
                // Never finalized without SCTs, even if the configuration changed.
                tracing::warn!(order = %order_id, tenant = %rec.cert.tenant, "a precertificate awaits SCTs but its tenant has no CT logs configured");
                let until = now + Self::secs(self.cfg.ct_retry_interval);
                store.defer_order(&order_id, &claim.token, until).await?;
                continue;
            };
            let mut pre = rec.cert;
            pre.der = rec.precert_der;
            if self
                .complete_precert(&tenant, &logs, &order_id, &claim, &pre)
                .await?
            {
                issued += 1;
            }
        }
        Ok(issued)
    }

    /// Runs [`Ra::retry_ct_orders`] every `ct_retry_interval` (at most every second).
    pub fn spawn_ct_retry(self: &Arc<Self>) {
        let ra = Arc::clone(self);
        let every = self.cfg.ct_retry_interval.max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = ra.retry_ct_orders().await {
                    tracing::warn!(error = %e, "CT retry pass failed");
                }
            }
        });
    }
}
