//! The SQL both backends share. Queries use `$N` parameters, integer UNIX times and only
//! syntax SQLite and PostgreSQL share, so one text serves both: SQLite's writer thread and
//! inline readers (`sqlite/`, on `rusqlite`) and the sqlx code (`sqlx_storage`, `postgres/`)
//! run the same texts (`stmt`, `rows`) and map rows through the same functions (`rows`).
//! Statements only one engine runs live in its folder.

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
    /// Finalize on SQLite, with its read on the writer (`sqlite::writes::claim_order_at_read`):
    /// claims order `$1` with token `$2` until `$3` only if it is ready now (`$4`), owned by
    /// tenant `$5` and account `$6`, and, when `$7` is set, every authorization was validated
    /// at or after `$7` (no CAA recheck due): the conditions of PostgreSQL's
    /// `postgres::stmt::CLAIM_ORDER_STEP`, which rides on that backend's read instead.
    pub(crate) const CLAIM_READY_ORDER: &str =
        "UPDATE orders SET status = 'processing', claim_token = $2, claim_until = $3
         WHERE id = $1 AND status = 'pending' AND expires > $4 AND tenant = $5 AND account_id = $6
         AND NOT EXISTS (
             SELECT 1 FROM order_authzs l JOIN authzs a ON a.id = l.authz_id
             WHERE l.order_id = orders.id AND (a.status <> 'valid' OR a.expires <= $4
                 OR (CAST($7 AS BIGINT) IS NOT NULL AND COALESCE(
                     (SELECT MAX(c.validated_at) FROM challenges c
                       WHERE c.authz_id = a.id AND c.status = 'valid'),
                     (SELECT MAX(c.validated_at) FROM challenges c
                       WHERE c.authz_id = a.attested_by AND c.status = 'valid'),
                     -1) < $7)))";
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

    /// The statements the plan test checks: the twelve above the writes.
    #[cfg(test)]
    pub(crate) const ALL: [&str; 12] = [
        CLAIM_ORDER,
        CLAIM_READY_ORDER,
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

/// The highest `$n` parameter `sql` names (0: none), for the plan tests that bind or
/// declare each one.
#[cfg(test)]
pub(crate) fn highest_param(sql: &str) -> usize {
    sql.split('$')
        .skip(1)
        .filter_map(|p| {
            let n: String = p.chars().take_while(char::is_ascii_digit).collect();
            n.parse::<usize>().ok()
        })
        .max()
        .unwrap_or(0)
}
