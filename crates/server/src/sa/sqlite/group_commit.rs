//! Group commit for the embedded SQLite database.
//!
//! With `synchronous=FULL` every commit pays its own `fsync` of the write-ahead log while it
//! holds SQLite's single write lock, so commits are serialized behind the disk. The writing
//! connection instead runs with `synchronous=NORMAL`: a commit appends its frames to the WAL
//! (page cache) and releases the lock at once. Before the storage layer tells its caller a
//! write happened, the caller passes a [`GroupSync::barrier`], which `fdatasync`s the WAL; one
//! `fdatasync` covers every commit that finished before it started, so concurrent requests
//! share it. The durability promise is unchanged: nothing is reported as written before it is
//! on disk.
//!
//! Why this is sound: in WAL mode SQLite's recovery keeps exactly the frames whose checksums
//! chain from the WAL header up to a commit frame. `synchronous=FULL` makes a commit durable by
//! syncing the WAL after writing the commit frame; the barrier does the same sync, only later
//! and shared. Checkpoints under `synchronous=NORMAL` still sync the WAL before copying it into
//! the database and the database after (<https://sqlite.org/pragma.html#pragma_synchronous>),
//! so a WAL restart never drops a frame the barrier reported durable. `fdatasync` flushes the
//! file (inode), whichever descriptor wrote it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::Mutex;

/// Coalesces durability barriers for one SQLite database file.
pub(crate) struct GroupSync {
    wal: PathBuf,
    db: PathBuf,
    /// Barrier calls so far; a call's number is its ticket.
    requested: AtomicU64,
    /// Every ticket up to this one is durable.
    covered: AtomicU64,
    /// Held while a sync runs; callers queue here in order.
    syncing: Mutex<()>,
    /// Syncs actually performed (a metric: barriers / syncs is the group size).
    syncs: AtomicU64,
    /// Set when a sync failed. After a failed `fsync` Linux may drop the dirty pages and
    /// report the next `fsync` as clean, so no later barrier can vouch for anything written
    /// before it: every barrier fails until the process restarts and SQLite recovers from
    /// what is really on disk (PostgreSQL makes the same choice and panics).
    poisoned: AtomicBool,
}

impl GroupSync {
    /// Barriers for the database file at `db` (its WAL is `<db>-wal`).
    pub(crate) fn new(db: &Path) -> Self {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        Self {
            wal: PathBuf::from(wal),
            db: db.to_path_buf(),
            requested: AtomicU64::new(0),
            covered: AtomicU64::new(0),
            syncing: Mutex::new(()),
            syncs: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// Returns once every commit that completed before this call is on disk.
    pub(crate) async fn barrier(&self) -> std::io::Result<()> {
        // SeqCst on both counters: a sync that loads `requested` must see every ticket whose
        // commit finished before the ticket was taken.
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        metrics::counter!(crate::metrics::SQLITE_COMMIT_BARRIERS).increment(1);
        let _turn = self.syncing.lock().await;
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(std::io::Error::other(
                "an earlier fsync of the database failed; restart fleetca",
            ));
        }
        if self.covered.load(Ordering::SeqCst) >= ticket {
            // A sync that started after our commit finished while we queued.
            return Ok(());
        }
        // Every ticket taken so far belongs to a commit that already finished, so the sync
        // about to start covers all of them.
        let upto = self.requested.load(Ordering::SeqCst);
        let (wal, db) = (self.wal.clone(), self.db.clone());
        let synced = tokio::task::spawn_blocking(move || sync_files(&wal, &db))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        if let Err(e) = synced {
            self.poisoned.store(true, Ordering::SeqCst);
            tracing::error!(error = %e, "fsync of the SQLite database failed; every write now fails until fleetca restarts");
            return Err(e);
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::metrics::SQLITE_WAL_SYNCS).increment(1);
        self.covered.fetch_max(upto, Ordering::SeqCst);
        Ok(())
    }

    /// (barriers requested, syncs performed) since start.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.requested.load(Ordering::Relaxed),
            self.syncs.load(Ordering::Relaxed),
        )
    }
}

/// Syncs the WAL. Opening it afresh each time, rather than keeping a descriptor, follows the
/// file if SQLite deleted and recreated it. A missing WAL means the last connection closed and
/// checkpointed it into the database file; syncing that file then covers the commits.
fn sync_files(wal: &Path, db: &Path) -> std::io::Result<()> {
    match std::fs::File::open(wal) {
        Ok(f) => f.sync_data().inspect(|()| record_sync(wal)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::File::open(db)?
            .sync_all()
            .inspect(|()| record_sync(db)),
        Err(e) => Err(e),
    }
}

/// The unit tests see which file each sync covered; other builds record nothing.
#[cfg(not(test))]
fn record_sync(_: &Path) {}

#[cfg(test)]
fn record_sync(path: &Path) {
    tests::synced(path);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Every file a sync succeeded on, in order (tests filter by their own temp dir).
    static SYNCED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

    pub(super) fn synced(path: &Path) {
        SYNCED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path.to_path_buf());
    }

    fn synced_under(dir: &Path) -> Vec<PathBuf> {
        SYNCED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|p| p.starts_with(dir))
            .cloned()
            .collect()
    }

    #[tokio::test]
    async fn concurrent_barriers_share_syncs_and_each_returns() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.sqlite");
        std::fs::write(&db, b"db").unwrap();
        std::fs::write(dir.path().join("x.sqlite-wal"), b"wal").unwrap();
        let g = Arc::new(GroupSync::new(&db));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let g = g.clone();
                tokio::spawn(async move { g.barrier().await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        // On this single-threaded runtime the first barrier syncs alone (nobody else had
        // asked yet) and the 63 that queued behind it share the second sync.
        let (req, syncs) = g.counts();
        assert_eq!((req, syncs), (64, 2));
        // A barrier after all others still syncs: its commit may be newer than every sync.
        g.barrier().await.unwrap();
        assert_eq!(g.counts().1, syncs + 1);
    }

    #[tokio::test]
    async fn missing_wal_syncs_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("y.sqlite");
        std::fs::write(&db, b"db").unwrap();
        let g = GroupSync::new(&db);
        g.barrier().await.unwrap();
        // The barrier synced, and synced the database file itself (no WAL to sync).
        assert_eq!(g.counts(), (1, 1));
        assert_eq!(synced_under(dir.path()), std::slice::from_ref(&db));
        // With a WAL back, the WAL is what gets synced.
        let mut wal = db.clone().into_os_string();
        wal.push("-wal");
        std::fs::write(&wal, b"wal").unwrap();
        g.barrier().await.unwrap();
        assert_eq!(g.counts(), (2, 2));
        assert_eq!(synced_under(dir.path()), [db, PathBuf::from(wal)]);
    }

    #[tokio::test]
    async fn a_failed_sync_fails_every_later_barrier() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("z.sqlite");
        let g = GroupSync::new(&db);
        // Neither the WAL nor the database exists: the sync fails.
        assert!(g.barrier().await.is_err());
        // Even once the files are back, nothing may be vouched for.
        std::fs::write(&db, b"db").unwrap();
        let err = g.barrier().await.unwrap_err();
        assert!(err.to_string().contains("restart"), "{err}");
    }
}
