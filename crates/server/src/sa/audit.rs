//! The append-only audit log of operator state changes (who, what, when, before/after). Rows
//! are written in the same transaction as the change they describe, so a change without its
//! audit record cannot be committed.

use super::backend::SqlxBackend;
use super::SaError;
use async_trait::async_trait;
use sqlx::Row;

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// When (UNIX seconds); filled in by the store when 0.
    pub at: i64,
    /// Who: `cli:<user>` for the command line.
    pub actor: String,
    /// What, as `<object>.<verb>`: `eab.create`, `eab.revoke`, `account.deactivate`, ...
    pub action: String,
    /// The tenant the object belongs to.
    pub tenant: Option<String>,
    /// The key id, account id or serial acted on.
    pub object: Option<String>,
    /// The object before the change (JSON), if it existed.
    pub before: Option<String>,
    /// The object after the change (JSON).
    pub after: Option<String>,
}

/// The audit log. Database changes append their entry in their own transaction; this trait
/// reads it and records changes made outside the database.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one entry on its own (for changes outside the database, e.g. a new tenant).
    async fn append_audit(&self, e: &AuditEntry) -> Result<(), SaError>;
    /// The latest `limit` entries, newest first.
    async fn recent_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, SaError>;
}

/// Appends an audit entry on a connection (inside the caller's transaction) of either backend.
#[async_trait]
pub(super) trait AuditAppend: Send {
    /// Inserts `e`, stamped `now` when its time is 0.
    async fn append_entry(&mut self, e: &AuditEntry, now: i64) -> Result<(), SaError>;
}

/// Appends `e` inside the caller's transaction.
pub(super) async fn append<C: AuditAppend + ?Sized>(
    tx: &mut C,
    e: &AuditEntry,
    now: i64,
) -> Result<(), SaError> {
    tx.append_entry(e, now).await
}

/// Any sqlx connection whose driver takes the audit row's types appends the same way.
#[async_trait]
impl<C> AuditAppend for C
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    for<'q> i64: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> &'q str: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
{
    async fn append_entry(&mut self, e: &AuditEntry, now: i64) -> Result<(), SaError> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, tenant, object, before_json, after_json)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(if e.at == 0 { now } else { e.at })
        .bind(e.actor.as_str())
        .bind(e.action.as_str())
        .bind(e.tenant.as_deref())
        .bind(e.object.as_deref())
        .bind(e.before.as_deref())
        .bind(e.after.as_deref())
        .execute(&mut *self)
        .await?;
        Ok(())
    }
}

/// One implementation for both engines: the SQL is the same, and what differs (whose turn it
/// is to write, what makes a commit durable) is `SqlxBackend`'s.
#[async_trait]
impl<B> AuditStore for B
where
    B: SqlxBackend,
    <B::Db as sqlx::Database>::Connection: AuditAppend,
    for<'c> &'c mut <B::Db as sqlx::Database>::Connection: sqlx::Executor<'c, Database = B::Db>,
    <B::Db as sqlx::Database>::Arguments: sqlx::IntoArguments<B::Db>,
    for<'q> &'q str: sqlx::ColumnIndex<<B::Db as sqlx::Database>::Row>,
    for<'q> i64: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> String: sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<String>: sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
{
    async fn append_audit(&self, e: &AuditEntry) -> Result<(), SaError> {
        let pass = self.write_access().await?;
        let mut conn = self.writer(&pass).acquire().await?;
        append(&mut *conn, e, e.at).await?;
        drop(conn);
        self.durable().await
    }

    async fn recent_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, SaError> {
        let rows = sqlx::query(
            "SELECT at, actor, action, tenant, object, before_json, after_json
                     FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    tenant: r.try_get("tenant")?,
                    object: r.try_get("object")?,
                    before: r.try_get("before_json")?,
                    after: r.try_get("after_json")?,
                })
            })
            .collect()
    }
}
