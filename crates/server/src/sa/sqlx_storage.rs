//! The [`Storage`](super::Storage) methods whose sqlx code is the same on both engines (accounts,
//! order listing, sweeps, revocation, CRLs): written once over [`SqlxBackend`], and called by
//! each backend's own `impl Storage` (`sqlite/storage.rs`, `postgres/storage.rs`). The
//! issuance path is not here: each engine runs it its own way.

use super::backend::{RowsAffected, SqlxBackend};
use super::rows::Cols;
use super::sql::{is_unique_violation, json, RowText, TableCounts};
use super::StoredIdentifier;
use super::{AccountRecord, AncestorAuthz, CertRecord, CrlRecord, Lease, RevokedEntry, SaError};
use async_trait::async_trait;
use sqlx::Row;

/// The engine-neutral half of [`Storage`](super::Storage); see each method there.
#[async_trait]
pub(super) trait SqlxStorage: Send + Sync {
    /// Row counts and content digests of the core tables.
    async fn table_counts(&self) -> Result<TableCounts, SaError>;
    async fn insert_account(&self, a: &AccountRecord) -> Result<(), SaError>;

    async fn get_account_by_key(
        &self,
        tenant: &str,
        thumbprint: &str,
    ) -> Result<Option<AccountRecord>, SaError>;

    async fn update_account_contact(&self, id: &str, contact: &[String]) -> Result<(), SaError>;

    async fn try_deactivate_account(&self, id: &str) -> Result<bool, SaError>;

    async fn try_change_account_key(
        &self,
        id: &str,
        old_tp: &str,
        new_tp: &str,
        new_jwk: &str,
    ) -> Result<bool, SaError>;

    async fn list_order_ids(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, SaError>;

    async fn release_order_claim(&self, order_id: &str, token: &str) -> Result<bool, SaError>;

    async fn release_stale_order_claims(&self, now: i64) -> Result<Vec<String>, SaError>;

    async fn subdomain_ancestor_authzs(
        &self,
        tenant: &str,
        account_id: &str,
        now: i64,
    ) -> Result<Vec<super::AncestorAuthz>, SaError>;

    async fn try_deactivate_authz(&self, id: &str) -> Result<bool, SaError>;

    async fn has_valid_authzs(
        &self,
        account_id: &str,
        authzs: &[(StoredIdentifier, bool)],
        now: i64,
    ) -> Result<bool, SaError>;

    async fn claim_stale_challenges(
        &self,
        now: i64,
        lease: &Lease,
        limit: u32,
    ) -> Result<Vec<String>, SaError>;

    async fn get_cert_by_serial(
        &self,
        tenant: &str,
        serial: &str,
    ) -> Result<Option<CertRecord>, SaError>;

    async fn try_revoke_cert(&self, id: &str, at: i64, reason: Option<u8>)
        -> Result<bool, SaError>;

    async fn revoked_certs(
        &self,
        tenant: &str,
        issuer: &str,
        not_after_min: i64,
    ) -> Result<Vec<RevokedEntry>, SaError>;

    async fn get_crl(&self, tenant: &str) -> Result<Option<CrlRecord>, SaError>;

    async fn store_crl(&self, tenant: &str, crl: &CrlRecord) -> Result<(), SaError>;
}

#[async_trait]
impl<B> SqlxStorage for B
where
    B: SqlxBackend,
    for<'c> &'c mut <B::Db as sqlx::Database>::Connection: sqlx::Executor<'c, Database = B::Db>,
    <B::Db as sqlx::Database>::Arguments: sqlx::IntoArguments<B::Db>,
    <B::Db as sqlx::Database>::QueryResult: RowsAffected,
    <B::Db as sqlx::Database>::Row: Cols,
    for<'q> &'q str: sqlx::Encode<'q, B::Db>
        + sqlx::Type<B::Db>
        + sqlx::ColumnIndex<<B::Db as sqlx::Database>::Row>,
    usize: sqlx::ColumnIndex<<B::Db as sqlx::Database>::Row>,
    for<'q> String: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> i64: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Vec<u8>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<String>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<i64>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    B::Db: RowText,
{
    async fn table_counts(&self) -> Result<TableCounts, SaError> {
        let count = |sql: &'static str| async move {
            sqlx::query(sql)
                .fetch_one(self.pool())
                .await
                .and_then(|r| r.try_get::<i64, _>(0usize))
        };
        Ok(TableCounts {
            accounts: count("SELECT COUNT(*) FROM accounts").await?,
            orders: count("SELECT COUNT(*) FROM orders").await?,
            authzs: count("SELECT COUNT(*) FROM authzs").await?,
            challenges: count("SELECT COUNT(*) FROM challenges").await?,
            certificates: count("SELECT COUNT(*) FROM certificates").await?,
            revoked: count("SELECT COUNT(*) FROM certificates WHERE revoked_at IS NOT NULL")
                .await?,
            contents: super::sql::table_contents(self.pool()).await?,
        })
    }

    async fn insert_account(&self, a: &AccountRecord) -> Result<(), SaError> {
        let pass = self.write_access().await?;
        let res = sqlx::query(
            "INSERT INTO accounts (id, tenant, jwk_thumbprint, jwk, contact, status, tos_agreed, eab_kid, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&a.id)
        .bind(&a.tenant)
        .bind(&a.jwk_thumbprint)
        .bind(&a.jwk)
        .bind(json(&a.contact))
        .bind(a.status.as_str())
        .bind(a.tos_agreed as i64)
        .bind(&a.eab_kid)
        .bind(a.created_at)
        .execute(self.writer(&pass))
        .await;
        match res {
            Ok(_) => self.durable().await,
            Err(e) if is_unique_violation(&e) => {
                Err(SaError::Conflict("account key already registered".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn get_account_by_key(
        &self,
        tenant: &str,
        thumbprint: &str,
    ) -> Result<Option<AccountRecord>, SaError> {
        let row = sqlx::query("SELECT * FROM accounts WHERE tenant = $1 AND jwk_thumbprint = $2")
            .bind(tenant)
            .bind(thumbprint)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(super::rows::account).transpose()
    }

    async fn update_account_contact(&self, id: &str, contact: &[String]) -> Result<(), SaError> {
        let pass = self.write_access().await?;
        sqlx::query("UPDATE accounts SET contact = $1 WHERE id = $2")
            .bind(json(&contact))
            .bind(id)
            .execute(self.writer(&pass))
            .await?;
        self.durable().await?;
        Ok(())
    }

    async fn try_deactivate_account(&self, id: &str) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let r = sqlx::query(
            "UPDATE accounts SET status = 'deactivated' WHERE id = $1 AND status = 'valid'",
        )
        .bind(id)
        .execute(self.writer(&pass))
        .await?;
        self.durable().await?;
        Ok(r.rows() == 1)
    }

    async fn try_change_account_key(
        &self,
        id: &str,
        old_tp: &str,
        new_tp: &str,
        new_jwk: &str,
    ) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let res = sqlx::query("UPDATE accounts SET jwk_thumbprint = $1, jwk = $2 WHERE id = $3 AND jwk_thumbprint = $4 AND status = 'valid'")
            .bind(new_tp)
            .bind(new_jwk)
            .bind(id)
            .bind(old_tp)
            .execute(self.writer(&pass))
            .await;
        match res {
            Ok(r) => {
                self.durable().await?;
                Ok(r.rows() == 1)
            }
            Err(e) if is_unique_violation(&e) => {
                Err(SaError::Conflict("new key already in use".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn list_order_ids(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, SaError> {
        // Keyset pagination on (created_at, id): stable while new orders arrive.
        let rows = match after {
            Some(after) => {
                sqlx::query(
                    "SELECT o.id FROM orders o, orders p WHERE p.id = $2 AND o.account_id = $1
                     AND (o.created_at > p.created_at OR (o.created_at = p.created_at AND o.id > p.id))
                     ORDER BY o.created_at, o.id LIMIT $3",
                )
                .bind(account_id)
                .bind(after)
                .bind(limit as i64)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query("SELECT id FROM orders WHERE account_id = $1 ORDER BY created_at, id LIMIT $2")
                    .bind(account_id)
                    .bind(limit as i64)
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(0)?))
            .collect()
    }

    async fn release_order_claim(&self, order_id: &str, token: &str) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let done = sqlx::query(super::sql::stmt::RELEASE_ORDER_CLAIM)
            .bind(order_id)
            .bind(token)
            .execute(self.writer(&pass))
            .await?;
        self.durable().await?;
        Ok(done.rows() == 1)
    }

    async fn release_stale_order_claims(&self, now: i64) -> Result<Vec<String>, SaError> {
        let pass = self.write_access().await?;
        let rows = sqlx::query(super::sql::stmt::RELEASE_STALE_ORDER_CLAIMS)
            .bind(now)
            .fetch_all(self.writer(&pass))
            .await?;
        self.durable().await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(0)?))
            .collect()
    }

    async fn subdomain_ancestor_authzs(
        &self,
        tenant: &str,
        account_id: &str,
        now: i64,
    ) -> Result<Vec<AncestorAuthz>, SaError> {
        let rows = sqlx::query(super::sql::stmt::SUBDOMAIN_ANCESTOR_AUTHZS)
            .bind(account_id)
            .bind(tenant)
            .bind(now)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AncestorAuthz {
                    id: r.try_get("id")?,
                    name: r.try_get("ident_value")?,
                    expires: r.try_get("expires")?,
                })
            })
            .collect()
    }

    async fn try_deactivate_authz(&self, id: &str) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        let r = sqlx::query("UPDATE authzs SET status = 'deactivated' WHERE id = $1 AND status IN ('pending', 'valid')")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if r.rows() == 1 {
            // Names granted by this authorization's attestation go with it.
            sqlx::query(super::sql::stmt::DEACTIVATE_ATTESTED)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.durable().await?;
        Ok(r.rows() == 1)
    }

    async fn has_valid_authzs(
        &self,
        account_id: &str,
        authzs: &[(StoredIdentifier, bool)],
        now: i64,
    ) -> Result<bool, SaError> {
        for (ident, wildcard) in authzs {
            // The wildcard flag is part of what was validated (dns-01 for `*.`, RFC 8555
            // §7.1.3): neither kind stands in for the other.
            let row = sqlx::query(
                "SELECT 1 FROM authzs WHERE account_id = $1 AND ident_type = $2 AND ident_value = $3
                 AND wildcard = $4 AND status = 'valid' AND expires > $5 LIMIT 1",
            )
            .bind(account_id)
            .bind(ident.kind.as_str())
            .bind(&ident.value)
            .bind(*wildcard as i64)
            .bind(now)
            .fetch_optional(self.pool())
            .await?;
            if row.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn claim_stale_challenges(
        &self,
        now: i64,
        lease: &Lease,
        limit: u32,
    ) -> Result<Vec<String>, SaError> {
        // One statement, so two nodes sweeping at once cannot both take the same challenge.
        let pass = self.write_access().await?;
        let rows = sqlx::query(super::sql::stmt::CLAIM_STALE_CHALLENGES)
            .bind(now)
            .bind(lease.until)
            .bind(&lease.owner)
            .bind(i64::from(limit))
            .fetch_all(self.writer(&pass))
            .await?;
        self.durable().await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(0)?))
            .collect()
    }

    async fn get_cert_by_serial(
        &self,
        tenant: &str,
        serial: &str,
    ) -> Result<Option<CertRecord>, SaError> {
        let row = sqlx::query("SELECT * FROM certificates WHERE tenant = $1 AND serial = $2")
            .bind(tenant)
            .bind(serial)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(super::rows::cert).transpose()
    }

    async fn try_revoke_cert(
        &self,
        id: &str,
        at: i64,
        reason: Option<u8>,
    ) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let r = sqlx::query("UPDATE certificates SET revoked_at = $1, revocation_reason = $2 WHERE id = $3 AND revoked_at IS NULL")
            .bind(at)
            .bind(reason.map(i64::from))
            .bind(id)
            .execute(self.writer(&pass))
            .await?;
        self.durable().await?;
        Ok(r.rows() == 1)
    }

    async fn revoked_certs(
        &self,
        tenant: &str,
        issuer: &str,
        not_after_min: i64,
    ) -> Result<Vec<RevokedEntry>, SaError> {
        // The tenant's partial index on revoked rows narrows first; the issuer test is a filter.
        let rows = sqlx::query(
            "SELECT serial, revoked_at, revocation_reason FROM certificates
             WHERE tenant = $1 AND revoked_at IS NOT NULL AND not_after >= $2
               AND COALESCE(issuer, tenant) = $3 ORDER BY serial",
        )
        .bind(tenant)
        .bind(not_after_min)
        .bind(issuer)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RevokedEntry {
                    serial: r.try_get(0)?,
                    revoked_at: r.try_get(1)?,
                    reason: r.try_get::<Option<i64>, _>(2)?.map(|v| v as u8),
                })
            })
            .collect()
    }

    async fn get_crl(&self, tenant: &str) -> Result<Option<CrlRecord>, SaError> {
        let row = sqlx::query(
            "SELECT crl_number, der, this_update, next_update FROM crls WHERE tenant = $1",
        )
        .bind(tenant)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| -> Result<CrlRecord, SaError> {
            Ok(CrlRecord {
                number: r.try_get(0)?,
                der: r.try_get(1)?,
                this_update: r.try_get(2)?,
                next_update: r.try_get(3)?,
            })
        })
        .transpose()
    }

    async fn store_crl(&self, tenant: &str, crl: &CrlRecord) -> Result<(), SaError> {
        let pass = self.write_access().await?;
        sqlx::query(
            "INSERT INTO crls (tenant, crl_number, der, this_update, next_update) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant) DO UPDATE SET crl_number = excluded.crl_number, der = excluded.der,
               this_update = excluded.this_update, next_update = excluded.next_update
             WHERE excluded.crl_number > crls.crl_number",
        )
        .bind(tenant)
        .bind(crl.number)
        .bind(&crl.der)
        .bind(crl.this_update)
        .bind(crl.next_update)
        .execute(self.writer(&pass))
        .await?;
        self.durable().await?;
        Ok(())
    }
}
