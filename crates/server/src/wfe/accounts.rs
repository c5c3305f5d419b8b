//! Accounts this node has read, kept for the signed POSTs that name them in `kid` (RFC 8555
//! §6.2) when the nonce store guards accounts (PostgreSQL, several nodes).
//!
//! A kept account is never trusted on its own: the nonce of the request it serves is spent
//! by a statement that first checks that the account row is still valid with the same key
//! and contacts ([`crate::sa::NonceStore::spend_nonce_guarded`]). So a deactivation or key
//! change made by another node, the CLI or the admin API stops the account's very next
//! request, as when every request read the account, and the read and the spend are one
//! database round trip instead of two. On a single SQLite node the account is read every
//! time: that read is a local lookup, not a round trip.

use crate::sa::AccountRecord;
use std::collections::HashMap;
use std::sync::Mutex;

/// Most accounts kept; when full the whole map is dropped (the next request of each account
/// reads it again), which bounds memory without bookkeeping on the hot path.
const MAX_KEPT: usize = 100_000;

/// Accounts by id.
#[derive(Default)]
pub(crate) struct AccountCache {
    kept: Mutex<HashMap<String, AccountRecord>>,
}

impl AccountCache {
    /// The kept copy of account `id`, if any.
    pub(crate) fn get(&self, id: &str) -> Option<AccountRecord> {
        self.lock().get(id).cloned()
    }

    /// Keeps `acct` (as just read from storage).
    pub(crate) fn put(&self, acct: &AccountRecord) {
        let mut kept = self.lock();
        if kept.len() >= MAX_KEPT {
            kept.clear();
        }
        kept.insert(acct.id.clone(), acct.clone());
    }

    /// Drops the kept copy of `id` (it changed, or may have).
    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AccountRecord>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }
}
