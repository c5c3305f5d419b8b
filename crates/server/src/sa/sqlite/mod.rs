//! The embedded SQLite backend: one file in the data directory, WAL journal. A write is on
//! disk before the storage layer returns, by one of two routes: the issuance-path writes run
//! on the writer thread, batched into transactions whose commit syncs (`sqlite/batch.rs`);
//! the others go through one sqlx connection running `synchronous=NORMAL` with a
//! group-commit barrier after each write (`group_commit.rs`). Reading connections run
//! `synchronous=FULL`.

pub(super) mod batch;
mod group_commit;
pub(super) mod reads;
mod snapshot;
pub(super) mod writes;

use super::sql::{is_unique_violation, json, sql_storage};
use super::*;
use async_trait::async_trait;
use batch::{BatchWriter, WriteAccess};
use group_commit::GroupSync;
use reads::InlineReads;
pub use snapshot::sqlite_snapshot;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite implementation of [`Storage`].
#[derive(Clone)]
pub struct SqliteStorage {
    pool: SqlitePool,
    /// One connection that every sqlx write goes through, while its `WriteAccess` keeps the
    /// writer thread parked (so it is the only writer of the process then). SQLite admits
    /// one writer at a time anyway; queueing writers here, in order and without sleeping,
    /// replaces SQLite's busy handler, whose back-off sleeps (up to 100 ms each) left the write
    /// lock idle while requests waited. It also rules out `SQLITE_BUSY_SNAPSHOT` for a
    /// transaction that reads before it writes, since no other connection of this process
    /// can commit in between.
    writer: SqlitePool,
    /// What a database file adds; `None` in memory, where every further connection would be
    /// a separate database, so everything goes through `pool`.
    file: Option<Arc<FileParts>>,
}

/// The paths around sqlx that a database file gets.
struct FileParts {
    /// Durability barrier for writes through `writer`.
    group: GroupSync,
    /// The writer thread that runs the issuance-path writes (`sqlite::batch`).
    batch: BatchWriter,
    /// The issuance path's reads, run on the calling thread (`sqlite::reads`).
    reads: InlineReads,
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
            // Kept open for the life of the process, so SQLite never closes the last
            // connection under the barrier (which would checkpoint and remove the WAL).
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts.synchronous(SqliteSynchronous::Normal))
            .await?;
        let batch = BatchWriter::open(path)?;
        Ok(Self {
            pool,
            writer,
            file: Some(Arc::new(FileParts {
                group: GroupSync::new(path),
                batch,
                reads: InlineReads::new(path),
            })),
        })
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
            file: None,
        })
    }

    /// The pool, for the narrow per-caller stores in sibling modules (`sa::eab`).
    /// The pool, for fixtures of tests outside `sa/` that write raw SQL.
    #[cfg(test)]
    pub(crate) fn pool_for_tests(&self) -> &SqlitePool {
        self.pool()
    }

    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The sqlx writing connection (see the field's comment), for holders of a
    /// [`Self::write_access`].
    pub(super) fn writer(&self, _access: &WriteAccess) -> &SqlitePool {
        &self.writer
    }

    /// Parks the writer thread so a sqlx write has the database to itself (`sqlite::batch`).
    pub(super) async fn write_access(&self) -> Result<WriteAccess, SaError> {
        match self.batch_writer() {
            Some(b) => Ok(WriteAccess::paused(b.pause().await?)),
            None => Ok(WriteAccess::unshared()),
        }
    }

    /// The writer thread, when the database is a file.
    pub(super) fn batch_writer(&self) -> Option<&BatchWriter> {
        self.file.as_ref().map(|f| &f.batch)
    }

    /// The inline readers, when the database is a file.
    pub(super) fn inline_reads(&self) -> Option<&InlineReads> {
        self.file.as_ref().map(|f| &f.reads)
    }

    /// (transactions, writes) the writer thread has run: their ratio is the batch size.
    pub fn write_batch_counts(&self) -> (u64, u64) {
        self.batch_writer().map_or((0, 0), |b| b.counts())
    }

    /// Returns once every write that finished through [`Self::writer`] before the call is
    /// durable. Every writing method calls it before reporting success.
    pub(super) async fn durable(&self) -> Result<(), SaError> {
        match self.file.as_ref().map(|f| &f.group) {
            Some(g) => g.barrier().await.map_err(SaError::Durability),
            None => Ok(()),
        }
    }

    /// (durability barriers, `fdatasync`s) since open: their ratio is the average commit group.
    pub fn group_commit_counts(&self) -> (u64, u64) {
        self.file.as_ref().map_or((0, 0), |f| f.group.counts())
    }

    /// Runs `PRAGMA integrity_check` and returns its verdict (`ok` when healthy).
    pub async fn integrity_check(&self) -> Result<String, SaError> {
        let row = sqlx::query("PRAGMA integrity_check")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<String, _>(0)?)
    }
}

sql_storage!(SqliteStorage);
