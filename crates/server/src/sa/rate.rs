//! Rate-limit buckets kept in the database, so several `serve` nodes sharing PostgreSQL
//! enforce one fleet-wide limit instead of one limit each (see `wfe::ratelimit`).
//!
//! A bucket is one row: tokens left and when they were counted. An operation locks its rows
//! in key order, refills them from the elapsed time, decides, and writes them back, all in
//! one transaction: concurrent requests on different nodes queue on the row instead of both
//! spending the last token, and a refusal changes nothing.
//! - PostgreSQL: one call of the `fleetca_rate_apply` function (migration 0019), so an
//!   operation is one round trip whatever the number of buckets. On the issuance's path the
//!   call rides inside the request's own statement instead ([`BucketCharge`]: newOrder's
//!   lookup, the challenge's start, the validation's outcome), so it costs no round trip.
//! - SQLite: plain statements on the writing connection, each bucket locked with a no-op
//!   upsert (`ON CONFLICT DO UPDATE ... RETURNING`, which also creates a full bucket the
//!   first time); a refusal rolls the transaction back.

use super::backend::{RowsAffected, SqlxBackend};
use super::SaError;
use async_trait::async_trait;
use sqlx::Row;

/// One bucket an operation touches.
#[derive(Clone, Debug)]
pub struct SharedBucket {
    /// The limit's config key (`new_orders_per_account_per_hour`, ...).
    pub limit: &'static str,
    /// Whose bucket: an account id, an IP address, a registered name.
    pub subject: String,
    /// Bucket size (tokens when full).
    pub size: f64,
    /// Tokens added per second.
    pub per_sec: f64,
}

/// What an operation does to its buckets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RateOp {
    /// Refuse if any bucket is empty; take nothing.
    Check,
    /// Take one token from every bucket, or refuse and take none.
    Take,
    /// Add `delta` tokens (negative: record an event after the fact), clamped to
    /// `0..=size`; never refuses.
    Adjust(f64),
}

/// A refusal: the index (in the caller's order) of the bucket that needs longest to hold a
/// token again, and that wait in seconds.
pub type Refusal = (usize, f64);

/// Shared buckets that ride along in another storage step instead of an operation of their
/// own (PostgreSQL): the challenge POST's failed-validation token is taken by the statement
/// that starts the validation, and given back by the one that records its success. One
/// round trip fewer each, and the bucket and the challenge change together or not at all.
#[derive(Clone, Debug)]
pub struct BucketCharge {
    /// The tenant whose limits these are.
    pub tenant: String,
    /// The buckets, in the caller's order (a [`Refusal`] indexes it).
    pub buckets: Vec<SharedBucket>,
    /// Now, UNIX milliseconds, for refilling.
    pub now_ms: i64,
}

impl BucketCharge {
    /// The charge as `fleetca_rate_apply`'s arguments.
    pub(super) fn arrays(&self) -> BucketArrays<'_> {
        BucketArrays::of(&self.buckets, self.now_ms)
    }
}

/// Buckets as `fleetca_rate_apply`'s array arguments (limits, subjects, sizes, refill rates)
/// and the time to refill them to.
pub(super) struct BucketArrays<'a> {
    lims: Vec<&'a str>,
    subjects: Vec<&'a str>,
    sizes: Vec<f64>,
    rates: Vec<f64>,
    now_ms: i64,
}

impl<'a> BucketArrays<'a> {
    fn of(buckets: &'a [SharedBucket], now_ms: i64) -> Self {
        Self {
            lims: buckets.iter().map(|b| b.limit).collect(),
            subjects: buckets.iter().map(|b| b.subject.as_str()).collect(),
            sizes: buckets.iter().map(|b| b.size).collect(),
            rates: buckets.iter().map(|b| b.per_sec).collect(),
            now_ms,
        }
    }

    /// Binds the limits, subjects, sizes, rates and now, in that order, as the next five
    /// parameters of `q`.
    pub(super) fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        q.bind(&self.lims)
            .bind(&self.subjects)
            .bind(&self.sizes)
            .bind(&self.rates)
            .bind(self.now_ms)
    }
}

/// Database-kept rate-limit buckets.
#[async_trait]
pub trait RateStore: Send + Sync {
    /// Applies `op` to the tenant's `buckets` at `now_ms` (UNIX milliseconds).
    async fn rate_apply(
        &self,
        tenant: &str,
        buckets: &[SharedBucket],
        now_ms: i64,
        op: RateOp,
    ) -> Result<Option<Refusal>, SaError>;

    /// Deletes buckets that are full again by `now_ms` (they behave exactly like absent ones).
    async fn rate_prune(&self, now_ms: i64) -> Result<u64, SaError>;
}

/// Tokens after refilling `tokens` counted at `at_ms` up to `now_ms`.
pub(super) fn refill(b: &SharedBucket, tokens: f64, at_ms: i64, now_ms: i64) -> f64 {
    let dt = (now_ms - at_ms).max(0) as f64 / 1000.0;
    (tokens + dt * b.per_sec).min(b.size)
}

/// When a bucket holding `tokens` at `now_ms` is full again (for pruning).
pub(super) fn full_at(b: &SharedBucket, tokens: f64, now_ms: i64) -> i64 {
    if b.per_sec <= 0.0 {
        return i64::MAX;
    }
    now_ms + (((b.size - tokens).max(0.0) / b.per_sec) * 1000.0).ceil() as i64
}

/// SQLite's buckets: statement by statement in one transaction on the writing connection
/// (whose turn it is to write, and what makes the commit durable, are `SqlxBackend`'s).
#[async_trait]
impl RateStore for super::SqliteStorage {
    async fn rate_apply(
        &self,
        tenant: &str,
        buckets: &[SharedBucket],
        now_ms: i64,
        op: RateOp,
    ) -> Result<Option<Refusal>, SaError> {
        apply_in_transaction(self, tenant, buckets, now_ms, op).await
    }

    async fn rate_prune(&self, now_ms: i64) -> Result<u64, SaError> {
        prune(self, now_ms).await
    }
}

/// PostgreSQL's buckets: one call of `fleetca_rate_apply` (migration 0019), which locks,
/// decides and writes in the statement's own transaction, so an operation is one round trip
/// instead of `BEGIN`, two statements per bucket and `COMMIT`.
#[async_trait]
impl RateStore for super::PgStorage {
    async fn rate_apply(
        &self,
        tenant: &str,
        buckets: &[SharedBucket],
        now_ms: i64,
        op: RateOp,
    ) -> Result<Option<Refusal>, SaError> {
        if buckets.is_empty() {
            return Ok(None);
        }
        let (name, delta) = match op {
            RateOp::Check => ("check", 0.0),
            RateOp::Take => ("take", 0.0),
            RateOp::Adjust(d) => ("adjust", d),
        };
        let args = BucketArrays::of(buckets, now_ms);
        // Another call may create one of the buckets first; the statement then changed
        // nothing, and run again it finds the row and locks it.
        retrying(|| async {
            let q = sqlx::query(
                "SELECT refused, wait FROM fleetca_rate_apply($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(tenant);
            let row = args
                .bind(q)
                .bind(name)
                .bind(delta)
                .fetch_optional(self.pool())
                .await?;
            row.map(|r| Ok((r.try_get::<i32, _>(0)? as usize, r.try_get::<f64, _>(1)?)))
                .transpose()
        })
        .await
    }

    async fn rate_prune(&self, now_ms: i64) -> Result<u64, SaError> {
        prune(self, now_ms).await
    }
}

/// SQLSTATE `serialization_failure`.
const SERIALIZATION_FAILURE: &str = "40001";

/// How often a statement that applies buckets is run again after
/// [`bucket_created_concurrently`]: each retry finds the rows the previous lost to.
const RETRIES: u32 = 3;

/// Runs `attempt` (a statement that applies buckets) until it does not fail with
/// [`bucket_created_concurrently`], at most [`RETRIES`] times more.
pub(super) async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, SaError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SaError>>,
{
    let mut retries = 0;
    loop {
        match attempt().await {
            Err(SaError::Db(e)) if bucket_created_concurrently(&e) && retries < RETRIES => {
                retries += 1;
            }
            done => return done,
        }
    }
}

/// Whether `e` is `fleetca_rate_apply` finding that another call created one of its buckets
/// first (migration 0019): the whole statement changed nothing and may be run again.
fn bucket_created_concurrently(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some(SERIALIZATION_FAILURE))
}

/// An operation on `buckets` as one transaction of plain statements: each bucket locked in
/// key order with a no-op upsert, refilled, decided, written back.
async fn apply_in_transaction<B>(
    db: &B,
    tenant: &str,
    buckets: &[SharedBucket],
    now_ms: i64,
    op: RateOp,
) -> Result<Option<Refusal>, SaError>
where
    B: SqlxBackend,
    for<'c> &'c mut <B::Db as sqlx::Database>::Connection: sqlx::Executor<'c, Database = B::Db>,
    <B::Db as sqlx::Database>::Arguments: sqlx::IntoArguments<B::Db>,
    <B::Db as sqlx::Database>::QueryResult: RowsAffected,
    for<'q> &'q str: sqlx::Encode<'q, B::Db>
        + sqlx::Type<B::Db>
        + sqlx::ColumnIndex<<B::Db as sqlx::Database>::Row>,
    for<'q> f64: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> i64: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
{
    if buckets.is_empty() {
        return Ok(None);
    }
    // One lock order for every transaction, so two cannot wait on each other.
    let mut order: Vec<usize> = (0..buckets.len()).collect();
    order.sort_by(|&a, &b| {
        (buckets[a].limit, &buckets[a].subject).cmp(&(buckets[b].limit, &buckets[b].subject))
    });
    let pass = db.write_access().await?;
    let mut tx = db.writer(&pass).begin().await?;
    let mut tokens = vec![0.0f64; buckets.len()];
    for &i in &order {
        let b = &buckets[i];
        let row = sqlx::query(
            "INSERT INTO rate_buckets (tenant, lim, subject, tokens, at_ms, full_at_ms)
             VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (tenant, lim, subject) DO UPDATE SET at_ms = rate_buckets.at_ms
             RETURNING tokens, at_ms",
        )
        .bind(tenant)
        .bind(b.limit)
        .bind(b.subject.as_str())
        .bind(b.size)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await?;
        tokens[i] = refill(b, row.try_get("tokens")?, row.try_get("at_ms")?, now_ms);
    }
    if matches!(op, RateOp::Check | RateOp::Take) {
        let mut refused: Option<Refusal> = None;
        for (i, b) in buckets.iter().enumerate() {
            if tokens[i] < 1.0 {
                let wait = (1.0 - tokens[i]) / b.per_sec;
                if refused.is_none_or(|(_, w)| wait > w) {
                    refused = Some((i, wait));
                }
            }
        }
        if refused.is_some() || op == RateOp::Check {
            // Nothing to write: dropping the transaction rolls back the upserts.
            tx.rollback().await?;
            return Ok(refused);
        }
    }
    for &i in &order {
        let b = &buckets[i];
        let left = match op {
            RateOp::Adjust(delta) => (tokens[i] + delta).clamp(0.0, b.size),
            _ => tokens[i] - 1.0,
        };
        sqlx::query(
            "UPDATE rate_buckets SET tokens = $4, at_ms = $5, full_at_ms = $6
             WHERE tenant = $1 AND lim = $2 AND subject = $3",
        )
        .bind(tenant)
        .bind(b.limit)
        .bind(b.subject.as_str())
        .bind(left)
        .bind(now_ms)
        .bind(full_at(b, left, now_ms))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    db.durable().await?;
    Ok(None)
}

/// Deletes the buckets that are full again by `now_ms`.
async fn prune<B>(db: &B, now_ms: i64) -> Result<u64, SaError>
where
    B: SqlxBackend,
    for<'c> &'c mut <B::Db as sqlx::Database>::Connection: sqlx::Executor<'c, Database = B::Db>,
    <B::Db as sqlx::Database>::Arguments: sqlx::IntoArguments<B::Db>,
    <B::Db as sqlx::Database>::QueryResult: RowsAffected,
    for<'q> &'q str: sqlx::Encode<'q, B::Db>
        + sqlx::Type<B::Db>
        + sqlx::ColumnIndex<<B::Db as sqlx::Database>::Row>,
    for<'q> f64: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> i64: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
{
    let pass = db.write_access().await?;
    let r = sqlx::query("DELETE FROM rate_buckets WHERE full_at_ms <= $1")
        .bind(now_ms)
        .execute(db.writer(&pass))
        .await?;
    db.durable().await?;
    Ok(r.rows())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sa::{PgStorage, SqliteStorage};
    use std::sync::Arc;

    fn bucket(limit: &'static str, subject: &str, size: f64, per_sec: f64) -> SharedBucket {
        SharedBucket {
            limit,
            subject: subject.into(),
            size,
            per_sec,
        }
    }

    async fn semantics(db: &dyn RateStore) {
        let t0 = 1_000_000;
        let apply = |b: &[SharedBucket], at: i64, op: RateOp| {
            let b = b.to_vec();
            async move { db.rate_apply("t", &b, at, op).await.unwrap() }
        };
        // Two per hour.
        let a = [bucket("orders", "acct", 2.0, 2.0 / 3600.0)];
        assert_eq!(apply(&a, t0, RateOp::Take).await, None);
        assert_eq!(apply(&a, t0, RateOp::Take).await, None);
        let (i, wait) = apply(&a, t0, RateOp::Take)
            .await
            .expect("third take refused");
        assert_eq!(i, 0);
        assert!((wait - 1800.0).abs() < 1.0, "{wait}");
        // Half an hour later one token is back.
        let later = t0 + 1_800_000;
        assert_eq!(apply(&a, later, RateOp::Check).await, None);
        assert_eq!(apply(&a, later, RateOp::Take).await, None);
        assert!(apply(&a, later, RateOp::Check).await.is_some());
        // A refund gives it back; another tenant's bucket of the same name is separate.
        apply(&a, later, RateOp::Adjust(1.0)).await;
        assert_eq!(apply(&a, later, RateOp::Take).await, None);
        assert_eq!(
            db.rate_apply("u", &a, later, RateOp::Take).await.unwrap(),
            None
        );

        // All or nothing: the empty name bucket refuses and the account bucket keeps its
        // tokens.
        let acct = bucket("orders", "acct2", 5.0, 5.0 / 3600.0);
        let name = bucket("names", "x.example", 1.0, 1.0 / 604_800.0);
        let both = [acct.clone(), name];
        assert_eq!(apply(&both, t0, RateOp::Take).await, None);
        let (i, _) = apply(&both, t0, RateOp::Take).await.unwrap();
        assert_eq!(i, 1, "the name bucket is the one refusing");
        for _ in 0..4 {
            assert_eq!(
                apply(std::slice::from_ref(&acct), t0, RateOp::Take).await,
                None
            );
        }
        // Recording never refuses and never goes below zero.
        let f = [bucket("failed", "acct", 1.0, 1.0 / 3600.0)];
        for _ in 0..3 {
            apply(&f, t0, RateOp::Adjust(-1.0)).await;
        }
        let (_, wait) = apply(&f, t0, RateOp::Check).await.unwrap();
        assert!(
            (wait - 3600.0).abs() < 1.0,
            "clamped at zero tokens: {wait}"
        );

        // Pruning forgets exactly the buckets that are full again.
        let week = t0 + 8 * 86_400_000;
        assert_eq!(db.rate_prune(t0).await.unwrap(), 0);
        assert!(db.rate_prune(week).await.unwrap() >= 4);
        assert_eq!(db.rate_prune(week).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn sqlite_rate_buckets() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStorage::open(&dir.path().join("r.db")).await.unwrap();
        semantics(&db).await;
    }

    #[tokio::test]
    async fn postgres_rate_buckets() {
        if let Some((db, _)) = super::super::tests::postgres_pair().await {
            semantics(db.as_ref()).await;
        }
    }

    /// Two nodes (two pools on one database) racing for the last tokens of one bucket: each
    /// token is spent once.
    #[tokio::test]
    async fn postgres_nodes_share_one_bucket() {
        let Some((a, b)) = super::super::tests::postgres_pair().await else {
            return;
        };
        let bk = [bucket("orders", "shared", 10.0, 10.0 / 3600.0)];
        let granted = race(&a, &b, |_| bk.to_vec()).await;
        assert_eq!(granted, 10);

        // Two buckets per call, named in either order by alternate calls: one lock order
        // for all, so none waits on another forever, and each call takes from both or none.
        let orders = bucket("orders", "pair", 10.0, 10.0 / 3600.0);
        let names = bucket("names", "pair.example", 100.0, 100.0 / 604_800.0);
        let granted = race(&a, &b, |i| {
            if i % 3 == 0 {
                vec![orders.clone(), names.clone()]
            } else {
                vec![names.clone(), orders.clone()]
            }
        })
        .await;
        assert_eq!(granted, 10);
        // The name bucket gave exactly as many tokens: 90 left, so 90 more single takes.
        let names = [names];
        for _ in 0..90 {
            assert_eq!(
                a.rate_apply("t", &names, 5_000, RateOp::Take)
                    .await
                    .unwrap(),
                None
            );
        }
        assert!(a
            .rate_apply("t", &names, 5_000, RateOp::Take)
            .await
            .unwrap()
            .is_some());
    }

    /// 24 concurrent takes, alternately through `a` and `b`, of the buckets `buckets(i)`
    /// names for call `i`: how many were granted.
    async fn race(
        a: &Arc<PgStorage>,
        b: &Arc<PgStorage>,
        buckets: impl Fn(usize) -> Vec<SharedBucket>,
    ) -> usize {
        let mut tasks = Vec::new();
        for i in 0..24 {
            let db = if i % 2 == 0 { a.clone() } else { b.clone() };
            let bk = buckets(i);
            tasks.push(tokio::spawn(async move {
                db.rate_apply("t", &bk, 5_000, RateOp::Take)
                    .await
                    .unwrap()
                    .is_none()
            }));
        }
        let mut granted = 0;
        for t in tasks {
            granted += t.await.unwrap() as usize;
        }
        granted
    }
}
