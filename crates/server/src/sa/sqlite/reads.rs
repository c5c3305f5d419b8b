//! The issuance path's reads on the embedded SQLite database, run on the calling thread.
//!
//! Through sqlx each read is a round trip to a connection thread and back (pool checkout,
//! command, rows, check-in), a handful of thread wake-ups for a lookup SQLite answers from
//! cache in microseconds. A full issuance makes 11 of them: the account ×5, the reusable
//! authorization, the account's subdomain-allowing authorizations, the authorization, the
//! authorization found by its challenge, the order with its authorizations' states and its
//! lifecycle, and the certificate. These reads
//! are primary-key or indexed lookups, short enough to run on the tokio worker itself, like
//! the CPU work around them. Long reads (listings, CRLs, exports) stay on sqlx, where they
//! cannot hold up a worker.
//!
//! In WAL mode a reader never waits for the writer, and sees exactly the transactions
//! committed before it started: everything a caller was told is written (the writer thread
//! answers after its commit and sync, sqlx writes after theirs).

use super::batch::bind_numbered;
use crate::sa::lifecycle::{OrderLifecycle, ORDER_LIFECYCLE_BY_ORDER};
use crate::sa::rows::{self, Cols, NamedRow};
use crate::sa::sql::stmt;
use crate::sa::StoredIdentifier;
use crate::sa::{
    AccountRecord, AncestorAuthz, AuthzRecord, CertRecord, ChallengeRecord, OrderRecord, SaError,
};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Idle connections kept for reuse; more are opened when more threads read at once.
const KEEP_IDLE: usize = 8;

/// Reading connections to one database file, checked out per read.
pub(crate) struct InlineReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl InlineReads {
    /// Reads of the database file at `path`.
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn open(&self) -> Result<Connection, SaError> {
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Read-write open (a WAL reader may need to write the shared-memory index), but
        // nothing here may change the database. No mmap_size: after every commit a reader's
        // next transaction drops its cache, and with a memory map SQLite unmaps and maps the
        // whole file again (munmap, TLB shootdowns); plain reads were ~10 % faster.
        c.execute_batch("PRAGMA query_only = ON;")?;
        c.busy_timeout(Duration::from_secs(10))?;
        c.set_prepared_statement_cache_capacity(32);
        Ok(c)
    }

    /// Runs `f` on an idle connection (or a new one) on this thread.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, SaError>,
    ) -> Result<T, SaError> {
        let conn = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match conn {
            Some(c) => c,
            None => self.open()?,
        };
        let out = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < KEEP_IDLE {
            idle.push(conn);
        }
        out
    }
}

/// The first row of `sql` with `$1`, `$2`, ... bound to `params`, mapped by `map`.
fn first<T>(
    c: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    map: fn(&NamedRow<'_, '_>) -> Result<T, SaError>,
) -> Result<Option<T>, SaError> {
    let mut stmt = c.prepare_cached(sql)?;
    bind_numbered(&mut stmt, params)?;
    let mut rows = stmt.raw_query();
    match rows.next()? {
        Some(r) => {
            let names = r.as_ref().column_names();
            Ok(Some(map(&NamedRow::new(r, &names))?))
        }
        None => Ok(None),
    }
}

/// See `Storage::get_account`.
pub(in crate::sa) fn get_account(
    c: &Connection,
    id: &str,
) -> Result<Option<AccountRecord>, SaError> {
    first(c, rows::ACCOUNT_BY_ID, &[&id], |r| rows::account(r))
}

/// See `Storage::get_challenge`.
pub(in crate::sa) fn get_challenge(
    c: &Connection,
    id: &str,
) -> Result<Option<ChallengeRecord>, SaError> {
    first(c, rows::CHALLENGE_BY_ID, &[&id], |r| rows::challenge(r))
}

/// See `Storage::get_cert`.
pub(in crate::sa) fn get_cert(c: &Connection, id: &str) -> Result<Option<CertRecord>, SaError> {
    first(c, rows::CERT_BY_ID, &[&id], |r| rows::cert(r))
}

/// A row joined with its children (see `rows::ORDER_WITH_AUTHZS`): the parent from the first
/// row, then each row's child added to it.
fn joined<T>(
    c: &Connection,
    sql: &str,
    key: &str,
    head: fn(&NamedRow<'_, '_>) -> Result<T, SaError>,
    link: fn(&mut T, &NamedRow<'_, '_>) -> Result<(), SaError>,
) -> Result<Option<T>, SaError> {
    let mut stmt = c.prepare_cached(sql)?;
    let names: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    bind_numbered(&mut stmt, &[&key])?;
    let mut rs = stmt.raw_query();
    let Some(first) = rs.next()? else {
        return Ok(None);
    };
    let first = NamedRow::new(first, &names);
    let mut parent = head(&first)?;
    link(&mut parent, &first)?;
    while let Some(r) = rs.next()? {
        link(&mut parent, &NamedRow::new(r, &names))?;
    }
    Ok(Some(parent))
}

/// See `Storage::get_order`.
pub(in crate::sa) fn get_order(c: &Connection, id: &str) -> Result<Option<OrderRecord>, SaError> {
    joined(
        c,
        rows::ORDER_WITH_AUTHZS,
        id,
        |r| rows::order_head(r),
        |o, r| rows::order_link(o, r),
    )
}

/// See `Storage::get_authz`.
pub(in crate::sa) fn get_authz(c: &Connection, id: &str) -> Result<Option<AuthzRecord>, SaError> {
    joined(
        c,
        rows::AUTHZ_WITH_CHALLENGES,
        id,
        |r| rows::authz_head(r),
        |a, r| rows::authz_challenge(a, r),
    )
}

/// See `Storage::get_authz_by_challenge`.
pub(in crate::sa) fn get_authz_by_challenge(
    c: &Connection,
    challenge_id: &str,
) -> Result<Option<AuthzRecord>, SaError> {
    joined(
        c,
        rows::AUTHZ_WITH_CHALLENGES_BY_CHALLENGE,
        challenge_id,
        |r| rows::authz_head(r),
        |a, r| rows::authz_challenge(a, r),
    )
}

/// See `LifecycleStore::get_order_lifecycle`.
pub(in crate::sa) fn get_order_lifecycle(
    c: &Connection,
    order_id: &str,
) -> Result<Option<OrderLifecycle>, SaError> {
    first(c, ORDER_LIFECYCLE_BY_ORDER, &[&order_id], |r| {
        rows::order_lifecycle(r)
    })
}

/// See `Storage::find_reusable_authz`.
pub(in crate::sa) fn find_reusable_authz(
    c: &Connection,
    account_id: &str,
    ident: &StoredIdentifier,
    wildcard: bool,
    min_expires: i64,
) -> Result<Option<String>, SaError> {
    first(
        c,
        stmt::REUSABLE_AUTHZ,
        &[
            &account_id,
            &ident.kind.as_str(),
            &ident.value,
            &(wildcard as i64),
            &min_expires,
        ],
        |r| r.text("id"),
    )
}

/// See `Storage::subdomain_ancestor_authzs`: newOrder asks it for every order with a DNS name
/// and no reusable authorization; an indexed read of one account's valid
/// subdomain-allowing authorizations, a handful of rows.
pub(in crate::sa) fn subdomain_ancestor_authzs(
    c: &Connection,
    tenant: &str,
    account_id: &str,
    now: i64,
) -> Result<Vec<AncestorAuthz>, SaError> {
    let mut stmt = c.prepare_cached(stmt::SUBDOMAIN_ANCESTOR_AUTHZS)?;
    let names: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    bind_numbered(&mut stmt, &[&account_id, &tenant, &now])?;
    let mut rs = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(r) = rs.next()? {
        let r = NamedRow::new(r, &names);
        out.push(AncestorAuthz {
            id: r.text("id")?,
            name: r.text("ident_value")?,
            expires: r.int("expires")?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_readers_cannot_write_and_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.sqlite");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (k TEXT);")
            .unwrap();
        let reads = InlineReads::new(&path);
        let refused = reads.read(|c| Ok(c.execute("INSERT INTO t (k) VALUES ('x')", [])?));
        assert!(refused.is_err(), "a reading connection is query_only");
        let n: i64 = reads
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(n, 0);
        // Both reads ran on one connection, returned to the idle list after each.
        assert_eq!(reads.idle.lock().unwrap().len(), 1);
    }

    #[test]
    fn columns_are_found_by_name_in_any_order() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t (k TEXT, n INTEGER, b BLOB, z TEXT);
             INSERT INTO t VALUES ('one', 1, x'0102', NULL), ('one', 2, x'03', 'x');",
        )
        .unwrap();
        let got = first(
            &c,
            "SELECT * FROM t WHERE k = $1 ORDER BY n",
            &[&"one"],
            |r| Ok((r.int("n")?, r.opt_text("z")?, r.blob("b")?, r.text("k")?)),
        )
        .unwrap();
        assert_eq!(got, Some((1, None, vec![1, 2], "one".to_string())));
        let missing = first(&c, "SELECT * FROM t", &[], |r| r.text("nope"));
        assert!(
            matches!(&missing, Err(e) if e.to_string().contains("nope")),
            "{missing:?}"
        );
        // A joined read maps every row with the same names.
        let all = joined(
            &c,
            "SELECT * FROM t WHERE k = $1 ORDER BY n",
            "one",
            |r| Ok((r.text("k")?, Vec::new())),
            |p, r| {
                p.1.push(r.int("n")?);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(all, Some(("one".to_string(), vec![1, 2])));
        assert_eq!(
            joined(
                &c,
                "SELECT * FROM t WHERE k = $1",
                "two",
                |r| r.text("k"),
                |_, _| Ok(())
            )
            .unwrap(),
            None
        );
    }

    /// With `SQLITE_ENABLE_STAT4` and `ANALYZE` statistics, SQLite re-prepares (re-parses and
    /// re-plans) a statement whenever a value bound to an indexed column changes: every
    /// execution on the issuance path, ~1.4 ms of CPU per certificate here. The build turns
    /// STAT4 off (`.cargo/config.toml`); this checks it stayed off and that a cached lookup
    /// over analyzed data runs without re-preparing.
    #[test]
    fn analyzed_lookups_are_not_re_prepared() {
        let dir = tempfile::tempdir().unwrap();
        let c = Connection::open(dir.path().join("s.sqlite")).unwrap();
        let stat4: i64 = c
            .query_row(
                "SELECT sqlite_compileoption_used('ENABLE_STAT4')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            stat4, 0,
            "SQLite was built with STAT4 (LIBSQLITE3_FLAGS lost?)"
        );
        c.execute_batch(
            "CREATE TABLE t (id TEXT PRIMARY KEY, a TEXT, b TEXT, v INTEGER);
             CREATE INDEX t_a ON t (a);
             CREATE INDEX t_b ON t (b);",
        )
        .unwrap();
        let tx = c.unchecked_transaction().unwrap();
        for i in 0..2000 {
            tx.execute(
                "INSERT INTO t (id, a, b, v) VALUES (?1, ?2, ?3, ?4)",
                // `b` is skewed (like a status column): which index is better depends on
                // the value, which is what STAT4's samples tell the planner.
                rusqlite::params![
                    format!("id{i}"),
                    format!("a{}", i % 50),
                    if i % 100 == 0 { "rare" } else { "common" },
                    i
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        c.execute_batch("ANALYZE").unwrap();
        let mut stmt = c
            .prepare("SELECT v FROM t WHERE a = $1 AND b = $2")
            .unwrap();
        for i in 0..100 {
            let b = if i % 2 == 0 { "rare" } else { "common" };
            bind_numbered(&mut stmt, &[&format!("a{}", i % 50), &b]).unwrap();
            let mut rows = stmt.raw_query();
            while rows.next().unwrap().is_some() {}
        }
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }
}
