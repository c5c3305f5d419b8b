//! The PostgreSQL backend, for several `fleetca serve` nodes sharing one database. It runs the
//! same SQL as SQLite (see `sql.rs`); row locks make the conditional updates (claim an order,
//! start a challenge, revoke once) safe across nodes, and sqlx takes an advisory lock around
//! migrations so nodes starting together migrate once.

use super::sql::{from_json, is_unique_violation, json, sql_storage};
use super::*;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// PostgreSQL implementation of [`Storage`].
#[derive(Clone)]
pub struct PgStorage {
    pool: PgPool,
}

impl PgStorage {
    /// Connects to `url` (`postgres://user:pass@host:port/db`) and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, SaError> {
        Self::connect_with(PgConnectOptions::from_str(url)?).await
    }

    /// Connects with explicit options (tests use a private `search_path` per test).
    pub async fn connect_with(opts: PgConnectOptions) -> Result<Self, SaError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }
}

sql_storage!(PgStorage, PgRow);

impl PgStorage {
    /// The pool, for the narrow per-caller stores in sibling modules.
    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }
}
