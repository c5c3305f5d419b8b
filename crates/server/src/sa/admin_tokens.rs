//! Admin API token records (`admin::auth`): id, SHA-256 of the token, scopes, revocation.
//! In the database so that every node sharing it accepts the same tokens at once.

use super::backend::{RowsAffected, SqlxBackend};
use super::rows::Cols;
use super::SaError;
use async_trait::async_trait;

/// One stored admin token (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminTokenRow {
    /// Public id.
    pub id: String,
    /// SHA-256 of the whole token, lower-case hex.
    pub sha256: String,
    /// Scopes, comma-separated.
    pub scopes: String,
    /// Free-text note.
    pub label: Option<String>,
    /// Creation time (UNIX seconds).
    pub created_at: i64,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
}

/// Admin token storage.
#[async_trait]
pub trait AdminTokenStore: Send + Sync {
    /// Stores a token; `false` if its id exists already (left unchanged).
    async fn insert_admin_token(&self, t: &AdminTokenRow) -> Result<bool, SaError>;
    /// The token with this id.
    async fn get_admin_token(&self, id: &str) -> Result<Option<AdminTokenRow>, SaError>;
    /// Every token, oldest first.
    async fn list_admin_tokens(&self) -> Result<Vec<AdminTokenRow>, SaError>;
    /// Revokes an unrevoked token; `false` if there is none with this id.
    async fn revoke_admin_token(&self, id: &str, now: i64) -> Result<bool, SaError>;
}

/// One implementation for both engines: the SQL is the same, and what differs (whose turn it
/// is to write, what makes a commit durable) is [`SqlxBackend`]'s.
fn admin_token_row(r: &impl Cols) -> Result<AdminTokenRow, SaError> {
    Ok(AdminTokenRow {
        id: r.text("id")?,
        sha256: r.text("sha256")?,
        scopes: r.text("scopes")?,
        label: r.opt_text("label")?,
        created_at: r.int("created_at")?,
        revoked_at: r.opt_int("revoked_at")?,
    })
}

#[async_trait]
impl<B> AdminTokenStore for B
where
    B: SqlxBackend,
    for<'c> &'c mut <B::Db as sqlx::Database>::Connection: sqlx::Executor<'c, Database = B::Db>,
    <B::Db as sqlx::Database>::Arguments: sqlx::IntoArguments<B::Db>,
    <B::Db as sqlx::Database>::QueryResult: RowsAffected,
    <B::Db as sqlx::Database>::Row: Cols,
    for<'q> &'q str: sqlx::Encode<'q, B::Db>
        + sqlx::Type<B::Db>
        + sqlx::ColumnIndex<<B::Db as sqlx::Database>::Row>,
    for<'q> String: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> i64: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<String>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<i64>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
{
    async fn insert_admin_token(&self, t: &AdminTokenRow) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let r = sqlx::query(
            "INSERT INTO admin_tokens (id, sha256, scopes, label, created_at, revoked_at)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&t.id)
        .bind(&t.sha256)
        .bind(&t.scopes)
        .bind(&t.label)
        .bind(t.created_at)
        .bind(t.revoked_at)
        .execute(self.writer(&pass))
        .await?;
        self.durable().await?;
        Ok(r.rows() == 1)
    }

    async fn get_admin_token(&self, id: &str) -> Result<Option<AdminTokenRow>, SaError> {
        let row = sqlx::query("SELECT * FROM admin_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(admin_token_row).transpose()
    }

    async fn list_admin_tokens(&self) -> Result<Vec<AdminTokenRow>, SaError> {
        let rows = sqlx::query("SELECT * FROM admin_tokens ORDER BY created_at, id")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(admin_token_row).collect()
    }

    async fn revoke_admin_token(&self, id: &str, now: i64) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let r = sqlx::query(
            "UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(self.writer(&pass))
        .await?;
        self.durable().await?;
        Ok(r.rows() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sa::SqliteStorage;

    async fn roundtrip<D: AdminTokenStore>(db: &D) {
        let t = AdminTokenRow {
            id: "tok1".into(),
            sha256: "ab".repeat(32),
            scopes: "read,write".into(),
            label: Some("ops".into()),
            created_at: 10,
            revoked_at: None,
        };
        assert!(db.insert_admin_token(&t).await.unwrap());
        assert!(!db.insert_admin_token(&t).await.unwrap(), "ids are unique");
        assert_eq!(db.get_admin_token("tok1").await.unwrap(), Some(t.clone()));
        assert_eq!(db.list_admin_tokens().await.unwrap(), vec![t]);
        assert!(db.revoke_admin_token("tok1", 20).await.unwrap());
        assert!(!db.revoke_admin_token("tok1", 30).await.unwrap());
        assert_eq!(
            db.get_admin_token("tok1")
                .await
                .unwrap()
                .unwrap()
                .revoked_at,
            Some(20)
        );
        assert_eq!(db.get_admin_token("nope").await.unwrap(), None);
    }

    #[tokio::test]
    async fn sqlite_admin_tokens() {
        roundtrip(&SqliteStorage::open_scratch().await.unwrap()).await;
    }

    #[tokio::test]
    async fn postgres_admin_tokens() {
        if let Some((db, _)) = super::super::tests::postgres_pair().await {
            roundtrip(db.as_ref()).await;
        }
    }
}
