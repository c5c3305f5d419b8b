//! The write path of the embedded SQLite database.
//!
//! SQLite admits one writer at a time, so whatever holds the write lock is the ceiling on
//! issuance throughput. Through sqlx, every statement of a write transaction is a round trip to
//! the driver's connection thread and back to a tokio worker: an eight-statement `newOrder`
//! held the lock across sixteen thread wake-ups, and under load each wake-up waits for a busy
//! core. The lock sat idle most of the time it was held (throughput stopped at ~240/s with a
//! quarter of the CPU idle, whatever the number of clients).
//!
//! Here one thread owns the writing connection and runs each write as a closure, start to
//! finish, with no hand-off inside it. Writes that queue while a batch runs form the next
//! batch: one `BEGIN IMMEDIATE`, a savepoint per write (a write that fails rolls back alone),
//! and one `COMMIT` whose WAL sync (`synchronous=FULL`) makes the whole batch durable before
//! any caller hears back. Nobody is told "done" before the commit is on disk, and a failed
//! commit fails every write of the batch.
//!
//! Writes that still go through sqlx (rare ones: admin, lifecycle, sweeps) take a
//! [`WritePass`] first, which parks this thread between batches, so the two writers never meet
//! at SQLite's busy handler.

use crate::sa::SaError;
use rusqlite::Connection;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tokio::sync::oneshot;

/// Most writes in one transaction: bounds how long one batch holds the lock.
const MAX_BATCH: usize = 128;

/// The savepoint each write runs under, so a failed write leaves the rest of its batch intact.
const SAVEPOINT: &str = "SAVEPOINT fleetca_write";
/// Keeps a write that succeeded.
const RELEASE: &str = "RELEASE fleetca_write";
/// Undoes a write that failed, leaving the batch's transaction open.
const UNDO: &str = "ROLLBACK TO fleetca_write; RELEASE fleetca_write";

/// Names of the `$N` parameters, so binding does not format them on every execution.
const PARAM_NAMES: [&str; 16] = [
    "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15",
    "$16",
];

/// Handle to the writer thread; cheap to clone. The thread ends when the last handle is gone.
#[derive(Clone)]
pub(crate) struct BatchWriter {
    queue: mpsc::Sender<Msg>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    batches: AtomicU64,
    writes: AtomicU64,
}

enum Msg {
    Write(Box<dyn Write>),
    Pause(PauseRequest),
}

struct PauseRequest {
    granted: oneshot::Sender<()>,
    /// Ends the pause when its sender (held in the [`WritePass`]) is dropped.
    release: mpsc::Receiver<()>,
}

/// While held, the writer thread is parked between batches, so a sqlx write on the other
/// writing connection has the database to itself. Dropping it lets the thread go on.
pub(crate) struct WritePass {
    _release: mpsc::Sender<()>,
}

/// Permission to write through the sqlx writing pool: holds a [`WritePass`], so the writer
/// thread stays parked. The pool accessor takes one, so no sqlx write can forget to take it.
pub(crate) struct WriteAccess {
    _pass: WritePass,
}

impl WriteAccess {
    /// Access while `pass` parks the writer thread.
    pub(crate) fn paused(pass: WritePass) -> Self {
        Self { _pass: pass }
    }
}

/// One queued write: run it inside the batch, then answer its caller once the batch's fate
/// is known.
trait Write: Send {
    /// Runs the write on the connection; returns whether it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller: its own result if the batch committed, else the commit failure.
    fn answer(self: Box<Self>, committed: Result<(), &rusqlite::Error>);
}

struct Job<F, T, E> {
    f: Option<F>,
    result: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<F, T, E> Write for Job<F, T, E>
where
    F: FnOnce(&Connection) -> Result<T, E> + Send,
    T: Send,
    E: From<SaError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        let r = f(conn);
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn answer(self: Box<Self>, committed: Result<(), &rusqlite::Error>) {
        let out = match (self.result, committed) {
            // A write that failed was rolled back to its savepoint; its own error says why.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (Some(Ok(_)), Err(e)) | (None, Err(e)) => Err(SaError::Sqlite(copy_error(e)).into()),
            (None, Ok(())) => {
                Err(SaError::WriterStopped("the write panicked and was rolled back").into())
            }
        };
        // The caller may have gone away (request cancelled); the write stands regardless.
        let _ = self.reply.send(out);
    }
}

/// The writing connection's settings.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // FULL: the COMMIT that ends a batch syncs the WAL, so the batch is durable when the
    // thread answers. busy_timeout only matters against another process (the CLI).
    // temp_store = MEMORY keeps the savepoints' sub-journal in memory: every write of a
    // batch copies the pages it touches there (so it can be undone alone), and past 64 KiB
    // SQLite spilled that copy to a temporary file, two pwrite calls per page.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;",
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

impl BatchWriter {
    /// Opens a writing connection to the database file at `path` (already migrated) and starts
    /// its thread.
    pub(crate) fn open(path: &Path) -> Result<Self, SaError> {
        let conn = Connection::open(path)?;
        configure(&conn)?;
        let (queue, rx) = mpsc::channel();
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, &c))
            .map_err(|_| SaError::WriterStopped("could not start the SQLite writer thread"))?;
        Ok(Self { queue, counts })
    }

    /// Runs `f` as one write on the writer thread and returns its result once the batch it
    /// joined is committed and synced. If `f` fails, its changes are rolled back and the rest
    /// of the batch is unaffected.
    pub(crate) async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<SaError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            f: Some(f),
            result: None,
            reply,
        };
        self.queue
            .send(Msg::Write(Box::new(job)))
            .map_err(|_| SaError::WriterStopped("the SQLite writer thread is gone"))?;
        rx.await
            .map_err(|_| SaError::WriterStopped("the write panicked and was rolled back"))?
    }

    /// Parks the writer thread between batches until the pass is dropped (see [`WritePass`]).
    pub(crate) async fn pause(&self) -> Result<WritePass, SaError> {
        let (granted, granted_rx) = oneshot::channel();
        let (release_tx, release) = mpsc::channel();
        self.queue
            .send(Msg::Pause(PauseRequest { granted, release }))
            .map_err(|_| SaError::WriterStopped("the SQLite writer thread is gone"))?;
        granted_rx
            .await
            .map_err(|_| SaError::WriterStopped("the SQLite writer thread is gone"))?;
        Ok(WritePass {
            _release: release_tx,
        })
    }

    /// (batches committed or attempted, writes run) since open: their ratio is the batch size.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.counts.batches.load(Ordering::Relaxed),
            self.counts.writes.load(Ordering::Relaxed),
        )
    }
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Msg>, counts: &Counts) {
    let mut carried: Option<Msg> = None;
    loop {
        let first = match carried.take() {
            Some(m) => m,
            None => match rx.recv() {
                Ok(m) => m,
                Err(_) => return, // every handle dropped
            },
        };
        let first = match first {
            Msg::Pause(p) => {
                // Nothing of ours is open: the other writer may go. A requester that gave up
                // dropped its pass, which ends the wait at once.
                if p.granted.send(()).is_ok() {
                    let _ = p.release.recv();
                }
                continue;
            }
            Msg::Write(w) => w,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Write(w)) => batch.push(w),
                Ok(pause @ Msg::Pause(_)) => {
                    // Served right after this batch, so a pause waits for one batch at most.
                    carried = Some(pause);
                    break;
                }
                Err(_) => break,
            }
        }
        counts.batches.fetch_add(1, Ordering::Relaxed);
        counts
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        metrics::counter!(crate::metrics::SQLITE_WRITE_BATCHES).increment(1);
        metrics::counter!(crate::metrics::SQLITE_BATCHED_WRITES).increment(batch.len() as u64);
        run_batch(&conn, batch);
    }
}

fn run_batch(conn: &Connection, batch: Vec<Box<dyn Write>>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        for w in batch {
            w.answer(Err(&e));
        }
        return;
    }
    let mut done = Vec::with_capacity(batch.len());
    let mut pending = batch.into_iter();
    while let Some(mut w) = pending.next() {
        if let Err(e) = conn.execute_batch(SAVEPOINT) {
            abort(
                conn,
                done.into_iter().chain([w]).chain(pending).collect(),
                &e,
            );
            return;
        }
        // A panicking write (a bug, or the signer) must not take the thread, and with it every
        // later write, down; it is rolled back like a failed one.
        let ok = catch_unwind(AssertUnwindSafe(|| w.run(conn))).unwrap_or(false);
        if let Err(e) = conn.execute_batch(if ok { RELEASE } else { UNDO }) {
            // E.g. an I/O error that made SQLite roll the whole transaction back.
            abort(
                conn,
                done.into_iter().chain([w]).chain(pending).collect(),
                &e,
            );
            return;
        }
        done.push(w);
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            for w in done {
                w.answer(Ok(()));
            }
        }
        Err(e) => abort(conn, done, &e),
    }
}

/// Rolls the whole batch back and fails every write in it (run or not) with `e`; a write
/// that failed by itself keeps its own error.
fn abort(conn: &Connection, batch: Vec<Box<dyn Write>>, e: &rusqlite::Error) {
    tracing::error!(error = %e, writes = batch.len(), "SQLite write batch failed; rolled back");
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for w in batch {
        w.answer(Err(e));
    }
}

/// The same error again, for each write of a failed batch (rusqlite errors are not `Clone`).
fn copy_error(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, msg) => {
            rusqlite::Error::SqliteFailure(*code, msg.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

/// Binds `params` to `$1..$N` by name and runs the statement; returns the rows changed.
///
/// By name, not position: SQLite numbers `$NAME` parameters in order of first appearance, and
/// the shared SQL texts are written for PostgreSQL's `$N`.
pub(crate) fn execute(
    conn: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind_numbered(&mut stmt, params)?;
    stmt.raw_execute()
}

/// Binds `params` to the statement's `$1..$N` by name; refuses a count that does not match.
pub(crate) fn bind_numbered(
    stmt: &mut rusqlite::Statement<'_>,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<()> {
    if stmt.parameter_count() != params.len() || params.len() > PARAM_NAMES.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            params.len(),
            stmt.parameter_count(),
        ));
    }
    for (p, name) in params.iter().zip(PARAM_NAMES) {
        let idx = stmt
            .parameter_index(name)?
            .ok_or_else(|| rusqlite::Error::InvalidParameterName(name.to_string()))?;
        stmt.raw_bind_parameter(idx, p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (tempfile::TempDir, BatchWriter) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.sqlite");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);",
        )
        .unwrap();
        drop(c);
        let w = BatchWriter::open(&path).unwrap();
        (dir, w)
    }

    fn count(dir: &tempfile::TempDir) -> i64 {
        Connection::open(dir.path().join("w.sqlite"))
            .unwrap()
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_rolls_back_alone_and_the_rest_commit() {
        let (dir, w) = writer();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                w.run(move |c| -> Result<(), SaError> {
                    execute(
                        c,
                        "INSERT INTO t (k, v) VALUES ($1, $2)",
                        &[&format!("k{i}"), &i],
                    )?;
                    if i % 10 == 0 {
                        // Written, then refused: the insert above must not survive.
                        return Err(SaError::Conflict(format!("refused {i}")));
                    }
                    Ok(())
                })
                .await
            }));
        }
        let mut refused = 0;
        for t in tasks {
            if t.await.unwrap().is_err() {
                refused += 1;
            }
        }
        assert_eq!(refused, 20);
        assert_eq!(count(&dir), 180);
        let (batches, writes) = w.counts();
        assert_eq!(writes, 200);
        assert!((1..=200).contains(&batches));
    }

    fn job<F>(f: F) -> (Box<dyn Write>, oneshot::Receiver<Result<(), SaError>>)
    where
        F: FnOnce(&Connection) -> Result<(), SaError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let j = Job {
            f: Some(f),
            result: None,
            reply,
        };
        (Box::new(j), rx)
    }

    /// A write that rewrites far more than the 64 KiB SQLite once spilled to a temporary file
    /// (here ~400 KiB of existing pages) and then fails is undone alone from the in-memory
    /// sub-journal; the writes around it in the same batch keep their changes.
    #[test]
    fn a_failed_write_with_a_large_savepoint_journal_rolls_back_alone() {
        let (dir, _w) = writer();
        let conn = Connection::open(dir.path().join("w.sqlite")).unwrap();
        configure(&conn).unwrap();
        conn.execute_batch("CREATE TABLE big (k INTEGER PRIMARY KEY, b TEXT NOT NULL)")
            .unwrap();
        for k in 0..100 {
            conn.execute("INSERT INTO big (k, b) VALUES (?1, '')", [k])
                .unwrap();
        }
        // Every row becomes 4,000 copies of `fill`.
        let rewrite = |fill: &'static str, fail: bool| {
            job(move |c| {
                execute(
                    c,
                    "UPDATE big SET b = replace(hex(zeroblob(2000)), '0', $1)",
                    &[&fill],
                )?;
                execute(c, "INSERT INTO t (k, v) VALUES ($1, $2)", &[&fill, &1])?;
                if fail {
                    return Err(SaError::Conflict("refused after rewriting".into()));
                }
                Ok(())
            })
        };
        let (a, mut ra) = rewrite("a", false);
        let (b, mut rb) = rewrite("b", true);
        let (c, mut rc) = job(|c| {
            execute(c, "INSERT INTO t (k, v) VALUES ($1, $2)", &[&"c", &3])?;
            Ok(())
        });
        run_batch(&conn, vec![a, b, c]);
        assert!(matches!(ra.try_recv(), Ok(Ok(()))));
        assert!(matches!(rb.try_recv(), Ok(Err(SaError::Conflict(_)))));
        assert!(matches!(rc.try_recv(), Ok(Ok(()))));
        let texts = |sql: &str| -> Vec<String> {
            let mut st = conn.prepare(sql).unwrap();
            let rows = st.query_map([], |r| r.get(0)).unwrap();
            rows.map(|r| r.unwrap()).collect()
        };
        assert_eq!(
            texts("SELECT DISTINCT b FROM big"),
            ["a".repeat(4000)],
            "the first write's rows, not the failed one's"
        );
        let keys = texts("SELECT k FROM t ORDER BY k");
        assert_eq!(keys, ["a", "c"]);
    }

    /// When the transaction itself is lost mid-batch (as SQLite does on some I/O errors),
    /// every write of the batch fails, those that ran and those that had not, and none of
    /// them is on disk.
    #[test]
    fn a_lost_transaction_fails_the_whole_batch() {
        let (dir, _w) = writer();
        let conn = Connection::open(dir.path().join("w.sqlite")).unwrap();
        let (a, ra) = job(|c| {
            execute(c, "INSERT INTO t (k, v) VALUES ($1, $2)", &[&"a", &1])?;
            Ok(())
        });
        let (b, rb) = job(|c| {
            // Stands in for SQLite rolling the transaction back under the batch.
            c.execute_batch("ROLLBACK")?;
            Ok(())
        });
        let (c, rc) = job(|c| {
            execute(c, "INSERT INTO t (k, v) VALUES ($1, $2)", &[&"c", &3])?;
            Ok(())
        });
        run_batch(&conn, vec![a, b, c]);
        for mut r in [ra, rb, rc] {
            assert!(
                matches!(r.try_recv(), Ok(Err(_))),
                "every write answered with an error"
            );
        }
        assert_eq!(count(&dir), 0);
        // The connection is usable again afterwards.
        let (d, rd) = job(|c| {
            execute(c, "INSERT INTO t (k, v) VALUES ($1, $2)", &[&"d", &4])?;
            Ok(())
        });
        run_batch(&conn, vec![d]);
        let mut rd = rd;
        assert!(matches!(rd.try_recv(), Ok(Ok(()))));
        assert_eq!(count(&dir), 1);
    }

    #[tokio::test]
    async fn the_writer_connection_syncs_every_commit_and_journals_savepoints_in_memory() {
        let (_dir, w) = writer();
        let (sync, journal, temp) = w
            .run(|c| -> Result<(i64, String, i64), SaError> {
                let sync = c.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
                let journal = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
                let temp = c.query_row("PRAGMA temp_store", [], |r| r.get(0))?;
                Ok((sync, journal, temp))
            })
            .await
            .unwrap();
        // 2 = FULL: the COMMIT ending a batch syncs the WAL before the callers hear back.
        // temp_store 2 = MEMORY: the per-write savepoints' page copies never touch a file.
        assert_eq!((sync, journal.as_str(), temp), (2, "wal", 2));
    }

    #[tokio::test]
    async fn a_panicking_write_is_rolled_back_and_the_thread_lives_on() {
        let (dir, w) = writer();
        let r = w
            .run(|c| -> Result<(), SaError> {
                execute(c, "INSERT INTO t (k, v) VALUES ($1, $2)", &[&"p", &1])?;
                panic!("signer blew up");
            })
            .await;
        assert!(r.is_err());
        w.run(|c| -> Result<usize, SaError> {
            Ok(execute(
                c,
                "INSERT INTO t (k, v) VALUES ($1, $2)",
                &[&"q", &2],
            )?)
        })
        .await
        .unwrap();
        assert_eq!(count(&dir), 1);
    }

    #[tokio::test]
    async fn parameters_bind_by_name_whatever_their_order() {
        let (dir, w) = writer();
        w.run(|c| -> Result<usize, SaError> {
            // $2 appears first: positional binding would swap the values.
            Ok(execute(
                c,
                "INSERT INTO t (v, k) VALUES ($2, $1)",
                &[&"named", &7],
            )?)
        })
        .await
        .unwrap();
        let v: i64 = Connection::open(dir.path().join("w.sqlite"))
            .unwrap()
            .query_row("SELECT v FROM t WHERE k = 'named'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 7);
        let wrong = w
            .run(|c| -> Result<usize, SaError> {
                Ok(execute(c, "INSERT INTO t (k, v) VALUES ($1, $2)", &[&"x"])?)
            })
            .await;
        assert!(wrong.is_err(), "a missing parameter is refused");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pass_keeps_the_writer_thread_out() {
        let (dir, w) = writer();
        let pass = w.pause().await.unwrap();
        let w2 = w.clone();
        let pending = tokio::spawn(async move {
            w2.run(|c| -> Result<usize, SaError> {
                Ok(execute(
                    c,
                    "INSERT INTO t (k, v) VALUES ($1, $2)",
                    &[&"after", &1],
                )?)
            })
            .await
        });
        // While the pass is held another connection writes without meeting a lock.
        let other = Connection::open(dir.path().join("w.sqlite")).unwrap();
        other.busy_timeout(Duration::ZERO).unwrap();
        other
            .execute("INSERT INTO t (k, v) VALUES ('during', 1)", [])
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !pending.is_finished(),
            "the queued write waits for the pass"
        );
        drop(pass);
        pending.await.unwrap().unwrap();
        assert_eq!(count(&dir), 2);
    }
}
