//! [`Storage`] on PostgreSQL: every call is a round trip to a server shared by several nodes,
//! so the issuance path spends as few as it can: an order with its authorizations and
//! challenges is one statement (data-modifying CTEs over `UNNEST`ed arrays), and so are
//! storing a certificate and recording a validation, instead of a transaction of several
//! statements. Row locks make the conditional updates safe across nodes. The rest is the sqlx
//! code both engines share (`sa::sqlx_storage`).

use super::stmt::{
    self, AUTHZ_BY_CHALLENGE_SPENDING, AUTHZ_SPENDING, CERT_SPENDING, CLAIM_ORDER_SPENDING,
    NEW_ORDER_READS_CHARGING, NEW_ORDER_READS_SPENDING, ORDER_SPENDING, START_CHALLENGE_CHARGING,
    START_CHALLENGE_SPENDING,
};
use super::PgStorage;
use crate::sa::lifecycle::OrderLifecycle;
use crate::sa::rate::retrying;
use crate::sa::sql::{self, json};
use crate::sa::sqlx_storage::SqlxStorage;
use crate::sa::{
    rows, AccountRecord, AncestorAuthz, AuthzRecord, CertRecord, ChallengeOutcome, ChallengeRecord,
    ChallengeStart, ClaimAtRead, CrlRecord, GuardedSpend, Lease, Nonce, OrderClaim, OrderLookup,
    OrderReads, OrderRecord, RateOp, RateStore, Refusal, RevokedEntry, SaError, StartStep, Storage,
    StoredIdentifier,
};
use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

#[async_trait]
impl Storage for PgStorage {
    async fn insert_account(&self, a: &AccountRecord) -> Result<(), SaError> {
        SqlxStorage::insert_account(self, a).await
    }

    async fn get_account(&self, id: &str) -> Result<Option<AccountRecord>, SaError> {
        let row = sqlx::query(rows::ACCOUNT_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::account).transpose()
    }

    async fn get_account_by_key(
        &self,
        tenant: &str,
        thumbprint: &str,
    ) -> Result<Option<AccountRecord>, SaError> {
        SqlxStorage::get_account_by_key(self, tenant, thumbprint).await
    }

    async fn update_account_contact(&self, id: &str, contact: &[String]) -> Result<(), SaError> {
        SqlxStorage::update_account_contact(self, id, contact).await
    }

    async fn try_deactivate_account(&self, id: &str) -> Result<bool, SaError> {
        SqlxStorage::try_deactivate_account(self, id).await
    }

    async fn try_change_account_key(
        &self,
        id: &str,
        old_tp: &str,
        new_tp: &str,
        new_jwk: &str,
    ) -> Result<bool, SaError> {
        SqlxStorage::try_change_account_key(self, id, old_tp, new_tp, new_jwk).await
    }

    async fn insert_order(
        &self,
        o: &OrderRecord,
        new_authzs: &[AuthzRecord],
        lifecycle: Option<&OrderLifecycle>,
    ) -> Result<(), SaError> {
        let a = AuthzColumns::of(new_authzs);
        let c = ChallengeColumns::of(new_authzs);
        sqlx::query(stmt::INSERT_ORDER)
            .bind(&o.id)
            .bind(&o.tenant)
            .bind(&o.account_id)
            .bind(o.status.as_str())
            .bind(o.expires)
            .bind(json(&o.identifiers))
            .bind(o.created_at)
            .bind(lifecycle.map(|lc| lc.profile.as_str()))
            .bind(lifecycle.and_then(|lc| lc.replaces_cert_id.as_deref()))
            .bind(a.id)
            .bind(a.tenant)
            .bind(a.account_id)
            .bind(a.ident_type)
            .bind(a.ident_value)
            .bind(a.wildcard)
            .bind(a.status)
            .bind(a.expires)
            .bind(a.created_at)
            .bind(a.attested_by)
            .bind(a.derived_from)
            .bind(a.subdomain_auth_allowed)
            .bind(a.ancestor_authz)
            .bind(c.id)
            .bind(c.authz_id)
            .bind(c.kind)
            .bind(c.token)
            .bind(c.status)
            .bind(&o.authz_ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_order(&self, id: &str) -> Result<Option<OrderRecord>, SaError> {
        let rows = sqlx::query(rows::ORDER_WITH_AUTHZS)
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows::joined(&rows, rows::order_head, rows::order_link)
    }

    async fn list_order_ids(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, SaError> {
        SqlxStorage::list_order_ids(self, account_id, after, limit).await
    }

    async fn try_claim_order(&self, order_id: &str, claim: &OrderClaim) -> Result<bool, SaError> {
        let done = sqlx::query(sql::stmt::CLAIM_ORDER)
            .bind(order_id)
            .bind(&claim.token)
            .bind(claim.until)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn store_certificate(
        &self,
        order_id: &str,
        token: &str,
        cert: &CertRecord,
        cert_lifecycle: Option<(&str, Option<u32>)>,
    ) -> Result<bool, SaError> {
        // One statement: the conditional update decides whether anything is written, so a
        // request whose claim was released (and maybe re-claimed by another) writes nothing.
        let held: i64 = sqlx::query_scalar(stmt::STORE_CERTIFICATE)
            .bind(&cert.id)
            .bind(order_id)
            .bind(token)
            .bind(&cert.tenant)
            .bind(&cert.serial)
            .bind(&cert.account_id)
            .bind(&cert.order_id)
            .bind(&cert.der)
            .bind(json(&cert.names))
            .bind(cert.not_before)
            .bind(cert.not_after)
            // Written with the certificate, so a revoked certificate always has its CRL shard.
            .bind(cert_lifecycle.map(|(profile, _)| profile))
            .bind(cert_lifecycle.and_then(|(_, shard)| shard).map(i64::from))
            .bind(cert.issued_at)
            .bind(&cert.issuer)
            .fetch_one(&self.pool)
            .await?;
        Ok(held == 1)
    }

    async fn release_order_claim(&self, order_id: &str, token: &str) -> Result<bool, SaError> {
        SqlxStorage::release_order_claim(self, order_id, token).await
    }

    async fn release_stale_order_claims(&self, now: i64) -> Result<Vec<String>, SaError> {
        SqlxStorage::release_stale_order_claims(self, now).await
    }

    async fn get_authz(&self, id: &str) -> Result<Option<AuthzRecord>, SaError> {
        let rows = sqlx::query(rows::AUTHZ_WITH_CHALLENGES)
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows::joined(&rows, rows::authz_head, rows::authz_challenge)
    }

    async fn find_reusable_authz(
        &self,
        account_id: &str,
        ident: &StoredIdentifier,
        wildcard: bool,
        _now: i64,
        min_expires: i64,
    ) -> Result<Option<String>, SaError> {
        let row = sqlx::query(sql::stmt::REUSABLE_AUTHZ)
            .bind(account_id)
            .bind(ident.kind.as_str())
            .bind(&ident.value)
            .bind(wildcard as i64)
            .bind(min_expires)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
    }

    async fn insert_authz(&self, a: &AuthzRecord) -> Result<(), SaError> {
        let c = ChallengeColumns::of(std::slice::from_ref(a));
        sqlx::query(stmt::INSERT_AUTHZ)
            .bind(&a.id)
            .bind(&a.tenant)
            .bind(&a.account_id)
            .bind(a.identifier.kind.as_str())
            .bind(&a.identifier.value)
            .bind(a.wildcard as i64)
            .bind(a.status.as_str())
            .bind(a.expires)
            .bind(a.created_at)
            .bind(&a.attested_by)
            .bind(&a.derived_from)
            .bind(a.subdomain_auth_allowed as i64)
            .bind(&a.ancestor_authz)
            .bind(c.id)
            .bind(c.kind)
            .bind(c.token)
            .bind(c.status)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn subdomain_ancestor_authzs(
        &self,
        tenant: &str,
        account_id: &str,
        now: i64,
    ) -> Result<Vec<AncestorAuthz>, SaError> {
        SqlxStorage::subdomain_ancestor_authzs(self, tenant, account_id, now).await
    }

    async fn try_deactivate_authz(&self, id: &str) -> Result<bool, SaError> {
        SqlxStorage::try_deactivate_authz(self, id).await
    }

    async fn has_valid_authzs(
        &self,
        account_id: &str,
        authzs: &[(StoredIdentifier, bool)],
        now: i64,
    ) -> Result<bool, SaError> {
        SqlxStorage::has_valid_authzs(self, account_id, authzs, now).await
    }

    async fn try_start_challenge(
        &self,
        challenge_id: &str,
        lease: &Lease,
    ) -> Result<bool, SaError> {
        let r = sqlx::query(sql::stmt::START_CHALLENGE)
            .bind(challenge_id)
            .bind(lease.until)
            .bind(&lease.owner)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn renew_challenge_lease(
        &self,
        challenge_id: &str,
        lease: &Lease,
    ) -> Result<bool, SaError> {
        let r = sqlx::query(sql::stmt::RENEW_CHALLENGE_LEASE)
            .bind(challenge_id)
            .bind(&lease.owner)
            .bind(lease.until)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn finish_challenge(
        &self,
        challenge_id: &str,
        o: ChallengeOutcome,
    ) -> Result<(), SaError> {
        // The challenge, its authorization and the authorizations attested by it in one
        // statement: a templated name is never valid without its device's attestation, nor
        // left pending after a refusal.
        // A token given back rides along (`fleetca_rate_apply` in the same statement).
        let status = if o.valid { "valid" } else { "invalid" };
        let give_back = o.give_back.as_ref().map(|g| (g, g.arrays()));
        retrying(|| async {
            let q = sqlx::query(match give_back {
                None => stmt::FINISH_CHALLENGE,
                Some(_) => stmt::FINISH_CHALLENGE_GIVING_BACK.as_str(),
            })
            .bind(status)
            .bind(o.valid.then_some(o.at))
            .bind(&o.error)
            .bind(&o.record)
            .bind(challenge_id)
            .bind(o.valid)
            .bind(o.authz_expires);
            let q = match &give_back {
                None => q,
                Some((g, args)) => args.bind(q.bind(&g.tenant)),
            };
            q.execute(&self.pool).await?;
            Ok(())
        })
        .await
    }

    async fn claim_stale_challenges(
        &self,
        now: i64,
        lease: &Lease,
        limit: u32,
    ) -> Result<Vec<String>, SaError> {
        SqlxStorage::claim_stale_challenges(self, now, lease, limit).await
    }

    async fn get_challenge(&self, id: &str) -> Result<Option<ChallengeRecord>, SaError> {
        let row = sqlx::query(rows::CHALLENGE_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::challenge).transpose()
    }

    async fn get_authz_by_challenge(
        &self,
        challenge_id: &str,
    ) -> Result<Option<AuthzRecord>, SaError> {
        let rows = sqlx::query(rows::AUTHZ_WITH_CHALLENGES_BY_CHALLENGE)
            .bind(challenge_id)
            .fetch_all(&self.pool)
            .await?;
        rows::joined(&rows, rows::authz_head, rows::authz_challenge)
    }

    async fn get_cert(&self, id: &str) -> Result<Option<CertRecord>, SaError> {
        let row = sqlx::query(rows::CERT_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::cert).transpose()
    }

    async fn get_order_spending(
        &self,
        id: &str,
        nonce: &Nonce,
    ) -> Result<(GuardedSpend, Option<OrderRecord>), SaError> {
        let q = |sql: &'static str| sqlx::query(sql).bind(id);
        let (spend, rows) = self
            .fetch_ridden(
                q(ORDER_SPENDING.as_str()),
                q(rows::ORDER_WITH_AUTHZS),
                nonce,
            )
            .await?;
        Ok((
            spend,
            rows::joined(&rows, rows::order_head, rows::order_link)?,
        ))
    }

    async fn get_authz_spending(
        &self,
        id: &str,
        nonce: &Nonce,
    ) -> Result<(GuardedSpend, Option<AuthzRecord>), SaError> {
        let q = |sql: &'static str| sqlx::query(sql).bind(id);
        let (spend, rows) = self
            .fetch_ridden(
                q(AUTHZ_SPENDING.as_str()),
                q(rows::AUTHZ_WITH_CHALLENGES),
                nonce,
            )
            .await?;
        Ok((
            spend,
            rows::joined(&rows, rows::authz_head, rows::authz_challenge)?,
        ))
    }

    async fn get_authz_by_challenge_spending(
        &self,
        challenge_id: &str,
        nonce: &Nonce,
    ) -> Result<(GuardedSpend, Option<AuthzRecord>), SaError> {
        let q = |sql: &'static str| sqlx::query(sql).bind(challenge_id);
        let (spend, rows) = self
            .fetch_ridden(
                q(AUTHZ_BY_CHALLENGE_SPENDING.as_str()),
                q(rows::AUTHZ_WITH_CHALLENGES_BY_CHALLENGE),
                nonce,
            )
            .await?;
        Ok((
            spend,
            rows::joined(&rows, rows::authz_head, rows::authz_challenge)?,
        ))
    }

    async fn get_cert_spending(
        &self,
        id: &str,
        nonce: &Nonce,
    ) -> Result<(GuardedSpend, Option<CertRecord>), SaError> {
        let q = |sql: &'static str| sqlx::query(sql).bind(id);
        let (spend, rows) = self
            .fetch_ridden(q(CERT_SPENDING.as_str()), q(rows::CERT_BY_ID), nonce)
            .await?;
        Ok((spend, rows.first().map(rows::cert).transpose()?))
    }

    async fn claim_order_spending(
        &self,
        at: &ClaimAtRead<'_>,
        nonce: &Nonce,
    ) -> Result<(GuardedSpend, Option<OrderRecord>, bool), SaError> {
        let Nonce::Pending(pending) = nonce else {
            return Ok((
                GuardedSpend::Spent,
                self.get_order(at.order_id).await?,
                false,
            ));
        };
        let q = sqlx::query(CLAIM_ORDER_SPENDING.as_str())
            .bind(at.order_id)
            .bind(&at.claim.token)
            .bind(at.claim.until)
            .bind(at.now)
            .bind(at.tenant)
            .bind(at.account_id)
            .bind(at.validated_since);
        let (spend, claimed, rows) = self
            .fetch_pending(q, pending, |r| r.try_get::<bool, _>("claimed"))
            .await?;
        let order = rows::joined(&rows, rows::order_head, rows::order_link)?;
        Ok((spend, order, claimed))
    }

    async fn start_challenge_spending(
        &self,
        start: &ChallengeStart<'_>,
        nonce: &Nonce,
    ) -> Result<(GuardedSpend, Option<AuthzRecord>, StartStep), SaError> {
        let Nonce::Pending(pending) = nonce else {
            // Spent already: the read, the budget and the start as separate statements.
            return self.start_challenge_apart(start).await;
        };
        let kinds = start.kinds.names();
        let q = |sql| {
            sqlx::query(sql)
                .bind(start.challenge_id)
                .bind(start.lease.until)
                .bind(&start.lease.owner)
                .bind(kinds.clone())
                .bind(start.now)
                .bind(start.tenant)
                .bind(start.account_id)
        };
        let Some(budget) = start.budget else {
            let started = |r: &PgRow| r.try_get::<bool, _>("started");
            let (spend, started, rows) = self
                .fetch_pending(q(START_CHALLENGE_SPENDING.as_str()), pending, started)
                .await?;
            let authz = rows::joined(&rows, rows::authz_head, rows::authz_challenge)?;
            return Ok((spend, authz, StartStep::of(started, false)));
        };
        let args = budget.arrays();
        let step = |r: &PgRow| {
            Ok(match refusal_cols(r)? {
                Some(refused) => StartStep::Refused(refused),
                None => StartStep::of(r.try_get("started")?, r.try_get("charged")?),
            })
        };
        // A statement that lost the creation of its bucket changed nothing, the nonce's
        // spend included, and runs again.
        let (spend, step, rows) = retrying(|| {
            let charging = args.bind(q(START_CHALLENGE_CHARGING.as_str()));
            self.fetch_pending(charging, pending, step)
        })
        .await?;
        let authz = rows::joined(&rows, rows::authz_head, rows::authz_challenge)?;
        Ok((spend, authz, step))
    }

    async fn new_order_reads_spending(
        &self,
        lookup: &OrderLookup<'_>,
        nonce: &Nonce,
    ) -> Result<(GuardedSpend, OrderReads), SaError> {
        let wanted = lookup.wanted;
        let kinds: Vec<&str> = wanted.iter().map(|(i, _)| i.kind.as_str()).collect();
        let values: Vec<&str> = wanted.iter().map(|(i, _)| i.value.as_str()).collect();
        let wildcards: Vec<i64> = wanted.iter().map(|(_, w)| i64::from(*w)).collect();
        let q = |sql: &'static str| {
            sqlx::query(sql)
                .bind(lookup.account_id)
                .bind(lookup.tenant)
                .bind(lookup.now)
                .bind(lookup.min_expires)
                .bind(kinds.clone())
                .bind(values.clone())
                .bind(wildcards.clone())
        };
        let (spend, refused, rows) = match (lookup.charge, nonce) {
            (None, _) => {
                let plain = q(stmt::NEW_ORDER_READS);
                let (spend, rows) = self
                    .fetch_ridden(q(NEW_ORDER_READS_SPENDING.as_str()), plain, nonce)
                    .await?;
                (spend, None, rows)
            }
            (Some(c), Nonce::Spent) => {
                // Spent already: the charge, then the reads, as statements of their own.
                let refused = self
                    .rate_apply(&c.tenant, &c.buckets, c.now_ms, RateOp::Take)
                    .await?;
                let rows = q(stmt::NEW_ORDER_READS).fetch_all(&self.pool).await?;
                (GuardedSpend::Spent, refused, rows)
            }
            (Some(c), Nonce::Pending(pending)) => {
                let args = c.arrays();
                retrying(|| {
                    let charging = args.bind(q(NEW_ORDER_READS_CHARGING.as_str()));
                    self.fetch_pending(charging, pending, refusal_cols)
                })
                .await?
            }
        };
        let mut reads = OrderReads {
            ancestors: Vec::new(),
            reusable: vec![None; wanted.len()],
            refused,
        };
        if refused.is_some() {
            return Ok((spend, reads));
        }
        for r in &rows {
            if r.try_get::<String, _>("kind")? == "a" {
                reads.ancestors.push(AncestorAuthz {
                    id: r.try_get("id")?,
                    name: r.try_get("ident_value")?,
                    expires: r.try_get("expires")?,
                });
            } else {
                let n: i64 = r.try_get("n")?;
                let slot = usize::try_from(n - 1)
                    .ok()
                    .and_then(|i| reads.reusable.get_mut(i))
                    .ok_or_else(|| SaError::Corrupt(format!("reusable lookup row {n}")))?;
                *slot = r.try_get("id")?;
            }
        }
        Ok((spend, reads))
    }

    async fn get_cert_by_serial(
        &self,
        tenant: &str,
        serial: &str,
    ) -> Result<Option<CertRecord>, SaError> {
        SqlxStorage::get_cert_by_serial(self, tenant, serial).await
    }

    async fn try_revoke_cert(
        &self,
        id: &str,
        at: i64,
        reason: Option<u8>,
    ) -> Result<bool, SaError> {
        SqlxStorage::try_revoke_cert(self, id, at, reason).await
    }

    async fn revoked_certs(
        &self,
        tenant: &str,
        issuer: &str,
        not_after_min: i64,
    ) -> Result<Vec<RevokedEntry>, SaError> {
        SqlxStorage::revoked_certs(self, tenant, issuer, not_after_min).await
    }

    async fn get_crl(&self, tenant: &str) -> Result<Option<CrlRecord>, SaError> {
        SqlxStorage::get_crl(self, tenant).await
    }

    async fn store_crl(&self, tenant: &str, crl: &CrlRecord) -> Result<(), SaError> {
        SqlxStorage::store_crl(self, tenant, crl).await
    }
}

/// New authorizations as one array per column, for `UNNEST`.
struct AuthzColumns<'a> {
    id: Vec<&'a str>,
    tenant: Vec<&'a str>,
    account_id: Vec<&'a str>,
    ident_type: Vec<&'a str>,
    ident_value: Vec<&'a str>,
    wildcard: Vec<i64>,
    status: Vec<&'a str>,
    expires: Vec<i64>,
    created_at: Vec<i64>,
    attested_by: Vec<Option<&'a str>>,
    derived_from: Vec<Option<&'a str>>,
    subdomain_auth_allowed: Vec<i64>,
    ancestor_authz: Vec<Option<&'a str>>,
}

/// A charging step's refusal, from its `budget_refused` and `budget_wait` columns (NULL: not
/// refused).
fn refusal_cols(r: &PgRow) -> Result<Option<Refusal>, sqlx::Error> {
    let refused: Option<i32> = r.try_get("budget_refused")?;
    let wait: Option<f64> = r.try_get("budget_wait")?;
    Ok(refused
        .zip(wait)
        .map(|(i, w)| (usize::try_from(i).unwrap_or(0), w)))
}

impl PgStorage {
    /// The challenge POST's read, budget and start as statements of their own (its nonce was
    /// spent before): the token is taken only from a startable challenge, and given back if
    /// storage failed to start it.
    async fn start_challenge_apart(
        &self,
        start: &ChallengeStart<'_>,
    ) -> Result<(GuardedSpend, Option<AuthzRecord>, StartStep), SaError> {
        let authz = self.get_authz_by_challenge(start.challenge_id).await?;
        let Some(budget) = start.budget else {
            let started = crate::sa::start_after_read(self, start, authz.as_ref()).await?;
            return Ok((GuardedSpend::Spent, authz, StartStep::of(started, false)));
        };
        if !crate::sa::startable(start, authz.as_ref()) {
            return Ok((GuardedSpend::Spent, authz, StartStep::of(false, false)));
        }
        let (tenant, buckets, now) = (&budget.tenant, &budget.buckets, budget.now_ms);
        if let Some(r) = self.rate_apply(tenant, buckets, now, RateOp::Take).await? {
            return Ok((GuardedSpend::Spent, authz, StartStep::Refused(r)));
        }
        match self
            .try_start_challenge(start.challenge_id, start.lease)
            .await
        {
            Ok(started) => Ok((GuardedSpend::Spent, authz, StartStep::of(started, true))),
            Err(e) => {
                if let Err(back) = self
                    .rate_apply(tenant, buckets, now, RateOp::Adjust(1.0))
                    .await
                {
                    tracing::warn!(error = %back, "giving a failed-validation token back failed");
                }
                Err(e)
            }
        }
    }
}

impl<'a> AuthzColumns<'a> {
    fn of(authzs: &'a [AuthzRecord]) -> Self {
        Self {
            id: authzs.iter().map(|a| a.id.as_str()).collect(),
            tenant: authzs.iter().map(|a| a.tenant.as_str()).collect(),
            account_id: authzs.iter().map(|a| a.account_id.as_str()).collect(),
            ident_type: authzs.iter().map(|a| a.identifier.kind.as_str()).collect(),
            ident_value: authzs.iter().map(|a| a.identifier.value.as_str()).collect(),
            wildcard: authzs.iter().map(|a| a.wildcard as i64).collect(),
            status: authzs.iter().map(|a| a.status.as_str()).collect(),
            expires: authzs.iter().map(|a| a.expires).collect(),
            created_at: authzs.iter().map(|a| a.created_at).collect(),
            attested_by: authzs.iter().map(|a| a.attested_by.as_deref()).collect(),
            derived_from: authzs.iter().map(|a| a.derived_from.as_deref()).collect(),
            subdomain_auth_allowed: authzs
                .iter()
                .map(|a| a.subdomain_auth_allowed as i64)
                .collect(),
            ancestor_authz: authzs.iter().map(|a| a.ancestor_authz.as_deref()).collect(),
        }
    }
}

/// The challenges of new authorizations as one array per column, for `UNNEST`.
struct ChallengeColumns<'a> {
    id: Vec<&'a str>,
    authz_id: Vec<&'a str>,
    kind: Vec<&'a str>,
    token: Vec<&'a str>,
    status: Vec<&'a str>,
}

impl<'a> ChallengeColumns<'a> {
    fn of(authzs: &'a [AuthzRecord]) -> Self {
        let all = || {
            authzs
                .iter()
                .flat_map(|a| a.challenges.iter().map(move |c| (a, c)))
        };
        Self {
            id: all().map(|(_, c)| c.id.as_str()).collect(),
            authz_id: all().map(|(a, _)| a.id.as_str()).collect(),
            kind: all().map(|(_, c)| c.kind.as_str()).collect(),
            token: all().map(|(_, c)| c.token.as_str()).collect(),
            status: all().map(|(_, c)| c.status.as_str()).collect(),
        }
    }
}
