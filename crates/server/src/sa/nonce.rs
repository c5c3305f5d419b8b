//! Where spent nonces are remembered. One node (SQLite) keeps them in memory with a key that
//! lives as long as the process, so a restart invalidates every outstanding nonce instead of
//! forgetting which were spent; several nodes (PostgreSQL) share both the key and the spent set.

use super::{PgStorage, SaError};
use async_trait::async_trait;
use rand::RngCore;
use sqlx::Row;
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
}

fn random_key() -> Vec<u8> {
    let mut k = vec![0u8; 32];
    rand::rng().fill_bytes(&mut k);
    k
}

/// Spent nonce ids and, in expiry order, when each can be forgotten.
type SpentSet = (HashSet<Vec<u8>>, VecDeque<(i64, Vec<u8>)>);

/// The single-node store: a per-process key and an in-memory spent set.
pub struct MemoryNonceStore {
    key: Vec<u8>,
    spent: Mutex<SpentSet>,
}

impl Default for MemoryNonceStore {
    fn default() -> Self {
        Self {
            key: random_key(),
            spent: Mutex::new((HashSet::new(), VecDeque::new())),
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
        if !g.0.insert(id.to_vec()) {
            return Ok(false);
        }
        g.1.push_back((expires, id.to_vec()));
        Ok(true)
    }

    async fn prune_nonces(&self, now: i64) -> Result<u64, SaError> {
        let mut g = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0;
        // Nonces share one lifetime, so insertion order is expiry order.
        while g.1.front().is_some_and(|(exp, _)| *exp < now) {
            if let Some((_, id)) = g.1.pop_front() {
                g.0.remove(&id);
                n += 1;
            }
        }
        Ok(n)
    }
}

#[async_trait]
impl NonceStore for PgStorage {
    async fn nonce_key(&self) -> Result<Vec<u8>, SaError> {
        // The first node to start creates the key; every node then reads the same one.
        sqlx::query("INSERT INTO secrets (name, value) VALUES ('nonce-key', $1) ON CONFLICT (name) DO NOTHING")
            .bind(random_key())
            .execute(self.pool())
            .await?;
        let row = sqlx::query("SELECT value FROM secrets WHERE name = 'nonce-key'")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get::<Vec<u8>, _>(0)?)
    }

    async fn spend_nonce(&self, id: &[u8], expires: i64) -> Result<bool, SaError> {
        let r = sqlx::query(
            "INSERT INTO spent_nonces (id, expires) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(expires)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn prune_nonces(&self, now: i64) -> Result<u64, SaError> {
        let r = sqlx::query("DELETE FROM spent_nonces WHERE expires < $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
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
}
