//! The embedded SQLite backend: one file in the data directory, WAL journal, `synchronous=FULL`
//! so a committed row survives power loss before the front end says it exists.

use super::sql::{from_json, is_unique_violation, json, sql_storage};
use super::*;
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite implementation of [`Storage`].
#[derive(Clone)]
pub struct SqliteStorage {
    pool: SqlitePool,
    /// One connection that every writing statement and transaction goes through. SQLite admits
    /// one writer at a time anyway; queueing writers here, in order and without sleeping,
    /// replaces SQLite's busy handler, whose back-off sleeps (up to 100 ms each) left the write
    /// lock idle while requests waited. It also rules out `SQLITE_BUSY_SNAPSHOT` for a
    /// transaction that reads before it writes, since no other connection of this process
    /// can commit in between.
    writer: SqlitePool,
}

impl SqliteStorage {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, SaError> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts.clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        Ok(Self { pool, writer })
    }

    /// An in-memory database for unit tests (one connection, so every query sees the same data).
    pub async fn open_in_memory() -> Result<Self, SaError> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        Self::connect(opts, 1).await
    }

    async fn connect(opts: SqliteConnectOptions, max: u32) -> Result<Self, SaError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await?;
        // In memory every connection is a separate database: reads and writes share the one.
        Ok(Self {
            writer: pool.clone(),
            pool,
        })
    }

    /// The pool, for the narrow per-caller stores in sibling modules (`sa::eab`).
    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The single writing connection (see the field's comment).
    pub(super) fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// Runs `PRAGMA integrity_check` and returns its verdict (`ok` when healthy).
    pub async fn integrity_check(&self) -> Result<String, SaError> {
        let row = sqlx::query("PRAGMA integrity_check")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<String, _>(0)?)
    }
}

sql_storage!(SqliteStorage, SqliteRow);
