//! Registration authority: the ACME state machine and policy (RFC 8555 §7). It knows nothing of
//! HTTP or SQL: the front end hands it typed requests, storage sits behind [`Storage`], proofs
//! of control come from the validation authority, signatures from the tenant's issuing CA.

mod account;
mod ari;
mod attest;
mod caa_recheck;
mod challenge;
pub mod coverage;
mod ct;
mod domains;
mod drain;
mod eab;
mod finalize;
mod name_template;
mod order;
mod revoke;
pub mod statuses;
mod subdomain;
mod validation_queue;

pub use account::{AccountUpdate, NewAccount};
pub use ari::{default_window, RenewalWindow, ARI_RETRY_AFTER_SECS};
pub use domains::{
    add_domain, br_reuse_days, remove_domain, revalidate_due, spawn_domain_revalidator,
    validate_domain, DomainError, DomainPolicy,
};
pub use drain::DrainReport;
pub use eab::{generate_hmac_key, EabBackend, EabKeyring, KeyringError, HMAC_KEY_LEN};
pub use name_template::NameTemplate;
pub use order::{AuthzView, OrderCharge, OrderOptions, OrderView};
pub use revoke::RevokeAuth;
pub use validation_queue::ValidationBudget;

use crate::ca::status::CrlRequests;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::sa::{
    AccountRecord, AccountState, CtStore, Database, DomainStore, LifecycleStore, Storage,
};
use crate::tenant::{Tenant, TenantSet};
use crate::va::Va;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Lifetimes and limits the registration authority applies.
#[derive(Clone, Debug)]
pub struct RaConfig {
    /// How long a new order stays usable.
    pub order_lifetime: Duration,
    /// How long a pending authorization stays usable.
    pub pending_authz_lifetime: Duration,
    /// How long a validated authorization can be reused (BR §4.2.1 allows up to 398 days;
    /// a short reuse window limits the damage of a lost domain).
    pub valid_authz_lifetime: Duration,
    /// Most identifiers one order may name.
    pub max_identifiers: usize,
    /// Most validations running at once.
    pub max_concurrent_validations: usize,
    /// Most validations waiting for one of those slots; a challenge POST beyond it is refused
    /// with `rateLimited` and the challenge stays `pending`.
    pub max_queued_validations: usize,
    /// Most validations of one account claimed and not yet finished on this node.
    pub max_validations_per_account: usize,
    /// Time limit for one validation, CAA included.
    pub validation_timeout: Duration,
    /// How long a validation lease lasts without renewal: when a node stops renewing (it
    /// died), another node takes the validation over after this long.
    pub validation_lease: Duration,
    /// How long a challenge POST waits for its validation before answering `processing`.
    /// Most device validations (LAN http-01, tls-alpn-01) finish well inside it, so the
    /// device learns the result in the same round trip instead of polling.
    pub challenge_wait: Duration,
    /// Orders per page in an account's orders list (§7.1.2.1).
    pub orders_page_size: u32,
    /// Treat every challenge as passed. Only for load tests of the issuance path
    /// (`serve --insecure-skip-validation`); never on by default.
    pub skip_validation: bool,
    /// Most certificates being signed at once (finalize step 2). Signing runs on the blocking
    /// pool, so a slow signer (an HSM) holds a thread, not the storage writer.
    pub max_concurrent_signatures: usize,
    /// How long a finalize claim holds an order before the sweeper may release it: longer than
    /// the wait for a signing slot plus the signature. Signing does not start in the claim's
    /// second half, so two nodes never sign for one order.
    pub finalize_lease: Duration,
    /// Added before every certificate signature. Lab and benchmark only
    /// (`serve --signer-delay-ms`): stands in for a remote HSM; zero otherwise.
    pub signer_delay: Duration,
    /// How often orders waiting for SCTs (their logs gave too few) are tried again.
    pub ct_retry_interval: Duration,
}

impl Default for RaConfig {
    fn default() -> Self {
        Self {
            order_lifetime: Duration::from_secs(7 * 86400),
            pending_authz_lifetime: Duration::from_secs(7 * 86400),
            valid_authz_lifetime: Duration::from_secs(30 * 86400),
            max_identifiers: 100,
            max_concurrent_validations: 64,
            max_queued_validations: 1024,
            max_validations_per_account: 32,
            validation_timeout: Duration::from_secs(30),
            validation_lease: Duration::from_secs(65),
            challenge_wait: Duration::from_millis(250),
            orders_page_size: 50,
            skip_validation: false,
            max_concurrent_signatures: 16,
            finalize_lease: Duration::from_secs(60),
            signer_delay: Duration::ZERO,
            ct_retry_interval: Duration::from_secs(30),
        }
    }
}

/// What the registration authority is built from ([`Ra::new`]). The optional parts turn
/// features on; a part left out refuses or skips what needs it, as its field says.
pub struct RaParts {
    /// Orders, authorizations, accounts, certificates.
    pub sa: Arc<dyn Storage>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// The tenants served at start (a reload replaces them through [`Ra::tenant_set`]).
    pub tenants: Vec<Arc<Tenant>>,
    /// The validation authority.
    pub va: Va,
    /// Lifetimes and limits.
    pub cfg: RaConfig,
    /// External Account Binding credentials (RFC 8555 §7.3.4); without them every binding is
    /// refused.
    pub eab: Option<EabBackend>,
    /// Profiles, `replaces` links, ARI overrides and CRL shards of certificates.
    pub lifecycle: Arc<dyn LifecycleStore>,
    /// Tenant domains (issue 17).
    pub domains: Arc<dyn DomainStore>,
    /// The failed-validation limit each started validation draws from (RFC 8555 §6.6);
    /// without it validations are not limited.
    pub budget: Option<Arc<dyn ValidationBudget>>,
    /// renewalInfo poll tracking and ARI steering of certificates in trouble.
    pub coverage: Option<coverage::CoverageConfig>,
    /// Precertificates and their final certificates.
    pub ct_store: Arc<dyn CtStore>,
}

impl RaParts {
    /// Every storage role from one database, with the required parts; every optional
    /// feature off.
    pub fn new(
        db: Arc<dyn Database>,
        clock: Arc<dyn Clock>,
        tenants: Vec<Arc<Tenant>>,
        va: Va,
        cfg: RaConfig,
    ) -> Self {
        Self {
            sa: db.clone(),
            lifecycle: db.clone(),
            domains: db.clone(),
            ct_store: db,
            clock,
            tenants,
            va,
            cfg,
            eab: None,
            budget: None,
            coverage: None,
        }
    }
}

/// The registration authority. Cheap to share behind an `Arc`.
pub struct Ra {
    sa: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
    tenants: Arc<TenantSet>,
    va: Va,
    validations: Arc<Semaphore>,
    signatures: Arc<Semaphore>,
    admissions: Arc<validation_queue::Admissions>,
    cfg: RaConfig,
    eab: Option<EabBackend>,
    /// Profiles, `replaces` links and ARI overrides.
    lifecycle: Arc<dyn LifecycleStore>,
    /// Tenant domains (issue 17).
    domains: Arc<dyn DomainStore>,
    /// The failed-validation limit (the front end's rate limiter).
    budget: Option<Arc<dyn ValidationBudget>>,
    /// Validation leases and finalize claims this node holds now (for [`Ra::drain`]).
    held: Arc<drain::Held>,
    /// Continuous coverage: poll tracking and ARI steering.
    coverage: Option<coverage::CoverageConfig>,
    /// Precertificates and their final certificates (`ra::ct`).
    ct_store: Arc<dyn CtStore>,
    /// Where a revocation asks the CA's status publisher to re-sign a CRL.
    crl_requests: CrlRequests,
}

/// Whether an object stored for `account_id` in `record_tenant` belongs to `acct` of `tenant`.
/// Anything else is "not found" to it: RFC 8555 gives an account no access to another's
/// orders, authorizations, challenges or certificates.
/// The outcome of a nonce spent by a request's first read (see [`crate::sa::Nonce::Pending`]),
/// checked before anything else is done with what was read: a replay is `badNonce`, a kept
/// account that changed goes back to the front end. Neither spent nor wrote anything.
pub(crate) fn settle_nonce(spend: crate::sa::GuardedSpend) -> Result<()> {
    use crate::sa::GuardedSpend;
    match spend {
        GuardedSpend::Spent => Ok(()),
        GuardedSpend::Replayed => {
            crate::metrics::nonce_rejected("unknown");
            Err(Error::bad_nonce())
        }
        GuardedSpend::AccountChanged => Err(Error::AccountChanged),
    }
}

pub(crate) fn owned_by(
    tenant: &Tenant,
    acct: &AccountRecord,
    record_tenant: &str,
    account_id: &str,
) -> bool {
    account_id == acct.id && record_tenant == tenant.name
}

impl Ra {
    /// Builds the authority from all its parts at once, so no request ever meets one that is
    /// half wired.
    pub fn new(parts: RaParts) -> Arc<Self> {
        let RaParts {
            sa,
            clock,
            tenants,
            va,
            cfg,
            eab,
            lifecycle,
            domains,
            budget,
            coverage,
            ct_store,
        } = parts;
        Arc::new(Self {
            validations: Arc::new(Semaphore::new(cfg.max_concurrent_validations.max(1))),
            signatures: Arc::new(Semaphore::new(cfg.max_concurrent_signatures.max(1))),
            admissions: Arc::default(),
            tenants: TenantSet::new(tenants),
            sa,
            clock,
            va,
            cfg,
            eab,
            lifecycle,
            domains,
            budget,
            held: Arc::default(),
            coverage,
            ct_store,
            crl_requests: CrlRequests::default(),
        })
    }

    /// The queue through which revocations ask for CRLs to be re-signed; the CA's status
    /// publisher ([`crate::ca::status::StatusHandle::start`]) serves it.
    pub fn crl_requests(&self) -> &CrlRequests {
        &self.crl_requests
    }

    /// The coverage configuration, if set.
    pub fn coverage(&self) -> Option<&coverage::CoverageConfig> {
        self.coverage.as_ref()
    }

    /// The lifecycle storage.
    pub fn lifecycle(&self) -> &Arc<dyn LifecycleStore> {
        &self.lifecycle
    }

    /// The tenant (issuing CA) named in a URL, as served now (a disabled one included).
    pub fn tenant(&self, name: &str) -> Option<Arc<Tenant>> {
        self.tenants.get(name)
    }

    /// All tenants served now.
    pub fn tenants(&self) -> Vec<Arc<Tenant>> {
        self.tenants.all()
    }

    /// The swap point a reload replaces the tenants through.
    pub fn tenant_set(&self) -> &Arc<TenantSet> {
        &self.tenants
    }

    /// The issuing CA, active or retired, whose id (`IssuingCa::id`) names a CRL, OCSP or
    /// caIssuers URL.
    pub fn issuing_ca(&self, id: &str) -> Option<Arc<crate::ca::IssuingCa>> {
        self.tenants()
            .into_iter()
            .find_map(|t| t.issuer(id).cloned())
    }

    /// The storage handle (for the front end's read-only lookups such as account-by-key).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.sa
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The configuration.
    pub fn config(&self) -> &RaConfig {
        &self.cfg
    }

    /// Looks up the account named by a JWS `kid` within a tenant; RFC 8555 §6.2 requires the
    /// account to exist (`accountDoesNotExist`) and to be valid (`unauthorized`, §7.3.6).
    pub async fn account_for_kid(&self, tenant: &Tenant, id: &str) -> Result<AccountRecord> {
        // Read from storage every time: a deactivation by the operator (CLI, admin API, another
        // node) must stop the account's very next request. On PostgreSQL the front end keeps
        // what this returned and confirms it in the statement that spends the nonce
        // (`wfe::accounts`), which keeps that guarantee without a second round trip.
        let acct = self.sa.get_account(id).await?;
        let acct = match acct {
            Some(a) if a.tenant == tenant.name => a,
            _ => {
                return Err(Error::acme(
                    acme_types::problem::ProblemType::AccountDoesNotExist,
                    "no account with this key id in this CA",
                ))
            }
        };
        match acct.status {
            AccountState::Valid => Ok(acct),
            s => Err(Error::unauthorized(format!("account is {}", s.as_str()))),
        }
    }

    fn secs(d: Duration) -> i64 {
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
    }
}

#[cfg(test)]
mod tests;
