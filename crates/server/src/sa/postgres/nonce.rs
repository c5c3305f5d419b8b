//! Spent nonces in the shared database, so a nonce spent on one node is spent on all of them
//! (the in-memory store serves a single SQLite node; see `sa::nonce`).

use super::PgStorage;
use crate::sa::nonce::{random_key, NonceStore};
use crate::sa::SaError;
use async_trait::async_trait;

#[async_trait]
impl NonceStore for PgStorage {
    async fn nonce_key(&self) -> Result<Vec<u8>, SaError> {
        // The first node to start creates the key; every node then gets the same one. The
        // no-op update makes RETURNING yield the stored key when it already exists, so this
        // is one round trip instead of an insert and a read.
        Ok(sqlx::query_scalar(
            "INSERT INTO secrets (name, value) VALUES ('nonce-key', $1)
             ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING value",
        )
        .bind(random_key())
        .fetch_one(&self.pool)
        .await?)
    }

    async fn spend_nonce(&self, id: &[u8], expires: i64) -> Result<bool, SaError> {
        let r = sqlx::query(
            "INSERT INTO spent_nonces (id, expires) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(expires)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn prune_nonces(&self, now: i64) -> Result<u64, SaError> {
        let r = sqlx::query("DELETE FROM spent_nonces WHERE expires < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}
