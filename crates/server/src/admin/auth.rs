//! Bearer tokens for the admin API. `fleetca admin token create` mints `fca.<id>.<secret>`,
//! prints it once and stores only its SHA-256 in the database, with its scopes. A request
//! names the token id in clear; the hash of the whole token is compared in constant time, so
//! neither a timing difference nor the stored row reveals a usable token. Each request reads
//! the row, so new and revoked tokens take effect at once on every node sharing the database.

#[cfg(test)]
use crate::datadir::write_atomic;
use crate::datadir::DataDir;
use crate::ids::new_id;
use crate::sa::{AdminTokenRow, AdminTokenStore};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// What a token may do. Each scope includes the ones before it: `admin` ⊇ `write` ⊇ `read`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Listings, search, stats, audit log.
    Read,
    /// Operator state changes: revoke, deactivate, renew-early, EAB revoke.
    Write,
    /// Minting enrollment credentials (EAB create).
    Admin,
}

impl Scope {
    /// Parses `read`, `write` or `admin`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown scope {other:?}: use read, write or admin")),
        }
    }

    /// The name used in the token file and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// One stored token (never the token itself).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public id: the audit-log actor is `token:<id>`.
    pub id: String,
    /// SHA-256 of the whole token, lower-case hex.
    pub sha256: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// Free-text note (who or what the token is for).
    #[serde(default)]
    pub label: Option<String>,
    /// Creation time (UNIX seconds).
    pub created_at: i64,
    /// Revocation time, if revoked.
    #[serde(default)]
    pub revoked_at: Option<i64>,
}

impl TokenRecord {
    /// Whether the token grants `need` (scopes are hierarchical).
    pub fn allows(&self, need: Scope) -> bool {
        self.revoked_at.is_none() && self.scopes.iter().any(|s| *s >= need)
    }
}

/// The pre-database token file, `DIR/admin-tokens.json`: imported once, then renamed.
#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    tokens: Vec<TokenRecord>,
}

/// The admin tokens, in the database every node shares.
#[derive(Clone)]
pub struct TokenStore {
    db: Arc<dyn AdminTokenStore>,
}

/// Why a presented token was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No token, a malformed one, an unknown id, a wrong secret or a revoked token.
    Unauthenticated,
    /// A good token without the scope the request needs.
    Forbidden,
}

fn sha256_hex(s: &str) -> String {
    crate::ca::hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes()).as_ref())
}

fn to_row(t: &TokenRecord) -> AdminTokenRow {
    AdminTokenRow {
        id: t.id.clone(),
        sha256: t.sha256.clone(),
        scopes: t
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(","),
        label: t.label.clone(),
        created_at: t.created_at,
        revoked_at: t.revoked_at,
    }
}

fn from_row(r: AdminTokenRow) -> anyhow::Result<TokenRecord> {
    let scopes = r
        .scopes
        .split(',')
        .filter(|s| !s.is_empty())
        .map(Scope::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("admin token {}: {e}", r.id))?;
    Ok(TokenRecord {
        id: r.id,
        sha256: r.sha256,
        scopes,
        label: r.label,
        created_at: r.created_at,
        revoked_at: r.revoked_at,
    })
}

impl TokenStore {
    /// The tokens in `db`.
    pub fn new(db: Arc<dyn AdminTokenStore>) -> Self {
        Self { db }
    }

    /// Imports `DIR/admin-tokens.json` (where tokens lived before they moved into the
    /// database) and renames it to `admin-tokens.json.imported`, so its tokens keep working
    /// and it is read once. Returns how many tokens were new to the database.
    pub async fn import_legacy_file(&self, dd: &DataDir) -> anyhow::Result<usize> {
        let path = dd.path().join("admin-tokens.json");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let file: TokenFile = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut added = 0;
        for t in &file.tokens {
            if self.db.insert_admin_token(&to_row(t)).await? {
                added += 1;
            }
        }
        std::fs::rename(&path, dd.path().join("admin-tokens.json.imported"))?;
        tracing::info!(
            added,
            "imported admin tokens from admin-tokens.json into the database"
        );
        Ok(added)
    }

    /// Mints a token with `scopes`; returns its record and the token (shown once).
    pub async fn create(
        &self,
        scopes: &[Scope],
        label: Option<String>,
        now: i64,
    ) -> anyhow::Result<(TokenRecord, String)> {
        if scopes.is_empty() {
            anyhow::bail!("a token needs at least one scope");
        }
        let id = new_id().replace(['-', '_'], "x")[..12].to_string();
        let token = format!("fca.{id}.{}", new_id() + &new_id());
        let rec = TokenRecord {
            id,
            sha256: sha256_hex(&token),
            scopes: scopes.to_vec(),
            label,
            created_at: now,
            revoked_at: None,
        };
        if !self.db.insert_admin_token(&to_row(&rec)).await? {
            anyhow::bail!("token id collision; try again");
        }
        Ok((rec, token))
    }

    /// Every token record (no secrets).
    pub async fn list(&self) -> anyhow::Result<Vec<TokenRecord>> {
        self.db
            .list_admin_tokens()
            .await?
            .into_iter()
            .map(from_row)
            .collect()
    }

    /// Revokes a token by id; false if no unrevoked token has it.
    pub async fn revoke(&self, id: &str, now: i64) -> anyhow::Result<bool> {
        Ok(self.db.revoke_admin_token(id, now).await?)
    }

    /// Checks a presented token against the store and the scope a request needs.
    pub async fn authorize(&self, token: &str, need: Scope) -> Result<TokenRecord, AuthError> {
        let mut parts = token.split('.');
        let (Some("fca"), Some(id), Some(_secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Unauthenticated);
        };
        let row = self.db.get_admin_token(id).await.map_err(|e| {
            tracing::error!(error = %e, "reading admin tokens failed");
            AuthError::Unauthenticated
        })?;
        let rec = row
            .ok_or(AuthError::Unauthenticated)
            .and_then(|r| from_row(r).map_err(|_| AuthError::Unauthenticated))?;
        let presented = sha256_hex(token);
        if !bool::from(presented.as_bytes().ct_eq(rec.sha256.as_bytes())) {
            return Err(AuthError::Unauthenticated);
        }
        if rec.revoked_at.is_some() {
            return Err(AuthError::Unauthenticated);
        }
        if !rec.allows(need) {
            return Err(AuthError::Forbidden);
        }
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sa::SqliteStorage;

    #[tokio::test]
    async fn tokens_hash_scope_and_revoke() {
        let db = Arc::new(SqliteStorage::open_scratch().await.unwrap());
        let store = TokenStore::new(db.clone());
        let (rec, token) = store.create(&[Scope::Write], None, 1).await.unwrap();
        let row = db.get_admin_token(&rec.id).await.unwrap().unwrap();
        assert!(
            !format!("{row:?}").contains(token.rsplit('.').next().unwrap()),
            "secret stored"
        );
        assert_eq!(
            store.authorize(&token, Scope::Read).await.unwrap().id,
            rec.id
        );
        assert_eq!(
            store.authorize(&token, Scope::Write).await.unwrap().id,
            rec.id
        );
        assert_eq!(
            store.authorize(&token, Scope::Admin).await.unwrap_err(),
            AuthError::Forbidden
        );
        let forged = format!("fca.{}.AAAA", rec.id);
        assert_eq!(
            store.authorize(&forged, Scope::Read).await.unwrap_err(),
            AuthError::Unauthenticated
        );
        assert!(store.revoke(&rec.id, 2).await.unwrap());
        assert_eq!(
            store.authorize(&token, Scope::Read).await.unwrap_err(),
            AuthError::Unauthenticated
        );
    }

    #[tokio::test]
    async fn a_token_file_from_before_is_imported_once() {
        let dir = tempfile::tempdir().unwrap();
        let dd = DataDir::new(dir.path());
        // A file as the previous version wrote it, holding one live token.
        let old = TokenStore::new(Arc::new(SqliteStorage::open_scratch().await.unwrap()));
        let (rec, token) = old
            .create(&[Scope::Read], Some("old".into()), 5)
            .await
            .unwrap();
        let file = TokenFile { tokens: vec![rec] };
        write_atomic(
            &dir.path().join("admin-tokens.json"),
            &serde_json::to_vec(&file).unwrap(),
            0o600,
        )
        .unwrap();
        let store = TokenStore::new(Arc::new(SqliteStorage::open_scratch().await.unwrap()));
        assert_eq!(store.import_legacy_file(&dd).await.unwrap(), 1);
        assert!(store.authorize(&token, Scope::Read).await.is_ok());
        assert!(!dir.path().join("admin-tokens.json").exists());
        assert!(dir.path().join("admin-tokens.json.imported").exists());
        assert_eq!(store.import_legacy_file(&dd).await.unwrap(), 0);
    }
}
