//! Rate limits (RFC 8555 §6.6): token buckets per account, per client IP and per registered
//! name, configured per tenant in `[ca.rate_limits]`. A request over a limit is answered with
//! `rateLimited` (429) and a `Retry-After` computed from the bucket, before anything is stored.
//!
//! Where the buckets live: a single SQLite node keeps them all in this process's memory. With
//! PostgreSQL (several nodes behind a load balancer) the hourly and weekly limits (per account,
//! per name, new accounts per IP) are kept in the shared database (`sa::rate`), so the fleet
//! gets one limit, not one per node (newOrder's and the challenge's buckets are charged by the
//! request's own statements, see [`RateLimiter::storage_charge`]);
//! `requests_per_ip_per_second` stays in each node's memory, since a database round trip per
//! request would cost more than the flood it stops (with N nodes that one limit is
//! effectively up to N times the configured rate). Buckets that have
//! refilled completely are forgotten, so memory and rows stay proportional to the clients
//! active within one refill period.

use crate::error::Error;
use crate::sa::{BucketCharge, RateOp, RateStore, Refusal, SharedBucket};
use acme_types::problem::ProblemType;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HOUR: f64 = 3600.0;
const WEEK: f64 = 7.0 * 86400.0;

/// Per-tenant limits (`[ca.rate_limits]` in `fleetca.toml` / `tenant.toml`). Every key is
/// optional; `0` turns a limit off. The defaults are far above what a device needs: a device
/// renews a handful of times per certificate lifetime, while these stop a runaway loop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// newOrder requests per account per hour.
    pub new_orders_per_account_per_hour: u32,
    /// Failed challenge validations per account per hour. Each validation takes a token when
    /// it starts and gives it back if it succeeds; once spent, challenge POSTs that would
    /// start another validation are refused until the bucket refills.
    pub failed_validations_per_account_per_hour: u32,
    /// Accounts created per client IP per hour (generous: a factory line behind one NAT
    /// address onboards many devices).
    pub new_accounts_per_ip_per_hour: u32,
    /// Signed ACME POSTs per client IP per second, sustained (directory, newNonce and
    /// renewalInfo are exempt). A certificate takes about eight, so the default lets one
    /// address obtain several per second; put devices behind a proxy named with
    /// `--trusted-proxy`, or raise it, where many devices share one address.
    pub requests_per_ip_per_second: u32,
    /// How many signed POSTs one client IP may send at once before the per-second rate
    /// applies (the bucket size); `0`: one second's worth.
    pub requests_per_ip_burst: u32,
    /// Orders naming the same registered name per week (each order is a would-be certificate;
    /// checked and counted at newOrder, as Let's Encrypt does).
    pub certificates_per_name_per_week: u32,
    /// How many rightmost DNS labels make up the "registered name" the weekly limit counts
    /// (`2` groups `a.fleet.example` and `b.fleet.example` under `fleet.example`); `0` counts
    /// each full name on its own.
    pub name_suffix_labels: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            new_orders_per_account_per_hour: 300,
            failed_validations_per_account_per_hour: 60,
            new_accounts_per_ip_per_hour: 20_000,
            requests_per_ip_per_second: 50,
            requests_per_ip_burst: 250,
            certificates_per_name_per_week: 100,
            name_suffix_labels: 0,
        }
    }
}

impl RateLimitConfig {
    /// Whether every value is the default (then `init` does not write the section).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Which limit a bucket enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// newOrder per account.
    NewOrdersPerAccount,
    /// Failed validations per account.
    FailedValidationsPerAccount,
    /// newAccount per IP.
    NewAccountsPerIp,
    /// Signed requests per IP.
    RequestsPerIp,
    /// Orders per registered name.
    CertificatesPerName,
}

impl Limit {
    /// All limits, in the order [`rejections_by_limit`] reports them.
    pub const ALL: [Limit; 5] = [
        Limit::NewOrdersPerAccount,
        Limit::FailedValidationsPerAccount,
        Limit::NewAccountsPerIp,
        Limit::RequestsPerIp,
        Limit::CertificatesPerName,
    ];

    /// Whether the bucket lives in the shared database when there is one: every limit but
    /// the per-second request flood guard.
    fn shared(self) -> bool {
        self != Limit::RequestsPerIp
    }

    /// The config key, also the metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Limit::NewOrdersPerAccount => "new_orders_per_account_per_hour",
            Limit::FailedValidationsPerAccount => "failed_validations_per_account_per_hour",
            Limit::NewAccountsPerIp => "new_accounts_per_ip_per_hour",
            Limit::RequestsPerIp => "requests_per_ip_per_second",
            Limit::CertificatesPerName => "certificates_per_name_per_week",
        }
    }

    /// (bucket size, refill per second); `None` when the limit is off.
    fn shape(self, c: &RateLimitConfig) -> Option<(f64, f64)> {
        let (n, period) = match self {
            Limit::NewOrdersPerAccount => (c.new_orders_per_account_per_hour, HOUR),
            Limit::FailedValidationsPerAccount => (c.failed_validations_per_account_per_hour, HOUR),
            Limit::NewAccountsPerIp => (c.new_accounts_per_ip_per_hour, HOUR),
            Limit::RequestsPerIp => {
                let rate = c.requests_per_ip_per_second;
                let burst = match c.requests_per_ip_burst {
                    0 => rate,
                    b => b,
                };
                return (rate > 0).then(|| (f64::from(burst), f64::from(rate)));
            }
            Limit::CertificatesPerName => (c.certificates_per_name_per_week, WEEK),
        };
        (n > 0).then(|| (f64::from(n), f64::from(n) / period))
    }

    fn index(self) -> usize {
        Limit::ALL.iter().position(|l| *l == self).unwrap_or(0)
    }
}

static REJECTIONS: [AtomicU64; 5] = [
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
];

/// Requests refused with `rateLimited` since the process started, all limits together
/// (for `/metrics`: `fleetca_rate_limited_total`).
pub fn rejected_total() -> u64 {
    REJECTIONS.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}

/// Requests refused per limit since the process started, labelled with [`Limit::name`].
pub fn rejections_by_limit() -> Vec<(&'static str, u64)> {
    Limit::ALL
        .iter()
        .map(|l| (l.name(), REJECTIONS[l.index()].load(Ordering::Relaxed)))
        .collect()
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant, (size, rate): (f64, f64)) -> Bucket {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        Bucket {
            tokens: (self.tokens + dt * rate).min(size),
            at: now,
        }
    }
}

type Key = (Limit, String, String);

/// The token buckets of one process, for all tenants.
pub struct RateLimiter {
    /// Replaced whole when `serve` reloads its tenants; the buckets stay.
    configs: std::sync::RwLock<Arc<HashMap<String, RateLimitConfig>>>,
    default: RateLimitConfig,
    buckets: Mutex<Buckets>,
    /// The database keeping the shared limits' buckets (PostgreSQL); `None`: all in memory.
    store: Option<Arc<dyn RateStore>>,
    /// Shared operations since start; every 4096th prunes full buckets from the database.
    shared_ops: AtomicU64,
}

struct Buckets {
    map: HashMap<Key, Bucket>,
    /// Size above which full buckets are swept out.
    sweep_at: usize,
}

/// One unit taken from a bucket: (limit, subject such as an account id, IP or name).
pub type Charge = (Limit, String);

impl RateLimiter {
    /// Limits per tenant name; tenants not listed get [`RateLimitConfig::default`].
    pub fn new(configs: HashMap<String, RateLimitConfig>) -> Self {
        Self {
            configs: std::sync::RwLock::new(Arc::new(configs)),
            default: RateLimitConfig::default(),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                sweep_at: 10_000,
            }),
            store: None,
            shared_ops: AtomicU64::new(0),
        }
    }

    /// Keeps the shared limits' buckets in `store` (the database several nodes share).
    pub fn with_store(mut self, store: Option<Arc<dyn RateStore>>) -> Self {
        self.store = store;
        self
    }

    /// The limits of `tenant`.
    pub fn config(&self, tenant: &str) -> RateLimitConfig {
        let configs = self
            .configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        configs.get(tenant).unwrap_or(&self.default).clone()
    }

    /// The limits of the tenants after a reload (a tenant not listed gets the defaults).
    pub fn set_configs(&self, configs: HashMap<String, RateLimitConfig>) {
        *self.configs.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(configs);
    }

    /// The bucket key of a name under the tenant's `name_suffix_labels` rule; wildcards count
    /// as their base name. The name is first put in the canonical form the order stores
    /// (IDNA A-labels, lower case, no trailing dot), so that no other spelling of it (upper
    /// case, full-width or other Unicode forms IDNA maps to the same name) is a bucket of its
    /// own; a name that does not parse is refused by newOrder anyway.
    pub fn name_key(&self, tenant: &str, name: &str) -> String {
        let canonical = pki::identifier::Identifier::parse_any(name)
            .map(|i| i.value())
            .unwrap_or_else(|_| name.to_lowercase());
        let name = canonical.trim_start_matches("*.").trim_end_matches('.');
        let keep = self.config(tenant).name_suffix_labels as usize;
        if keep == 0 || name.parse::<IpAddr>().is_ok() {
            return name.to_ascii_lowercase();
        }
        let labels: Vec<&str> = name.split('.').collect();
        labels[labels.len().saturating_sub(keep)..]
            .join(".")
            .to_ascii_lowercase()
    }

    /// Takes one token from every bucket in `charges`, or from none: if any is empty the
    /// request is refused with `rateLimited` and a `Retry-After` for the slowest of them.
    pub async fn take(&self, tenant: &str, charges: &[Charge]) -> Result<(), Error> {
        self.apply_any(tenant, charges, RateOp::Take).await
    }

    /// Like [`RateLimiter::take`] but takes nothing: refuses only if a bucket is already empty.
    pub async fn check(&self, tenant: &str, charges: &[Charge]) -> Result<(), Error> {
        self.apply_any(tenant, charges, RateOp::Check).await
    }

    /// Gives back tokens taken for a request that turned out not to count (for example a
    /// newAccount that found the existing account).
    pub async fn refund(&self, tenant: &str, charges: &[Charge]) {
        self.adjust_any(tenant, charges, 1.0).await;
    }

    /// Records an event after the fact (a validation that failed): the bucket may go down to
    /// zero but never refuses, since the event already happened.
    pub async fn record(&self, tenant: &str, charges: &[Charge]) {
        self.adjust_any(tenant, charges, -1.0).await;
    }

    /// Whether [`Self::take`] of `charges` for `tenant` writes the database's buckets: shared
    /// limits, at least one of them configured (an unlimited one has no bucket).
    fn writes_storage(&self, tenant: &str, charges: &[Charge]) -> bool {
        if self.store.is_none() || charges.is_empty() || !charges.iter().all(|(l, _)| l.shared()) {
            return false;
        }
        let cfg = self.config(tenant);
        charges.iter().any(|(l, _)| l.shape(&cfg).is_some())
    }

    /// `charges` as a [`BucketCharge`] for a storage step to take in its own statement, when
    /// [`Self::take`] would write the database's buckets; `None` otherwise (memory, or every
    /// limit off).
    pub fn storage_charge(&self, tenant: &str, charges: &[Charge]) -> Option<BucketCharge> {
        if !self.writes_storage(tenant, charges) {
            return None;
        }
        let (_, buckets) = self.shared_buckets(tenant, charges);
        Some(BucketCharge {
            tenant: tenant.to_string(),
            buckets,
            now_ms: unix_ms(),
        })
    }

    /// Runs `op` on the database's buckets when there is a database and every charge is a
    /// shared limit (callers never mix the per-second guard with the others), else on memory.
    async fn apply_any(&self, tenant: &str, charges: &[Charge], op: RateOp) -> Result<(), Error> {
        let shared = self
            .store
            .as_ref()
            .filter(|_| !charges.is_empty() && charges.iter().all(|(l, _)| l.shared()));
        match (shared, op) {
            (Some(store), _) => self.apply_shared(store, tenant, charges, op).await,
            (None, RateOp::Take) => self.apply(tenant, charges, true),
            (None, RateOp::Check) => self.apply(tenant, charges, false),
            (None, RateOp::Adjust(delta)) => {
                self.adjust(tenant, charges, delta);
                Ok(())
            }
        }
    }

    /// Losing a refund or a record errs towards the client or the limit by one token; neither
    /// is worth failing the request over, so a database error is only logged.
    async fn adjust_any(&self, tenant: &str, charges: &[Charge], delta: f64) {
        if let Err(e) = self.apply_any(tenant, charges, RateOp::Adjust(delta)).await {
            tracing::warn!(error = %e, "adjusting a shared rate-limit bucket failed");
        }
    }

    async fn apply_shared(
        &self,
        store: &Arc<dyn RateStore>,
        tenant: &str,
        charges: &[Charge],
        op: RateOp,
    ) -> Result<(), Error> {
        let (limits, buckets) = self.shared_buckets(tenant, charges);
        let now_ms = unix_ms();
        let refused = store.rate_apply(tenant, &buckets, now_ms, op).await?;
        if self.shared_ops.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            if let Err(e) = store.rate_prune(now_ms).await {
                tracing::warn!(error = %e, "pruning shared rate-limit buckets failed");
            }
        }
        match refused {
            Some((i, wait)) => Err(refusal(limits[i], wait)),
            None => Ok(()),
        }
    }

    /// The configured limits among `charges` and their buckets, in the same order.
    fn shared_buckets(&self, tenant: &str, charges: &[Charge]) -> (Vec<Limit>, Vec<SharedBucket>) {
        let cfg = self.config(tenant);
        charges
            .iter()
            .filter_map(|(limit, subject)| {
                let (size, per_sec) = limit.shape(&cfg)?;
                let bucket = SharedBucket {
                    limit: limit.name(),
                    subject: subject.clone(),
                    size,
                    per_sec,
                };
                Some((*limit, bucket))
            })
            .unzip()
    }

    fn adjust(&self, tenant: &str, charges: &[Charge], delta: f64) {
        let cfg = self.config(tenant);
        let now = Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        for (limit, subject) in charges {
            let Some(shape) = limit.shape(&cfg) else {
                continue;
            };
            let key = (*limit, tenant.to_string(), subject.clone());
            let cur = b.map.get(&key).copied().unwrap_or(Bucket {
                tokens: shape.0,
                at: now,
            });
            let mut cur = cur.refilled(now, shape);
            cur.tokens = (cur.tokens + delta).clamp(0.0, shape.0);
            b.map.insert(key, cur);
        }
    }

    fn apply(&self, tenant: &str, charges: &[Charge], take: bool) -> Result<(), Error> {
        let cfg = self.config(tenant);
        let now = Instant::now();
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let mut refused: Option<(Limit, f64)> = None;
        let mut fresh = Vec::with_capacity(charges.len());
        for (limit, subject) in charges {
            let Some(shape) = limit.shape(&cfg) else {
                continue;
            };
            let key = (*limit, tenant.to_string(), subject.clone());
            let cur = b
                .map
                .get(&key)
                .copied()
                .unwrap_or(Bucket {
                    tokens: shape.0,
                    at: now,
                })
                .refilled(now, shape);
            if cur.tokens < 1.0 {
                let wait = (1.0 - cur.tokens) / shape.1;
                if refused.is_none_or(|(_, w)| wait > w) {
                    refused = Some((*limit, wait));
                }
            }
            fresh.push((key, cur));
        }
        if let Some((limit, wait)) = refused {
            return Err(refusal(limit, wait));
        }
        if take {
            for (key, mut cur) in fresh {
                cur.tokens -= 1.0;
                b.map.insert(key, cur);
            }
            if b.map.len() > b.sweep_at {
                sweep(&mut b, |t| self.config(t), now);
            }
        }
        Ok(())
    }
}

/// `failed_validations_per_account_per_hour` as the registration authority draws on it: a
/// token per validation started, given back when it succeeds.
pub(crate) struct FailedValidations(pub(crate) Arc<RateLimiter>);

#[async_trait::async_trait]
impl crate::ra::ValidationBudget for FailedValidations {
    async fn take(&self, tenant: &str, account: &str) -> Result<(), Error> {
        self.0
            .take(
                tenant,
                &[(Limit::FailedValidationsPerAccount, account.to_string())],
            )
            .await
    }

    async fn give_back(&self, tenant: &str, account: &str) {
        self.0
            .refund(
                tenant,
                &[(Limit::FailedValidationsPerAccount, account.to_string())],
            )
            .await;
    }

    fn storage_charge(&self, tenant: &str, account: &str) -> Option<BucketCharge> {
        self.0.storage_charge(
            tenant,
            &[(Limit::FailedValidationsPerAccount, account.to_string())],
        )
    }

    fn refused(&self, charge: &BucketCharge, refusal: Refusal) -> Error {
        refused_charge(charge, refusal)
    }
}

/// The `rateLimited` answer when a storage step refused `charge` (made by
/// [`RateLimiter::storage_charge`]): the refused bucket's limit and wait.
pub(crate) fn refused_charge(charge: &BucketCharge, (i, wait): Refusal) -> Error {
    let limit = charge
        .buckets
        .get(i)
        .and_then(|b| Limit::ALL.into_iter().find(|l| l.name() == b.limit))
        .unwrap_or(Limit::NewOrdersPerAccount);
    refusal(limit, wait)
}

/// Now, UNIX milliseconds (the shared buckets' clock).
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The `rateLimited` answer for `limit`, whose bucket holds a token again after `wait` seconds.
fn refusal(limit: Limit, wait: f64) -> Error {
    REJECTIONS[limit.index()].fetch_add(1, Ordering::Relaxed);
    crate::metrics::rate_limited(limit.name());
    // Whole seconds, rounded up: retrying at Retry-After always finds a token.
    let secs = Duration::from_secs_f64(wait.max(0.0))
        .as_secs_f64()
        .ceil()
        .max(1.0) as u64;
    Error::acme(
        ProblemType::RateLimited,
        format!("rate limit {} exceeded; retry in {secs}s", limit.name()),
    )
    .with_retry_after(secs)
}

/// Forgets buckets that have refilled completely (they behave exactly like absent ones).
fn sweep(b: &mut Buckets, cfg: impl Fn(&str) -> RateLimitConfig, now: Instant) {
    b.map.retain(|(limit, tenant, _), bucket| {
        limit
            .shape(&cfg(tenant))
            .is_some_and(|shape| bucket.refilled(now, shape).tokens < shape.0)
    });
    b.sweep_at = (b.map.len() * 2).max(10_000);
}

/// The tenant named in an `/acme/<tenant>/...` path.
fn path_tenant(path: &str) -> &str {
    path.strip_prefix("/acme/")
        .and_then(|p| p.split('/').next())
        .unwrap_or("")
}

/// Middleware: one token per signed request from the client's IP (`requests_per_ip_per_second`).
pub(crate) async fn per_ip_requests(
    axum::extract::State(wfe): axum::extract::State<std::sync::Arc<super::Wfe>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(ip) = wfe.config().trusted_proxies.client_of(&req) {
        let tenant = path_tenant(req.uri().path()).to_string();
        if let Err(e) = wfe
            .limits()
            .take(&tenant, &[(Limit::RequestsPerIp, ip.to_string())])
            .await
        {
            return e.into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(c: RateLimitConfig) -> RateLimiter {
        RateLimiter::new([("t".to_string(), c)].into_iter().collect())
    }

    #[tokio::test]
    async fn refuses_when_empty_with_retry_after_from_the_refill_rate() {
        let l = limiter(RateLimitConfig {
            new_orders_per_account_per_hour: 2,
            ..Default::default()
        });
        let c = [(Limit::NewOrdersPerAccount, "a1".to_string())];
        l.take("t", &c).await.unwrap();
        l.take("t", &c).await.unwrap();
        let e = l.take("t", &c).await.unwrap_err();
        let Error::Acme(a) = e else { panic!() };
        assert_eq!(a.kind, ProblemType::RateLimited);
        // Two per hour: one token every 1800 s.
        let ra = a.retry_after.unwrap();
        assert!((1700..=1800).contains(&ra), "{ra}");
        // Another account is not affected.
        l.take("t", &[(Limit::NewOrdersPerAccount, "a2".into())])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn all_or_nothing_and_refund() {
        let l = limiter(RateLimitConfig {
            new_orders_per_account_per_hour: 5,
            certificates_per_name_per_week: 1,
            ..Default::default()
        });
        let acct = (Limit::NewOrdersPerAccount, "a".to_string());
        let name = (Limit::CertificatesPerName, "x.example".to_string());
        l.take("t", &[acct.clone(), name.clone()]).await.unwrap();
        assert!(l.take("t", &[acct.clone(), name.clone()]).await.is_err());
        // The refused request took nothing from the account bucket: 4 tokens remain.
        for _ in 0..4 {
            l.take("t", std::slice::from_ref(&acct)).await.unwrap();
        }
        assert!(l.check("t", std::slice::from_ref(&acct)).await.is_err());
        l.refund("t", std::slice::from_ref(&acct)).await;
        l.take("t", std::slice::from_ref(&acct)).await.unwrap();
    }

    /// With a store, the hourly and weekly buckets live there (a second limiter, standing in
    /// for another node, sees them spent) while the per-second guard stays in memory.
    #[tokio::test]
    async fn shared_limits_go_to_the_store_and_the_flood_guard_stays_local() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::sa::SqliteStorage::open(&dir.path().join("l.db"))
            .await
            .unwrap();
        let store: Arc<dyn RateStore> = Arc::new(db);
        let cfg = RateLimitConfig {
            new_orders_per_account_per_hour: 1,
            requests_per_ip_per_second: 1,
            requests_per_ip_burst: 1,
            ..Default::default()
        };
        let node = || limiter(cfg.clone()).with_store(Some(store.clone()));
        let (a, b) = (node(), node());
        let order = [(Limit::NewOrdersPerAccount, "acct".to_string())];
        a.take("t", &order).await.unwrap();
        let Error::Acme(p) = b.take("t", &order).await.unwrap_err() else {
            panic!("expected rateLimited")
        };
        assert_eq!(p.kind, ProblemType::RateLimited);
        assert!(p.retry_after.unwrap() > 3000);
        // A refund on one node is seen by the other.
        a.refund("t", &order).await;
        b.take("t", &order).await.unwrap();
        let ip = [(Limit::RequestsPerIp, "192.0.2.1".to_string())];
        a.take("t", &ip).await.unwrap();
        assert!(a.take("t", &ip).await.is_err());
        b.take("t", &ip).await.unwrap();
    }

    /// The per-IP default: a burst of 250 signed POSTs, then 50 per second.
    #[tokio::test]
    async fn per_ip_default_allows_a_burst_then_the_rate() {
        let l = limiter(RateLimitConfig::default());
        let ip = [(Limit::RequestsPerIp, "192.0.2.7".to_string())];
        for _ in 0..250 {
            l.take("t", &ip).await.unwrap();
        }
        let Error::Acme(p) = l.take("t", &ip).await.unwrap_err() else {
            panic!("expected rateLimited")
        };
        assert_eq!(p.kind, ProblemType::RateLimited);
        assert_eq!(p.retry_after, Some(1));
        assert_eq!(
            Limit::RequestsPerIp.shape(&RateLimitConfig::default()),
            Some((250.0, 50.0))
        );
    }

    #[tokio::test]
    async fn zero_turns_a_limit_off_and_suffix_labels_group_names() {
        let l = limiter(RateLimitConfig {
            requests_per_ip_per_second: 0,
            name_suffix_labels: 2,
            ..Default::default()
        });
        for _ in 0..1000 {
            l.take("t", &[(Limit::RequestsPerIp, "1.2.3.4".into())])
                .await
                .unwrap();
        }
        assert_eq!(l.name_key("t", "*.A.Fleet.Example"), "fleet.example");
        // Other spellings of one name are one bucket.
        assert_eq!(l.name_key("other", "DEV1.Home.Arpa."), "dev1.home.arpa");
        assert_eq!(l.name_key("other", "ｄｅｖ１.home.arpa"), "dev1.home.arpa");
        assert_eq!(
            l.name_key("other", "Bücher.example"),
            "xn--bcher-kva.example"
        );
        assert_eq!(l.name_key("t", "10.0.0.1"), "10.0.0.1");
        assert_eq!(l.name_key("other", "a.b.c"), "a.b.c");
    }

    #[tokio::test]
    async fn record_drains_without_refusing_and_sweep_forgets_full_buckets() {
        let l = limiter(RateLimitConfig {
            failed_validations_per_account_per_hour: 1,
            ..Default::default()
        });
        let c = [(Limit::FailedValidationsPerAccount, "a".to_string())];
        l.check("t", &c).await.unwrap();
        l.record("t", &c).await;
        l.record("t", &c).await;
        assert!(l.check("t", &c).await.is_err());
        let mut b = l.buckets.lock().unwrap();
        b.map.insert(
            (Limit::RequestsPerIp, "t".into(), "ip".into()),
            Bucket {
                tokens: 20_000.0,
                at: Instant::now(),
            },
        );
        sweep(&mut b, |t| l.config(t), Instant::now());
        assert_eq!(b.map.len(), 1, "only the drained bucket is kept");
    }
}
