//! Spent nonces in the shared database, so a nonce spent on one node is spent on all of them
//! (the in-memory store serves a single SQLite node; see `sa::nonce`).

use super::PgStorage;
use crate::sa::nonce::{random_key, AccountGuard, GuardedSpend, NonceStore};
use crate::sa::SaError;
use async_trait::async_trait;

/// A guarded spend (see [`NonceStore::spend_nonce_guarded`]): the nonce `$1` is inserted only
/// when account `$3` is valid with thumbprint `$4` and contacts `$5`; answers (account as
/// seen, nonce fresh).
pub(crate) const SPEND_NONCE_GUARDED: &str = "WITH acct AS (
        SELECT 1 FROM accounts WHERE id = $3 AND status = 'valid' AND jwk_thumbprint = $4 AND contact = $5
    ), ins AS (
        INSERT INTO spent_nonces (id, expires) SELECT $1, $2 FROM acct ON CONFLICT (id) DO NOTHING RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM acct), EXISTS (SELECT 1 FROM ins)";

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

    fn guards_accounts(&self) -> bool {
        true
    }

    fn spends_with_reads(&self) -> bool {
        true
    }

    async fn spend_nonce_guarded(
        &self,
        id: &[u8],
        expires: i64,
        guard: &AccountGuard<'_>,
    ) -> Result<GuardedSpend, SaError> {
        // One round trip for what would be two (read the account, spend the nonce): the
        // spend happens only if the account row is still what the caller checked the
        // signature against.
        let (account_ok, fresh): (bool, bool) = sqlx::query_as(SPEND_NONCE_GUARDED)
            .bind(id)
            .bind(expires)
            .bind(guard.id)
            .bind(guard.thumbprint)
            .bind(&guard.contact_json)
            .fetch_one(&self.pool)
            .await?;
        Ok(match (account_ok, fresh) {
            (false, _) => GuardedSpend::AccountChanged,
            (true, true) => GuardedSpend::Spent,
            (true, false) => GuardedSpend::Replayed,
        })
    }

    async fn prune_nonces(&self, now: i64) -> Result<u64, SaError> {
        let r = sqlx::query("DELETE FROM spent_nonces WHERE expires < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}
