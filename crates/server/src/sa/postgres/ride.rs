//! A request's nonce spent by its first read (see [`Nonce::Pending`]): the read and the spend
//! are one statement, one round trip, instead of two. The spend is a data-modifying CTE in
//! front of the read; both run against one snapshot, so the read sees nothing of the spend
//! (it reads no `spent_nonces`) and the spend is atomic as it was on its own. With a kept
//! account the spend happens only while the account row is as the front end checked the
//! signature against (the guard of [`super::nonce::SPEND_NONCE_GUARDED`]).
//!
//! A read that finds nothing still answers one row, for the spend's outcome: the read is
//! `LEFT JOIN`ed to it and marks its own rows with `ride_found`.

use super::PgStorage;
use crate::sa::{GuardedSpend, Nonce, PendingSpend, SaError};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row};

/// `read` (whose parameters are `$1`..`$(first - 1)`) with the spend of nonce `$first`
/// (expiring `$first+1`), guarded by account `$first+2` (NULL: no guard) with thumbprint
/// `$first+3` and contacts `$first+4`.
///
/// The join is a nested loop over the single outcome row (a join `ON true` has no hash or
/// merge form), so the read's rows keep the order its `ORDER BY` gave them.
pub(super) fn ridden(read: &str, first: usize) -> String {
    ridden_with(read, first, "", "")
}

/// [`ridden`] with one more data-modifying CTE, `step`, that runs only if the nonce was fresh
/// (it tests `(SELECT nonce_fresh FROM spend)`), and the column `step_col` that reports on it.
pub(super) fn ridden_with(read: &str, first: usize, step: &str, step_col: &str) -> String {
    let (n, e, g, t, c) = (first, first + 1, first + 2, first + 3, first + 4);
    format!(
        "WITH acct AS (
            SELECT 1 WHERE ${g}::text IS NULL
            UNION ALL
            SELECT 1 FROM accounts WHERE id = ${g} AND status = 'valid' AND jwk_thumbprint = ${t} AND contact = ${c}
        ), ins AS (
            INSERT INTO spent_nonces (id, expires) SELECT ${n}, ${e} FROM acct ON CONFLICT (id) DO NOTHING RETURNING 1
        ), spend AS (
            SELECT EXISTS (SELECT 1 FROM acct) AS nonce_account_ok, EXISTS (SELECT 1 FROM ins) AS nonce_fresh
        ){step}
        SELECT spend.*{step_col}, r.* FROM spend LEFT JOIN LATERAL (SELECT true AS ride_found, q.* FROM ({read}) q) r ON true"
    )
}

impl PgStorage {
    /// Runs `query` (a read made with [`ridden`], its own parameters bound) spending `nonce`,
    /// or the plain `read` when the nonce is already spent. Answers the spend's outcome and
    /// the read's rows.
    pub(super) async fn fetch_ridden<'q>(
        &self,
        ridden: Query<'q, Postgres, PgArguments>,
        plain: Query<'q, Postgres, PgArguments>,
        nonce: &'q Nonce,
    ) -> Result<(GuardedSpend, Vec<PgRow>), SaError> {
        match nonce {
            Nonce::Spent => Ok((GuardedSpend::Spent, plain.fetch_all(&self.pool).await?)),
            Nonce::Pending(p) => {
                let (spend, (), rows) = self.fetch_pending(ridden, p, |_| Ok(())).await?;
                Ok((spend, rows))
            }
        }
    }

    /// Runs `ridden` (made with [`ridden_with`]) spending the pending `spend`; answers the
    /// spend's outcome, what `step` reads from the step's columns (on the first row, which
    /// every answer has) and the read's rows.
    pub(super) async fn fetch_pending<'q, T>(
        &self,
        ridden: Query<'q, Postgres, PgArguments>,
        spend: &'q PendingSpend,
        step: impl FnOnce(&PgRow) -> Result<T, sqlx::Error>,
    ) -> Result<(GuardedSpend, T, Vec<PgRow>), SaError> {
        let guard = spend.guard.as_ref();
        let mut rows = ridden
            .bind(&spend.id)
            .bind(spend.expires)
            .bind(guard.map(|g| g.id.as_str()))
            .bind(guard.map(|g| g.thumbprint.as_str()))
            .bind(guard.map(|g| g.contact_json.as_str()))
            .fetch_all(&self.pool)
            .await?;
        let first = rows
            .first()
            .ok_or_else(|| SaError::Corrupt("a spending read answered no row".into()))?;
        let account_ok: bool = first.try_get("nonce_account_ok")?;
        let fresh: bool = first.try_get("nonce_fresh")?;
        let stepped = step(first)?;
        if first.try_get::<Option<bool>, _>("ride_found")?.is_none() {
            rows.clear();
        }
        let outcome = match (account_ok, fresh) {
            (false, _) => GuardedSpend::AccountChanged,
            (true, true) => GuardedSpend::Spent,
            (true, false) => GuardedSpend::Replayed,
        };
        Ok((outcome, stepped, rows))
    }
}
