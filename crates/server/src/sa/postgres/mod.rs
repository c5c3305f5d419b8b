//! The PostgreSQL backend, for several `fleetca serve` nodes sharing one database. It runs the
//! same SQL as SQLite (see `sql.rs`); row locks make the conditional updates (claim an order,
//! start a challenge, revoke once) safe across nodes, and sqlx takes an advisory lock around
//! migrations so nodes starting together migrate once.

mod lifecycle;
mod nonce;
mod ride;
pub(super) mod stmt;
mod storage;

use super::SaError;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

/// How long a query waits for a pooled connection (or for the server to accept one).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled connection idle this long is pinged before use.
const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections a node keeps to PostgreSQL unless told otherwise (`serve --database-pool`).
/// Each node holds its own pool: the sum over the nodes must stay below the server's
/// `max_connections` (100 by default), less what the operator's own sessions need.
pub const DEFAULT_POOL: u32 = 16;

/// PostgreSQL implementation of [`Storage`](crate::sa::Storage).
#[derive(Clone)]
pub struct PgStorage {
    pool: PgPool,
}

impl PgStorage {
    /// Connects to `url` (`postgres://user:pass@host:port/db`) with a pool of
    /// [`DEFAULT_POOL`] connections and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, SaError> {
        Self::connect_pool(url, DEFAULT_POOL).await
    }

    /// [`Self::connect`] with a pool of at most `pool` connections (at least one).
    pub async fn connect_pool(url: &str, pool: u32) -> Result<Self, SaError> {
        Self::connect_with_pool(PgConnectOptions::from_str(url)?, pool).await
    }

    /// Connects with explicit options (tests use a private `search_path` per test).
    pub async fn connect_with(opts: PgConnectOptions) -> Result<Self, SaError> {
        Self::connect_with_pool(opts, DEFAULT_POOL).await
    }

    /// [`Self::connect_with`] with a pool of at most `pool` connections (at least one).
    pub(crate) async fn connect_with_pool(
        opts: PgConnectOptions,
        pool: u32,
    ) -> Result<Self, SaError> {
        let pool = PgPoolOptions::new()
            .max_connections(pool.max(1))
            // While the database is down, sqlx retries refused connections until this
            // deadline and then fails the call (`PoolTimedOut`, answered 500 + Retry-After):
            // long enough to ride out a saturated pool, short enough that a device waiting on
            // an outage hears "retry later" promptly.
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A connection that sat idle long enough to have died with the server is pinged
            // before it is handed out, so dead ones are dropped and replaced once the server is
            // back: the pool recovers by itself, without a restart. A busy pool's connections
            // were used a moment ago (sqlx pings each on release, off the request's path), so
            // pinging them again would only add a round trip in front of every statement.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IDLE_AFTER {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(opts.options([
                // The plans pg_plans checks are the generic ones (it EXPLAINs under this
                // setting), and re-planning the larger statements for every execution's
                // parameters costs more than running them.
                ("plan_cache_mode", "force_generic_plan"),
            ]))
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }
}

impl PgStorage {
    /// The pool, for fixtures of tests outside `sa/` that write raw SQL.
    #[cfg(test)]
    pub(crate) fn pool_for_tests(&self) -> &PgPool {
        &self.pool
    }

    /// Counts the rows of each core table and digests their contents.
    pub async fn table_counts(&self) -> Result<super::TableCounts, SaError> {
        super::sqlx_storage::SqlxStorage::table_counts(self).await
    }
}

#[async_trait]
impl super::backend::SqlxBackend for PgStorage {
    type Db = sqlx::Postgres;
    /// Writers need no turn: PostgreSQL's row locks order them.
    type Pass = ();

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn write_access(&self) -> Result<(), SaError> {
        Ok(())
    }

    fn writer<'a>(&'a self, _pass: &'a ()) -> &'a PgPool {
        &self.pool
    }

    /// A PostgreSQL commit is durable by itself (`synchronous_commit=on`, grouped by the
    /// server): nothing to wait for.
    async fn durable(&self) -> Result<(), SaError> {
        Ok(())
    }
}
