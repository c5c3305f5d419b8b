//! The SQL both backends run. Queries use `$N` parameters, integer UNIX times and only
//! syntax SQLite and PostgreSQL share, so one text serves both; [`sql_storage`] stamps the
//! [`Storage`](super::Storage) implementation out for each backend's pool and row types, keeping
//! the backends identical by construction. On a SQLite file the issuance path's writes and
//! point reads leave sqlx for `rusqlite` (`sqlite::batch`, `sqlite::reads`), running the same
//! texts (`stmt`, `rows`) and mapping rows through the same functions (`rows`).

use super::SaError;

pub(super) fn json<T: serde::Serialize>(v: &T) -> String {
    // Serializing plain Vec<String>/Vec<StoredIdentifier> cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, SaError> {
    serde_json::from_str(s).map_err(|e| SaError::Corrupt(format!("bad JSON column: {e}")))
}

/// The order a new order's authorizations are inserted in: those that others are attested by
/// first, so a reader never sees a dependent authorization whose deciding one is missing.
pub(super) fn insertion_order(
    new_authzs: &[super::AuthzRecord],
) -> impl Iterator<Item = &super::AuthzRecord> {
    new_authzs
        .iter()
        .filter(|a| a.attested_by.is_none())
        .chain(new_authzs.iter().filter(|a| a.attested_by.is_some()))
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Statements of the issuance path whose plan depends on planner statistics: an index that
/// statistics rate as useless turns them into table scans as history grows. Named here so
/// that `sa::seed`'s test plans exactly the text the backends run.
pub(super) mod stmt {
    /// finalize, step 1: claim a pending order.
    pub(crate) const CLAIM_ORDER: &str =
        "UPDATE orders SET status = 'processing', claim_token = $2, claim_until = $3 WHERE id = $1 AND status = 'pending'";
    /// Finalize sweep: give back claims whose holder died between claim and store. An order
    /// with a stored precertificate is never given back: it is committed to that serial
    /// (BR §7.1.2.9) and the CT retry task finishes it (`sa::ct`).
    pub(crate) const RELEASE_STALE_ORDER_CLAIMS: &str =
        "UPDATE orders SET status = 'pending', claim_token = NULL, claim_until = NULL
         WHERE status = 'processing' AND (claim_until IS NULL OR claim_until < $1)
         AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.order_id = orders.id)
         RETURNING id";
    /// newOrder: a reusable authorization of this account for an identifier.
    pub(crate) const REUSABLE_AUTHZ: &str =
        "SELECT id FROM authzs WHERE account_id = $1 AND ident_type = $2 AND ident_value = $3 AND wildcard = $4
         AND status IN ('valid', 'pending') AND expires > $5
         AND attested_by IS NULL AND derived_from IS NULL AND ancestor_authz IS NULL AND NOT EXISTS (SELECT 1 FROM authzs d WHERE d.attested_by = authzs.id)
         ORDER BY CASE status WHEN 'valid' THEN 0 ELSE 1 END, expires DESC LIMIT 1";
    /// Authorization deactivation: the names its attestation granted go with it.
    pub(crate) const DEACTIVATE_ATTESTED: &str =
        "UPDATE authzs SET status = 'deactivated' WHERE (attested_by = $1 OR ancestor_authz = $1) AND status IN ('pending', 'valid')";
    /// newOrder (RFC 9444 §4.2): the account's valid authorizations that allow subdomains,
    /// the longest-lived first.
    pub(crate) const SUBDOMAIN_ANCESTOR_AUTHZS: &str =
        "SELECT id, ident_value, expires FROM authzs WHERE account_id = $1 AND tenant = $2
         AND ident_type = 'dns' AND wildcard = 0 AND status = 'valid' AND subdomain_auth_allowed = 1
         AND expires > $3 AND ancestor_authz IS NULL AND derived_from IS NULL AND attested_by IS NULL
         ORDER BY expires DESC";
    /// Challenge POST: start a validation (with its lease and the lease's owner).
    pub(crate) const START_CHALLENGE: &str =
        "UPDATE challenges SET status = 'processing', lease_until = $2, lease_owner = $3 WHERE id = $1 AND status = 'pending'
         AND EXISTS (SELECT 1 FROM authzs a WHERE a.id = challenges.authz_id AND a.status = 'pending')";
    /// A validation about to contact its target, or still running: extends the lease only if
    /// the caller still holds it and the challenge and its authorization are undecided.
    pub(crate) const RENEW_CHALLENGE_LEASE: &str =
        "UPDATE challenges SET lease_until = $3 WHERE id = $1 AND lease_owner = $2 AND status = 'processing'
         AND EXISTS (SELECT 1 FROM authzs a WHERE a.id = challenges.authz_id AND a.status = 'pending')";
    /// Validation succeeded: the challenge's authorization.
    pub(crate) const AUTHZ_VALID: &str =
        "UPDATE authzs SET status = 'valid', expires = $1 WHERE status = 'pending'
         AND id = (SELECT authz_id FROM challenges WHERE id = $2)";
    /// Validation failed: the challenge's authorization.
    pub(crate) const AUTHZ_INVALID: &str =
        "UPDATE authzs SET status = 'invalid' WHERE status = 'pending' AND id = (SELECT authz_id FROM challenges WHERE id = $1)";
    /// Validation succeeded: the authorizations it attests.
    pub(crate) const ATTESTED_VALID: &str =
        "UPDATE authzs SET status = 'valid', expires = $1 WHERE status = 'pending'
         AND attested_by = (SELECT authz_id FROM challenges WHERE id = $2)";
    /// Validation failed: the authorizations it attests.
    pub(crate) const ATTESTED_INVALID: &str =
        "UPDATE authzs SET status = 'invalid' WHERE status = 'pending' AND attested_by = (SELECT authz_id FROM challenges WHERE id = $1)";
    /// Lease sweep: take over validations whose node died.
    /// At most `$4` at a time (what the sweeping node's queue has room for); the outer
    /// condition repeats the inner one so that two nodes sweeping at once on PostgreSQL cannot
    /// both take a row (the second re-checks it after the first's update).
    pub(crate) const CLAIM_STALE_CHALLENGES: &str =
        "UPDATE challenges SET lease_until = $2, lease_owner = $3
         WHERE status = 'processing' AND (lease_until IS NULL OR lease_until < $1)
         AND id IN (SELECT id FROM challenges WHERE status = 'processing'
                    AND (lease_until IS NULL OR lease_until < $1) LIMIT $4)
         RETURNING id";

    // The writes below have no plan to go wrong; named so both write paths share them.
    /// newOrder: what the order asked for beyond its identifiers.
    pub(crate) const INSERT_ORDER_LIFECYCLE: &str =
        "INSERT INTO order_lifecycle (order_id, profile, replaces_cert_id) VALUES ($1, $2, $3)";
    /// newOrder: a new authorization.
    pub(crate) const INSERT_AUTHZ: &str =
        "INSERT INTO authzs (id, tenant, account_id, ident_type, ident_value, wildcard, status, expires, created_at, attested_by, derived_from, subdomain_auth_allowed, ancestor_authz)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
    /// newOrder: a challenge of a new authorization.
    pub(crate) const INSERT_CHALLENGE: &str =
        "INSERT INTO challenges (id, authz_id, type, token, status) VALUES ($1, $2, $3, $4, $5)";
    /// newOrder: the order.
    pub(crate) const INSERT_ORDER: &str =
        "INSERT INTO orders (id, tenant, account_id, status, expires, identifiers, error, cert_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7)";
    /// newOrder: one of the order's authorizations, in order.
    pub(crate) const INSERT_ORDER_AUTHZ: &str =
        "INSERT INTO order_authzs (order_id, authz_id, position) VALUES ($1, $2, $3)";
    /// finalize: the certificate's profile and CRL shard.
    pub(crate) const INSERT_CERT_LIFECYCLE: &str =
        "INSERT INTO cert_lifecycle (cert_id, profile, crl_shard) VALUES ($1, $2, $3)";
    /// finalize: the certificate.
    pub(crate) const INSERT_CERT: &str =
        "INSERT INTO certificates (id, tenant, serial, account_id, order_id, der, names, not_before, not_after, issued_at, issuer)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
    /// finalize, step 3: the order now has its certificate, if this request still holds it.
    pub(crate) const ORDER_VALID: &str =
        "UPDATE orders SET status = 'valid', cert_id = $1, claim_token = NULL, claim_until = NULL
         WHERE id = $2 AND status = 'processing' AND claim_token = $3";
    /// finalize: signing failed, the order is pending (so `ready`) again.
    pub(crate) const RELEASE_ORDER_CLAIM: &str =
        "UPDATE orders SET status = 'pending', claim_token = NULL, claim_until = NULL
         WHERE id = $1 AND status = 'processing' AND claim_token = $2";
    /// Validation finished: the challenge's outcome.
    pub(crate) const FINISH_CHALLENGE: &str =
        "UPDATE challenges SET status = $1, validated_at = $2, error = $3, record = $4 WHERE id = $5 AND status = 'processing'";

    /// The statements the plan test checks: the eleven above the writes.
    #[cfg(test)]
    pub(crate) const ALL: [&str; 11] = [
        CLAIM_ORDER,
        RELEASE_STALE_ORDER_CLAIMS,
        REUSABLE_AUTHZ,
        DEACTIVATE_ATTESTED,
        START_CHALLENGE,
        RENEW_CHALLENGE_LEASE,
        AUTHZ_VALID,
        AUTHZ_INVALID,
        ATTESTED_VALID,
        ATTESTED_INVALID,
        CLAIM_STALE_CHALLENGES,
    ];
}

/// Row counts and content digests per table, for operators and tests that check a refused
/// request changed nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// Accounts.
    pub accounts: i64,
    /// Orders.
    pub orders: i64,
    /// Authorizations.
    pub authzs: i64,
    /// Challenges.
    pub challenges: i64,
    /// Certificates.
    pub certificates: i64,
    /// Revoked certificates.
    pub revoked: i64,
    /// SHA-256 (hex) of each table's rows, every column quoted by the database and the rows
    /// sorted, so a refused request that UPDATEs a row shows here although no count moved.
    pub contents: std::collections::BTreeMap<&'static str, String>,
}

/// The tables whose contents [`TableCounts::contents`] digests: the ACME objects and what
/// binds accounts to tenants.
const DIGESTED_TABLES: [&str; 8] = [
    "accounts",
    "orders",
    "authzs",
    "order_authzs",
    "challenges",
    "certificates",
    "eab_keys",
    "eab_bindings",
];

/// How a backend lists a table's columns and renders one column as SQL text.
pub(super) trait RowText {
    /// Column names of the table bound to `$1`, in declaration order.
    const COLUMNS: &'static str;
    /// A function rendering any value (NULL, blobs included) as text.
    const QUOTE: &'static str;
}

impl RowText for sqlx::Sqlite {
    const COLUMNS: &'static str = "SELECT name FROM pragma_table_info($1) ORDER BY cid";
    const QUOTE: &'static str = "quote";
}

impl RowText for sqlx::Postgres {
    const COLUMNS: &'static str = "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position";
    const QUOTE: &'static str = "quote_nullable";
}

/// SHA-256 (hex) of the sorted rows of each of [`DIGESTED_TABLES`].
pub(super) async fn table_contents<DB>(
    pool: &sqlx::Pool<DB>,
) -> Result<std::collections::BTreeMap<&'static str, String>, sqlx::Error>
where
    DB: sqlx::Database + RowText,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<<DB as sqlx::Database>::Row>,
{
    use sqlx::Row;
    let mut out = std::collections::BTreeMap::new();
    for table in DIGESTED_TABLES {
        let columns: Vec<String> = sqlx::query_scalar(DB::COLUMNS)
            .bind(table)
            .fetch_all(pool)
            .await?;
        let row = columns
            .iter()
            .map(|c| format!("{}(\"{c}\")", DB::QUOTE))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        // Safe to build: the table is one of the constants above and the columns are the
        // names this schema declares, read from the database's own catalog.
        let sql = sqlx::AssertSqlSafe(format!("SELECT {row} FROM {table}"));
        let mut rows: Vec<String> = Vec::new();
        for r in sqlx::query(sql).fetch_all(pool).await? {
            rows.push(r.try_get(0usize)?);
        }
        rows.sort();
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for r in &rows {
            ctx.update(r.as_bytes());
            ctx.update(b"\n");
        }
        out.insert(table, crate::ids::hex(ctx.finish().as_ref()));
    }
    Ok(out)
}

/// Implements [`Storage`](super::Storage) (and `table_counts`) for a struct with a `pool` field.
macro_rules! sql_storage {
    ($ty:ident) => {
impl $ty {

    /// Counts the rows of each table.
    pub async fn table_counts(&self) -> Result<TableCounts, SaError> {
        let count = |sql: &'static str| {
            let pool = self.pool.clone();
            async move {
                sqlx::query(sql)
                    .fetch_one(&pool)
                    .await
                    .and_then(|r| r.try_get::<i64, _>(0))
            }
        };
        Ok(TableCounts {
            accounts: count("SELECT COUNT(*) FROM accounts").await?,
            orders: count("SELECT COUNT(*) FROM orders").await?,
            authzs: count("SELECT COUNT(*) FROM authzs").await?,
            challenges: count("SELECT COUNT(*) FROM challenges").await?,
            certificates: count("SELECT COUNT(*) FROM certificates").await?,
            revoked: count("SELECT COUNT(*) FROM certificates WHERE revoked_at IS NOT NULL")
                .await?,
            contents: super::sql::table_contents(&self.pool).await?,
        })
    }
}

#[async_trait]
impl Storage for $ty {
    async fn insert_account(&self, a: &AccountRecord) -> Result<(), SaError> {
        let pass = self.write_access().await?;
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
        .execute(self.writer(&pass))
        .await;
        match res {
            Ok(_) => self.durable().await,
            Err(e) if is_unique_violation(&e) => {
                Err(SaError::Conflict("account key already registered".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn get_account(&self, id: &str) -> Result<Option<AccountRecord>, SaError> {
        if let Some(r) = self.inline_reads() {
            return r.read(|c| super::sqlite_reads::get_account(c, id));
        }
        let row = sqlx::query(super::rows::ACCOUNT_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(super::rows::account).transpose()
    }

    async fn get_account_by_key(
        &self,
        tenant: &str,
        thumbprint: &str,
    ) -> Result<Option<AccountRecord>, SaError> {
        let row = sqlx::query("SELECT * FROM accounts WHERE tenant = $1 AND jwk_thumbprint = $2")
            .bind(tenant)
            .bind(thumbprint)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(super::rows::account).transpose()
    }

    async fn update_account_contact(&self, id: &str, contact: &[String]) -> Result<(), SaError> {
        let pass = self.write_access().await?;
        sqlx::query("UPDATE accounts SET contact = $1 WHERE id = $2")
            .bind(json(&contact))
            .bind(id)
            .execute(self.writer(&pass))
            .await?;
        self.durable().await?;
        Ok(())
    }

    async fn try_deactivate_account(&self, id: &str) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let r = sqlx::query(
            "UPDATE accounts SET status = 'deactivated' WHERE id = $1 AND status = 'valid'",
        )
        .bind(id)
        .execute(self.writer(&pass))
        .await?;
        self.durable().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn try_change_account_key(
        &self,
        id: &str,
        old_tp: &str,
        new_tp: &str,
        new_jwk: &str,
    ) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let res = sqlx::query("UPDATE accounts SET jwk_thumbprint = $1, jwk = $2 WHERE id = $3 AND jwk_thumbprint = $4 AND status = 'valid'")
            .bind(new_tp)
            .bind(new_jwk)
            .bind(id)
            .bind(old_tp)
            .execute(self.writer(&pass))
            .await;
        match res {
            Ok(r) => {
                self.durable().await?;
                Ok(r.rows_affected() == 1)
            }
            Err(e) if is_unique_violation(&e) => {
                Err(SaError::Conflict("new key already in use".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn insert_order(
        &self,
        o: &OrderRecord,
        new_authzs: &[AuthzRecord],
        lifecycle: Option<&OrderLifecycle>,
    ) -> Result<(), SaError> {
        if let Some(w) = self.batch_writer() {
            let (o, a, lc) = (o.clone(), new_authzs.to_vec(), lifecycle.cloned());
            return w
                .run(move |c| super::sqlite_writes::insert_order(c, &o, &a, lc.as_ref()))
                .await;
        }
        // One transaction (one fsync) for everything a new order writes.
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        if let Some(lc) = lifecycle {
            sqlx::query(
                super::sql::stmt::INSERT_ORDER_LIFECYCLE,
            )
            .bind(&o.id)
            .bind(&lc.profile)
            .bind(&lc.replaces_cert_id)
            .execute(&mut *tx)
            .await?;
        }
        for a in super::sql::insertion_order(new_authzs) {
            sqlx::query(
                super::sql::stmt::INSERT_AUTHZ,
            )
            .bind(&a.id)
            .bind(&a.tenant)
            .bind(&a.account_id)
            .bind(&a.identifier.kind)
            .bind(&a.identifier.value)
            .bind(a.wildcard as i64)
            .bind(a.status.as_str())
            .bind(a.expires)
            .bind(a.created_at)
            .bind(&a.attested_by)
            .bind(&a.derived_from)
            .bind(a.subdomain_auth_allowed as i64)
            .bind(&a.ancestor_authz)
            .execute(&mut *tx)
            .await?;
            for c in &a.challenges {
                sqlx::query(super::sql::stmt::INSERT_CHALLENGE)
                    .bind(&c.id)
                    .bind(&a.id)
                    .bind(&c.kind)
                    .bind(&c.token)
                    .bind(c.status.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        sqlx::query(
            super::sql::stmt::INSERT_ORDER,
        )
        .bind(&o.id)
        .bind(&o.tenant)
        .bind(&o.account_id)
        .bind(o.status.as_str())
        .bind(o.expires)
        .bind(json(&o.identifiers))
        .bind(o.created_at)
        .execute(&mut *tx)
        .await?;
        for (i, authz) in o.authz_ids.iter().enumerate() {
            sqlx::query(
                super::sql::stmt::INSERT_ORDER_AUTHZ,
            )
            .bind(&o.id)
            .bind(authz)
            .bind(i as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.durable().await?;
        Ok(())
    }

    async fn get_order(&self, id: &str) -> Result<Option<OrderRecord>, SaError> {
        if let Some(r) = self.inline_reads() {
            return r.read(|c| super::sqlite_reads::get_order(c, id));
        }
        let rows = sqlx::query(super::rows::ORDER_WITH_AUTHZS)
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        super::rows::joined(&rows, super::rows::order_head, super::rows::order_link)
    }

    async fn list_order_ids(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, SaError> {
        // Keyset pagination on (created_at, id): stable while new orders arrive.
        let rows = match after {
            Some(after) => {
                sqlx::query(
                    "SELECT o.id FROM orders o, orders p WHERE p.id = $2 AND o.account_id = $1
                     AND (o.created_at > p.created_at OR (o.created_at = p.created_at AND o.id > p.id))
                     ORDER BY o.created_at, o.id LIMIT $3",
                )
                .bind(account_id)
                .bind(after)
                .bind(limit as i64)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query("SELECT id FROM orders WHERE account_id = $1 ORDER BY created_at, id LIMIT $2")
                    .bind(account_id)
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(0)?))
            .collect()
    }

    async fn try_claim_order(&self, order_id: &str, claim: &OrderClaim) -> Result<bool, SaError> {
        if let Some(w) = self.batch_writer() {
            let (id, claim) = (order_id.to_string(), claim.clone());
            return w
                .run(move |c| super::sqlite_writes::try_claim_order(c, &id, &claim))
                .await;
        }
        let pass = self.write_access().await?;
        let done = sqlx::query(super::sql::stmt::CLAIM_ORDER)
            .bind(order_id)
            .bind(&claim.token)
            .bind(claim.until)
            .execute(self.writer(&pass))
            .await?;
        self.durable().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn store_certificate(
        &self,
        order_id: &str,
        token: &str,
        cert: &CertRecord,
        cert_lifecycle: Option<(&str, Option<u32>)>,
    ) -> Result<bool, SaError> {
        if let Some(w) = self.batch_writer() {
            let (id, token, cert) = (order_id.to_string(), token.to_string(), cert.clone());
            let lc = cert_lifecycle.map(|(p, s)| (p.to_string(), s));
            return w
                .run(move |c| {
                    let lc = lc.as_ref().map(|(p, s)| (p.as_str(), *s));
                    super::sqlite_writes::store_certificate(c, &id, &token, &cert, lc)
                })
                .await;
        }
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        // The conditional update comes first: a request whose claim was released (and maybe
        // re-claimed by another) writes nothing.
        let held = sqlx::query(super::sql::stmt::ORDER_VALID)
            .bind(&cert.id)
            .bind(order_id)
            .bind(token)
            .execute(&mut *tx)
            .await?;
        if held.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some((profile, shard)) = cert_lifecycle {
            // Written with the certificate, so a revoked certificate always has its CRL shard.
            sqlx::query(super::sql::stmt::INSERT_CERT_LIFECYCLE)
                .bind(&cert.id)
                .bind(profile)
                .bind(shard.map(i64::from))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(super::sql::stmt::INSERT_CERT)
            .bind(&cert.id)
            .bind(&cert.tenant)
            .bind(&cert.serial)
            .bind(&cert.account_id)
            .bind(&cert.order_id)
            .bind(&cert.der)
            .bind(json(&cert.names))
            .bind(cert.not_before)
            .bind(cert.not_after)
            .bind(cert.issued_at)
            .bind(&cert.issuer)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.durable().await?;
        Ok(true)
    }

    async fn release_order_claim(&self, order_id: &str, token: &str) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let done = sqlx::query(super::sql::stmt::RELEASE_ORDER_CLAIM)
            .bind(order_id)
            .bind(token)
            .execute(self.writer(&pass))
            .await?;
        self.durable().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_stale_order_claims(&self, now: i64) -> Result<Vec<String>, SaError> {
        let pass = self.write_access().await?;
        let rows = sqlx::query(super::sql::stmt::RELEASE_STALE_ORDER_CLAIMS)
            .bind(now)
            .fetch_all(self.writer(&pass))
            .await?;
        self.durable().await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(0)?))
            .collect()
    }

    async fn get_authz(&self, id: &str) -> Result<Option<AuthzRecord>, SaError> {
        if let Some(r) = self.inline_reads() {
            return r.read(|c| super::sqlite_reads::get_authz(c, id));
        }
        let rows = sqlx::query(super::rows::AUTHZ_WITH_CHALLENGES)
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        super::rows::joined(&rows, super::rows::authz_head, super::rows::authz_challenge)
    }

    async fn find_reusable_authz(
        &self,
        account_id: &str,
        ident: &StoredIdentifier,
        wildcard: bool,
        _now: i64,
        min_expires: i64,
    ) -> Result<Option<String>, SaError> {
        if let Some(r) = self.inline_reads() {
            return r.read(|c| {
                super::sqlite_reads::find_reusable_authz(c, account_id, ident, wildcard, min_expires)
            });
        }
        let row = sqlx::query(super::sql::stmt::REUSABLE_AUTHZ)
        .bind(account_id)
        .bind(&ident.kind)
        .bind(&ident.value)
        .bind(wildcard as i64)
        .bind(min_expires)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
    }

    async fn insert_authz(&self, a: &AuthzRecord) -> Result<(), SaError> {
        if let Some(w) = self.batch_writer() {
            let a = a.clone();
            return w
                .run(move |c| super::sqlite_writes::insert_authzs(c, std::slice::from_ref(&a)))
                .await;
        }
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        sqlx::query(super::sql::stmt::INSERT_AUTHZ)
            .bind(&a.id)
            .bind(&a.tenant)
            .bind(&a.account_id)
            .bind(&a.identifier.kind)
            .bind(&a.identifier.value)
            .bind(a.wildcard as i64)
            .bind(a.status.as_str())
            .bind(a.expires)
            .bind(a.created_at)
            .bind(&a.attested_by)
            .bind(&a.derived_from)
            .bind(a.subdomain_auth_allowed as i64)
            .bind(&a.ancestor_authz)
            .execute(&mut *tx)
            .await?;
        for c in &a.challenges {
            sqlx::query(super::sql::stmt::INSERT_CHALLENGE)
                .bind(&c.id)
                .bind(&a.id)
                .bind(&c.kind)
                .bind(&c.token)
                .bind(c.status.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.durable().await?;
        Ok(())
    }

    async fn subdomain_ancestor_authzs(
        &self,
        tenant: &str,
        account_id: &str,
        now: i64,
    ) -> Result<Vec<super::AncestorAuthz>, SaError> {
        let rows = sqlx::query(super::sql::stmt::SUBDOMAIN_ANCESTOR_AUTHZS)
            .bind(account_id)
            .bind(tenant)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(super::AncestorAuthz {
                    id: r.try_get("id")?,
                    name: r.try_get("ident_value")?,
                    expires: r.try_get("expires")?,
                })
            })
            .collect()
    }

    async fn try_deactivate_authz(&self, id: &str) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        let r = sqlx::query("UPDATE authzs SET status = 'deactivated' WHERE id = $1 AND status IN ('pending', 'valid')")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 1 {
            // Names granted by this authorization's attestation go with it.
            sqlx::query(super::sql::stmt::DEACTIVATE_ATTESTED)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.durable().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn has_valid_authzs(
        &self,
        account_id: &str,
        authzs: &[(StoredIdentifier, bool)],
        now: i64,
    ) -> Result<bool, SaError> {
        for (ident, wildcard) in authzs {
            // The wildcard flag is part of what was validated (dns-01 for `*.`, RFC 8555
            // §7.1.3): neither kind stands in for the other.
            let row = sqlx::query(
                "SELECT 1 FROM authzs WHERE account_id = $1 AND ident_type = $2 AND ident_value = $3
                 AND wildcard = $4 AND status = 'valid' AND expires > $5 LIMIT 1",
            )
            .bind(account_id)
            .bind(&ident.kind)
            .bind(&ident.value)
            .bind(*wildcard as i64)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
            if row.is_none() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn try_start_challenge(&self, challenge_id: &str, lease: &Lease) -> Result<bool, SaError> {
        if let Some(w) = self.batch_writer() {
            let (id, lease) = (challenge_id.to_string(), lease.clone());
            return w
                .run(move |c| super::sqlite_writes::try_start_challenge(c, &id, &lease))
                .await;
        }
        let pass = self.write_access().await?;
        let r = sqlx::query(
            super::sql::stmt::START_CHALLENGE,
        )
        .bind(challenge_id)
        .bind(lease.until)
        .bind(&lease.owner)
        .execute(self.writer(&pass))
        .await?;
        self.durable().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn renew_challenge_lease(&self, challenge_id: &str, lease: &Lease) -> Result<bool, SaError> {
        if let Some(w) = self.batch_writer() {
            let (id, lease) = (challenge_id.to_string(), lease.clone());
            return w
                .run(move |c| super::sqlite_writes::renew_challenge_lease(c, &id, &lease))
                .await;
        }
        let pass = self.write_access().await?;
        let r = sqlx::query(super::sql::stmt::RENEW_CHALLENGE_LEASE)
            .bind(challenge_id)
            .bind(&lease.owner)
            .bind(lease.until)
            .execute(self.writer(&pass))
            .await?;
        self.durable().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn finish_challenge(
        &self,
        challenge_id: &str,
        o: ChallengeOutcome,
    ) -> Result<(), SaError> {
        if let Some(w) = self.batch_writer() {
            let id = challenge_id.to_string();
            return w
                .run(move |c| super::sqlite_writes::finish_challenge(c, &id, &o))
                .await;
        }
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        let status = if o.valid { "valid" } else { "invalid" };
        let r = sqlx::query(
            super::sql::stmt::FINISH_CHALLENGE,
        )
        .bind(status)
        .bind(o.valid.then_some(o.at))
        .bind(&o.error)
        .bind(&o.record)
        .bind(challenge_id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 1 {
            // The challenge's authorization, then (only if it moved) the authorizations
            // attested by it, in the same transaction: a templated name is never valid
            // without its device's attestation, nor left pending after a refusal.
            let moved = if o.valid {
                sqlx::query(super::sql::stmt::AUTHZ_VALID)
                .bind(o.authz_expires)
                .bind(challenge_id)
            } else {
                sqlx::query(super::sql::stmt::AUTHZ_INVALID)
                    .bind(challenge_id)
            }
            .execute(&mut *tx)
            .await?;
            if moved.rows_affected() == 1 {
                if o.valid {
                    sqlx::query(super::sql::stmt::ATTESTED_VALID)
                    .bind(o.authz_expires)
                    .bind(challenge_id)
                } else {
                    sqlx::query(super::sql::stmt::ATTESTED_INVALID)
                        .bind(challenge_id)
                }
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.durable().await?;
        Ok(())
    }

    async fn claim_stale_challenges(&self, now: i64, lease: &Lease, limit: u32) -> Result<Vec<String>, SaError> {
        // One statement, so two nodes sweeping at once cannot both take the same challenge.
        let pass = self.write_access().await?;
        let rows = sqlx::query(super::sql::stmt::CLAIM_STALE_CHALLENGES)
        .bind(now)
        .bind(lease.until)
        .bind(&lease.owner)
        .bind(i64::from(limit))
        .fetch_all(self.writer(&pass))
        .await?;
        self.durable().await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(0)?))
            .collect()
    }

    async fn get_challenge(&self, id: &str) -> Result<Option<ChallengeRecord>, SaError> {
        if let Some(r) = self.inline_reads() {
            return r.read(|c| super::sqlite_reads::get_challenge(c, id));
        }
        let row = sqlx::query(super::rows::CHALLENGE_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(super::rows::challenge).transpose()
    }

    async fn get_authz_by_challenge(
        &self,
        challenge_id: &str,
    ) -> Result<Option<AuthzRecord>, SaError> {
        if let Some(r) = self.inline_reads() {
            return r.read(|c| super::sqlite_reads::get_authz_by_challenge(c, challenge_id));
        }
        let rows = sqlx::query(super::rows::AUTHZ_WITH_CHALLENGES_BY_CHALLENGE)
            .bind(challenge_id)
            .fetch_all(&self.pool)
            .await?;
        super::rows::joined(&rows, super::rows::authz_head, super::rows::authz_challenge)
    }

    async fn get_cert(&self, id: &str) -> Result<Option<CertRecord>, SaError> {
        if let Some(r) = self.inline_reads() {
            return r.read(|c| super::sqlite_reads::get_cert(c, id));
        }
        let row = sqlx::query(super::rows::CERT_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(super::rows::cert).transpose()
    }

    async fn get_cert_by_serial(
        &self,
        tenant: &str,
        serial: &str,
    ) -> Result<Option<CertRecord>, SaError> {
        let row = sqlx::query("SELECT * FROM certificates WHERE tenant = $1 AND serial = $2")
            .bind(tenant)
            .bind(serial)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(super::rows::cert).transpose()
    }

    async fn try_revoke_cert(
        &self,
        id: &str,
        at: i64,
        reason: Option<u8>,
    ) -> Result<bool, SaError> {
        let pass = self.write_access().await?;
        let r = sqlx::query("UPDATE certificates SET revoked_at = $1, revocation_reason = $2 WHERE id = $3 AND revoked_at IS NULL")
            .bind(at)
            .bind(reason.map(i64::from))
            .bind(id)
            .execute(self.writer(&pass))
            .await?;
        self.durable().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn revoked_certs(
        &self,
        tenant: &str,
        issuer: &str,
        not_after_min: i64,
    ) -> Result<Vec<RevokedEntry>, SaError> {
        // The tenant's partial index on revoked rows narrows first; the issuer test is a filter.
        let rows = sqlx::query(
            "SELECT serial, revoked_at, revocation_reason FROM certificates
             WHERE tenant = $1 AND revoked_at IS NOT NULL AND not_after >= $2
               AND COALESCE(issuer, tenant) = $3 ORDER BY serial",
        )
        .bind(tenant)
        .bind(not_after_min)
        .bind(issuer)
        .fetch_all(&self.pool)
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

    async fn get_crl(&self, tenant: &str) -> Result<Option<CrlRecord>, SaError> {
        let row = sqlx::query(
            "SELECT crl_number, der, this_update, next_update FROM crls WHERE tenant = $1",
        )
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| -> Result<CrlRecord, SaError> {
            Ok(CrlRecord {
                number: r.try_get(0)?,
                der: r.try_get(1)?,
                this_update: r.try_get(2)?,
                next_update: r.try_get(3)?,
            })
        })
        .transpose()
    }

    async fn store_crl(&self, tenant: &str, crl: &CrlRecord) -> Result<(), SaError> {
        let pass = self.write_access().await?;
        sqlx::query(
            "INSERT INTO crls (tenant, crl_number, der, this_update, next_update) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant) DO UPDATE SET crl_number = excluded.crl_number, der = excluded.der,
               this_update = excluded.this_update, next_update = excluded.next_update
             WHERE excluded.crl_number > crls.crl_number",
        )
        .bind(tenant)
        .bind(crl.number)
        .bind(&crl.der)
        .bind(crl.this_update)
        .bind(crl.next_update)
        .execute(self.writer(&pass))
        .await?;
        self.durable().await?;
        Ok(())
    }
}
    };
}
pub(super) use sql_storage;
