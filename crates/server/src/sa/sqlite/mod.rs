//! The embedded SQLite backend: one file in the data directory, WAL journal, one process.
//!
//! SQLite admits one writer at a time, so the write lock is the ceiling on issuance
//! throughput; this backend is built around that single writer instead of a pool of
//! contending connections:
//! - the issuance path's writes run on one writer thread (`batch.rs`, statements in
//!   `writes.rs`), batched into transactions whose commit syncs the WAL;
//! - the issuance path's point reads run on the calling thread (`reads.rs`), on `query_only`
//!   connections, without a hand-off to sqlx's connection thread;
//! - the rarer writes (admin, lifecycle, sweeps; see `sa::sqlx_storage` and the per-caller
//!   stores) go through one sqlx connection running `synchronous=NORMAL`, taken while the
//!   writer thread is parked, with a group-commit barrier after each (`group_commit.rs`).
//!   Reading connections run `synchronous=FULL`.
//!
//! A write is on disk before the storage layer returns, by whichever route it took.

pub(super) mod batch;
mod group_commit;
mod lifecycle;
mod reads;
mod snapshot;
mod storage;
mod writes;

pub use snapshot::sqlite_snapshot;

use super::backend::SqlxBackend;
use super::SaError;
use async_trait::async_trait;
use batch::{BatchWriter, WriteAccess};
use group_commit::GroupSync;
use reads::InlineReads;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite implementation of [`Storage`](super::Storage).
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
    /// The paths around sqlx.
    file: Arc<FileParts>,
}

/// The paths around sqlx that the database file gets.
struct FileParts {
    /// Durability barrier for writes through `writer`.
    group: GroupSync,
    /// The writer thread that runs the issuance-path writes (`sqlite::batch`).
    batch: BatchWriter,
    /// The issuance path's reads, run on the calling thread (`sqlite::reads`).
    reads: InlineReads,
    /// For [`SqliteStorage::open_scratch`]: the private directory holding the file, removed
    /// with the storage. Declared last, so it goes after the connections.
    _scratch: Option<ScratchDir>,
}

/// A private (0700) temporary directory, removed when dropped.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Best effort: a leftover directory in the temp dir is harmless.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl SqliteStorage {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, SaError> {
        Self::open_file(path, None).await
    }

    /// A fresh, private database for unit tests. A real file in a private temporary directory
    /// (removed when the storage is dropped), not `:memory:`: an in-memory database is one
    /// connection, so it could not have the writer thread and the inline readers, and tests
    /// would exercise a path production never takes.
    pub async fn open_scratch() -> Result<Self, SaError> {
        let dir = std::env::temp_dir().join(format!(
            "fleetca-sa-{}",
            crate::ids::new_id().replace(['-', '_'], "")
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| SaError::Db(sqlx::Error::Io(e)))?;
        let scratch = ScratchDir(dir);
        let path = scratch.0.join("fleetca.db");
        Self::open_file(&path, Some(scratch)).await
    }

    async fn open_file(path: &Path, scratch: Option<ScratchDir>) -> Result<Self, SaError> {
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
            file: Arc::new(FileParts {
                group: GroupSync::new(path),
                batch,
                reads: InlineReads::new(path),
                _scratch: scratch,
            }),
        })
    }

    /// The pool, for fixtures of tests outside `sa/` that write raw SQL.
    #[cfg(test)]
    pub(crate) fn pool_for_tests(&self) -> &SqlitePool {
        &self.pool
    }

    /// The writer thread.
    fn batch(&self) -> &BatchWriter {
        &self.file.batch
    }

    /// The inline readers.
    fn reads(&self) -> &InlineReads {
        &self.file.reads
    }

    /// (transactions, writes) the writer thread has run: their ratio is the batch size.
    pub fn write_batch_counts(&self) -> (u64, u64) {
        self.batch().counts()
    }

    /// (durability barriers, `fdatasync`s) since open: their ratio is the average commit group.
    pub fn group_commit_counts(&self) -> (u64, u64) {
        self.file.group.counts()
    }

    /// Counts the rows of each core table and digests their contents.
    pub async fn table_counts(&self) -> Result<super::TableCounts, SaError> {
        super::sqlx_storage::SqlxStorage::table_counts(self).await
    }

    /// Runs `PRAGMA integrity_check` and returns its verdict (`ok` when healthy).
    pub async fn integrity_check(&self) -> Result<String, SaError> {
        let row = sqlx::query("PRAGMA integrity_check")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<String, _>(0)?)
    }
}

#[async_trait]
impl SqlxBackend for SqliteStorage {
    type Db = sqlx::Sqlite;
    type Pass = WriteAccess;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Parks the writer thread, so the sqlx write has the database to itself.
    async fn write_access(&self) -> Result<WriteAccess, SaError> {
        Ok(WriteAccess::paused(self.batch().pause().await?))
    }

    fn writer<'a>(&'a self, _pass: &'a WriteAccess) -> &'a SqlitePool {
        &self.writer
    }

    /// Waits for the group-commit barrier (`group_commit.rs`).
    async fn durable(&self) -> Result<(), SaError> {
        self.file.group.barrier().await.map_err(SaError::Durability)
    }
}
