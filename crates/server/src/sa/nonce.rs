//! Where spent nonces are remembered. One node (SQLite) keeps them in memory with a key that
//! lives as long as the process, so a restart invalidates every outstanding nonce instead of
//! forgetting which were spent; several nodes (PostgreSQL) share both the key and the spent set.

use super::SaError;
use async_trait::async_trait;
use rand::RngCore;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Storage for the nonce service.
#[async_trait]
pub trait NonceStore: Send + Sync {
    /// The MAC key nonces are authenticated with (the same on every node that shares the store).
    async fn nonce_key(&self) -> Result<Vec<u8>, SaError>;
    /// Records `id` as spent until `expires`; false if it already was (a replay).
    async fn spend_nonce(&self, id: &[u8], expires: i64) -> Result<bool, SaError>;
    /// Forgets spent nonces that expired before `now` (they fail the expiry check anyway).
    async fn prune_nonces(&self, now: i64) -> Result<u64, SaError>;

    /// Whether [`Self::spend_nonce_guarded`] checks the account in the same step as the
    /// spend. A shared database does (one round trip for both, so the front end may keep the
    /// accounts it has read and still see another node's change on the very next request);
    /// the in-memory store does not, and the front end reads the account every time.
    fn guards_accounts(&self) -> bool {
        false
    }

    /// Whether the storage spends a [`PendingSpend`] in the same statement as the first read of
    /// the request it came with (PostgreSQL: one round trip instead of two). The in-memory
    /// store does not: its spend is not a round trip, and the front end spends at once.
    fn spends_with_reads(&self) -> bool {
        false
    }

    /// Records `id` as spent until `expires`, only if the account `guard` names is still as
    /// the caller saw it (valid, same key, same contacts). A store that does not guard
    /// accounts ([`Self::guards_accounts`] false) is never asked this and spends unguarded.
    async fn spend_nonce_guarded(
        &self,
        id: &[u8],
        expires: i64,
        _guard: &AccountGuard<'_>,
    ) -> Result<GuardedSpend, SaError> {
        Ok(match self.spend_nonce(id, expires).await? {
            true => GuardedSpend::Spent,
            false => GuardedSpend::Replayed,
        })
    }
}

/// An account as a request's signature was checked against it (see
/// [`NonceStore::spend_nonce_guarded`]).
pub struct AccountGuard<'a> {
    /// Account id.
    pub id: &'a str,
    /// Thumbprint of the key the signature was checked with.
    pub thumbprint: &'a str,
    /// The contacts the caller holds, as stored (a JSON array).
    pub contact_json: String,
}

/// A signed request's nonce as the front end hands it on (RFC 8555 §6.5).
pub enum Nonce {
    /// Already spent by the front end; the storage only reads.
    Spent,
    /// Checked (MAC, expiry, and every other JWS check passed) but not yet spent: the
    /// request's first storage read spends it in the same statement and says how that went,
    /// and the caller writes nothing before it knows the nonce was fresh.
    Pending(PendingSpend),
}

/// A nonce left to be spent by a storage read (see [`Nonce::Pending`]).
pub struct PendingSpend {
    /// The nonce's id.
    pub id: Vec<u8>,
    /// When it expires (unix seconds): the spent record may be forgotten after that.
    pub expires: i64,
    /// The kept account the signature was checked against, if it was a kept copy: the
    /// spend happens only while the stored account still matches (see
    /// [`NonceStore::spend_nonce_guarded`]).
    pub guard: Option<KeptAccount>,
}

/// An owned [`AccountGuard`], carried with a [`PendingSpend`].
pub struct KeptAccount {
    /// Account id.
    pub id: String,
    /// Thumbprint of the key the signature was checked with.
    pub thumbprint: String,
    /// The contacts the caller holds, as stored (a JSON array).
    pub contact_json: String,
}

/// What a guarded spend did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardedSpend {
    /// The nonce was fresh and is now spent.
    Spent,
    /// The nonce was already spent (a replay).
    Replayed,
    /// The account is no longer valid, or its key or contacts changed: nothing was spent.
    AccountChanged,
}

pub(super) fn random_key() -> Vec<u8> {
    let mut k = vec![0u8; 32];
    rand::rng().fill_bytes(&mut k);
    k
}

/// How many spent nonces one node remembers by default (about 60 MB at most). With the
/// default five-minute lifetime that is over 1,600 spent nonces per second, sustained.
pub const DEFAULT_MAX_SPENT_NONCES: usize = 500_000;

/// Spent nonce ids, the order they were spent in (with their expiry), and the floor: the
/// highest expiry of a nonce forgotten early because the set was full.
struct SpentSet {
    ids: HashSet<Vec<u8>>,
    order: VecDeque<(i64, Vec<u8>)>,
    floor: i64,
}

/// The single-node store: a per-process key and an in-memory spent set of bounded size.
///
/// When the set is full the oldest spent nonce is forgotten and the floor rises to its
/// expiry; from then on every nonce expiring at or before the floor is refused (`badNonce`),
/// spent or not, since the store can no longer tell. Refusing errs on the safe side: a replay
/// is never accepted, and an honest client that gets `badNonce` retries with the fresh nonce
/// of that very response (RFC 8555 §6.5), which expires after the floor.
pub struct MemoryNonceStore {
    key: Vec<u8>,
    max: usize,
    spent: Mutex<SpentSet>,
}

impl Default for MemoryNonceStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_MAX_SPENT_NONCES)
    }
}

impl MemoryNonceStore {
    /// A store remembering at most `max` spent nonces (at least one).
    pub fn with_capacity(max: usize) -> Self {
        Self {
            key: random_key(),
            max: max.max(1),
            spent: Mutex::new(SpentSet {
                ids: HashSet::new(),
                order: VecDeque::new(),
                floor: i64::MIN,
            }),
        }
    }
}

#[async_trait]
impl NonceStore for MemoryNonceStore {
    async fn nonce_key(&self) -> Result<Vec<u8>, SaError> {
        Ok(self.key.clone())
    }

    async fn spend_nonce(&self, id: &[u8], expires: i64) -> Result<bool, SaError> {
        let mut g = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        if expires <= g.floor || !g.ids.insert(id.to_vec()) {
            return Ok(false);
        }
        g.order.push_back((expires, id.to_vec()));
        while g.ids.len() > self.max {
            let Some((exp, old)) = g.order.pop_front() else {
                break;
            };
            g.ids.remove(&old);
            g.floor = g.floor.max(exp);
        }
        Ok(true)
    }

    async fn prune_nonces(&self, now: i64) -> Result<u64, SaError> {
        let mut g = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        // Nonces share one lifetime, so spending order is close to expiry order.
        while g.order.front().is_some_and(|(exp, _)| *exp < now) {
            if let Some((_, id)) = g.order.pop_front() {
                g.ids.remove(&id);
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn spends_once(store: &dyn NonceStore) {
        assert!(store.spend_nonce(b"abc", 100).await.unwrap());
        assert!(
            !store.spend_nonce(b"abc", 100).await.unwrap(),
            "a nonce is spent once"
        );
        assert!(store.spend_nonce(b"def", 300).await.unwrap());
        assert_eq!(store.prune_nonces(200).await.unwrap(), 1);
        assert!(!store.spend_nonce(b"def", 300).await.unwrap());
        assert_eq!(
            store.nonce_key().await.unwrap(),
            store.nonce_key().await.unwrap()
        );
    }

    #[tokio::test]
    async fn memory_store() {
        spends_once(&MemoryNonceStore::default()).await;
    }

    /// A full set forgets its oldest spent nonce and from then on refuses every nonce that
    /// expires no later than the one forgotten, spent or not; later nonces are unaffected.
    #[tokio::test]
    async fn memory_store_is_capped_and_refuses_what_it_forgot() {
        let store = MemoryNonceStore::with_capacity(2);
        assert!(store.spend_nonce(b"a", 100).await.unwrap());
        assert!(store.spend_nonce(b"b", 101).await.unwrap());
        assert!(store.spend_nonce(b"c", 102).await.unwrap());
        assert_eq!(store.spent.lock().unwrap().ids.len(), 2, "capped at 2");
        // "a" was forgotten: its replay is still refused, through the floor.
        assert!(!store.spend_nonce(b"a", 100).await.unwrap());
        // So is an unspent nonce that expires no later than "a".
        assert!(!store.spend_nonce(b"z", 99).await.unwrap());
        assert!(!store.spend_nonce(b"y", 100).await.unwrap());
        // Remembered ones are refused as replays, newer ones accepted once.
        assert!(!store.spend_nonce(b"c", 102).await.unwrap());
        assert!(store.spend_nonce(b"d", 103).await.unwrap());
        assert!(!store.spend_nonce(b"d", 103).await.unwrap());
        assert!(
            !store.spend_nonce(b"b", 101).await.unwrap(),
            "forgotten, below the floor"
        );
    }

    #[tokio::test]
    async fn postgres_store_is_shared_between_nodes() {
        let Some((a, b)) = crate::sa::tests::postgres_pair().await else {
            return;
        };
        spends_once(a.as_ref()).await;
        // A second node on the same database sees the same key and the same spent set.
        assert_eq!(a.nonce_key().await.unwrap(), b.nonce_key().await.unwrap());
        assert!(a.spend_nonce(b"xyz", 1000).await.unwrap());
        assert!(!b.spend_nonce(b"xyz", 1000).await.unwrap());
    }

    /// The guarded spend spends only while the account is as the caller saw it, and says
    /// which of the two failed; a refused spend leaves the nonce unspent.
    #[tokio::test]
    async fn postgres_guarded_spend_checks_the_account_in_the_same_step() {
        use crate::sa::{AccountRecord, AccountState, Storage};
        let Some((a, b)) = crate::sa::tests::postgres_pair().await else {
            return;
        };
        assert!(a.guards_accounts());
        assert!(!MemoryNonceStore::default().guards_accounts());
        let acct = AccountRecord {
            id: "g1".into(),
            tenant: "default".into(),
            jwk_thumbprint: "tp1".into(),
            jwk: "{}".into(),
            contact: vec!["mailto:a@example.com".into()],
            status: AccountState::Valid,
            tos_agreed: true,
            eab_kid: None,
            created_at: 100,
        };
        b.insert_account(&acct).await.unwrap();
        let seen = |tp: &'static str, contact: &str| AccountGuard {
            id: "g1",
            thumbprint: tp,
            contact_json: contact.to_string(),
        };
        let contact = r#"["mailto:a@example.com"]"#;
        let spend = |n: &'static [u8], g: AccountGuard<'static>| {
            let a = a.clone();
            async move { a.spend_nonce_guarded(n, 1000, &g).await.unwrap() }
        };
        assert_eq!(
            spend(b"n1", seen("tp1", contact)).await,
            GuardedSpend::Spent
        );
        assert_eq!(
            spend(b"n1", seen("tp1", contact)).await,
            GuardedSpend::Replayed
        );
        // Another key or other contacts than the caller saw: nothing spent.
        assert_eq!(
            spend(b"n2", seen("tp0", contact)).await,
            GuardedSpend::AccountChanged
        );
        assert_eq!(
            spend(b"n2", seen("tp1", "[]")).await,
            GuardedSpend::AccountChanged
        );
        assert!(
            b.spend_nonce(b"n2", 1000).await.unwrap(),
            "n2 was left unspent"
        );
        // Deactivated by another node.
        assert!(b.try_deactivate_account("g1").await.unwrap());
        assert_eq!(
            spend(b"n3", seen("tp1", contact)).await,
            GuardedSpend::AccountChanged
        );
        assert!(
            b.spend_nonce(b"n3", 1000).await.unwrap(),
            "n3 was left unspent"
        );
    }
}
