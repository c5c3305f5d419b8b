//! Finalize claims on the single-node SQLite backend, held in this process's memory.
//!
//! A claim (RFC 8555 §7.4: the order is `processing` while its certificate is signed) lets one
//! finalize request sign and store, and nobody else. On PostgreSQL it is a row, because other
//! nodes must see it. A SQLite database has one `serve` process, which releases every claim
//! row at start (their holder was its dead predecessor), so a claim row never outlives the
//! process that wrote it: writing one cost a transaction of its own per certificate (a hop to
//! the writer thread, a commit with its WAL sync, and a page-cache reset for every reader)
//! and bought nothing. Here the claim is an entry in a map; the order row stays `pending`
//! until the store moves it to `valid` together with the certificate, in one transaction.
//! Reads of the order through this storage show it `processing` while the claim is held.
//!
//! The guarantees are those of the row: one holder per order, only the holder stores, a
//! claim whose lease ran out is released by the sweeper unless its store has begun, and after
//! a kill the order is `pending` (so `ready`) again with nothing stored. A claim that must be
//! in the database (`OrderClaim::persist`: a CT precertificate is stored under it by
//! `sa::ct`) is written as a row, as on PostgreSQL.

use crate::sa::{OrderClaim, SaError};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// The claims held by this process, by order id.
#[derive(Default)]
pub(crate) struct Claims {
    held: Mutex<HashMap<String, Held>>,
}

struct Held {
    token: String,
    until: i64,
    /// The store's transaction is under way: the claim is no longer the sweeper's to release.
    storing: bool,
}

impl Claims {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        // A panic while holding the lock leaves the map consistent (every change is a single
        // insert or remove), so a poisoned lock is used as it is.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims `order_id` if no claim holds it and `pending` confirms the stored order is
    /// `pending`. `pending` runs under the lock, so two requests cannot both pass it; and a
    /// store removes its claim only after its commit, so a claimer that finds no claim reads
    /// an order that is already `valid`.
    pub(crate) fn try_take(
        &self,
        order_id: &str,
        claim: &OrderClaim,
        pending: impl FnOnce() -> Result<bool, SaError>,
    ) -> Result<bool, SaError> {
        let mut held = self.lock();
        if held.contains_key(order_id) || !pending()? {
            return Ok(false);
        }
        held.insert(
            order_id.to_string(),
            Held {
                token: claim.token.clone(),
                until: claim.until,
                storing: false,
            },
        );
        Ok(true)
    }

    /// Whether a claim holds `order_id` (its order reads as `processing`).
    pub(crate) fn is_held(&self, order_id: &str) -> bool {
        self.lock().contains_key(order_id)
    }

    /// Starts the store of `token`'s certificate: `Some` if `token` holds the order. The
    /// returned guard keeps the claim until it is dropped, after the store's transaction
    /// ended (committed or not), even if the storing request is abandoned meanwhile.
    pub(crate) fn begin_store<'a>(&'a self, order_id: &str, token: &str) -> Option<Storing<'a>> {
        let mut held = self.lock();
        let h = held.get_mut(order_id).filter(|h| h.token == token)?;
        h.storing = true;
        Some(Storing {
            claims: self,
            order_id: order_id.to_string(),
        })
    }

    /// Gives the order back if `token` holds it and its store has not begun.
    pub(crate) fn release(&self, order_id: &str, token: &str) -> bool {
        let mut held = self.lock();
        let mine = held
            .get(order_id)
            .is_some_and(|h| h.token == token && !h.storing);
        if mine {
            held.remove(order_id);
        }
        mine
    }

    /// Releases the claims whose lease ended before `now` and whose store has not begun.
    pub(crate) fn release_stale(&self, now: i64) -> Vec<String> {
        let mut held = self.lock();
        let stale: Vec<String> = held
            .iter()
            .filter(|(_, h)| h.until < now && !h.storing)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &stale {
            held.remove(id);
        }
        stale
    }
}

/// A claim whose store is under way; dropping it ends the claim.
pub(crate) struct Storing<'a> {
    claims: &'a Claims,
    order_id: String,
}

impl Drop for Storing<'_> {
    fn drop(&mut self) {
        self.claims.lock().remove(&self.order_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(token: &str, until: i64) -> OrderClaim {
        OrderClaim {
            token: token.into(),
            until,
            persist: false,
        }
    }

    #[test]
    fn one_holder_and_only_it_stores_or_releases() {
        let c = Claims::default();
        assert!(c.try_take("o", &claim("a", 10), || Ok(true)).unwrap());
        assert!(!c.try_take("o", &claim("b", 10), || Ok(true)).unwrap());
        assert!(c.is_held("o"));
        assert!(c.begin_store("o", "b").is_none(), "not the holder");
        assert!(!c.release("o", "b"));
        assert!(c.release("o", "a"));
        assert!(!c.is_held("o"));
        // An order the database does not show pending is never claimed.
        assert!(!c.try_take("o", &claim("c", 10), || Ok(false)).unwrap());
        assert!(!c.is_held("o"));
    }

    #[test]
    fn a_claim_being_stored_is_neither_swept_nor_released() {
        let c = Claims::default();
        assert!(c.try_take("o", &claim("a", 10), || Ok(true)).unwrap());
        assert!(c.try_take("p", &claim("b", 10), || Ok(true)).unwrap());
        let storing = c.begin_store("o", "a").expect("the holder stores");
        assert_eq!(c.release_stale(11), vec!["p".to_string()]);
        assert!(!c.release("o", "a"));
        assert!(
            !c.try_take("o", &claim("c", 10), || Ok(true)).unwrap(),
            "held until the store ends"
        );
        drop(storing);
        assert!(!c.is_held("o"));
    }

    #[test]
    fn only_expired_claims_are_swept() {
        let c = Claims::default();
        assert!(c.try_take("o", &claim("a", 500), || Ok(true)).unwrap());
        assert!(c.release_stale(500).is_empty());
        assert_eq!(c.release_stale(501), vec!["o".to_string()]);
        assert!(
            c.begin_store("o", "a").is_none(),
            "a swept claim cannot store"
        );
    }
}
