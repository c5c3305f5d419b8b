//! Aggregates for the operator dashboard (`/api/stats`): certificate counts per tenant, hourly
//! issuance and validation failures, and the certificates whose renewal falls in the coming
//! days. Read-only; the counting happens in SQL so a large fleet is not loaded row by row.

use super::backend::SqlxBackend;
use super::rows::Cols;
use super::SaError;
use async_trait::async_trait;
use serde::Serialize;
use sqlx::Row;

/// Certificate counts of one tenant at an instant.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct TenantCertCounts {
    /// Tenant.
    pub tenant: String,
    /// Unrevoked and unexpired.
    pub valid: i64,
    /// Of `valid`, those whose notAfter is within the next 24 hours.
    pub expiring_24h: i64,
    /// Revoked (expired or not).
    pub revoked: i64,
    /// Expired without being revoked.
    pub expired: i64,
}

/// A count in one time bucket of one tenant.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Bucket {
    /// Tenant.
    pub tenant: String,
    /// Bucket start (UNIX seconds, a multiple of the bucket width).
    pub start: i64,
    /// How many.
    pub count: i64,
}

/// An unrevoked, unexpired certificate's renewal inputs (no DER).
#[derive(Clone, Debug)]
pub struct RenewalRow {
    /// Tenant.
    pub tenant: String,
    /// Serial (lower-case hex).
    pub serial: String,
    /// Validity start.
    pub not_before: i64,
    /// Validity end.
    pub not_after: i64,
    /// The operator's window start (`renew-early`), if set.
    pub override_start: Option<i64>,
}

/// Dashboard aggregates.
#[async_trait]
pub trait StatsStore: Send + Sync {
    /// Per-tenant certificate counts at `now`.
    async fn cert_counts(&self, now: i64) -> Result<Vec<TenantCertCounts>, SaError>;
    /// Certificates issued since `since`, per tenant and hour.
    async fn issued_per_hour(&self, since: i64) -> Result<Vec<Bucket>, SaError>;
    /// Challenges that failed since `since`, per tenant and hour.
    async fn failed_validations_per_hour(&self, since: i64) -> Result<Vec<Bucket>, SaError>;
    /// Unrevoked certificates valid at `now` whose default renewal window (from a third of
    /// their lifetime, `ra::ari`) or override can begin before `until`.
    async fn renewal_candidates(&self, now: i64, until: i64) -> Result<Vec<RenewalRow>, SaError>;
}

/// One implementation for both engines: the SQL is the same, and what differs (whose turn it
/// is to write, what makes a commit durable) is `SqlxBackend`'s.
#[async_trait]
impl<B> StatsStore for B
where
    B: SqlxBackend,
    for<'c> &'c mut <B::Db as sqlx::Database>::Connection: sqlx::Executor<'c, Database = B::Db>,
    <B::Db as sqlx::Database>::Arguments: sqlx::IntoArguments<B::Db>,
    <B::Db as sqlx::Database>::Row: Cols,
    for<'q> &'q str: sqlx::Encode<'q, B::Db>
        + sqlx::Type<B::Db>
        + sqlx::ColumnIndex<<B::Db as sqlx::Database>::Row>,
    for<'q> String: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> i64: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<String>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<i64>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
{
    async fn cert_counts(&self, now: i64) -> Result<Vec<TenantCertCounts>, SaError> {
        let rows = sqlx::query(
                    "SELECT tenant,
                        SUM(CASE WHEN revoked_at IS NULL AND not_after > $1 THEN 1 ELSE 0 END) AS valid,
                        SUM(CASE WHEN revoked_at IS NULL AND not_after > $1 AND not_after <= $2 THEN 1 ELSE 0 END) AS expiring,
                        SUM(CASE WHEN revoked_at IS NOT NULL THEN 1 ELSE 0 END) AS revoked,
                        SUM(CASE WHEN revoked_at IS NULL AND not_after <= $1 THEN 1 ELSE 0 END) AS expired
                     FROM certificates GROUP BY tenant ORDER BY tenant",
                )
                .bind(now)
                .bind(now + 86_400)
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| {
                Ok(TenantCertCounts {
                    tenant: r.try_get("tenant")?,
                    valid: r.try_get("valid")?,
                    expiring_24h: r.try_get("expiring")?,
                    revoked: r.try_get("revoked")?,
                    expired: r.try_get("expired")?,
                })
            })
            .collect()
    }

    async fn issued_per_hour(&self, since: i64) -> Result<Vec<Bucket>, SaError> {
        let rows = sqlx::query(
            "SELECT tenant, issued_at / 3600 AS h, COUNT(*) AS n FROM certificates
                     WHERE issued_at >= $1 GROUP BY tenant, issued_at / 3600 ORDER BY h, tenant",
        )
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(bucket).collect()
    }

    async fn failed_validations_per_hour(&self, since: i64) -> Result<Vec<Bucket>, SaError> {
        let rows = sqlx::query(
            "SELECT a.tenant AS tenant, c.validated_at / 3600 AS h, COUNT(*) AS n
                     FROM challenges c JOIN authzs a ON a.id = c.authz_id
                     WHERE c.status = 'invalid' AND c.validated_at >= $1
                     GROUP BY a.tenant, c.validated_at / 3600 ORDER BY h, tenant",
        )
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(bucket).collect()
    }

    async fn renewal_candidates(&self, now: i64, until: i64) -> Result<Vec<RenewalRow>, SaError> {
        let rows = sqlx::query(
            "SELECT c.tenant AS tenant, c.serial AS serial, c.not_before AS not_before,
                            c.not_after AS not_after, r.window_start AS override_start
                     FROM certificates c LEFT JOIN renewal_overrides r ON r.cert_id = c.id
                     WHERE c.revoked_at IS NULL AND c.not_after > $1
                       AND (r.window_start < $2
                            OR c.not_before + (c.not_after - c.not_before) / 3 < $2)",
        )
        .bind(now)
        .bind(until)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RenewalRow {
                    tenant: r.try_get("tenant")?,
                    serial: r.try_get("serial")?,
                    not_before: r.try_get("not_before")?,
                    not_after: r.try_get("not_after")?,
                    override_start: r.try_get("override_start")?,
                })
            })
            .collect()
    }
}

fn bucket<R: Row>(r: &R) -> Result<Bucket, SaError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Bucket {
        tenant: r.try_get("tenant")?,
        start: r.try_get::<i64, _>("h")? * 3600,
        count: r.try_get("n")?,
    })
}
