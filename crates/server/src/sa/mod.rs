//! Storage authority: the only code that persists state. The registration authority and the
//! issuer see it through the [`Storage`] trait and narrow per-caller traits (`EabStore`,
//! `LifecycleStore`, ...). Every method that reports success has committed durably.
//!
//! Layout: the traits and their record types live here, one file per caller (`model.rs` and
//! `Storage` below for the ACME objects, `rate.rs`, `ct.rs`, `lifecycle.rs`, ...), with the
//! statement texts both engines share (`sql.rs`) and the row mappers (`rows.rs`). Each engine
//! has its folder: `sqlite/` (one file, one writer thread, inline readers on `rusqlite`) and
//! `postgres/` (several nodes on one server; the issuance path in as few round trips as
//! possible). Where the sqlx code is the same on both, it is written once, generic over
//! `backend::SqlxBackend`, which declares what an engine must provide.

mod admin;
mod admin_tokens;
mod audit;
mod backend;
mod coverage;
mod ct;
mod domains;
mod eab;
mod lifecycle;
mod metered;
mod migrate;
mod model;
mod nonce;
#[cfg(test)]
mod pg_plans;
mod postgres;
mod rate;
mod rows;
mod schema;
mod seed;
mod sql;
mod sqlite;
mod sqlx_storage;
mod stats;

pub use admin::{normalize_serial, AdminAccount, AdminCert, AdminStore, CertQuery};
pub use admin_tokens::{AdminTokenRow, AdminTokenStore};
pub use audit::{AuditEntry, AuditStore};
pub use coverage::{
    CoverageCount, CoverageFilter, CoveragePolicy, CoverageRow, CoverageState, CoverageStore,
    NewCoverage, PendingCert,
};
pub use ct::{CtStore, PrecertRecord};
pub use domains::{DomainCheckOutcome, DomainMethod, DomainState, DomainStore, TenantDomainRecord};
pub use eab::{EabAccountOutcome, EabKeyRecord, EabStore, EabUnusable};
pub use lifecycle::{CertSelector, LifecycleStore, OrderLifecycle, PruneReport, ReplacingOrder};
pub use metered::MeteredStorage;
pub use migrate::{sqlite_to_postgres, MigrationReport};
pub use model::*;
pub use nonce::{
    AccountGuard, GuardedSpend, KeptAccount, MemoryNonceStore, Nonce, NonceStore, PendingSpend,
    DEFAULT_MAX_SPENT_NONCES,
};
pub use postgres::{PgStorage, DEFAULT_POOL as DEFAULT_PG_POOL};
pub use rate::{BucketCharge, RateOp, RateStore, Refusal, SharedBucket};
pub use schema::{schema_status, SchemaStatus};
pub use seed::{HistorySeeder, SeedSpec};
pub use sql::TableCounts;
pub use sqlite::sqlite_snapshot;
pub use sqlite::SqliteStorage;
pub use stats::{Bucket, RenewalRow, StatsStore, TenantCertCounts};

/// Every store one process uses, from one database. The front end, RA and CA each receive
/// only the narrow trait they need (upcast from this), as Boulder cuts storage per caller.
#[async_trait]
pub trait Database:
    Storage
    + EabStore
    + LifecycleStore
    + AuditStore
    + AdminStore
    + StatsStore
    + HistorySeeder
    + AdminTokenStore
    + CoverageStore
    + CtStore
    + DomainStore
{
    /// Where spent nonces are kept: in memory for a single SQLite node (at most `max_spent`
    /// of them), in the shared database for PostgreSQL, pruned as they expire (see
    /// `sa::nonce`).
    fn nonce_store(&self, max_spent: usize) -> std::sync::Arc<dyn NonceStore>;
    /// Where the slower rate-limit buckets are kept: `None` (this process's memory) for a
    /// single SQLite node, the shared database for PostgreSQL (see `sa::rate`).
    fn rate_store(&self) -> Option<std::sync::Arc<dyn RateStore>>;
    /// Row counts of the core tables (operators; tests that check nothing changed).
    async fn counts(&self) -> Result<TableCounts, SaError>;
}

#[async_trait]
impl Database for SqliteStorage {
    fn nonce_store(&self, max_spent: usize) -> std::sync::Arc<dyn NonceStore> {
        std::sync::Arc::new(MemoryNonceStore::with_capacity(max_spent))
    }
    fn rate_store(&self) -> Option<std::sync::Arc<dyn RateStore>> {
        None
    }
    async fn counts(&self) -> Result<TableCounts, SaError> {
        self.table_counts().await
    }
}

#[async_trait]
impl Database for PgStorage {
    fn nonce_store(&self, _max_spent: usize) -> std::sync::Arc<dyn NonceStore> {
        // A table, not memory: bounded by the nonce lifetime and the per-IP request limit.
        std::sync::Arc::new(self.clone())
    }
    fn rate_store(&self) -> Option<std::sync::Arc<dyn RateStore>> {
        Some(std::sync::Arc::new(self.clone()))
    }
    async fn counts(&self) -> Result<TableCounts, SaError> {
        self.table_counts().await
    }
}

/// Opens the database a setting names: a `postgres://` URL, or a SQLite file path (optionally
/// `sqlite://PATH`). Migrations run first (under an advisory lock on PostgreSQL, so nodes that
/// start together migrate once).
pub async fn open_database(database: &str) -> Result<std::sync::Arc<dyn Database>, SaError> {
    open_database_pooled(database, DEFAULT_PG_POOL).await
}

/// [`open_database`] keeping at most `pool` connections to PostgreSQL. SQLite has no such
/// pool to size: one writer thread and a few readers.
pub async fn open_database_pooled(
    database: &str,
    pool: u32,
) -> Result<std::sync::Arc<dyn Database>, SaError> {
    if is_postgres_url(database) {
        Ok(std::sync::Arc::new(
            PgStorage::connect_pool(database, pool).await?,
        ))
    } else {
        let path = database.strip_prefix("sqlite://").unwrap_or(database);
        Ok(std::sync::Arc::new(
            SqliteStorage::open(std::path::Path::new(path)).await?,
        ))
    }
}

use async_trait::async_trait;

/// Storage failures. `Db` keeps the driver error as its source.
#[derive(Debug, thiserror::Error)]
pub enum SaError {
    /// The database failed (I/O, lock timeout, constraint the caller did not expect).
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row could not be decoded.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A uniqueness rule was violated (e.g. the account key is already in use).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A write could not be made durable (`fdatasync` failed); it must not be reported done.
    #[error("database write not durable: {0}")]
    Durability(std::io::Error),
    /// The SQLite write path (`sqlite::batch`) failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The SQLite writer thread could not take or finish the write.
    #[error("database writer: {0}")]
    WriterStopped(&'static str),
    /// A [`Nonce::Pending`] was handed to a store that does not spend nonces with its reads
    /// ([`NonceStore::spends_with_reads`]); nothing was read or spent.
    #[error("this storage does not spend nonces with its reads")]
    NoSpendWithReads,
    /// A step was asked to charge shared rate-limit buckets on a store that keeps none
    /// ([`Database::rate_store`] is `None`); nothing was read or written.
    #[error("this storage keeps no rate-limit buckets")]
    NoRateBuckets,
}

impl SaError {
    /// Whether the database could not be reached or dropped the connection (refused, reset,
    /// pool timeout, server shutting down or restarting, SQLite busy): an outage the caller
    /// should answer with "retry later", not a bug or a bad request. Nothing was committed by
    /// the failed call unless its commit itself was cut off, which callers handle by making
    /// every write retryable (see `store_certificate`).
    pub fn is_unavailable(&self) -> bool {
        match self {
            SaError::Db(e) => db_unavailable(e),
            SaError::Sqlite(e) => e
                .sqlite_error()
                .is_some_and(|f| sqlite_unavailable(f.extended_code)),
            _ => false,
        }
    }
}

/// [`Storage::start_challenge_spending`]'s start as a statement of its own, after the read
/// found `authz`.
pub(in crate::sa) async fn start_after_read<S: Storage + ?Sized>(
    store: &S,
    start: &ChallengeStart<'_>,
    authz: Option<&AuthzRecord>,
) -> Result<bool, SaError> {
    Ok(startable(start, authz)
        && store
            .try_start_challenge(start.challenge_id, start.lease)
            .await?)
}

/// Whether `authz` (as read) lets [`ChallengeStart`] start its challenge.
pub(in crate::sa) fn startable(start: &ChallengeStart<'_>, authz: Option<&AuthzRecord>) -> bool {
    authz.is_some_and(|a| {
        a.tenant == start.tenant
            && a.account_id == start.account_id
            && a.status == AuthzState::Pending
            && a.expires > start.now
            && a.challenges.iter().any(|c| {
                c.id == start.challenge_id
                    && c.status == ChallengeState::Pending
                    && start.kinds.admits(c.kind)
            })
    })
}

/// For stores that do not spend nonces with their reads: only an already spent nonce.
pub(super) fn spent_already(nonce: &Nonce) -> Result<(), SaError> {
    match nonce {
        Nonce::Spent => Ok(()),
        Nonce::Pending(_) => Err(SaError::NoSpendWithReads),
    }
}

fn db_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => match d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
            Some(pg) => pg_unavailable(pg.code()),
            None => d
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .is_some_and(sqlite_unavailable),
        },
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs (Appendix A of its manual) that mean "not available right now":
/// 08xxx connection exception; 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03
/// cannot_connect_now (starting up or shutting down); 53300 too_many_connections.
fn pg_unavailable(sqlstate: &str) -> bool {
    sqlstate.starts_with("08") || sqlstate.starts_with("57P0") || sqlstate == "53300"
}

/// Whether `database` names PostgreSQL (several nodes may share it) rather than a SQLite file.
pub fn is_postgres_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// SQLite result codes that mean the same: SQLITE_BUSY (5), SQLITE_LOCKED (6), SQLITE_IOERR
/// (10). Extended codes keep the primary code in the low byte.
fn sqlite_unavailable(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6 | 10)
}

/// A finalize claim (RFC 8555 §7.4): the order is `processing`, held by the request that
/// carries `token` until `until` (UNIX seconds). Signing happens outside storage while the
/// claim holds; only the holder can store the certificate, and a claim whose holder died is
/// released by the sweeper ([`Storage::release_stale_order_claims`]).
#[derive(Clone, Debug)]
pub struct OrderClaim {
    /// Unguessable, unique per finalize attempt.
    pub token: String,
    /// When another node may release the claim.
    pub until: i64,
}

/// Everything the CA persists. Methods whose names start with `try_` apply a state transition
/// only if the row is still in the expected state and say whether they did, so concurrent
/// requests (or nodes) cannot both win.
#[async_trait]
pub trait Storage: Send + Sync {
    /// Inserts a new account; `Conflict` if the key is already registered in the tenant.
    async fn insert_account(&self, acct: &AccountRecord) -> Result<(), SaError>;
    /// Looks an account up by id.
    async fn get_account(&self, id: &str) -> Result<Option<AccountRecord>, SaError>;
    /// Looks an account up by its key thumbprint within a tenant.
    async fn get_account_by_key(
        &self,
        tenant: &str,
        thumbprint: &str,
    ) -> Result<Option<AccountRecord>, SaError>;
    /// Replaces an account's contact list.
    async fn update_account_contact(&self, id: &str, contact: &[String]) -> Result<(), SaError>;
    /// Moves a valid account to deactivated; false if it was not valid.
    async fn try_deactivate_account(&self, id: &str) -> Result<bool, SaError>;
    /// Replaces the account key if the account still has `old_thumbprint` (RFC 8555 §7.3.5);
    /// `Conflict` if another account already uses the new key.
    async fn try_change_account_key(
        &self,
        id: &str,
        old_thumbprint: &str,
        new_thumbprint: &str,
        new_jwk: &str,
    ) -> Result<bool, SaError>;

    /// Stores an order, its new authorizations and their challenges, and its lifecycle row
    /// (profile, `replaces`) if given, in one transaction.
    async fn insert_order(
        &self,
        order: &OrderRecord,
        new_authzs: &[AuthzRecord],
        lifecycle: Option<&OrderLifecycle>,
    ) -> Result<(), SaError>;
    /// Reads an order with its authorization ids.
    async fn get_order(&self, id: &str) -> Result<Option<OrderRecord>, SaError>;
    /// Order ids of an account, oldest first, starting after `after` (a previous page's last id).
    async fn list_order_ids(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, SaError>;
    /// Finalize, step 1: moves a pending order to `processing` under `claim`; false if it was
    /// not pending (already finalized, or claimed concurrently).
    async fn try_claim_order(&self, order_id: &str, claim: &OrderClaim) -> Result<bool, SaError>;
    /// Finalize, step 3: if the order is still `processing` under `token`, stores the
    /// certificate, its lifecycle row (profile, CRL shard) if given, and the valid order in one
    /// transaction. False, with nothing written, if the claim was lost (released by the
    /// sweeper after it expired).
    async fn store_certificate(
        &self,
        order_id: &str,
        token: &str,
        cert: &CertRecord,
        cert_lifecycle: Option<(&str, Option<u32>)>,
    ) -> Result<bool, SaError>;
    /// Gives a claimed order back (`processing` → `pending`) when signing failed, so the
    /// client can finalize again; false if `token` no longer holds it.
    async fn release_order_claim(&self, order_id: &str, token: &str) -> Result<bool, SaError>;
    /// Releases every finalize claim that expired before `now` (its node died between claim
    /// and store); returns the orders released, which are `pending` (so `ready`) again.
    async fn release_stale_order_claims(&self, now: i64) -> Result<Vec<String>, SaError>;

    /// Reads an authorization with its challenges.
    async fn get_authz(&self, id: &str) -> Result<Option<AuthzRecord>, SaError>;
    /// A valid or pending, unexpired authorization of this account for the identifier, to reuse
    /// in a new order (RFC 8555 §7.1.3); valid ones are preferred. Authorizations tied to a
    /// device attestation (`attested_by` set, or named by another's `attested_by`) belong to
    /// their order and are never returned, nor are those granted from a tenant domain
    /// (`derived_from`), which belong to their order too.
    async fn find_reusable_authz(
        &self,
        account_id: &str,
        ident: &StoredIdentifier,
        wildcard: bool,
        now: i64,
        min_expires: i64,
    ) -> Result<Option<String>, SaError>;
    /// Stores an authorization made outside an order (RFC 8555 §7.4.1 newAuthz) with its
    /// challenges, in one transaction.
    async fn insert_authz(&self, authz: &AuthzRecord) -> Result<(), SaError>;
    /// RFC 9444 §4.2: the account's valid, unexpired, non-wildcard DNS authorizations that
    /// allow subdomains (`subdomain_auth_allowed`, themselves not derived), longest-lived first.
    async fn subdomain_ancestor_authzs(
        &self,
        tenant: &str,
        account_id: &str,
        now: i64,
    ) -> Result<Vec<AncestorAuthz>, SaError>;
    /// Deactivates a pending or valid authorization (RFC 8555 §7.5.2), and with it the
    /// authorizations attested by it or derived from it (RFC 9444); false if it was neither
    /// pending nor valid.
    async fn try_deactivate_authz(&self, id: &str) -> Result<bool, SaError>;
    /// Whether the account holds a valid, unexpired authorization for each (identifier without
    /// `*.`, wildcard flag) pair (§7.6): a wildcard authorization covers only the wildcard name
    /// and a plain one only the plain name, exactly as each was validated.
    async fn has_valid_authzs(
        &self,
        account_id: &str,
        authzs: &[(StoredIdentifier, bool)],
        now: i64,
    ) -> Result<bool, SaError>;

    /// Moves a pending challenge of a pending authorization to processing, leased to
    /// `lease.owner` until `lease.until`; false otherwise.
    async fn try_start_challenge(&self, challenge_id: &str, lease: &Lease)
        -> Result<bool, SaError>;
    /// Extends the lease to `lease.until` if `lease.owner` still holds it and the challenge and
    /// its authorization are still undecided; false otherwise (the validation was taken over
    /// or decided, and must not contact its target).
    async fn renew_challenge_lease(
        &self,
        challenge_id: &str,
        lease: &Lease,
    ) -> Result<bool, SaError>;
    /// Records a validation result for a processing challenge and its authorization: on success
    /// both become valid and the authorization's expiry becomes `authz_expires`; on failure both
    /// become invalid with `error`. Pending authorizations attested by that authorization
    /// follow it in the same transaction.
    async fn finish_challenge(
        &self,
        challenge_id: &str,
        outcome: ChallengeOutcome,
    ) -> Result<(), SaError>;
    /// Takes over at most `limit` challenges left in `processing` whose lease ran out before
    /// `now` (the node validating them died), leasing them to `lease`; each is returned to
    /// exactly one caller.
    async fn claim_stale_challenges(
        &self,
        now: i64,
        lease: &Lease,
        limit: u32,
    ) -> Result<Vec<String>, SaError>;
    /// Reads a challenge.
    async fn get_challenge(&self, id: &str) -> Result<Option<ChallengeRecord>, SaError>;
    /// Reads the authorization holding challenge `challenge_id`, with all its challenges, in
    /// one lookup (a challenge POST needs both).
    async fn get_authz_by_challenge(
        &self,
        challenge_id: &str,
    ) -> Result<Option<AuthzRecord>, SaError>;

    /// Reads a certificate by id.
    async fn get_cert(&self, id: &str) -> Result<Option<CertRecord>, SaError>;

    // The first reads of the issuance requests, spending the request's nonce in the same
    // statement when it is [`Nonce::Pending`] (see [`NonceStore::spends_with_reads`]). Each
    // answers how the spend went with what it read; a store that does not spend with its
    // reads only takes [`Nonce::Spent`].

    /// [`Self::get_order`], spending `nonce`.
    async fn get_order_spending(
        &self,
        id: &str,
        nonce: &Nonce,
    ) -> Result<(GuardedSpend, Option<OrderRecord>), SaError> {
        spent_already(nonce)?;
        Ok((GuardedSpend::Spent, self.get_order(id).await?))
    }
    /// [`Self::get_authz`], spending `nonce`.
    async fn get_authz_spending(
        &self,
        id: &str,
        nonce: &Nonce,
    ) -> Result<(GuardedSpend, Option<AuthzRecord>), SaError> {
        spent_already(nonce)?;
        Ok((GuardedSpend::Spent, self.get_authz(id).await?))
    }
    /// [`Self::get_authz_by_challenge`], spending `nonce`.
    async fn get_authz_by_challenge_spending(
        &self,
        challenge_id: &str,
        nonce: &Nonce,
    ) -> Result<(GuardedSpend, Option<AuthzRecord>), SaError> {
        spent_already(nonce)?;
        Ok((
            GuardedSpend::Spent,
            self.get_authz_by_challenge(challenge_id).await?,
        ))
    }
    /// [`Self::get_cert`], spending `nonce`.
    async fn get_cert_spending(
        &self,
        id: &str,
        nonce: &Nonce,
    ) -> Result<(GuardedSpend, Option<CertRecord>), SaError> {
        spent_already(nonce)?;
        Ok((GuardedSpend::Spent, self.get_cert(id).await?))
    }
    /// finalize's read ([`Self::get_order`]) spending `nonce` and, if it was fresh, the claim
    /// of the order as [`ClaimAtRead`] says, in one step: answers the order as read (before
    /// the claim) and whether it was claimed. A store that cannot claims nothing here (the
    /// caller claims on its own when it has to).
    async fn claim_order_spending(
        &self,
        at: &ClaimAtRead<'_>,
        nonce: &Nonce,
    ) -> Result<(GuardedSpend, Option<OrderRecord>, bool), SaError> {
        spent_already(nonce)?;
        Ok((
            GuardedSpend::Spent,
            self.get_order(at.order_id).await?,
            false,
        ))
    }

    /// A challenge POST's read ([`Self::get_authz_by_challenge`]) spending `nonce` and, if it
    /// was fresh, the start of the challenge as [`ChallengeStart`] says, in one step: answers
    /// the read (as before the start) and what the start did. A store without shared buckets
    /// refuses a start with a [`ChallengeStart::budget`] and changes nothing.
    async fn start_challenge_spending(
        &self,
        start: &ChallengeStart<'_>,
        nonce: &Nonce,
    ) -> Result<(GuardedSpend, Option<AuthzRecord>, StartStep), SaError> {
        spent_already(nonce)?;
        if start.budget.is_some() {
            return Err(SaError::NoRateBuckets);
        }
        let authz = self.get_authz_by_challenge(start.challenge_id).await?;
        let started = start_after_read(self, start, authz.as_ref()).await?;
        Ok((GuardedSpend::Spent, authz, StartStep::of(started, false)))
    }

    /// newOrder's reads, spending `nonce`: [`Self::subdomain_ancestor_authzs`], and
    /// [`Self::find_reusable_authz`] for each of `wanted` (identifier, wildcard).
    async fn new_order_reads_spending(
        &self,
        lookup: &OrderLookup<'_>,
        nonce: &Nonce,
    ) -> Result<(GuardedSpend, OrderReads), SaError> {
        spent_already(nonce)?;
        if lookup.charge.is_some() {
            return Err(SaError::NoRateBuckets);
        }
        let (account_id, now) = (lookup.account_id, lookup.now);
        let ancestors = self
            .subdomain_ancestor_authzs(lookup.tenant, account_id, now)
            .await?;
        let mut reusable = Vec::with_capacity(lookup.wanted.len());
        for (ident, wildcard) in lookup.wanted {
            reusable.push(
                self.find_reusable_authz(account_id, ident, *wildcard, now, lookup.min_expires)
                    .await?,
            );
        }
        Ok((
            GuardedSpend::Spent,
            OrderReads {
                ancestors,
                reusable,
                refused: None,
            },
        ))
    }
    /// Reads a certificate by serial (lower-case hex) within a tenant.
    async fn get_cert_by_serial(
        &self,
        tenant: &str,
        serial: &str,
    ) -> Result<Option<CertRecord>, SaError>;
    /// Marks an unrevoked certificate revoked; false if it already was.
    async fn try_revoke_cert(&self, id: &str, at: i64, reason: Option<u8>)
        -> Result<bool, SaError>;
    /// Revoked certificates of a tenant signed by its issuing CA `issuer` (see
    /// [`CertRecord::issuer_id`]) that have not expired before `not_after_min`.
    async fn revoked_certs(
        &self,
        tenant: &str,
        issuer: &str,
        not_after_min: i64,
    ) -> Result<Vec<RevokedEntry>, SaError>;

    /// The latest CRL of a tenant.
    async fn get_crl(&self, tenant: &str) -> Result<Option<CrlRecord>, SaError>;
    /// Stores a CRL if its number is higher than the stored one.
    async fn store_crl(&self, tenant: &str, crl: &CrlRecord) -> Result<(), SaError>;
}

/// A validation lease: who holds it (a token fresh for each claim) and until when (UNIX
/// seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The claim's token.
    pub owner: String,
    /// When another node may take the validation over, unless renewed.
    pub until: i64,
}

/// The result of one validation, as [`Storage::finish_challenge`] stores it.
#[derive(Clone, Debug)]
pub struct ChallengeOutcome {
    /// Whether the challenge succeeded.
    pub valid: bool,
    /// When the validation finished (UNIX seconds).
    pub at: i64,
    /// New authorization expiry on success.
    pub authz_expires: i64,
    /// Problem document JSON on failure.
    pub error: Option<String>,
    /// Validation record JSON.
    pub record: Option<String>,
    /// Shared buckets to give a token back to in the same step (the failed-validation token
    /// a successful validation did not need), on a store with [`Database::rate_store`].
    pub give_back: Option<BucketCharge>,
}

#[cfg(test)]
pub(crate) mod tests;
