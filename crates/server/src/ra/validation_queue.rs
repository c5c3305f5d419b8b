//! Admission, leases and slots of asynchronous validations (RFC 8555 §7.5.1, §8.2).
//!
//! A challenge POST that starts a validation first gets a place in this node's queue and in
//! its account's in-flight count, then one failed-validation token (§6.6), then claims the
//! challenge under a lease whose owner is a token fresh for that claim. Each refusal comes
//! before the claim, so a refused POST leaves the challenge `pending`.
//!
//! The lease is what lets another node take over the validation of a node that died. It is
//! renewed while the validation waits for a slot (`--max-validations`) and while it runs, and
//! once more right before the target is contacted: that last renewal succeeds only while this
//! claim still holds the lease and the challenge and its authorization are undecided, so a
//! validation that was taken over or decided while it waited is never run a second time.

use super::Ra;
use crate::error::{Error, Result};
use crate::sa::Lease;
use acme_types::problem::ProblemType;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The failed-validation limit (§6.6) as the registration authority uses it: one token is
/// taken when a validation starts and given back when it succeeds (or does not start), so
/// concurrent validations cannot all run against a budget that is charged only afterwards.
#[async_trait::async_trait]
pub trait ValidationBudget: Send + Sync {
    /// Takes one token of `account`, or refuses with `rateLimited` and a Retry-After.
    async fn take(&self, tenant: &str, account: &str) -> Result<()>;
    /// Gives a token back.
    async fn give_back(&self, tenant: &str, account: &str);
    /// When the budget is kept in storage (shared buckets): the account's token as a charge
    /// that a storage step takes or gives back in the same statement as its own write
    /// ([`crate::sa::ChallengeStart::budget`], [`crate::sa::ChallengeOutcome::give_back`]).
    /// `None`: the budget is in this node's memory (or off), and [`Self::take`] and
    /// [`Self::give_back`] are the way.
    fn storage_charge(&self, tenant: &str, account: &str) -> Option<crate::sa::BucketCharge>;
    /// The `rateLimited` answer when a step refused `charge`.
    fn refused(&self, charge: &crate::sa::BucketCharge, refusal: crate::sa::Refusal) -> Error;
}

/// Validations this node has claimed: how many wait for a slot, and per account how many are
/// claimed and not yet finished (waiting or running).
#[derive(Default)]
pub(super) struct Admissions {
    queued: AtomicUsize,
    per_account: Mutex<HashMap<String, usize>>,
}

/// One claimed validation's place in [`Admissions`]; released when dropped.
pub(super) struct Ticket {
    admissions: Arc<Admissions>,
    queued: bool,
    account: Option<String>,
}

impl Ticket {
    /// The validation got its slot: its queue place is free for another.
    pub(super) fn leave_queue(&mut self) {
        if std::mem::take(&mut self.queued) {
            self.admissions.queued.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.leave_queue();
        if let Some(a) = self.account.take() {
            let mut m = self
                .admissions
                .per_account
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(n) = m.get_mut(&a) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&a);
                }
            }
        }
    }
}

/// A claim this node holds: the challenge and its lease.
pub(super) struct Claim {
    pub(super) id: String,
    pub(super) lease: Lease,
    pub(super) ticket: Ticket,
    /// When the lease was last taken or renewed.
    pub(super) held_since: Instant,
    /// Lists the lease among what this node holds while the claim lives.
    _held: super::drain::HeldGuard,
}

impl Claim {
    /// A claim whose lease was taken at `taken` (an instant before the lease was made).
    pub(super) fn new(
        id: String,
        lease: Lease,
        ticket: Ticket,
        taken: Instant,
        held: super::drain::HeldGuard,
    ) -> Self {
        Claim {
            id,
            lease,
            ticket,
            held_since: taken,
            _held: held,
        }
    }
}

/// The refusal of a validation this node has no room for. RFC 8555 §8.2 lets the server
/// decide when it validates; the choice here is to refuse the POST with `rateLimited` and a
/// Retry-After rather than answer `processing`: a `processing` challenge that no node has
/// queued would wait for the lease sweeper with no promise of when, while a refusal changes
/// nothing (the challenge stays `pending`) and the client's retry is simply the same ready
/// POST of §7.5.1.
fn no_room(what: &str, detail: String, retry_after: u64) -> Error {
    crate::metrics::rate_limited(what);
    Error::acme(ProblemType::RateLimited, detail).with_retry_after(retry_after.max(1))
}

impl Ra {
    /// A new lease, held by a token fresh for this claim.
    pub(super) fn new_lease(&self) -> Lease {
        Lease {
            owner: format!("{:032x}", rand::random::<u128>()),
            until: self.lease_until(),
        }
    }

    /// When a lease taken or renewed now runs out.
    pub(super) fn lease_until(&self) -> i64 {
        self.clock.unix() + Self::secs(self.cfg.validation_lease).max(1)
    }

    /// How often a held lease is renewed: three times per lease, so one slow write does not
    /// lose it.
    fn renew_every(&self) -> Duration {
        (self.cfg.validation_lease / 3).max(Duration::from_millis(100))
    }

    /// Retry-After for a full queue: by then the validations running now have ended.
    fn queue_retry_after(&self) -> u64 {
        self.cfg.validation_timeout.as_secs()
    }

    /// A queue place and an in-flight place for `account`, or `rateLimited`.
    pub(super) fn admit(&self, account: &str) -> Result<Ticket> {
        let a = &self.admissions;
        let max_queued = self.cfg.max_queued_validations;
        if a.queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                (q < max_queued).then_some(q + 1)
            })
            .is_err()
        {
            return Err(no_room(
                "validation_queue",
                format!(
                    "this server has {max_queued} validations waiting already; retry the \
                     challenge later"
                ),
                self.queue_retry_after(),
            ));
        }
        let mut ticket = Ticket {
            admissions: Arc::clone(a),
            queued: true,
            account: None,
        };
        let max = self.cfg.max_validations_per_account;
        let mut m = a.per_account.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(account.to_string()).or_insert(0);
        if *n >= max {
            if *n == 0 {
                m.remove(account);
            }
            drop(m);
            return Err(no_room(
                "validations_per_account",
                format!(
                    "this account has {max} validations in progress already; retry the \
                     challenge when one has finished"
                ),
                self.queue_retry_after(),
            ));
        }
        *n += 1;
        ticket.account = Some(account.to_string());
        Ok(ticket)
    }

    /// A queue place for a validation taken over from a node that died (already claimed:
    /// the sweep only claims what the queue has room for).
    pub(super) fn admit_taken_over(&self) -> Ticket {
        self.admissions.queued.fetch_add(1, Ordering::SeqCst);
        Ticket {
            admissions: Arc::clone(&self.admissions),
            queued: true,
            account: None,
        }
    }

    /// Free places in the queue.
    pub(super) fn queue_room(&self) -> usize {
        self.cfg
            .max_queued_validations
            .saturating_sub(self.admissions.queued.load(Ordering::SeqCst))
    }

    /// The failed-validation budget, unless no validation can fail (load tests that skip
    /// validation).
    fn budget(&self) -> Option<&Arc<dyn ValidationBudget>> {
        self.budget.as_ref().filter(|_| !self.cfg.skip_validation)
    }

    /// Takes one failed-validation token of `account` (when a budget is set).
    pub(super) async fn take_budget(&self, tenant: &str, account: &str) -> Result<()> {
        match self.budget() {
            Some(b) => b.take(tenant, account).await,
            None => Ok(()),
        }
    }

    /// The account's failed-validation token as a storage step's charge, when the budget is
    /// kept in storage (see [`ValidationBudget::storage_charge`]).
    pub(super) fn budget_charge(
        &self,
        tenant: &str,
        account: &str,
    ) -> Option<crate::sa::BucketCharge> {
        self.budget()
            .and_then(|b| b.storage_charge(tenant, account))
    }

    /// The answer to a storage step's refusal of [`Self::budget_charge`]'s charge.
    pub(super) fn budget_refused(
        &self,
        charge: &crate::sa::BucketCharge,
        refusal: crate::sa::Refusal,
    ) -> Error {
        match self.budget() {
            Some(b) => b.refused(charge, refusal),
            None => Error::internal("a budget refused with no budget set"),
        }
    }

    /// Gives a failed-validation token back.
    pub(super) async fn give_back_budget(&self, tenant: &str, account: &str) {
        if let Some(b) = self.budget() {
            b.give_back(tenant, account).await;
        }
    }

    /// Renews `claim`'s lease: `Some(true)` held, `Some(false)` lost (taken over or decided),
    /// `None` the database could not say.
    async fn renew(&self, claim: &mut Claim) -> Option<bool> {
        claim.lease.until = self.lease_until();
        let asked = Instant::now();
        match self.sa.renew_challenge_lease(&claim.id, &claim.lease).await {
            Ok(held) => {
                claim.held_since = asked;
                Some(held)
            }
            Err(e) => {
                tracing::warn!(challenge = %claim.id, error = %e, "renewing a validation lease failed");
                None
            }
        }
    }

    /// Waits for a validation slot, renewing the lease meanwhile, then renews it once more
    /// and checks that the claim still holds it: `None` means the validation must not run.
    pub(super) async fn wait_for_slot(
        &self,
        claim: &mut Claim,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        // One acquire future for the whole wait: the semaphore is fair, and a new future
        // would join the back of the line.
        let acquire = Arc::clone(&self.validations).acquire_owned();
        tokio::pin!(acquire);
        let mut tick = tokio::time::interval(self.renew_every());
        tick.tick().await;
        let permit = loop {
            tokio::select! {
                p = &mut acquire => break p.ok()?,
                _ = tick.tick() => {
                    if self.renew(claim).await == Some(false) {
                        tracing::info!(challenge = %claim.id, "validation decided or taken over while it waited; not run here");
                        return None;
                    }
                }
            }
        };
        claim.ticket.leave_queue();
        // Right before the target is contacted. A lease taken or renewed less than a third of
        // a lease ago cannot have run out, so no other node can have taken it over, and only
        // its holder decides the challenge: the common case (a free slot at once) needs no
        // second write.
        if claim.held_since.elapsed() < self.renew_every() {
            return Some(permit);
        }
        match self.renew(claim).await {
            Some(true) => Some(permit),
            Some(false) => {
                tracing::info!(challenge = %claim.id, "validation decided or taken over while it waited; not run here");
                None
            }
            // Unknown: leave it to whoever holds the lease when it runs out.
            None => None,
        }
    }

    /// Renews `claim`'s lease until it is lost; never returns while it is held.
    pub(super) async fn keep_lease(&self, claim: &mut Claim) {
        let mut tick = tokio::time::interval(self.renew_every());
        tick.tick().await;
        loop {
            tick.tick().await;
            if self.renew(claim).await == Some(false) {
                return;
            }
        }
    }
}
