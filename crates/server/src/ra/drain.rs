//! What this node holds in shared storage while it works, so that a draining node (SIGTERM)
//! can let its validations and finalizations finish, and hand back what did not finish in
//! time instead of leaving it locked until its lease runs out.

use super::Ra;
use crate::sa::Lease;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Validation leases (challenge id → lease owner) and finalize claims (order id → claim
/// token) this node holds now.
#[derive(Default)]
pub(super) struct Held {
    validations: Mutex<HashMap<String, String>>,
    finalizes: Mutex<HashMap<String, String>>,
    /// Wakes [`Ra::drain`] when an entry goes.
    released: Notify,
}

#[derive(Clone, Copy)]
enum Kind {
    Validation,
    Finalize,
}

/// Keeps one entry of [`Held`] while it lives.
pub(super) struct HeldGuard {
    held: Arc<Held>,
    kind: Kind,
    key: String,
}

impl Held {
    fn map(&self, kind: Kind) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        match kind {
            Kind::Validation => &self.validations,
            Kind::Finalize => &self.finalizes,
        }
        .lock()
        .unwrap_or_else(|e| e.into_inner())
    }

    fn hold(self: &Arc<Self>, kind: Kind, key: &str, token: &str) -> HeldGuard {
        self.map(kind).insert(key.to_string(), token.to_string());
        HeldGuard {
            held: Arc::clone(self),
            kind,
            key: key.to_string(),
        }
    }

    /// Holds a validation lease of challenge `id` until the guard drops.
    pub(super) fn validation(self: &Arc<Self>, id: &str, lease: &Lease) -> HeldGuard {
        self.hold(Kind::Validation, id, &lease.owner)
    }

    /// Holds a finalize claim of order `id` until the guard drops.
    pub(super) fn finalize(self: &Arc<Self>, id: &str, token: &str) -> HeldGuard {
        self.hold(Kind::Finalize, id, token)
    }

    fn is_empty(&self) -> bool {
        self.map(Kind::Validation).is_empty() && self.map(Kind::Finalize).is_empty()
    }
}

impl Drop for HeldGuard {
    fn drop(&mut self) {
        self.held.map(self.kind).remove(&self.key);
        self.held.released.notify_waiters();
    }
}

/// What [`Ra::drain`] left to other nodes.
#[derive(Debug, Default)]
pub struct DrainReport {
    /// Validations still running at the deadline whose lease was ended, so another node (or
    /// the next process) takes them over at once.
    pub validations_released: usize,
    /// Finalize claims still held at the deadline, given back: those orders are `ready` again.
    pub finalizes_released: usize,
}

impl Ra {
    /// Lets the validations and finalizations this node holds finish until `deadline`, then
    /// releases what is left: validation leases end now (another node's sweeper, or this
    /// node's successor at start-up, takes them over) and finalize claims are given back (the
    /// order is `ready` again; the client finalizes anew, RFC 8555 §7.4).
    pub async fn drain(&self, deadline: Instant) -> DrainReport {
        loop {
            let released = self.held.released.notified();
            if self.held.is_empty() {
                return DrainReport::default();
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                break;
            }
        }
        let mut report = DrainReport::default();
        let validations: Vec<_> = self
            .held
            .map(Kind::Validation)
            .clone()
            .into_iter()
            .collect();
        for (id, owner) in validations {
            // A lease that ended a second ago is stale to every sweeper.
            let ended = Lease {
                owner,
                until: self.clock.unix() - 1,
            };
            match self.sa.renew_challenge_lease(&id, &ended).await {
                Ok(true) => report.validations_released += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(challenge = %id, error = %e, "could not end a validation lease; it runs out by itself")
                }
            }
        }
        let finalizes: Vec<_> = self.held.map(Kind::Finalize).clone().into_iter().collect();
        for (id, token) in finalizes {
            match self.sa.release_order_claim(&id, &token).await {
                Ok(true) => report.finalizes_released += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(order = %id, error = %e, "could not release a finalize claim; it runs out by itself")
                }
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acme_types::sign::{AccountKey, AccountKeyKind};

    /// A validation still running at the drain's deadline: its lease ends then, so another
    /// node (or the next process) takes it over at once instead of after the lease.
    #[tokio::test]
    async fn a_drain_ends_the_validation_leases_left_at_its_deadline() {
        let (ra, _clock, t) = crate::testing::ra_with_tenant(Vec::new()).await;
        let key = AccountKey::generate(AccountKeyKind::EcdsaP256).unwrap();
        let acct = ra
            .new_account(&t, key.jwk(), super::super::NewAccount::default())
            .await
            .unwrap()
            .0;
        let order = ra
            .new_order(
                &t,
                &acct,
                &[acme_types::wire::Identifier::dns("a.routers.example.com")],
            )
            .await
            .unwrap();
        let authz = ra
            .get_authz(&t, &acct, &order.order.authz_ids[0])
            .await
            .unwrap();
        let ch = authz.authz.challenges[0].id.clone();
        // This node starts the validation and holds its lease (as a running validation does).
        let lease = ra.new_lease();
        assert!(ra.sa.try_start_challenge(&ch, &lease).await.unwrap());
        let _running = ra.held.validation(&ch, &lease);
        let other = ra.new_lease();
        let now = ra.clock.unix();
        assert!(
            ra.sa
                .claim_stale_challenges(now, &other, 10)
                .await
                .unwrap()
                .is_empty(),
            "a live lease is not taken over"
        );

        let report = ra.drain(Instant::now()).await;
        assert_eq!(report.validations_released, 1);
        assert_eq!(
            ra.sa.claim_stale_challenges(now, &other, 10).await.unwrap(),
            vec![ch],
            "the ended lease is taken over at once"
        );
    }

    /// With nothing held, a drain returns at once.
    #[tokio::test]
    async fn a_drain_with_nothing_held_returns_at_once() {
        let (ra, _clock, _t) = crate::testing::ra_with_tenant(Vec::new()).await;
        let far = Instant::now() + std::time::Duration::from_secs(3600);
        let report = tokio::time::timeout(std::time::Duration::from_secs(5), ra.drain(far))
            .await
            .expect("returns without waiting for the deadline");
        assert_eq!(report.validations_released + report.finalizes_released, 0);
    }
}
