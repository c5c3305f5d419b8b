//! What the sqlx code shared by both engines needs from an engine, declared as a trait.
//!
//! The per-caller stores (`rate`, `ct`, ...) run the same SQL text on SQLite and PostgreSQL;
//! their one implementation is generic over [`SqlxBackend`]. Where the engines differ — who
//! may write when, and what makes a commit durable — each backend says so in its own
//! `impl SqlxBackend` (`sqlite/mod.rs`, `postgres/mod.rs`), not behind a stub.
//!
//! Each generic implementation repeats a `where` clause naming what its body asks of the
//! driver (executors, argument and value types). Stable Rust implies only supertrait bounds,
//! and these bounds are on `&mut Connection`, `i64`, `String`, ..., not on the backend, so
//! no trait here can carry them once for all.

use super::SaError;
use async_trait::async_trait;

/// An engine the shared sqlx bodies can run on.
#[async_trait]
pub(super) trait SqlxBackend: Send + Sync {
    /// The sqlx driver.
    type Db: sqlx::Database;
    /// Permission to write through [`Self::writer`], held for the write's duration.
    type Pass: Send;

    /// The pool reads go through.
    fn pool(&self) -> &sqlx::Pool<Self::Db>;
    /// Waits for this caller's turn to write (SQLite: parks its writer thread, since the file
    /// admits one writer; PostgreSQL: granted at once, row locks order concurrent writers).
    async fn write_access(&self) -> Result<Self::Pass, SaError>;
    /// The pool writes go through, for a holder of a pass.
    fn writer<'a>(&'a self, pass: &'a Self::Pass) -> &'a sqlx::Pool<Self::Db>;
    /// Returns once every write that finished through [`Self::writer`] before the call is
    /// durable; every writing method calls it before reporting success.
    async fn durable(&self) -> Result<(), SaError>;
}

/// How many rows a statement changed: sqlx has no driver-neutral accessor.
pub(super) trait RowsAffected {
    /// Rows inserted, updated or deleted.
    fn rows(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}
