//! A short-lived cache of account records for JWS `kid` lookups. Every authenticated ACME
//! request names its account (RFC 8555 §6.2), and a full issuance makes about eight of them
//! within a second or two; the profile of `fleetca bench` showed each lookup costing as much
//! as the rest of a small request. Entries live [`TTL`] at most and are dropped as soon as
//! this node changes the account, so a deactivation or key change made through this node
//! takes effect at once; one made on another node or by the admin CLI takes effect within
//! [`TTL`].

use crate::sa::AccountRecord;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a cached account may be served.
pub(crate) const TTL: Duration = Duration::from_secs(2);
/// Above this many entries the cache is emptied (a renewal storm must not grow it unbounded).
const MAX_ENTRIES: usize = 100_000;

/// Account id → (fetched at, record).
#[derive(Default)]
pub(crate) struct AccountCache {
    entries: Mutex<HashMap<String, (Instant, AccountRecord)>>,
}

impl AccountCache {
    /// The cached record, if fetched less than [`TTL`] ago.
    pub(crate) fn get(&self, id: &str) -> Option<AccountRecord> {
        let map = self.entries.lock().ok()?;
        match map.get(id) {
            Some((at, acct)) if at.elapsed() < TTL => Some(acct.clone()),
            _ => None,
        }
    }

    /// Remembers a record just read from storage.
    pub(crate) fn put(&self, acct: &AccountRecord) {
        if let Ok(mut map) = self.entries.lock() {
            if map.len() >= MAX_ENTRIES {
                map.retain(|_, (at, _)| at.elapsed() < TTL);
                if map.len() >= MAX_ENTRIES {
                    map.clear();
                }
            }
            map.insert(acct.id.clone(), (Instant::now(), acct.clone()));
        }
    }

    /// Forgets an account this node is about to change.
    pub(crate) fn forget(&self, id: &str) {
        if let Ok(mut map) = self.entries.lock() {
            map.remove(id);
        }
    }
}
