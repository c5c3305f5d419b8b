//! Storage of certificate-lifecycle facts: the profile and `replaces` link of each order
//! (draft-aaron-acme-profiles, RFC 9773 §5), per-certificate profile and CRL shard, operator
//! overrides of the ARI window (RFC 9773 §4.2) and partitioned CRLs (RFC 5280 §5.2.5).
//!
//! A narrow trait of its own (one narrow interface per role): the main
//! [`Storage`](super::Storage) does not grow, and the `renew-early` command sees only this.

use super::backend::{RowsAffected, SqlxBackend};
use super::rows::Cols;
use super::{CertRecord, CrlRecord, OrderState, RevokedEntry, SaError};
use async_trait::async_trait;
use sqlx::Row;

/// An order's lifecycle row, as `(profile, replaces_cert_id)`.
pub(super) const ORDER_LIFECYCLE_BY_ORDER: &str =
    "SELECT profile, replaces_cert_id FROM order_lifecycle WHERE order_id = $1";

/// What an order asked for beyond its identifiers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderLifecycle {
    /// The certificate profile name (draft-aaron-acme-profiles §3).
    pub profile: String,
    /// Id of the certificate the order replaces (RFC 9773 §5), if any.
    pub replaces_cert_id: Option<String>,
}

/// An order that names a certificate in `replaces`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplacingOrder {
    /// The order id.
    pub order_id: String,
    /// Its stored status.
    pub status: OrderState,
    /// Its expiry (UNIX seconds).
    pub expires: i64,
}

/// Which certificates an operator action applies to (`fleetca renew-early`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertSelector {
    /// One certificate by serial (lower-case hex, no leading zeros).
    Serial(String),
    /// Every certificate of an account.
    Account(String),
    /// Every certificate with at least one DNS name equal to or under this suffix.
    Suffix(String),
    /// Every certificate issued before this time (UNIX seconds).
    IssuedBefore(i64),
    /// Every certificate.
    All,
}

impl CertSelector {
    /// Whether `cert` is selected (the SQL narrows first; the name test is done here).
    pub fn matches(&self, cert: &CertRecord) -> bool {
        match self {
            CertSelector::Serial(s) => cert.serial == *s,
            CertSelector::Account(a) => cert.account_id == *a,
            CertSelector::IssuedBefore(t) => cert.issued_at < *t,
            CertSelector::All => true,
            CertSelector::Suffix(suffix) => {
                let suffix = suffix.trim_start_matches('.').to_ascii_lowercase();
                cert.names.iter().any(|n| {
                    let v = n.value.trim_start_matches("*.").to_ascii_lowercase();
                    v == suffix || v.ends_with(&format!(".{suffix}"))
                })
            }
        }
    }
}

/// What one pruning pass (expiry hygiene) deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Certificates expired longer than the retention period (0 when certificates are kept).
    pub certificates: u64,
    /// Orders expired before the cutoff that no remaining certificate came from.
    pub orders: u64,
    /// Authorizations expired before the cutoff that no remaining order uses.
    pub authzs: u64,
    /// Challenges of the deleted authorizations.
    pub challenges: u64,
}

impl PruneReport {
    /// Whether nothing was deleted.
    pub fn is_empty(&self) -> bool {
        *self == PruneReport::default()
    }
}

/// Lifecycle storage. Every write that reports success has committed.
#[async_trait]
pub trait LifecycleStore: Send + Sync {
    /// Records an order's profile and `replaces` link; written before the order itself.
    async fn insert_order_lifecycle(
        &self,
        order_id: &str,
        lc: &OrderLifecycle,
    ) -> Result<(), SaError>;
    /// The profile and link of an order (`None` for orders made before profiles existed).
    async fn get_order_lifecycle(&self, order_id: &str) -> Result<Option<OrderLifecycle>, SaError>;
    /// Orders whose `replaces` names `cert_id`.
    async fn replacing_orders(&self, cert_id: &str) -> Result<Vec<ReplacingOrder>, SaError>;

    /// Records the profile and CRL shard a certificate was issued with.
    async fn insert_cert_lifecycle(
        &self,
        cert_id: &str,
        profile: &str,
        crl_shard: Option<u32>,
    ) -> Result<(), SaError>;
    /// The profile and CRL shard of a certificate.
    async fn get_cert_lifecycle(
        &self,
        cert_id: &str,
    ) -> Result<Option<(String, Option<u32>)>, SaError>;

    /// The operator's ARI window for a certificate, `(start, end)`.
    async fn renewal_override(&self, cert_id: &str) -> Result<Option<(i64, i64)>, SaError>;
    /// Sets the ARI window of every listed certificate in one transaction; returns how many.
    async fn set_renewal_overrides(
        &self,
        cert_ids: &[String],
        start: i64,
        end: i64,
        at: i64,
    ) -> Result<u64, SaError>;
    /// Unexpired certificates (notAfter > `now`) of a tenant (or all tenants) that `sel`
    /// selects.
    async fn select_certs(
        &self,
        tenant: Option<&str>,
        sel: &CertSelector,
        now: i64,
    ) -> Result<Vec<CertRecord>, SaError>;

    /// Revoked, not yet expired (notAfter >= `not_after_min`) certificates in one CRL shard
    /// of the tenant's issuing CA `issuer`.
    async fn revoked_certs_in_shard(
        &self,
        tenant: &str,
        issuer: &str,
        shard: u32,
        not_after_min: i64,
    ) -> Result<Vec<RevokedEntry>, SaError>;
    /// The latest CRL of a shard.
    async fn get_crl_shard(&self, tenant: &str, shard: u32) -> Result<Option<CrlRecord>, SaError>;
    /// Stores a shard's CRL if its number is higher than the stored one.
    async fn store_crl_shard(
        &self,
        tenant: &str,
        shard: u32,
        crl: &CrlRecord,
    ) -> Result<(), SaError>;

    /// Expiry hygiene, in one transaction: deletes certificates whose notAfter is before
    /// `cert_cutoff` (none when `None`) with their lifecycle rows and ARI overrides; then orders
    /// that expired before `cutoff` and that no remaining certificate was issued from; then
    /// authorizations that expired before `cutoff` and that no remaining order uses, with their
    /// challenges. An issued certificate keeps its order, authorizations and challenges (the
    /// validation evidence, BR §5.4.1) for as long as the certificate row is kept.
    async fn prune_expired(
        &self,
        cutoff: i64,
        cert_cutoff: Option<i64>,
    ) -> Result<PruneReport, SaError>;
}

/// The one lifecycle read on the issuance path (every finalize reads its order's profile):
/// each engine reads it its own way (`sqlite/lifecycle.rs`, `postgres/lifecycle.rs`).
#[async_trait]
pub(super) trait OrderLifecycleRead {
    /// See [`LifecycleStore::get_order_lifecycle`].
    async fn order_lifecycle(&self, order_id: &str) -> Result<Option<OrderLifecycle>, SaError>;
}

/// One implementation for both engines: the SQL is the same, and what differs (whose turn it
/// is to write, what makes a commit durable) is `SqlxBackend`'s.
#[async_trait]
impl<B> LifecycleStore for B
where
    B: SqlxBackend + OrderLifecycleRead,
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
    async fn insert_order_lifecycle(
        &self,
        order_id: &str,
        lc: &OrderLifecycle,
    ) -> Result<(), SaError> {
        let pass = self.write_access().await?;
        sqlx::query(
            "INSERT INTO order_lifecycle (order_id, profile, replaces_cert_id) VALUES ($1, $2, $3)",
        )
        .bind(order_id)
        .bind(&lc.profile)
        .bind(&lc.replaces_cert_id)
        .execute(self.writer(&pass))
        .await?;
        self.durable().await?;
        Ok(())
    }

    async fn get_order_lifecycle(&self, order_id: &str) -> Result<Option<OrderLifecycle>, SaError> {
        self.order_lifecycle(order_id).await
    }

    async fn replacing_orders(&self, cert_id: &str) -> Result<Vec<ReplacingOrder>, SaError> {
        let rows = sqlx::query(
            "SELECT o.id, o.status, o.expires FROM order_lifecycle l
             JOIN orders o ON o.id = l.order_id WHERE l.replaces_cert_id = $1",
        )
        .bind(cert_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReplacingOrder {
                    order_id: r.try_get(0)?,
                    status: OrderState::parse(&r.try_get::<String, _>(1)?)?,
                    expires: r.try_get(2)?,
                })
            })
            .collect()
    }

    async fn insert_cert_lifecycle(
        &self,
        cert_id: &str,
        profile: &str,
        crl_shard: Option<u32>,
    ) -> Result<(), SaError> {
        let pass = self.write_access().await?;
        sqlx::query("INSERT INTO cert_lifecycle (cert_id, profile, crl_shard) VALUES ($1, $2, $3)")
            .bind(cert_id)
            .bind(profile)
            .bind(crl_shard.map(i64::from))
            .execute(self.writer(&pass))
            .await?;
        self.durable().await?;
        Ok(())
    }

    async fn get_cert_lifecycle(
        &self,
        cert_id: &str,
    ) -> Result<Option<(String, Option<u32>)>, SaError> {
        let row = sqlx::query("SELECT profile, crl_shard FROM cert_lifecycle WHERE cert_id = $1")
            .bind(cert_id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get::<Option<i64>, _>(1)?.map(|v| v as u32),
            ))
        })
        .transpose()
    }

    async fn renewal_override(&self, cert_id: &str) -> Result<Option<(i64, i64)>, SaError> {
        let row = sqlx::query(
            "SELECT window_start, window_end FROM renewal_overrides WHERE cert_id = $1",
        )
        .bind(cert_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    async fn set_renewal_overrides(
        &self,
        cert_ids: &[String],
        start: i64,
        end: i64,
        at: i64,
    ) -> Result<u64, SaError> {
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        let mut n = 0;
        for id in cert_ids {
            n += sqlx::query(
                "INSERT INTO renewal_overrides (cert_id, window_start, window_end, set_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (cert_id) DO UPDATE SET window_start = excluded.window_start,
                   window_end = excluded.window_end, set_at = excluded.set_at",
            )
            .bind(id)
            .bind(start)
            .bind(end)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows();
        }
        tx.commit().await?;
        self.durable().await?;
        Ok(n)
    }

    async fn select_certs(
        &self,
        tenant: Option<&str>,
        sel: &CertSelector,
        now: i64,
    ) -> Result<Vec<CertRecord>, SaError> {
        // Narrow in SQL where the selector maps onto a column; names are JSON, so the suffix
        // test runs in Rust on the unexpired rows.
        let (serial, account) = match sel {
            CertSelector::Serial(s) => (Some(s.as_str()), None),
            CertSelector::Account(a) => (None, Some(a.as_str())),
            _ => (None, None),
        };
        let q = sqlx::query(
            "SELECT * FROM certificates WHERE not_after > $1 AND ($2 IS NULL OR tenant = $2)
               AND ($3 IS NULL OR serial = $3) AND ($4 IS NULL OR account_id = $4)
             ORDER BY issued_at, id",
        )
        .bind(now)
        .bind(tenant)
        .bind(serial)
        .bind(account);
        let rows = q.fetch_all(self.pool()).await?;
        let mut out = Vec::new();
        for r in &rows {
            let c = crate::sa::rows::cert(r)?;
            if sel.matches(&c) {
                out.push(c);
            }
        }
        Ok(out)
    }

    async fn revoked_certs_in_shard(
        &self,
        tenant: &str,
        issuer: &str,
        shard: u32,
        not_after_min: i64,
    ) -> Result<Vec<RevokedEntry>, SaError> {
        let rows = sqlx::query(
            "SELECT c.serial, c.revoked_at, c.revocation_reason FROM certificates c
             JOIN cert_lifecycle l ON l.cert_id = c.id
             WHERE c.tenant = $1 AND l.crl_shard = $2 AND c.revoked_at IS NOT NULL
               AND c.not_after >= $3 AND COALESCE(c.issuer, c.tenant) = $4 ORDER BY c.serial",
        )
        .bind(tenant)
        .bind(i64::from(shard))
        .bind(not_after_min)
        .bind(issuer)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RevokedEntry {
                    serial: r.try_get(0)?,
                    revoked_at: r.try_get(1)?,
                    reason: r.try_get::<Option<i64>, _>(2)?.map(|v| v as u8),
                })
            })
            .collect()
    }

    async fn get_crl_shard(&self, tenant: &str, shard: u32) -> Result<Option<CrlRecord>, SaError> {
        let row = sqlx::query(
            "SELECT crl_number, der, this_update, next_update FROM crl_shards
             WHERE tenant = $1 AND shard = $2",
        )
        .bind(tenant)
        .bind(i64::from(shard))
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(CrlRecord {
                number: r.try_get(0)?,
                der: r.try_get(1)?,
                this_update: r.try_get(2)?,
                next_update: r.try_get(3)?,
            })
        })
        .transpose()
    }

    async fn store_crl_shard(
        &self,
        tenant: &str,
        shard: u32,
        crl: &CrlRecord,
    ) -> Result<(), SaError> {
        let pass = self.write_access().await?;
        sqlx::query(
            "INSERT INTO crl_shards (tenant, shard, crl_number, der, this_update, next_update)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant, shard) DO UPDATE SET crl_number = excluded.crl_number,
               der = excluded.der, this_update = excluded.this_update,
               next_update = excluded.next_update
             WHERE excluded.crl_number > crl_shards.crl_number",
        )
        .bind(tenant)
        .bind(i64::from(shard))
        .bind(crl.number)
        .bind(&crl.der)
        .bind(crl.this_update)
        .bind(crl.next_update)
        .execute(self.writer(&pass))
        .await?;
        self.durable().await?;
        Ok(())
    }

    async fn prune_expired(
        &self,
        cutoff: i64,
        cert_cutoff: Option<i64>,
    ) -> Result<PruneReport, SaError> {
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        let mut report = PruneReport::default();
        if let Some(cc) = cert_cutoff {
            for sql in [
                "DELETE FROM renewal_overrides WHERE cert_id IN
                   (SELECT id FROM certificates WHERE not_after < $1)",
                "DELETE FROM cert_lifecycle WHERE cert_id IN
                   (SELECT id FROM certificates WHERE not_after < $1)",
                "DELETE FROM cert_coverage WHERE not_after < $1",
            ] {
                sqlx::query(sql).bind(cc).execute(&mut *tx).await?;
            }
            report.certificates = sqlx::query("DELETE FROM certificates WHERE not_after < $1")
                .bind(cc)
                .execute(&mut *tx)
                .await?
                .rows();
        }
        // Orders past expiry that produced no (remaining) certificate. (The subquery is
        // spelled out in each statement: sqlx takes only literal SQL.)
        for sql in [
            "DELETE FROM order_authzs WHERE order_id IN (SELECT o.id FROM orders o
               WHERE o.expires < $1
                 AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.order_id = o.id))",
            "DELETE FROM order_lifecycle WHERE order_id IN (SELECT o.id FROM orders o
               WHERE o.expires < $1
                 AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.order_id = o.id))",
        ] {
            sqlx::query(sql).bind(cutoff).execute(&mut *tx).await?;
        }
        report.orders = sqlx::query(
            "DELETE FROM orders WHERE expires < $1
               AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.order_id = orders.id)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows();
        // Authorizations past expiry that no remaining order links (reused ones stay with
        // the orders that still need them).
        report.challenges = sqlx::query(
            "DELETE FROM challenges WHERE authz_id IN (SELECT a.id FROM authzs a
               WHERE a.expires < $1
                 AND NOT EXISTS (SELECT 1 FROM order_authzs oa WHERE oa.authz_id = a.id))",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows();
        report.authzs = sqlx::query(
            "DELETE FROM authzs WHERE expires < $1
               AND NOT EXISTS (SELECT 1 FROM order_authzs oa WHERE oa.authz_id = authzs.id)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows();
        tx.commit().await?;
        self.durable().await?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sa::SqliteStorage;
    use crate::sa::{IdentifierKind, StoredIdentifier};

    fn cert(names: &[&str]) -> CertRecord {
        CertRecord {
            id: "c".into(),
            tenant: "default".into(),
            serial: "01".into(),
            account_id: "a".into(),
            order_id: "o".into(),
            der: vec![],
            names: names
                .iter()
                .map(|n| StoredIdentifier {
                    kind: IdentifierKind::Dns,
                    value: (*n).into(),
                })
                .collect(),
            not_before: 0,
            not_after: 10,
            issued_at: 5,
            revoked_at: None,
            revocation_reason: None,
            issuer: None,
        }
    }

    #[test]
    fn suffix_selector_matches_labels_not_substrings() {
        let sel = CertSelector::Suffix("plant1.example.com".into());
        assert!(sel.matches(&cert(&["a.plant1.example.com"])));
        assert!(sel.matches(&cert(&["plant1.example.com"])));
        assert!(!sel.matches(&cert(&["xplant1.example.com"])));
        assert!(CertSelector::IssuedBefore(6).matches(&cert(&["x"])));
        assert!(!CertSelector::IssuedBefore(5).matches(&cert(&["x"])));
    }

    async fn exec(db: &SqliteStorage, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(db.pool())
            .await
            .unwrap();
    }

    async fn ids(db: &SqliteStorage, table: &str) -> Vec<String> {
        let sql = format!("SELECT id FROM {table} ORDER BY id");
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(db.pool())
            .await
            .unwrap()
    }

    /// Old rows seeded around a cutoff of 1000: what pruning deletes and what it keeps.
    #[tokio::test]
    async fn pruning_keeps_what_certificates_need() {
        let db = SqliteStorage::open_scratch().await.unwrap();
        exec(&db, "INSERT INTO accounts (id, tenant, jwk_thumbprint, jwk, contact, status, tos_agreed, eab_kid, created_at) VALUES ('a1','default','t','{}','[]','valid',1,NULL,0);").await;
        for (id, expires) in [("o_stale", 10), ("o_issued", 10), ("o_live", 5000)] {
            exec(&db, &format!("INSERT INTO orders (id, tenant, account_id, status, expires, identifiers, created_at) VALUES ('{id}','default','a1','pending',{expires},'[]',0);")).await;
            exec(
                &db,
                &format!("INSERT INTO order_lifecycle VALUES ('{id}','default',NULL);"),
            )
            .await;
        }
        // z_stale: only o_stale; z_issued: o_issued's; z_shared: reused by o_stale and
        // o_live; z_orphan: no order; z_fresh: unexpired, no order.
        for (id, expires) in [
            ("z_stale", 10),
            ("z_issued", 10),
            ("z_shared", 10),
            ("z_orphan", 10),
            ("z_fresh", 5000),
        ] {
            exec(&db, &format!("INSERT INTO authzs (id, tenant, account_id, ident_type, ident_value, wildcard, status, expires, created_at) VALUES ('{id}','default','a1','dns','x.example',0,'valid',{expires},0);")).await;
            exec(&db, &format!("INSERT INTO challenges (id, authz_id, type, token, status) VALUES ('c_{id}','{id}','dns-01','tok','valid');")).await;
        }
        for (o, z) in [
            ("o_stale", "z_stale"),
            ("o_stale", "z_shared"),
            ("o_issued", "z_issued"),
            ("o_live", "z_shared"),
        ] {
            exec(&db, &format!("INSERT INTO order_authzs (order_id, authz_id, position) VALUES ('{o}','{z}',0);")).await;
        }
        exec(&db, "INSERT INTO certificates (id, tenant, serial, account_id, order_id, der, names, not_before, not_after, issued_at) VALUES ('cert1','default','01','a1','o_issued',x'00','[]',0,100,0);").await;
        exec(
            &db,
            "INSERT INTO cert_lifecycle VALUES ('cert1','default',NULL);",
        )
        .await;
        exec(&db, "INSERT INTO renewal_overrides (cert_id, window_start, window_end, set_at) VALUES ('cert1',1,2,3);").await;

        // Certificates kept (the default): only the unfinished order and unused authzs go.
        let r = db.prune_expired(1000, None).await.unwrap();
        assert_eq!(
            r,
            PruneReport {
                certificates: 0,
                orders: 1,
                authzs: 2,
                challenges: 2
            }
        );
        assert_eq!(ids(&db, "orders").await, ["o_issued", "o_live"]);
        assert_eq!(
            ids(&db, "authzs").await,
            ["z_fresh", "z_issued", "z_shared"]
        );
        assert_eq!(
            ids(&db, "challenges").await,
            ["c_z_fresh", "c_z_issued", "c_z_shared"]
        );
        assert_eq!(ids(&db, "certificates").await, ["cert1"]);
        assert!(db.get_order_lifecycle("o_stale").await.unwrap().is_none());
        // Nothing left to prune: a second pass is a no-op.
        assert!(db.prune_expired(1000, None).await.unwrap().is_empty());

        // Retention before the certificate's expiry keeps it.
        assert!(db.prune_expired(1000, Some(50)).await.unwrap().is_empty());
        // Past it: the certificate goes, then its order and authorization with it.
        let r = db.prune_expired(1000, Some(500)).await.unwrap();
        assert_eq!(
            r,
            PruneReport {
                certificates: 1,
                orders: 1,
                authzs: 1,
                challenges: 1
            }
        );
        assert!(ids(&db, "certificates").await.is_empty());
        assert_eq!(ids(&db, "orders").await, ["o_live"]);
        assert_eq!(ids(&db, "authzs").await, ["z_fresh", "z_shared"]);
        assert_eq!(db.renewal_override("cert1").await.unwrap(), None);
        assert_eq!(db.get_cert_lifecycle("cert1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn overrides_and_order_links_round_trip() {
        let db = SqliteStorage::open_scratch().await.unwrap();
        assert_eq!(db.renewal_override("nope").await.unwrap(), None);
        let lc = OrderLifecycle {
            profile: "shortlived".into(),
            replaces_cert_id: Some("c1".into()),
        };
        db.insert_order_lifecycle("o1", &lc).await.unwrap();
        assert_eq!(db.get_order_lifecycle("o1").await.unwrap(), Some(lc));
        assert_eq!(db.get_order_lifecycle("o2").await.unwrap(), None);
        // The order row itself does not exist, so it is not a replacing order yet.
        assert!(db.replacing_orders("c1").await.unwrap().is_empty());
    }
}
