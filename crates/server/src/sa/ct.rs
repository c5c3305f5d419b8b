//! Storage of Certificate Transparency issuance (RFC 6962): the precertificate, stored before
//! the logs are asked, and the final certificate that later takes its row.
//!
//! The precertificate lives in the `certificates` row its final certificate will take (same
//! id, same serial; `der` = `precert_der` until the final certificate is stored), so it is
//! revocable, on CRLs and answered by OCSP from the moment it is signed (BR §7.1.2.9) with
//! no second revocation path. A narrow trait of its own, like `LifecycleStore`.

use super::backend::{RowsAffected, SqlxBackend};
use super::rows::Cols;
use super::{CertRecord, OrderClaim, SaError};
use async_trait::async_trait;
use sqlx::Row;

/// A stored precertificate and, once issued, its final certificate.
#[derive(Clone, Debug)]
pub struct PrecertRecord {
    /// The row: `der` is the final certificate once stored, the precertificate until then.
    pub cert: CertRecord,
    /// The precertificate, DER.
    pub precert_der: Vec<u8>,
}

impl PrecertRecord {
    /// Whether the final certificate is still to be made.
    pub fn awaiting_final(&self) -> bool {
        self.cert.der == self.precert_der
    }
}

/// CT issuance storage (see the module docs).
#[async_trait]
pub trait CtStore: Send + Sync {
    /// If `token` still holds the (processing) order, stores the precertificate in the row
    /// its final certificate will take, with its lifecycle row; the order stays processing.
    async fn store_precertificate(
        &self,
        order_id: &str,
        token: &str,
        cert: &CertRecord,
        cert_lifecycle: Option<(&str, Option<u32>)>,
    ) -> Result<bool, SaError>;
    /// The precertificate stored for an order, if any.
    async fn precert_of_order(&self, order_id: &str) -> Result<Option<PrecertRecord>, SaError>;
    /// If `token` still holds the order: the final certificate replaces the precertificate in
    /// its row and the order is valid, in one transaction.
    async fn store_final_certificate(
        &self,
        order_id: &str,
        token: &str,
        cert_id: &str,
        der: &[u8],
    ) -> Result<bool, SaError>;
    /// The logs could not give SCTs enough: the order stays processing, and its claim ends at
    /// `until`, when the retry task may take it.
    async fn defer_order(&self, order_id: &str, token: &str, until: i64) -> Result<bool, SaError>;
    /// Processing orders with a precertificate awaiting its final certificate whose claim
    /// ended before `now` (deferred, or their node died), at most `limit`.
    async fn due_precert_orders(&self, now: i64, limit: u32) -> Result<Vec<String>, SaError>;
    /// Takes such an order under a new claim; false if another node took it first.
    async fn try_reclaim_order(
        &self,
        order_id: &str,
        claim: &OrderClaim,
        now: i64,
    ) -> Result<bool, SaError>;
}

/// Orders with a precertificate awaiting its final certificate (a literal, for `concat!`).
macro_rules! awaiting_final {
    () => {
        " AND EXISTS (SELECT 1 FROM certificates c WHERE c.order_id = orders.id
          AND c.precert_der IS NOT NULL AND c.der = c.precert_der)"
    };
}

/// One implementation for both engines: the SQL is the same, and what differs (whose turn it
/// is to write, what makes a commit durable) is `SqlxBackend`'s.
#[async_trait]
impl<B> CtStore for B
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
    for<'q> &'q [u8]: sqlx::Encode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> String: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> i64: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Vec<u8>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<String>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<i64>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
{
    async fn store_precertificate(
        &self,
        order_id: &str,
        token: &str,
        cert: &CertRecord,
        cert_lifecycle: Option<(&str, Option<u32>)>,
    ) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        let held = sqlx::query(
            "UPDATE orders SET claim_token = claim_token
                     WHERE id = $1 AND status = 'processing' AND claim_token = $2",
        )
        .bind(order_id)
        .bind(token)
        .execute(&mut *tx)
        .await?;
        if held.rows() != 1 {
            return Ok(false);
        }
        if let Some((profile, shard)) = cert_lifecycle {
            sqlx::query(crate::sa::sql::stmt::INSERT_CERT_LIFECYCLE)
                .bind(&cert.id)
                .bind(profile)
                .bind(shard.map(i64::from))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO certificates (id, tenant, serial, account_id, order_id, der, names,
                         not_before, not_after, issued_at, precert_der, issuer)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $6, $11)",
        )
        .bind(&cert.id)
        .bind(&cert.tenant)
        .bind(&cert.serial)
        .bind(&cert.account_id)
        .bind(&cert.order_id)
        .bind(&cert.der)
        .bind(crate::sa::sql::json(&cert.names))
        .bind(cert.not_before)
        .bind(cert.not_after)
        .bind(cert.issued_at)
        // The CA that signs both the precertificate and the final certificate (a
        // rollover in between does not change which one answers for the serial).
        .bind(&cert.issuer)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(true)
    }

    async fn precert_of_order(&self, order_id: &str) -> Result<Option<PrecertRecord>, SaError> {
        let row = sqlx::query(
            "SELECT * FROM certificates WHERE order_id = $1 AND precert_der IS NOT NULL",
        )
        .bind(order_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(PrecertRecord {
            cert: crate::sa::rows::cert(&row)?,
            precert_der: row.try_get("precert_der")?,
        }))
    }

    async fn store_final_certificate(
        &self,
        order_id: &str,
        token: &str,
        cert_id: &str,
        der: &[u8],
    ) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        let held = sqlx::query(crate::sa::sql::stmt::ORDER_VALID)
            .bind(cert_id)
            .bind(order_id)
            .bind(token)
            .execute(&mut *tx)
            .await?;
        if held.rows() != 1 {
            return Ok(false);
        }
        let replaced = sqlx::query(
            "UPDATE certificates SET der = $1
                     WHERE id = $2 AND order_id = $3 AND der = precert_der",
        )
        .bind(der)
        .bind(cert_id)
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
        if replaced.rows() != 1 {
            // Dropping the transaction rolls the order back: one final certificate only.
            return Ok(false);
        }
        tx.commit().await?;
        self.durable().await?;
        Ok(true)
    }

    async fn defer_order(&self, order_id: &str, token: &str, until: i64) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let done = sqlx::query(
            "UPDATE orders SET claim_until = $3
                     WHERE id = $1 AND status = 'processing' AND claim_token = $2",
        )
        .bind(order_id)
        .bind(token)
        .bind(until)
        .execute(self.writer(&pass))
        .await?;
        self.durable().await?;
        Ok(done.rows() == 1)
    }

    async fn due_precert_orders(&self, now: i64, limit: u32) -> Result<Vec<String>, SaError> {
        let rows = sqlx::query(concat!(
            "SELECT id FROM orders WHERE status = 'processing'
                     AND (claim_until IS NULL OR claim_until < $1)",
            awaiting_final!(),
            " ORDER BY claim_until LIMIT $2"
        ))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(0)?))
            .collect()
    }

    async fn try_reclaim_order(
        &self,
        order_id: &str,
        claim: &OrderClaim,
        now: i64,
    ) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let done = sqlx::query(concat!(
            "UPDATE orders SET claim_token = $2, claim_until = $3
                     WHERE id = $1 AND status = 'processing'
                     AND (claim_until IS NULL OR claim_until < $4)",
            awaiting_final!()
        ))
        .bind(order_id)
        .bind(&claim.token)
        .bind(claim.until)
        .bind(now)
        .execute(self.writer(&pass))
        .await?;
        self.durable().await?;
        Ok(done.rows() == 1)
    }
}
