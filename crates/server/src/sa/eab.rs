//! Storage of External Account Binding credentials (RFC 8555 §7.3.4). A narrow trait of its
//! own, so the front end's main [`Storage`](super::Storage) does not grow and the CLI that
//! manages keys sees only this slice. Keys arrive here already sealed (see `ra::eab`); this
//! module never sees an HMAC key in clear.

use super::audit::{self, AuditAppend, AuditEntry};
use super::backend::{RowsAffected, SqlxBackend};
use super::rows::Cols;
use super::sql::{is_unique_violation, json};
use super::{AccountRecord, SaError};
use async_trait::async_trait;
use sqlx::Row;

/// One EAB credential as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EabKeyRecord {
    /// The key identifier the client sends as the EAB JWS `kid`.
    pub kid: String,
    /// The tenant whose accounts it may create.
    pub tenant: String,
    /// The HMAC key sealed with AES-256-GCM (nonce || ciphertext || tag).
    pub sealed_key: Vec<u8>,
    /// How many accounts it may create (1 = single-use).
    pub max_uses: i64,
    /// How many it has created.
    pub uses: i64,
    /// Expiry (UNIX seconds), if any.
    pub expires_at: Option<i64>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
    /// Creation time.
    pub created_at: i64,
}

/// Why a stored credential cannot create an account now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EabUnusable {
    /// It was revoked.
    Revoked,
    /// Its expiry passed.
    Expired,
    /// Every allowed use was spent.
    UsedUp,
}

impl EabKeyRecord {
    /// Whether the credential may create an account at `now`.
    pub fn check_usable(&self, now: i64) -> Result<(), EabUnusable> {
        if self.revoked_at.is_some() {
            Err(EabUnusable::Revoked)
        } else if self.expires_at.is_some_and(|e| e <= now) {
            Err(EabUnusable::Expired)
        } else if self.uses >= self.max_uses {
            Err(EabUnusable::UsedUp)
        } else {
            Ok(())
        }
    }

    /// The public view (never the key), for listings and the audit log.
    pub fn summary_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kid": self.kid,
            "tenant": self.tenant,
            "max_uses": self.max_uses,
            "uses": self.uses,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "created_at": self.created_at,
        })
    }
}

/// What [`EabStore::insert_account_with_eab`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EabAccountOutcome {
    /// The account exists and one use of the key was spent, in one transaction.
    Created,
    /// The key was revoked, expired or used up by the time of the insert; nothing changed.
    KeyUnusable,
}

/// EAB credentials: create, look up, list, revoke, and spend one use while creating an account.
#[async_trait]
pub trait EabStore: Send + Sync {
    /// Stores a new credential with its audit record.
    async fn insert_eab_key(&self, key: &EabKeyRecord, audit: &AuditEntry) -> Result<(), SaError>;
    /// Looks a credential up by kid within a tenant.
    async fn get_eab_key(&self, tenant: &str, kid: &str) -> Result<Option<EabKeyRecord>, SaError>;
    /// All credentials, or those of one tenant, oldest first.
    async fn list_eab_keys(&self, tenant: Option<&str>) -> Result<Vec<EabKeyRecord>, SaError>;
    /// Revokes a credential; false if it does not exist or was already revoked.
    async fn revoke_eab_key(&self, kid: &str, at: i64, audit: &AuditEntry)
        -> Result<bool, SaError>;
    /// In one transaction: spends one use of `acct.eab_kid` if it is still unrevoked, unexpired
    /// and not used up at `now`, inserts the account and records `binding`. A concurrent second
    /// use of a single-use key therefore finds it used up and creates nothing. `Conflict` if
    /// the account key is already registered in the tenant (nothing is spent then either).
    async fn insert_account_with_eab(
        &self,
        acct: &AccountRecord,
        binding: &str,
        now: i64,
    ) -> Result<EabAccountOutcome, SaError>;
    /// The binding JWS an account was created with.
    async fn get_eab_binding(&self, account_id: &str) -> Result<Option<String>, SaError>;
}

/// One implementation for both engines: the SQL is the same, and what differs (whose turn it
/// is to write, what makes a commit durable) is [`SqlxBackend`]'s.
fn key_row(r: &impl Cols) -> Result<EabKeyRecord, SaError> {
    Ok(EabKeyRecord {
        kid: r.text("kid")?,
        tenant: r.text("tenant")?,
        sealed_key: r.blob("sealed_key")?,
        max_uses: r.int("max_uses")?,
        uses: r.int("uses")?,
        expires_at: r.opt_int("expires_at")?,
        revoked_at: r.opt_int("revoked_at")?,
        created_at: r.int("created_at")?,
    })
}

#[async_trait]
impl<B> EabStore for B
where
    B: SqlxBackend,
    <B::Db as sqlx::Database>::Connection: AuditAppend,
    for<'c> &'c mut <B::Db as sqlx::Database>::Connection: sqlx::Executor<'c, Database = B::Db>,
    <B::Db as sqlx::Database>::Arguments: sqlx::IntoArguments<B::Db>,
    <B::Db as sqlx::Database>::QueryResult: RowsAffected,
    <B::Db as sqlx::Database>::Row: Cols,
    for<'q> &'q str: sqlx::Encode<'q, B::Db>
        + sqlx::Type<B::Db>
        + sqlx::ColumnIndex<<B::Db as sqlx::Database>::Row>,
    usize: sqlx::ColumnIndex<<B::Db as sqlx::Database>::Row>,
    for<'q> &'q [u8]: sqlx::Encode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> String: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> i64: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Vec<u8>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<String>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<i64>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
{
    async fn insert_eab_key(&self, k: &EabKeyRecord, audit: &AuditEntry) -> Result<(), SaError> {
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        let res = sqlx::query(
            "INSERT INTO eab_keys (kid, tenant, sealed_key, max_uses, uses, expires_at, revoked_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&k.kid)
        .bind(&k.tenant)
        .bind(&k.sealed_key)
        .bind(k.max_uses)
        .bind(k.uses)
        .bind(k.expires_at)
        .bind(k.revoked_at)
        .bind(k.created_at)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(SaError::Conflict("EAB key id already exists".into()))
            }
            Err(e) => return Err(e.into()),
        }
        audit::append(&mut *tx, audit, k.created_at).await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(())
    }

    async fn get_eab_key(&self, tenant: &str, kid: &str) -> Result<Option<EabKeyRecord>, SaError> {
        let row = sqlx::query("SELECT * FROM eab_keys WHERE tenant = $1 AND kid = $2")
            .bind(tenant)
            .bind(kid)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(key_row).transpose()
    }

    async fn list_eab_keys(&self, tenant: Option<&str>) -> Result<Vec<EabKeyRecord>, SaError> {
        let rows = sqlx::query(
            "SELECT * FROM eab_keys WHERE ($1 IS NULL OR tenant = $1) ORDER BY created_at, kid",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(key_row).collect()
    }

    async fn revoke_eab_key(
        &self,
        kid: &str,
        at: i64,
        audit: &AuditEntry,
    ) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        let before = sqlx::query("SELECT * FROM eab_keys WHERE kid = $1")
            .bind(kid)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(before) = before.as_ref().map(key_row).transpose()? else {
            return Ok(false);
        };
        let n = sqlx::query(
            "UPDATE eab_keys SET revoked_at = $1 WHERE kid = $2 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(kid)
        .execute(&mut *tx)
        .await?
        .rows();
        if n == 0 {
            return Ok(false);
        }
        let after = EabKeyRecord {
            revoked_at: Some(at),
            ..before.clone()
        };
        let entry = AuditEntry {
            tenant: Some(before.tenant.clone()),
            object: Some(kid.to_string()),
            before: Some(before.summary_json().to_string()),
            after: Some(after.summary_json().to_string()),
            ..audit.clone()
        };
        audit::append(&mut *tx, &entry, at).await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(true)
    }

    async fn insert_account_with_eab(
        &self,
        a: &AccountRecord,
        binding: &str,
        now: i64,
    ) -> Result<EabAccountOutcome, SaError> {
        let Some(kid) = a.eab_kid.as_deref() else {
            return Err(SaError::Corrupt("an EAB account needs its kid".into()));
        };
        // The conditional UPDATE is the claim: SQLite serialises writers, so of two concurrent
        // uses of the last remaining use exactly one sees a row change.
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        let n = sqlx::query(
            "UPDATE eab_keys SET uses = uses + 1
             WHERE kid = $1 AND tenant = $2 AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > $3) AND uses < max_uses",
        )
        .bind(kid)
        .bind(&a.tenant)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows();
        if n == 0 {
            return Ok(EabAccountOutcome::KeyUnusable);
        }
        let res = sqlx::query(
            "INSERT INTO accounts (id, tenant, jwk_thumbprint, jwk, contact, status, tos_agreed, eab_kid, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&a.id)
        .bind(&a.tenant)
        .bind(&a.jwk_thumbprint)
        .bind(&a.jwk)
        .bind(json(&a.contact))
        .bind(a.status.as_str())
        .bind(a.tos_agreed as i64)
        .bind(&a.eab_kid)
        .bind(a.created_at)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(SaError::Conflict("account key already registered".into()))
            }
            Err(e) => return Err(e.into()),
        }
        sqlx::query(
            "INSERT INTO eab_bindings (account_id, kid, binding, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&a.id)
        .bind(kid)
        .bind(binding)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(EabAccountOutcome::Created)
    }

    async fn get_eab_binding(&self, account_id: &str) -> Result<Option<String>, SaError> {
        let row = sqlx::query("SELECT binding FROM eab_bindings WHERE account_id = $1")
            .bind(account_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
    }
}
