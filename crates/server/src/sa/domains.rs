//! Storage of tenant domains (issue 17): parent domains a tenant proved control of by a DNS
//! method, or that the operator marked vendor-owned for a private-trust tenant. A narrow trait
//! of its own, like [`EabStore`](super::EabStore): the CLI, the admin API and the RA's
//! revalidation task see only this slice. Every change an operator makes carries its audit
//! record in the same transaction.

use super::audit::{self, AuditAppend, AuditEntry};
use super::backend::{RowsAffected, SqlxBackend};
use super::rows::Cols;
use super::sql::is_unique_violation;
use super::SaError;
use async_trait::async_trait;
use sqlx::Row;

/// How a tenant domain is (to be) proved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DomainMethod {
    /// A random value at `_acme-challenge.<domain>` (BR §3.2.2.4.7), published for each
    /// validation.
    #[serde(rename = "dns-01")]
    Dns01,
    /// A persistent record at `_validation-persist.<domain>` naming the CA and the tenant
    /// (draft-ietf-acme-dns-persist, BR §3.2.2.4.22): revalidated without a DNS change.
    #[serde(rename = "dns-persist-01")]
    DnsPersist01,
    /// No proof: the operator of a private-trust CA declares the domain the vendor's.
    #[serde(rename = "trusted")]
    Trusted,
}

impl DomainMethod {
    /// The stored and displayed name.
    pub fn as_str(&self) -> &'static str {
        match self {
            DomainMethod::Dns01 => "dns-01",
            DomainMethod::DnsPersist01 => "dns-persist-01",
            DomainMethod::Trusted => "trusted",
        }
    }

    /// Parses a stored or command-line name.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "dns-01" => Ok(DomainMethod::Dns01),
            "dns-persist-01" => Ok(DomainMethod::DnsPersist01),
            "trusted" => Ok(DomainMethod::Trusted),
            _ => Err(format!("{s:?}: use dns-01 or dns-persist-01")),
        }
    }
}

/// Where a tenant domain stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainState {
    /// Added, never validated.
    Pending,
    /// Validated; grants authorizations until `expires_at`.
    Valid,
    /// The last validation failed (a revalidation that found the record gone included).
    Invalid,
}

impl DomainState {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            DomainState::Pending => "pending",
            DomainState::Valid => "valid",
            DomainState::Invalid => "invalid",
        }
    }

    fn parse(s: &str) -> Result<Self, SaError> {
        match s {
            "pending" => Ok(DomainState::Pending),
            "valid" => Ok(DomainState::Valid),
            "invalid" => Ok(DomainState::Invalid),
            _ => Err(SaError::Corrupt(format!("unknown domain status {s:?}"))),
        }
    }
}

/// One tenant domain as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantDomainRecord {
    /// Random opaque id; authorizations granted from it name it (`derived_from`).
    pub id: String,
    /// The tenant it belongs to.
    pub tenant: String,
    /// Lower-case A-label form, no trailing dot, no wildcard.
    pub name: String,
    /// How it is proved.
    pub method: DomainMethod,
    /// The TXT record's owner name (none for `trusted`).
    pub txt_name: Option<String>,
    /// The TXT record's value.
    pub txt_value: Option<String>,
    /// dns-01 only: the random value may be used until then (BR §3.2.2.4.7, 30 days).
    pub value_expires: Option<i64>,
    /// Where it stands.
    pub status: DomainState,
    /// When the last successful validation happened.
    pub validated_at: Option<i64>,
    /// End of that validation's reuse period; nothing is granted from then on.
    pub expires_at: Option<i64>,
    /// JSON: what the last successful validation queried and found.
    pub evidence: Option<String>,
    /// When it was last checked (successfully or not).
    pub last_checked_at: Option<i64>,
    /// JSON problem document of the last failed check.
    pub last_error: Option<String>,
    /// When it was added.
    pub created_at: i64,
}

impl TenantDomainRecord {
    /// Whether it grants authorizations at `now`.
    pub fn grants_at(&self, now: i64) -> bool {
        self.status == DomainState::Valid && self.expires_at.is_some_and(|e| e > now)
    }

    /// Whether `name` (without `*.`) is this domain or below it, on a label boundary.
    pub fn covers(&self, name: &str) -> bool {
        name == self.name
            || name
                .strip_suffix(self.name.as_str())
                .is_some_and(|head| head.ends_with('.') && head.len() > 1)
    }

    /// The operator's view (listings, the admin API, the audit log).
    pub fn summary_json(&self, now: i64) -> serde_json::Value {
        let status = match self.status {
            DomainState::Valid if !self.grants_at(now) => "expired",
            s => s.as_str(),
        };
        serde_json::json!({
            "id": self.id,
            "tenant": self.tenant,
            "name": self.name,
            "method": self.method.as_str(),
            "status": status,
            "txt_name": self.txt_name,
            "txt_value": self.txt_value,
            "validated_at": self.validated_at,
            "expires_at": self.expires_at,
            "evidence": self.evidence.as_deref().and_then(|e| serde_json::from_str::<serde_json::Value>(e).ok()),
            "last_checked_at": self.last_checked_at,
            "last_error": self.last_error.as_deref().and_then(|e| serde_json::from_str::<serde_json::Value>(e).ok()),
            "created_at": self.created_at,
        })
    }
}

/// The result of one validation of a tenant domain.
#[derive(Clone, Debug)]
pub struct DomainCheckOutcome {
    /// When the check finished.
    pub at: i64,
    /// On success: the evidence (JSON) and the end of the reuse period.
    pub valid: Option<(String, i64)>,
    /// On failure: the problem document (JSON).
    pub error: Option<String>,
}

/// Tenant domains: add, look up, list, record validations, remove.
#[async_trait]
pub trait DomainStore: Send + Sync {
    /// Stores a new domain with its audit record; `Conflict` if the tenant has it already.
    async fn insert_domain(
        &self,
        d: &TenantDomainRecord,
        audit: &AuditEntry,
    ) -> Result<(), SaError>;
    /// The tenant's domain `name`.
    async fn get_domain(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<TenantDomainRecord>, SaError>;
    /// The domain with this id.
    async fn get_domain_by_id(&self, id: &str) -> Result<Option<TenantDomainRecord>, SaError>;
    /// All domains, or one tenant's, by tenant and name.
    async fn list_domains(&self, tenant: Option<&str>) -> Result<Vec<TenantDomainRecord>, SaError>;
    /// Records a check of domain `id`: on success it becomes valid until the outcome's expiry
    /// with its evidence; on failure it becomes invalid (it grants nothing from now on). False
    /// if the domain no longer exists. `audit`, if given, is written in the same transaction.
    async fn record_domain_check(
        &self,
        id: &str,
        outcome: &DomainCheckOutcome,
        audit: Option<&AuditEntry>,
    ) -> Result<bool, SaError>;
    /// Removes the tenant's domain `name` and, in the same transaction, deactivates every
    /// pending or valid authorization granted from it, so no order can be finalized on it any
    /// more. False if there is no such domain.
    async fn remove_domain(
        &self,
        tenant: &str,
        name: &str,
        audit: &AuditEntry,
    ) -> Result<bool, SaError>;
    /// Whether `account_id` was created with an unrevoked EAB credential of `tenant` (the
    /// accounts that inherit the tenant's domains).
    async fn account_has_tenant_eab(&self, tenant: &str, account_id: &str)
        -> Result<bool, SaError>;
}

/// One implementation for both engines: the SQL is the same, and what differs (whose turn it
/// is to write, what makes a commit durable) is [`SqlxBackend`]'s.
fn domain_row(r: &impl Cols) -> Result<TenantDomainRecord, SaError> {
    Ok(TenantDomainRecord {
        id: r.text("id")?,
        tenant: r.text("tenant")?,
        name: r.text("name")?,
        method: DomainMethod::parse(&r.text("method")?).map_err(SaError::Corrupt)?,
        txt_name: r.opt_text("txt_name")?,
        txt_value: r.opt_text("txt_value")?,
        value_expires: r.opt_int("value_expires")?,
        status: DomainState::parse(&r.text("status")?)?,
        validated_at: r.opt_int("validated_at")?,
        expires_at: r.opt_int("expires_at")?,
        evidence: r.opt_text("evidence")?,
        last_checked_at: r.opt_int("last_checked_at")?,
        last_error: r.opt_text("last_error")?,
        created_at: r.int("created_at")?,
    })
}

#[async_trait]
impl<B> DomainStore for B
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
    async fn insert_domain(
        &self,
        d: &TenantDomainRecord,
        audit: &AuditEntry,
    ) -> Result<(), SaError> {
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        let res = sqlx::query(
            "INSERT INTO tenant_domains (id, tenant, name, method, txt_name, txt_value,
                        value_expires, status, validated_at, expires_at, evidence, last_checked_at,
                        last_error, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&d.id)
        .bind(&d.tenant)
        .bind(&d.name)
        .bind(d.method.as_str())
        .bind(&d.txt_name)
        .bind(&d.txt_value)
        .bind(d.value_expires)
        .bind(d.status.as_str())
        .bind(d.validated_at)
        .bind(d.expires_at)
        .bind(&d.evidence)
        .bind(d.last_checked_at)
        .bind(&d.last_error)
        .bind(d.created_at)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(SaError::Conflict(format!(
                    "tenant {:?} already has the domain {}",
                    d.tenant, d.name
                )))
            }
            Err(e) => return Err(e.into()),
        }
        audit::append(&mut *tx, audit, d.created_at).await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(())
    }

    async fn get_domain(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<TenantDomainRecord>, SaError> {
        let row = sqlx::query("SELECT * FROM tenant_domains WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(domain_row).transpose()
    }

    async fn get_domain_by_id(&self, id: &str) -> Result<Option<TenantDomainRecord>, SaError> {
        let row = sqlx::query("SELECT * FROM tenant_domains WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(domain_row).transpose()
    }

    async fn list_domains(&self, tenant: Option<&str>) -> Result<Vec<TenantDomainRecord>, SaError> {
        let rows = sqlx::query(
            "SELECT * FROM tenant_domains WHERE ($1 IS NULL OR tenant = $1) ORDER BY tenant, name",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(domain_row).collect()
    }

    async fn record_domain_check(
        &self,
        id: &str,
        o: &DomainCheckOutcome,
        audit: Option<&AuditEntry>,
    ) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        let n = match &o.valid {
            Some((evidence, expires)) => sqlx::query(
                "UPDATE tenant_domains SET status = 'valid', validated_at = $2,
                            expires_at = $3, evidence = $4, last_checked_at = $2, last_error = NULL
                         WHERE id = $1",
            )
            .bind(id)
            .bind(o.at)
            .bind(*expires)
            .bind(evidence)
            .execute(&mut *tx)
            .await?
            .rows(),
            None => sqlx::query(
                "UPDATE tenant_domains SET status = 'invalid', last_checked_at = $2,
                            last_error = $3
                         WHERE id = $1",
            )
            .bind(id)
            .bind(o.at)
            .bind(&o.error)
            .execute(&mut *tx)
            .await?
            .rows(),
        };
        if n == 0 {
            return Ok(false);
        }
        if let Some(a) = audit {
            audit::append(&mut *tx, a, o.at).await?;
        }
        tx.commit().await?;
        self.durable().await?;
        Ok(true)
    }

    async fn remove_domain(
        &self,
        tenant: &str,
        name: &str,
        audit: &AuditEntry,
    ) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        let id: Option<String> =
            sqlx::query("DELETE FROM tenant_domains WHERE tenant = $1 AND name = $2 RETURNING id")
                .bind(tenant)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        let Some(id) = id else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE authzs SET status = 'deactivated'
                     WHERE derived_from = $1 AND status IN ('pending', 'valid')",
        )
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        audit::append(&mut *tx, audit, audit.at).await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(true)
    }

    async fn account_has_tenant_eab(
        &self,
        tenant: &str,
        account_id: &str,
    ) -> Result<bool, SaError> {
        let row = sqlx::query(
            "SELECT 1 FROM accounts a JOIN eab_keys k ON k.kid = a.eab_kid
                     WHERE a.id = $1 AND a.tenant = $2 AND k.tenant = $2 AND k.revoked_at IS NULL",
        )
        .bind(account_id)
        .bind(tenant)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(name: &str) -> TenantDomainRecord {
        TenantDomainRecord {
            id: "d1".into(),
            tenant: "routers".into(),
            name: name.into(),
            method: DomainMethod::Dns01,
            txt_name: None,
            txt_value: None,
            value_expires: None,
            status: DomainState::Valid,
            validated_at: Some(0),
            expires_at: Some(100),
            evidence: None,
            last_checked_at: None,
            last_error: None,
            created_at: 0,
        }
    }

    #[test]
    fn covers_on_label_boundaries_only() {
        let d = domain("routers.example.com");
        assert!(d.covers("routers.example.com"));
        assert!(d.covers("config.routers.example.com"));
        assert!(d.covers("a.b.routers.example.com"));
        assert!(!d.covers("evilrouters.example.com"));
        assert!(!d.covers(".routers.example.com"));
        assert!(!d.covers("example.com"));
    }

    #[test]
    fn grants_only_while_valid_and_unexpired() {
        let mut d = domain("routers.example.com");
        assert!(d.grants_at(99));
        assert!(!d.grants_at(100));
        d.status = DomainState::Invalid;
        assert!(!d.grants_at(50));
    }
}
