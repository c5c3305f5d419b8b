//! Storage of continuous coverage (docs/coverage.md): the `cert_coverage` table holds, per
//! certificate, what its coverage state is derived from. The refresher
//! (the RA's coverage refresher) copies new certificates and revocations into it; issuance
//! never writes it. renewalInfo polls update `last_poll` at most once per poll interval.
//!
//! The state of a row is defined once, by the SQL expression [`state_expr!`], so the counts,
//! the listings and the ARI answer of one certificate can never disagree.

use super::backend::{RowsAffected, SqlxBackend};
use super::rows::Cols;
use super::SaError;
use async_trait::async_trait;
use serde::Serialize;
use sqlx::Row;

/// A certificate's coverage state at an instant (docs/coverage.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CoverageState {
    /// Not yet in its renewal window, or already replaced.
    Ok,
    /// Inside its ARI window, not yet replaced.
    Due,
    /// Its ARI window ended, not replaced.
    Overdue,
    /// Less than the configured share of its lifetime left, not replaced.
    Expiring,
    /// Live, but neither a renewalInfo poll nor an issuance to its account for too long.
    Silent,
    /// Revoked (terminal).
    Revoked,
    /// Past notAfter (terminal).
    Expired,
}

impl CoverageState {
    /// Every state, in display order.
    pub const ALL: [CoverageState; 7] = [
        CoverageState::Ok,
        CoverageState::Due,
        CoverageState::Overdue,
        CoverageState::Expiring,
        CoverageState::Silent,
        CoverageState::Revoked,
        CoverageState::Expired,
    ];

    /// The states an operator acts on (alerting, the dashboard's worst offenders).
    pub const AT_RISK: [CoverageState; 4] = [
        CoverageState::Due,
        CoverageState::Overdue,
        CoverageState::Expiring,
        CoverageState::Silent,
    ];

    /// The wire and label name.
    pub fn as_str(self) -> &'static str {
        match self {
            CoverageState::Ok => "ok",
            CoverageState::Due => "due",
            CoverageState::Overdue => "overdue",
            CoverageState::Expiring => "expiring",
            CoverageState::Silent => "silent",
            CoverageState::Revoked => "revoked",
            CoverageState::Expired => "expired",
        }
    }

    /// Whether the certificate can still be live (not revoked, not expired).
    pub fn is_live(self) -> bool {
        !matches!(self, CoverageState::Revoked | CoverageState::Expired)
    }

    /// Parses a comma-separated list (`due,overdue`); unknown names are an error that lists the
    /// known ones.
    pub fn parse_list(s: &str) -> Result<Vec<CoverageState>, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let st = part.parse()?;
            if !out.contains(&st) {
                out.push(st);
            }
        }
        Ok(out)
    }
}

impl std::str::FromStr for CoverageState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        CoverageState::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown coverage state {s:?} (one of: {})",
                    CoverageState::ALL.map(CoverageState::as_str).join(", ")
                )
            })
    }
}

impl std::fmt::Display for CoverageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The thresholds of the states that are policy, not fact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoveragePolicy {
    /// `expiring` below this share of the lifetime left, in millionths.
    pub expiring_ppm: i64,
    /// `silent` after this many seconds without a poll or an issuance to the account.
    pub silent_after: i64,
}

/// One certificate's coverage, as the CLI and `/api/coverage` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CoverageRow {
    /// Serial (lower-case hex).
    pub serial: String,
    /// Tenant.
    pub tenant: String,
    /// Identifier values, sorted.
    pub names: Vec<String>,
    /// The account it was issued to.
    pub account_id: String,
    /// State at the time of the query.
    pub state: CoverageState,
    /// notAfter (UNIX seconds).
    pub not_after: i64,
    /// ARI window start (UNIX seconds).
    pub window_start: i64,
    /// ARI window end (UNIX seconds).
    pub window_end: i64,
    /// Newest sign of life: issuance, renewalInfo poll, or a later issuance to the account.
    pub last_seen: i64,
    /// Newest recorded renewalInfo poll.
    pub last_poll: Option<i64>,
    /// Serial of the certificate that replaced it.
    pub replaced_by: Option<String>,
    /// Internal id (the pagination cursor's tie-breaker).
    #[serde(skip)]
    pub cert_id: String,
}

/// A count of one (tenant, state).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CoverageCount {
    /// Tenant.
    pub tenant: String,
    /// State.
    pub state: CoverageState,
    /// Certificates.
    pub count: i64,
}

/// Which rows a listing returns, in (notAfter, id) order.
#[derive(Clone, Debug, Default)]
pub struct CoverageFilter {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only these states (empty: all).
    pub states: Vec<CoverageState>,
    /// Start after this (notAfter, internal id) cursor.
    pub after: Option<(i64, String)>,
    /// At most this many rows.
    pub limit: u32,
}

/// A certificate not yet copied into `cert_coverage`, with what its row is made from.
#[derive(Clone, Debug)]
pub struct PendingCert {
    /// Certificate id.
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// Serial.
    pub serial: String,
    /// Account.
    pub account_id: String,
    /// Names JSON (`[{type, value}]`).
    pub names_json: String,
    /// Validity.
    pub not_before: i64,
    /// Validity.
    pub not_after: i64,
    /// Issuance time.
    pub issued_at: i64,
    /// Revocation time.
    pub revoked_at: Option<i64>,
    /// The operator's ARI window, if set.
    pub override_window: Option<(i64, i64)>,
    /// The certificate its order named in `replaces` (RFC 9773 §5).
    pub replaces: Option<String>,
}

/// A `cert_coverage` row to insert.
#[derive(Clone, Debug)]
pub struct NewCoverage {
    /// From the certificate.
    pub cert: PendingCert,
    /// Sorted, lower-case `type:value` names, space-separated.
    pub names_key: String,
    /// The ARI window the server answers with.
    pub window: (i64, i64),
}

/// The state of a `cert_coverage` row: `$1` now, `$2` the expiring share in millionths, `$3`
/// the silent cutoff (now - silent period). Order matters: terminal states first, then a
/// replacement makes any live certificate `ok`, then the most urgent condition wins. `silent`
/// comes after the window states: it is the early warning of the `ok` phase, and a client
/// without ARI (which never polls) is still reported `due` and `overdue` on time.
macro_rules! state_expr {
    () => {
        "CASE WHEN revoked_at IS NOT NULL THEN 'revoked'
              WHEN not_after <= $1 THEN 'expired'
              WHEN replaced_by IS NOT NULL THEN 'ok'
              WHEN not_after - (not_after - not_before) * $2 / 1000000 <= $1 THEN 'expiring'
              WHEN window_end <= $1 THEN 'overdue'
              WHEN window_start <= $1 THEN 'due'
              WHEN last_seen < $3 THEN 'silent'
              ELSE 'ok' END"
    };
}

/// Columns of a listing row (with `state` computed by [`state_expr!`]).
macro_rules! row_cols {
    () => {
        "cert_id, tenant, serial, account_id, names_key, not_after, window_start, window_end,
         last_seen, last_poll, (SELECT r.serial FROM cert_coverage r WHERE r.cert_id = v.replaced_by) AS replaced_serial"
    };
}

/// Coverage counts per tenant and state: one pass over the covering index `cert_coverage_state`.
pub(crate) const COUNTS: &str = concat!(
    "SELECT tenant, ",
    state_expr!(),
    " AS state, COUNT(*) AS n FROM cert_coverage GROUP BY 1, 2"
);

/// A page of a listing, in (notAfter, id) order: `$4` tenant or NULL, `$5`/`$6` the cursor,
/// `$7` the wanted states as `,a,b,`, `$8` the page size.
pub(crate) const LIST: &str = concat!(
    "SELECT * FROM (SELECT ",
    row_cols!(),
    ", ",
    state_expr!(),
    " AS state FROM cert_coverage v
      WHERE ($4 IS NULL OR tenant = $4) AND not_after >= $5
        AND (not_after > $5 OR cert_id > $6)) s
     WHERE $7 LIKE '%,' || state || ',%'
     ORDER BY not_after, cert_id LIMIT $8"
);

/// One certificate's coverage: `$4` its id.
pub(crate) const ONE: &str = concat!(
    "SELECT ",
    row_cols!(),
    ", ",
    state_expr!(),
    " AS state FROM cert_coverage v WHERE cert_id = $4"
);

/// Certificates issued since `$1` that have no coverage row yet, oldest first.
pub(crate) const PENDING: &str =
    "SELECT c.id, c.tenant, c.serial, c.account_id, c.names, c.not_before, c.not_after,
            c.issued_at, c.revoked_at, r.window_start, r.window_end, l.replaces_cert_id
     FROM certificates c
     LEFT JOIN renewal_overrides r ON r.cert_id = c.id
     LEFT JOIN order_lifecycle l ON l.order_id = c.order_id
     WHERE c.issued_at >= $1
       AND NOT EXISTS (SELECT 1 FROM cert_coverage v WHERE v.cert_id = c.id)
     ORDER BY c.issued_at, c.id LIMIT $2";

/// Revocations since `$1`.
pub(crate) const REVOKED_SINCE: &str =
    "SELECT id, revoked_at FROM certificates WHERE revoked_at IS NOT NULL AND revoked_at >= $1";

const INSERT: &str = "INSERT INTO cert_coverage (cert_id, tenant, serial, account_id, names_key,
        not_before, not_after, issued_at, window_start, window_end, last_seen, revoked_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $8, $11) ON CONFLICT (cert_id) DO NOTHING";
const MARK_REPLACED: &str =
    "UPDATE cert_coverage SET replaced_by = $1 WHERE cert_id = $2 AND replaced_by IS NULL";
/// RFC 9773 §5 is optional for clients: a newer certificate to the same account for the same
/// names replaces the older ones too.
pub(crate) const MARK_LINEAGE_REPLACED: &str =
    "UPDATE cert_coverage SET replaced_by = $1 WHERE account_id = $2 AND names_key = $3
       AND issued_at <= $4 AND cert_id <> $1 AND replaced_by IS NULL";
/// A certificate whose replacement was copied first (its transaction committed later).
pub(crate) const NEWER_IN_LINEAGE: &str =
    "SELECT cert_id FROM cert_coverage WHERE account_id = $1 AND names_key = $2 AND issued_at > $3
     ORDER BY issued_at LIMIT 1";
/// An issuance to an account is a sign of life of every certificate of that account.
pub(crate) const ACCOUNT_SEEN: &str =
    "UPDATE cert_coverage SET last_seen = $1 WHERE account_id = $2 AND last_seen < $1";
const MARK_REVOKED: &str =
    "UPDATE cert_coverage SET revoked_at = $2 WHERE cert_id = $1 AND revoked_at IS NULL";
const LAST_POLL: &str = "SELECT last_poll FROM cert_coverage WHERE cert_id = $1";
const RECORD_POLL: &str = "UPDATE cert_coverage SET last_poll = $2,
       last_seen = CASE WHEN last_seen < $2 THEN $2 ELSE last_seen END
     WHERE cert_id = $1 AND (last_poll IS NULL OR last_poll < $3)";
const SET_WINDOW: &str =
    "UPDATE cert_coverage SET window_start = $2, window_end = $3 WHERE cert_id = $1";
const GET_MARK: &str = "SELECT mark FROM coverage_sync WHERE name = $1";
const SET_MARK: &str = "INSERT INTO coverage_sync (name, mark) VALUES ($1, $2)
     ON CONFLICT (name) DO UPDATE SET mark = excluded.mark";

/// The statements the query-plan test checks (no full table scan with a million rows).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const PLANNED: [&str; 9] = [
    COUNTS,
    LIST,
    ONE,
    PENDING,
    REVOKED_SINCE,
    MARK_LINEAGE_REPLACED,
    NEWER_IN_LINEAGE,
    ACCOUNT_SEEN,
    RECORD_POLL,
];

/// Coverage storage. Every write that reports success has committed.
#[async_trait]
pub trait CoverageStore: Send + Sync {
    /// Up to `limit` certificates issued at or after `since` without a coverage row, oldest
    /// first.
    async fn pending_coverage(&self, since: i64, limit: u32) -> Result<Vec<PendingCert>, SaError>;
    /// Inserts coverage rows (in the given order, oldest first), marks the certificates they
    /// replace, and records each issuance as a sign of life of its account; one transaction.
    async fn insert_coverage(&self, rows: &[NewCoverage]) -> Result<(), SaError>;
    /// Copies revocations at or after `since` into coverage rows; returns how many were seen
    /// and the newest revocation time.
    async fn sync_revocations(&self, since: i64) -> Result<(u64, Option<i64>), SaError>;
    /// A refresher mark (`issued`, `revoked`).
    async fn coverage_mark(&self, name: &str) -> Result<Option<i64>, SaError>;
    /// Sets a refresher mark.
    async fn set_coverage_mark(&self, name: &str, mark: i64) -> Result<(), SaError>;
    /// Records a renewalInfo poll at `now` unless one was recorded after `now - interval`;
    /// whether it wrote. The read comes first, so a device polling often costs one read.
    async fn record_poll(&self, cert_id: &str, now: i64, interval: i64) -> Result<bool, SaError>;
    /// Sets the ARI window of coverage rows (`renew-early`).
    async fn set_coverage_windows(
        &self,
        cert_ids: &[String],
        start: i64,
        end: i64,
    ) -> Result<(), SaError>;
    /// Counts per tenant and state at `now`.
    async fn coverage_counts(
        &self,
        now: i64,
        policy: &CoveragePolicy,
    ) -> Result<Vec<CoverageCount>, SaError>;
    /// A page of rows at `now`.
    async fn coverage_list(
        &self,
        now: i64,
        policy: &CoveragePolicy,
        filter: &CoverageFilter,
    ) -> Result<Vec<CoverageRow>, SaError>;
    /// One certificate's coverage at `now` (`None` until the refresher copied it).
    async fn coverage_of(
        &self,
        cert_id: &str,
        now: i64,
        policy: &CoveragePolicy,
    ) -> Result<Option<CoverageRow>, SaError>;
}

/// `,a,b,` for the LIKE test of [`LIST`].
fn states_arg(states: &[CoverageState]) -> String {
    let states: &[CoverageState] = if states.is_empty() {
        &CoverageState::ALL
    } else {
        states
    };
    let mut s = String::from(",");
    for st in states {
        s.push_str(st.as_str());
        s.push(',');
    }
    s
}

/// One implementation for both engines: the SQL is the same, and what differs (whose turn it
/// is to write, what makes a commit durable) is `SqlxBackend`'s.
#[async_trait]
impl<B> CoverageStore for B
where
    B: SqlxBackend,
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
    async fn pending_coverage(&self, since: i64, limit: u32) -> Result<Vec<PendingCert>, SaError> {
        let rows = sqlx::query(PENDING)
            .bind(since)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let ws: Option<i64> = r.try_get(9)?;
                let we: Option<i64> = r.try_get(10)?;
                Ok(PendingCert {
                    id: r.try_get(0)?,
                    tenant: r.try_get(1)?,
                    serial: r.try_get(2)?,
                    account_id: r.try_get(3)?,
                    names_json: r.try_get(4)?,
                    not_before: r.try_get(5)?,
                    not_after: r.try_get(6)?,
                    issued_at: r.try_get(7)?,
                    revoked_at: r.try_get(8)?,
                    override_window: ws.zip(we),
                    replaces: r.try_get(11)?,
                })
            })
            .collect()
    }

    async fn insert_coverage(&self, rows: &[NewCoverage]) -> Result<(), SaError> {
        if rows.is_empty() {
            return Ok(());
        }
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        for n in rows {
            let c = &n.cert;
            sqlx::query(INSERT)
                .bind(&c.id)
                .bind(&c.tenant)
                .bind(&c.serial)
                .bind(&c.account_id)
                .bind(&n.names_key)
                .bind(c.not_before)
                .bind(c.not_after)
                .bind(c.issued_at)
                .bind(n.window.0)
                .bind(n.window.1)
                .bind(c.revoked_at)
                .execute(&mut *tx)
                .await?;
            if let Some(old) = &c.replaces {
                sqlx::query(MARK_REPLACED)
                    .bind(&c.id)
                    .bind(old)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(MARK_LINEAGE_REPLACED)
                .bind(&c.id)
                .bind(&c.account_id)
                .bind(&n.names_key)
                .bind(c.issued_at)
                .execute(&mut *tx)
                .await?;
            let newer: Option<String> = sqlx::query_scalar(NEWER_IN_LINEAGE)
                .bind(&c.account_id)
                .bind(&n.names_key)
                .bind(c.issued_at)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(newer) = newer {
                sqlx::query(MARK_REPLACED)
                    .bind(&newer)
                    .bind(&c.id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(ACCOUNT_SEEN)
                .bind(c.issued_at)
                .bind(&c.account_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.durable().await?;
        Ok(())
    }

    async fn sync_revocations(&self, since: i64) -> Result<(u64, Option<i64>), SaError> {
        let rows = sqlx::query(REVOKED_SINCE)
            .bind(since)
            .fetch_all(self.pool())
            .await?;
        if rows.is_empty() {
            return Ok((0, None));
        }
        let mut newest = None;
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        for r in &rows {
            let id: String = r.try_get(0)?;
            let at: i64 = r.try_get(1)?;
            newest = newest.max(Some(at));
            sqlx::query(MARK_REVOKED)
                .bind(&id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.durable().await?;
        Ok((rows.len() as u64, newest))
    }

    async fn coverage_mark(&self, name: &str) -> Result<Option<i64>, SaError> {
        Ok(sqlx::query_scalar(GET_MARK)
            .bind(name)
            .fetch_optional(self.pool())
            .await?)
    }

    async fn set_coverage_mark(&self, name: &str, mark: i64) -> Result<(), SaError> {
        let pass = self.write_access().await?;
        sqlx::query(SET_MARK)
            .bind(name)
            .bind(mark)
            .execute(self.writer(&pass))
            .await?;
        self.durable().await?;
        Ok(())
    }

    async fn record_poll(&self, cert_id: &str, now: i64, interval: i64) -> Result<bool, SaError> {
        let last: Option<Option<i64>> = sqlx::query_scalar(LAST_POLL)
            .bind(cert_id)
            .fetch_optional(self.pool())
            .await?;
        match last {
            // Not copied yet: its issuance is recent, which is a sign of life anyway.
            None => return Ok(false),
            Some(Some(t)) if t >= now - interval => return Ok(false),
            Some(_) => {}
        }
        let pass = self.write_access().await?;
        let n = sqlx::query(RECORD_POLL)
            .bind(cert_id)
            .bind(now)
            .bind(now - interval)
            .execute(self.writer(&pass))
            .await?
            .rows();
        self.durable().await?;
        Ok(n > 0)
    }

    async fn set_coverage_windows(
        &self,
        cert_ids: &[String],
        start: i64,
        end: i64,
    ) -> Result<(), SaError> {
        let pass = self.write_access().await?;
        let mut tx = self.writer(&pass).begin().await?;
        for id in cert_ids {
            sqlx::query(SET_WINDOW)
                .bind(id)
                .bind(start)
                .bind(end)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.durable().await?;
        Ok(())
    }

    async fn coverage_counts(
        &self,
        now: i64,
        policy: &CoveragePolicy,
    ) -> Result<Vec<CoverageCount>, SaError> {
        let rows = sqlx::query(COUNTS)
            .bind(now)
            .bind(policy.expiring_ppm)
            .bind(now - policy.silent_after)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let st: String = r.try_get(1)?;
                Ok(CoverageCount {
                    tenant: r.try_get(0)?,
                    state: st.parse().map_err(SaError::Corrupt)?,
                    count: r.try_get(2)?,
                })
            })
            .collect()
    }

    async fn coverage_list(
        &self,
        now: i64,
        policy: &CoveragePolicy,
        filter: &CoverageFilter,
    ) -> Result<Vec<CoverageRow>, SaError> {
        // Live states only: start the walk at now instead of at the oldest expiry.
        let floor = if !filter.states.is_empty() && filter.states.iter().all(|s| s.is_live()) {
            now + 1
        } else {
            i64::MIN
        };
        let (after_na, after_id) = match &filter.after {
            Some((na, id)) if *na >= floor => (*na, id.clone()),
            _ => (floor, String::new()),
        };
        let rows = sqlx::query(LIST)
            .bind(now)
            .bind(policy.expiring_ppm)
            .bind(now - policy.silent_after)
            .bind(filter.tenant.as_deref())
            .bind(after_na)
            .bind(after_id)
            .bind(states_arg(&filter.states))
            .bind(i64::from(filter.limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(coverage_row).collect()
    }

    async fn coverage_of(
        &self,
        cert_id: &str,
        now: i64,
        policy: &CoveragePolicy,
    ) -> Result<Option<CoverageRow>, SaError> {
        let row = sqlx::query(ONE)
            .bind(now)
            .bind(policy.expiring_ppm)
            .bind(now - policy.silent_after)
            .bind(cert_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(coverage_row).transpose()
    }
}

fn coverage_row<R: Row>(r: &R) -> Result<CoverageRow, SaError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let names_key: String = r.try_get("names_key")?;
    let state: String = r.try_get("state")?;
    Ok(CoverageRow {
        cert_id: r.try_get("cert_id")?,
        serial: r.try_get("serial")?,
        tenant: r.try_get("tenant")?,
        names: names_key
            .split(' ')
            .filter(|n| !n.is_empty())
            .map(|n| n.split_once(':').map_or(n, |(_, v)| v).to_string())
            .collect(),
        account_id: r.try_get("account_id")?,
        state: state.parse().map_err(SaError::Corrupt)?,
        not_after: r.try_get("not_after")?,
        window_start: r.try_get("window_start")?,
        window_end: r.try_get("window_end")?,
        last_seen: r.try_get("last_seen")?,
        last_poll: r.try_get("last_poll")?,
        replaced_by: r.try_get("replaced_serial")?,
    })
}
