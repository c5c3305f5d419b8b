//! The operator's slice of storage (`fleetca account ...`, `fleetca cert ...`): listings and
//! the state changes an operator makes, each committed together with its audit-log entry.
//! Its own row types keep it independent of the ACME front end's records.

use super::audit::{self, AuditAppend, AuditEntry};
use super::backend::{RowsAffected, SqlxBackend};
use super::rows::Cols;
use super::sql::from_json;
use super::{IdentifierKind, SaError, StoredIdentifier};
use async_trait::async_trait;
use serde::Serialize;

/// An account as the operator sees it (no key material beyond the thumbprint).
#[derive(Clone, Debug, Serialize)]
pub struct AdminAccount {
    /// Account id (the last path segment of its URL).
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// `valid`, `deactivated` or `revoked`.
    pub status: String,
    /// Contact URIs.
    pub contact: Vec<String>,
    /// JWK thumbprint of the account key (RFC 7638).
    pub jwk_thumbprint: String,
    /// EAB key id it was created with.
    pub eab_kid: Option<String>,
    /// Creation time.
    pub created_at: i64,
}

/// A certificate as the operator sees it.
#[derive(Clone, Debug, Serialize)]
pub struct AdminCert {
    /// Certificate id (URL segment).
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// Serial, lower-case hex.
    pub serial: String,
    /// Account that ordered it.
    pub account_id: String,
    /// Order it finalized.
    pub order_id: String,
    /// Identifiers.
    pub names: Vec<StoredIdentifier>,
    /// Validity start.
    pub not_before: i64,
    /// Validity end.
    pub not_after: i64,
    /// Issuance time.
    pub issued_at: i64,
    /// Revocation time.
    pub revoked_at: Option<i64>,
    /// CRL reason code (RFC 5280 §5.3.1).
    pub revocation_reason: Option<u8>,
    /// Id of the issuing CA that signed it (`None`: the tenant's first CA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// DER.
    #[serde(skip)]
    pub der: Vec<u8>,
}

impl AdminCert {
    /// The id of the issuing CA that signed it (see `CertRecord::issuer_id`).
    pub fn issuer_id(&self) -> &str {
        self.issuer.as_deref().unwrap_or(&self.tenant)
    }
}

/// Filters for [`AdminStore::find_certs`]; unset fields match everything.
#[derive(Clone, Debug, Default)]
pub struct CertQuery {
    /// Tenant.
    pub tenant: Option<String>,
    /// A DNS name or suffix: matches `suffix` itself and names under it; IPs match exactly.
    pub name: Option<String>,
    /// Serial (hex, case-insensitive, leading zeros ignored).
    pub serial: Option<String>,
    /// Account id.
    pub account_id: Option<String>,
    /// Most results (newest first).
    pub limit: u32,
}

/// Operator listings and audited state changes.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Accounts, newest first, optionally of one tenant.
    async fn list_accounts(&self, tenant: Option<&str>) -> Result<Vec<AdminAccount>, SaError>;
    /// Deactivates a valid account (RFC 8555 §7.3.6 effect) with its audit entry; returns the
    /// account as it was, or `None` if it does not exist or was not valid.
    async fn deactivate_account_audited(
        &self,
        id: &str,
        audit: &AuditEntry,
    ) -> Result<Option<AdminAccount>, SaError>;
    /// Certificates matching `q`, newest first.
    async fn find_certs(&self, q: &CertQuery) -> Result<Vec<AdminCert>, SaError>;
    /// Revokes an unrevoked certificate with its audit entry; false if already revoked.
    async fn revoke_cert_audited(
        &self,
        id: &str,
        at: i64,
        reason: u8,
        audit: &AuditEntry,
    ) -> Result<bool, SaError>;
}

fn name_matches(names: &[StoredIdentifier], q: &str) -> bool {
    let q = q.trim_end_matches('.').to_ascii_lowercase();
    let q = q.strip_prefix("*.").unwrap_or(&q);
    names.iter().any(|n| {
        let v = n.value.to_ascii_lowercase();
        let v = v.strip_prefix("*.").unwrap_or(&v);
        v == q || (n.kind == IdentifierKind::Dns && v.ends_with(&format!(".{q}")))
    })
}

/// Serial as stored (`ca::hex` of the serial octets): lower-case hex without separators or
/// leading zero *octets*; a first octet below 0x10 keeps its leading `0` nibble.
pub fn normalize_serial(s: &str) -> String {
    let hex: String = s
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    let hex = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex
    };
    let mut trimmed = hex.as_str();
    while let Some(rest) = trimmed.strip_prefix("00") {
        trimmed = rest;
    }
    if trimmed.is_empty() {
        "00".into()
    } else {
        trimmed.to_string()
    }
}

/// One implementation for both engines: the SQL is the same, and what differs (whose turn it
/// is to write, what makes a commit durable) is [`SqlxBackend`]'s.
fn account(r: &impl Cols) -> Result<AdminAccount, SaError> {
    Ok(AdminAccount {
        id: r.text("id")?,
        tenant: r.text("tenant")?,
        status: r.text("status")?,
        contact: from_json(&r.text("contact")?)?,
        jwk_thumbprint: r.text("jwk_thumbprint")?,
        eab_kid: r.opt_text("eab_kid")?,
        created_at: r.int("created_at")?,
    })
}

fn cert(r: &impl Cols) -> Result<AdminCert, SaError> {
    Ok(AdminCert {
        id: r.text("id")?,
        tenant: r.text("tenant")?,
        serial: r.text("serial")?,
        account_id: r.text("account_id")?,
        order_id: r.text("order_id")?,
        names: from_json(&r.text("names")?)?,
        not_before: r.int("not_before")?,
        not_after: r.int("not_after")?,
        issued_at: r.int("issued_at")?,
        revoked_at: r.opt_int("revoked_at")?,
        revocation_reason: r.opt_int("revocation_reason")?.map(|v| v as u8),
        issuer: r.opt_text("issuer")?,
        der: r.blob("der")?,
    })
}

#[async_trait]
impl<B> AdminStore for B
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
    for<'q> &'q [u8]: sqlx::Encode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> String: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> i64: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Vec<u8>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<String>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
    for<'q> Option<i64>: sqlx::Encode<'q, B::Db> + sqlx::Decode<'q, B::Db> + sqlx::Type<B::Db>,
{
    async fn list_accounts(&self, tenant: Option<&str>) -> Result<Vec<AdminAccount>, SaError> {
        let rows = sqlx::query(
            "SELECT * FROM accounts WHERE ($1 IS NULL OR tenant = $1) ORDER BY created_at DESC, id",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(account).collect()
    }

    async fn deactivate_account_audited(
        &self,
        id: &str,
        audit: &AuditEntry,
    ) -> Result<Option<AdminAccount>, SaError> {
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        let Some(before) = sqlx::query("SELECT * FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(account)
            .transpose()?
        else {
            return Ok(None);
        };
        let n = sqlx::query(
            "UPDATE accounts SET status = 'deactivated' WHERE id = $1 AND status = 'valid'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows();
        if n == 0 {
            return Ok(None);
        }
        let after = AdminAccount {
            status: "deactivated".into(),
            ..before.clone()
        };
        let entry = AuditEntry {
            tenant: Some(before.tenant.clone()),
            object: Some(id.to_string()),
            before: serde_json::to_string(&before).ok(),
            after: serde_json::to_string(&after).ok(),
            ..audit.clone()
        };
        audit::append(&mut *tx, &entry, audit.at).await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(Some(before))
    }

    async fn find_certs(&self, q: &CertQuery) -> Result<Vec<AdminCert>, SaError> {
        let serial = q.serial.as_deref().map(normalize_serial);
        let rows = sqlx::query(
            "SELECT * FROM certificates
             WHERE ($1 IS NULL OR tenant = $1) AND ($2 IS NULL OR serial = $2)
               AND ($3 IS NULL OR account_id = $3)
             ORDER BY issued_at DESC, id",
        )
        .bind(&q.tenant)
        .bind(&serial)
        .bind(&q.account_id)
        .fetch_all(self.pool())
        .await?;
        let limit = if q.limit == 0 {
            usize::MAX
        } else {
            q.limit as usize
        };
        let mut out = Vec::new();
        for r in &rows {
            let c = cert(r)?;
            if q.name.as_deref().is_none_or(|n| name_matches(&c.names, n)) {
                out.push(c);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    async fn revoke_cert_audited(
        &self,
        id: &str,
        at: i64,
        reason: u8,
        audit: &AuditEntry,
    ) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        let n = sqlx::query(
            "UPDATE certificates SET revoked_at = $1, revocation_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(i64::from(reason))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows();
        if n == 0 {
            return Ok(false);
        }
        audit::append(&mut *tx, audit, at).await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_serials() {
        let n = |v: &str| StoredIdentifier {
            kind: IdentifierKind::Dns,
            value: v.into(),
        };
        let names = [n("dev1.routers.example.com")];
        assert!(name_matches(&names, "routers.example.com"));
        assert!(name_matches(&names, "DEV1.routers.example.com."));
        assert!(!name_matches(&names, "ters.example.com"));
        assert_eq!(normalize_serial("00:AB:cd"), "abcd");
        // A first octet below 0x10 keeps its zero nibble, as `ca::hex` stores it.
        assert_eq!(normalize_serial("0a1b"), "0a1b");
        assert_eq!(normalize_serial("a1b"), "0a1b");
    }
}
