//! `fleetca serve`: loads the data directory, opens storage, and runs the ACME server over
//! HTTPS plus a plain-HTTP listener for CRLs and CA certificates.

use super::{parse_net, parse_socket, KeyProtection};
use crate::clock::Clock;
use crate::datadir::{DataDir, DEFAULT_TENANT};
use crate::ra::{Ra, RaConfig, RaParts};
use crate::sa::Storage;
use crate::va::{Va, VaConfig};
use crate::wfe::{self, Wfe, WfeConfig};
use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The data directory used when none is given; created on first `serve`.
pub(crate) const DEFAULT_DATA_DIR: &str = "./fleetca-data";
/// The namespace a first-run CA is permitted: `home.arpa`, the special-use domain for home
/// networks (RFC 8375), which no public CA can issue for.
pub(crate) const DEFAULT_PERMIT: &str = "home.arpa";

/// `fleetca serve` options; each is also an environment variable.
#[derive(Debug, Parser, Clone)]
pub struct ServeArgs {
    /// Data directory (created with defaults if it is ./fleetca-data and empty).
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Database: a `postgres://` URL shared by several nodes, or a SQLite file (default: the
    /// data directory's fleetca.db). Operator commands read `FLEETCA_DATABASE` likewise.
    #[arg(long, env = "FLEETCA_DATABASE")]
    pub database: Option<String>,
    /// Connections this node keeps to PostgreSQL (ignored for SQLite). Every node has its
    /// own pool, so nodes × this must stay below the server's `max_connections`. A database
    /// on few cores spends less CPU per certificate with fewer; a distant one needs more to
    /// keep its statements in flight (docs/operations.md).
    #[arg(long, env = "FLEETCA_DATABASE_POOL", default_value_t = crate::sa::DEFAULT_PG_POOL,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_pool: u32,
    /// HTTPS listen address for ACME.
    #[arg(long, env = "FLEETCA_LISTEN", default_value = "127.0.0.1:8443", value_parser = parse_socket)]
    pub listen: SocketAddr,
    /// Plain-HTTP listen address for CRLs and CA certificates (RFC 5280 §4.2.1.13).
    #[arg(long, env = "FLEETCA_HTTP_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_socket)]
    pub http_listen: SocketAddr,
    /// Admin listener (plain HTTP; keep it on loopback or a private network): the dashboard at
    /// `/`, the admin API under `/api/`, Prometheus metrics at `/metrics` (docs/admin.md).
    #[arg(long, env = "FLEETCA_ADMIN_LISTEN", default_value = "127.0.0.1:9443", value_parser = parse_socket)]
    pub admin_listen: SocketAddr,
    /// Serve the admin listener over HTTPS, with the ACME listener's certificate (bearer
    /// tokens then never cross the network in clear). Use it whenever the admin listener is
    /// not on loopback.
    #[arg(long, env = "FLEETCA_ADMIN_TLS")]
    pub admin_tls: bool,
    /// Also serve ACME on the plain-HTTP listener (only behind a TLS-terminating proxy;
    /// set --base-url to the proxy's https URL).
    #[arg(long, env = "FLEETCA_ACME_OVER_HTTP")]
    pub acme_over_http: bool,
    /// A load balancer or proxy (address or CIDR, repeatable; env: comma-separated) whose
    /// `X-Forwarded-For` names the client for per-IP rate limits. Without it the TCP peer is
    /// the client, and every device behind a balancer shares the balancer's per-IP budget.
    #[arg(long = "trusted-proxy", env = "FLEETCA_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// External base URL of the ACME server (default `https://<listen>`).
    #[arg(long, env = "FLEETCA_BASE_URL")]
    pub base_url: Option<String>,
    /// DNS server for validation lookups (default: the system resolver). Tests and labs only.
    #[arg(long, env = "FLEETCA_DNS_RESOLVER", value_parser = parse_socket)]
    pub dns_resolver: Option<SocketAddr>,
    /// Port the http-01 validator connects to (default 80). Tests and labs only.
    #[arg(long, env = "FLEETCA_HTTP01_PORT", default_value_t = 80)]
    pub http01_port: u16,
    /// Port the tls-alpn-01 validator connects to (default 443). Tests and labs only.
    #[arg(long, env = "FLEETCA_TLSALPN01_PORT", default_value_t = 443)]
    pub tlsalpn01_port: u16,
    /// Let validations contact this range although its class is refused by default
    /// (loopback, link-local, metadata, ...; private ranges need nothing). Only lifts the
    /// refusal of a range that lies inside it: name each range. Repeatable; env:
    /// comma-separated.
    #[arg(long = "va-allow-address", env = "FLEETCA_VA_ALLOW_ADDRESSES", value_delimiter = ',', value_parser = parse_net)]
    pub va_allow_addresses: Vec<ipnet::IpNet>,
    /// Never let validations contact this range (e.g. the operator's management networks);
    /// wins over --va-allow-address. Repeatable; env: comma-separated.
    #[arg(long = "va-deny-address", env = "FLEETCA_VA_DENY_ADDRESSES", value_delimiter = ',', value_parser = parse_net)]
    pub va_deny_addresses: Vec<ipnet::IpNet>,
    /// Use this certificate chain (PEM) for HTTPS instead of the one init made.
    #[arg(long, env = "FLEETCA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Key (PEM) for --tls-cert.
    #[arg(long, env = "FLEETCA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How often, in seconds, the HTTPS certificate from the data directory is checked and
    /// re-issued by the server TLS CA when due (tests shorten it).
    #[arg(long, env = "FLEETCA_TLS_RENEW_CHECK_SECS", default_value_t = 6 * 3600, hide = true)]
    pub tls_renew_check_secs: u64,
    /// Permitted names when serve initialises a new data directory (default home.arpa).
    #[arg(long)]
    pub permit: Vec<String>,
    /// Most validations in flight at once.
    #[arg(long, env = "FLEETCA_MAX_VALIDATIONS", default_value_t = 64)]
    pub max_validations: usize,
    /// Most validations waiting for a slot beyond --max-validations; a challenge POST beyond
    /// it is refused with `rateLimited` + Retry-After and its challenge stays pending.
    #[arg(long, env = "FLEETCA_MAX_QUEUED_VALIDATIONS", default_value_t = 1024)]
    pub max_queued_validations: usize,
    /// Most validations of one account in progress (waiting or running) on this node; beyond
    /// it a challenge POST is refused with `rateLimited` + Retry-After.
    #[arg(
        long,
        env = "FLEETCA_MAX_VALIDATIONS_PER_ACCOUNT",
        default_value_t = 32
    )]
    pub max_validations_per_account: usize,
    /// Seconds a nonce stays redeemable (RFC 8555 §6.5). Clients use a nonce within seconds
    /// of getting it (every response carries a fresh one); a stale one gets `badNonce`, which
    /// clients retry with the fresh nonce of that response.
    #[arg(long, env = "FLEETCA_NONCE_LIFETIME_SECS", default_value_t = 300)]
    pub nonce_lifetime_secs: u64,
    /// Most spent nonces a single (SQLite) node remembers; when full, the oldest is forgotten
    /// and nonces expiring no later than it are refused with `badNonce`.
    #[arg(long, env = "FLEETCA_MAX_SPENT_NONCES", default_value_t = crate::sa::DEFAULT_MAX_SPENT_NONCES)]
    pub max_spent_nonces: usize,
    /// LABS AND TESTS ONLY: seconds a validation lease lasts without renewal (default 65).
    #[arg(long, hide = true, default_value_t = 65)]
    pub validation_lease_secs: u64,
    /// Spread new certificates over this many partitioned CRLs per issuing CA, each at
    /// `<public_base_url>/crl/<tenant>/<shard>.crl` (RFC 5280 §5.2.5); 0 keeps the single CRL.
    #[arg(long, env = "FLEETCA_CRL_SHARDS", default_value_t = 0)]
    pub crl_shards: u32,
    /// LOAD TESTS ONLY: treat every challenge as passed, so `fleetca bench --mode skip` measures
    /// the issuance path alone. Refused for public-trust CAs; never the default.
    #[arg(long)]
    pub insecure_skip_validation: bool,
    /// Most newOrder/finalize/challenge requests processed at once; beyond it (and a short
    /// wait) they are refused with 503 + Retry-After. 0 = no limit. Directory, newNonce and
    /// renewalInfo are never limited.
    #[arg(long, env = "FLEETCA_MAX_IN_FLIGHT", default_value_t = 256)]
    pub max_in_flight: usize,
    /// Most requests waiting for a slot beyond --max-in-flight.
    #[arg(long, env = "FLEETCA_MAX_WAITING", default_value_t = 1024)]
    pub max_waiting: usize,
    /// Longest a request waits for a slot, in milliseconds, before it gets 503.
    #[arg(long, env = "FLEETCA_OVERLOAD_WAIT_MS", default_value_t = 500)]
    pub overload_wait_ms: u64,
    /// Most certificates signed at once; finalize requests beyond it wait for a slot (with an
    /// HSM, about the number of sessions the token serves well).
    #[arg(long, env = "FLEETCA_MAX_SIGNATURES", default_value_t = 16)]
    pub max_signatures: usize,
    /// Seconds a finalize claim holds an order; if the node dies between claim and store,
    /// the order is `ready` again after this long.
    #[arg(long, env = "FLEETCA_FINALIZE_LEASE_SECS", default_value_t = 60)]
    pub finalize_lease_secs: u64,
    /// Seconds between attempts to get SCTs for orders whose CT logs gave too few; those
    /// orders stay `processing` meanwhile (docs/ct.md).
    #[arg(long, env = "FLEETCA_CT_RETRY_SECS", default_value_t = 30)]
    pub ct_retry_secs: u64,
    /// Seconds between checks of each dns-persist-01 tenant domain's record (the server
    /// revalidates them on its own; a record gone stops the domain's grants at once).
    #[arg(long, env = "FLEETCA_DOMAIN_RECHECK_SECS", default_value_t = 3600)]
    pub domain_recheck_secs: u64,
    /// LAB AND BENCHMARKS ONLY: wait this many milliseconds before every certificate signature,
    /// standing in for a remote HSM. Refused for public-trust CAs.
    #[arg(long, hide = true, default_value_t = 0)]
    pub signer_delay_ms: u64,
    /// TESTS ONLY: the number of remote network perspectives a public-trust tenant needs to
    /// start, instead of the CA/B Forum BR 3.2.2.9 minimum in force today. Never set it on a
    /// production CA: its certificates would not meet the Baseline Requirements.
    #[arg(long, hide = true)]
    pub insecure_mpic_minimum: Option<usize>,
    /// With a PostgreSQL database: how often, in seconds, a node compares the tenant files
    /// with the tenants it serves, in case it missed another node's change notice.
    #[arg(long, env = "FLEETCA_TENANT_CHECK_SECS", default_value_t = 60)]
    pub tenant_check_secs: u64,
    /// Listener timeouts and connection caps.
    #[command(flatten)]
    pub listeners: super::listen::ListenerArgs,
    /// Expiry hygiene schedule and retention.
    #[command(flatten)]
    pub housekeeping: super::housekeeping::HousekeepingArgs,
    /// Continuous coverage (thresholds, refresher, explanationURL).
    #[command(flatten)]
    pub coverage: super::coverage::CoverageServeArgs,
    /// Passphrase for encrypted CA keys.
    #[command(flatten)]
    pub keys: KeyProtection,
}

/// Runs the server until SIGINT/SIGTERM, then drains it.
pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Before any component records a metric.
    crate::admin::metrics::install();
    rt.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let dd = DataDir::new(&args.data_dir);
    if !dd.is_initialized() {
        let is_default = args.data_dir == std::path::Path::new(DEFAULT_DATA_DIR);
        if !is_default && args.permit.is_empty() {
            anyhow::bail!("{} is not a fleetca data directory; run `fleetca init --data-dir {} --permit <suffix>` first", args.data_dir.display(), args.data_dir.display());
        }
        let permit = if args.permit.is_empty() {
            vec![DEFAULT_PERMIT.to_string()]
        } else {
            args.permit.clone()
        };
        println!(
            "Initialising a new CA in {} permitted {}",
            args.data_dir.display(),
            permit.join(", ")
        );
        super::init::run(&super::InitArgs::defaults(
            args.data_dir.clone(),
            permit,
            args.keys.clone(),
        ))?;
    }
    // Before anything opens descriptors: the connection caps are sized against the limit.
    let (serving, admin_serving, shutdown) = args
        .listeners
        .serving(args.max_validations, &args.trusted_proxies);
    // Bind first, so `--listen 127.0.0.1:0` works and the printed URL has the real port, and
    // so a listener that cannot bind stops the server before it does anything.
    // Sockets passed by systemd (socket activation) are used as they are: the service
    // manager keeps them open across restarts, so connections queue instead of being refused.
    let mut inherited = crate::listener::sockets::Inherited::from_env()?;
    let reuse = args.listeners.reuse_port;
    let mut listen = |name, flag, env, addr| match inherited.take(name) {
        Some(l) => Ok(l),
        None => bind(flag, env, addr, reuse),
    };
    let listener = listen("acme", "--listen", "FLEETCA_LISTEN", args.listen)?;
    let http_listener = listen(
        "http",
        "--http-listen",
        "FLEETCA_HTTP_LISTEN",
        args.http_listen,
    )?;
    let admin_listener = listen(
        "admin",
        "--admin-listen",
        "FLEETCA_ADMIN_LISTEN",
        args.admin_listen,
    )?;
    let bound = listener.local_addr()?;
    let base_url = args
        .base_url
        .clone()
        .unwrap_or_else(|| format!("https://{bound}"))
        .trim_end_matches('/')
        .to_string();
    let cfg = dd.load_config()?;
    // Name templates and public-trust lifetimes are checked before anything is opened, so a
    // tenant whose templates are refused (public trust, no roots, escaping the permitted
    // names) or whose lifetime BR §6.3.2 no longer allows never serves.
    let clock: Arc<dyn Clock> = crate::clock::server_clock();
    for c in dd.load_tenant_configs()? {
        super::load::load_attested_names(&c)?;
        super::load::check_lifetime(&c, clock.now())?;
    }
    // Likewise the BR 3.2.2.9 minimum of remote perspectives for public-trust tenants.
    check_perspective_minimum(&dd, &cfg, args.insecure_mpic_minimum)?;
    if args.insecure_skip_validation {
        if cfg.ca.trust == crate::datadir::Trust::Public {
            anyhow::bail!("--insecure-skip-validation is refused for a public-trust CA");
        }
        tracing::warn!(
            "--insecure-skip-validation: challenges are NOT validated; use only for load tests"
        );
    }
    if args.signer_delay_ms > 0 {
        if cfg.ca.trust == crate::datadir::Trust::Public {
            anyhow::bail!("--signer-delay-ms is refused for a public-trust CA");
        }
        tracing::warn!(
            ms = args.signer_delay_ms,
            "--signer-delay-ms: every signature is delayed; use only for benchmarks"
        );
    }
    let passphrase = args.keys.passphrase()?;

    // FLEETCA_DATABASE / --database: a postgres:// URL lets several nodes share state.
    let database = args.database.clone().unwrap_or_else(|| dd.database_url());
    let db = crate::sa::open_database_pooled(&database, args.database_pool)
        .await
        .with_context(|| format!("opening the database of {}", dd.path().display()))?;
    // RFC 8555 §7.3.4 credentials live in the same database, their keys sealed by eab.key.
    let eab_keyring = Arc::new(
        crate::ra::EabKeyring::load_or_create(&dd.eab_key())
            .with_context(|| format!("loading {}", dd.eab_key().display()))?,
    );
    let eab = crate::ra::EabBackend {
        store: db.clone(),
        keyring: eab_keyring.clone(),
    };
    // Every storage call of the ACME path is timed for /metrics.
    let sa: Arc<dyn Storage> = Arc::new(crate::sa::MeteredStorage::new(db.clone()));
    let pin_file = args.keys.pkcs11_pin_file.as_deref();
    let va = Va::new(VaConfig {
        dns_resolver: args.dns_resolver,
        http01_port: args.http01_port,
        tlsalpn01_port: args.tlsalpn01_port,
        timeout: Duration::from_secs(10),
        max_http_redirects: 10,
        addresses: crate::va::AddressPolicy::new(
            args.va_allow_addresses.clone(),
            args.va_deny_addresses.clone(),
        ),
    })?;
    let va = with_perspectives(va, &dd, &cfg)?;
    if !args.va_allow_addresses.is_empty() {
        let ranges: Vec<String> = args
            .va_allow_addresses
            .iter()
            .map(|n| n.to_string())
            .collect();
        tracing::warn!(ranges = %ranges.join(", "), "--va-allow-address: validations may contact these normally refused ranges");
    }
    // Per-tenant `[ca.rate_limits]`; the hourly and weekly buckets are shared through
    // PostgreSQL, the rest are per node (see wfe::ratelimit). A reload replaces the limits.
    // The Ra draws each validation it starts from the same limiter's failed-validation limit.
    let limiter = Arc::new(
        crate::wfe::ratelimit::RateLimiter::new(Default::default()).with_store(db.rate_store()),
    );
    let ra = Ra::new(RaParts {
        sa: sa.clone(),
        eab: Some(eab),
        budget: Some(Arc::new(crate::wfe::ratelimit::FailedValidations(
            limiter.clone(),
        ))),
        coverage: Some(args.coverage.config(db.clone())),
        // Profiles, ARI links and overrides, CRL shards, tenant domains and CT share the
        // database.
        ..RaParts::new(
            db.clone(),
            clock.clone(),
            Vec::new(),
            va.clone(),
            RaConfig {
                max_concurrent_validations: args.max_validations,
                max_queued_validations: args.max_queued_validations,
                max_validations_per_account: args.max_validations_per_account.max(1),
                validation_lease: Duration::from_secs(args.validation_lease_secs.max(1)),
                skip_validation: args.insecure_skip_validation,
                max_concurrent_signatures: args.max_signatures,
                finalize_lease: Duration::from_secs(args.finalize_lease_secs.max(2)),
                signer_delay: Duration::from_millis(args.signer_delay_ms),
                ct_retry_interval: Duration::from_secs(args.ct_retry_secs.max(1)),
                ..RaConfig::default()
            },
        )
    });
    // Every tenant (`fleetca.toml`'s, then `fleetca tenant add`'s): each its own issuing CA,
    // policy and EAB rule, served through the Ra's one swap point and reloadable.
    let loader = super::reload::TenantLoader {
        dd: dd.clone(),
        base_url: base_url.clone(),
        passphrase: passphrase.clone(),
        pin_file: pin_file.map(Into::into),
        crl_shards: args.crl_shards,
        clock: clock.clone(),
        lab_flag: if args.insecure_skip_validation {
            Some("--insecure-skip-validation")
        } else if args.signer_delay_ms > 0 {
            Some("--signer-delay-ms")
        } else {
            None
        },
    };
    let reloader = super::reload::Reloader::start(
        loader,
        ra.tenant_set().clone(),
        limiter.clone(),
        &database,
    )?;
    let tenants = ra.tenants();
    limiter.set_configs(
        dd.load_tenant_configs()?
            .into_iter()
            .map(|c| (c.ca.name, c.ca.rate_limits))
            .collect(),
    );
    super::housekeeping::spawn_ocsp_refresher(
        dd.clone(),
        ra.tenant_set().clone(),
        passphrase.clone(),
        clock.clone(),
    );
    let domain_policies: Vec<crate::ra::DomainPolicy> = dd
        .load_tenant_configs()?
        .iter()
        .map(|c| crate::ra::DomainPolicy::from_config(&c.ca))
        .collect();
    crate::ra::spawn_domain_revalidator(
        db.clone(),
        va.clone(),
        domain_policies,
        Duration::from_secs(args.domain_recheck_secs.max(1)),
    );
    let resumed = ra.resume_validations().await?;
    ra.spawn_validation_sweeper();
    // A single node's finalize claims left in the database are its predecessor's; they are
    // released at once only if that process is gone. During a zero-downtime restart it is
    // still draining (finishing the very finalizations those claims hold) and releases what it
    // leaves itself; a crashed one's claims run out through the sweeper.
    if !crate::sa::is_postgres_url(&database) && only_serve_of(&dd)? {
        ra.release_claims_of_a_dead_single_node().await?;
    }
    ra.spawn_finalize_sweeper();
    if tenants.iter().any(|t| t.ct.is_some()) {
        ra.spawn_ct_retry();
    }
    if resumed > 0 {
        tracing::info!(count = resumed, "resumed validations left in processing");
    }
    for t in &tenants {
        for ca in t.issuers() {
            ca.current_crl(sa.as_ref(), clock.as_ref()).await?;
        }
    }
    let wfe_cfg = WfeConfig {
        base_url: base_url.clone(),
        max_in_flight: args.max_in_flight,
        max_waiting: args.max_waiting,
        overload_wait: Duration::from_millis(args.overload_wait_ms),
        trusted_proxies: crate::wfe::TrustedProxies::new(args.trusted_proxies.clone()),
        nonce_ttl: Duration::from_secs(args.nonce_lifetime_secs.max(1)),
        ..WfeConfig::default()
    };
    // Spent nonces: in memory for one SQLite node, shared in PostgreSQL (see sa::nonce).
    let nonce_store = db.nonce_store(args.max_spent_nonces);
    let nonces = crate::wfe::NonceService::new(nonce_store, wfe_cfg.nonce_ttl).await?;
    let status = crate::ca::status::StatusHandle::start(
        Arc::clone(ra.tenant_set()),
        Arc::clone(ra.storage()),
        Some(Arc::clone(ra.lifecycle())),
        Arc::clone(ra.clock()),
        ra.crl_requests().clone(),
    );
    let wfe = Wfe::new(ra.clone(), status, wfe_cfg, nonces, limiter);
    wfe.spawn_nonce_pruner();

    let (tls, server_cert) =
        super::load::server_tls_config(&dd, args.tls_cert.as_deref(), args.tls_key.as_deref())?;
    if args.tls_cert.is_none() {
        let every = Duration::from_secs(args.tls_renew_check_secs.max(1));
        super::housekeeping::spawn_tls_renewer(dd.clone(), server_cert, every);
    }
    // Every connection carries its TCP peer address, which feeds the per-IP rate limits.
    let https = serving.spawn(
        "acme",
        tokio::net::TcpListener::from_std(listener)?,
        wfe::router(wfe.clone()),
        Some(tls.clone()),
    );
    let http_app = if args.acme_over_http {
        wfe::router(wfe.clone())
    } else {
        wfe::public_only(wfe.clone())
    };
    let http_listener = tokio::net::TcpListener::from_std(http_listener)?;
    println!(
        "Plain HTTP (CRLs, CA certificates) on http://{}",
        http_listener.local_addr()?
    );
    let http = serving.spawn("http", http_listener, http_app, None);
    spawn_crl_refresher(ra.tenant_set().clone(), sa.clone(), clock.clone());
    super::housekeeping::spawn_signer_monitor(ra.tenant_set().clone());
    // Dashboard, admin API and metrics, on the listener bound at start-up.
    let tokens = crate::admin::auth::TokenStore::new(db.clone());
    tokens.import_legacy_file(&dd).await?;
    let admin_state = Arc::new(crate::admin::AdminState {
        db: db.clone(),
        dd: dd.clone(),
        tenants: ra.tenant_set().clone(),
        reloader: reloader.clone(),
        keys: args.keys.clone(),
        tokens,
        keyring: eab_keyring,
        coverage: args.coverage.policy.policy(),
        clock: clock.clone(),
        va: va.clone(),
    });
    let admin_tls = args.admin_tls.then(|| tls.clone());
    let scheme = if admin_tls.is_some() { "https" } else { "http" };
    let a = crate::admin::spawn(admin_listener, admin_state, admin_tls, &admin_serving)
        .context("starting the admin listener")?;
    println!("Admin (dashboard, /api, /metrics) on {scheme}://{a}");
    super::housekeeping::spawn_pruner(db.clone(), clock.clone(), &args.housekeeping);
    super::coverage::spawn_refresher(
        db.clone(),
        clock.clone(),
        args.coverage.policy.policy(),
        tenants.iter().map(|t| t.name.clone()).collect(),
        args.coverage.coverage_refresh,
    );

    println!(
        "fleetca issuing CA \"{}\" permitted: {}",
        cfg.ca.name,
        cfg.ca.permit.join(", ")
    );
    println!("ACME directory: {base_url}/acme/{DEFAULT_TENANT}/directory");
    for t in tenants.iter().skip(1) {
        println!("Tenant {:?}: ACME directory {}", t.name, t.url("directory"));
    }
    println!(
        "Trust anchor:   {} (print it with `fleetca ca root --data-dir {}`)",
        trust_anchor(&dd).display(),
        args.data_dir.display()
    );
    println!("CRLs and CA certificates: {}", cfg.ca.public_base_url);
    if ["//127.", "//localhost", "//[::1]"]
        .iter()
        .any(|h| cfg.ca.public_base_url.contains(h))
    {
        tracing::warn!(url = %cfg.ca.public_base_url, "certificates point relying parties at a loopback URL for CRLs; set public_base_url in fleetca.toml to a public http:// URL for real deployments");
    }

    // Tenants without a restart (docs/zero-downtime.md).
    reloader.spawn_sighup()?;
    reloader.spawn_followers(Duration::from_secs(args.tenant_check_secs.max(1)));
    let drain_timeout = Duration::from_secs(args.listeners.drain_timeout);
    shutdown_signal().await;
    // Drain (SIGTERM): stop accepting, let requests, validations and finalizations in
    // progress finish within --drain-timeout, hand back what did not, exit 0.
    let deadline = tokio::time::Instant::now() + drain_timeout;
    tracing::info!(timeout_s = drain_timeout.as_secs(), "draining");
    shutdown.shutdown();
    // Each listener task ends once its connections have closed or the timeout has passed.
    let _ = tokio::join!(https, http);
    let left = ra.drain(deadline).await;
    tracing::info!(
        validations_released = left.validations_released,
        finalizes_released = left.finalizes_released,
        "drained; exiting"
    );
    Ok(())
}

/// Binds a listener `serve` was asked for. Failing fast: the error names the flag, its
/// environment variable and the address, and `serve` exits non-zero instead of running
/// without the listener (no admin API, no metrics, no CRLs).
fn bind(
    flag: &str,
    env: &str,
    addr: SocketAddr,
    reuse_port: bool,
) -> anyhow::Result<std::net::TcpListener> {
    crate::listener::sockets::bind(addr, reuse_port)
        .map_err(|e| anyhow::anyhow!("{flag} {addr}: {e} (set {flag} or {env} to a free address)"))
}

/// Whether no other `fleetca serve` runs on `dd`: an exclusive lock on `DIR/serve.lock`, which
/// each serve holds for the rest of its life (the kernel drops it at any exit, a crash
/// included). If another process holds it (a predecessor still draining), this one takes it
/// over once that process exits.
fn only_serve_of(dd: &DataDir) -> anyhow::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    let path = dd.path().join("serve.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            // Held until the process exits.
            std::mem::forget(file);
            Ok(true)
        }
        Err(rustix::io::Errno::WOULDBLOCK) => {
            tracing::info!("another fleetca serve of this data directory is still running (draining); its finalize claims stay its own");
            // A detached thread, so that waiting never delays this process's own exit.
            std::thread::spawn(move || {
                if flock(&file, FlockOperation::LockExclusive).is_ok() {
                    std::mem::forget(file);
                }
            });
            Ok(false)
        }
        Err(e) => Err(anyhow::anyhow!("locking {}: {e}", path.display())),
    }
}

fn trust_anchor(dd: &DataDir) -> PathBuf {
    if dd.root_cert().exists() {
        dd.root_cert()
    } else {
        dd.tls_root()
    }
}

/// Re-signs every served tenant's CRL before half its validity passes, even when nothing is
/// revoked (a tenant added by a reload included).
fn spawn_crl_refresher(
    tenants: Arc<crate::tenant::TenantSet>,
    sa: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        loop {
            tick.tick().await;
            // Retired CAs too: their certificates are still live until they expire.
            for tenant in tenants.all() {
                for ca in tenant.issuers() {
                    if let Err(e) = ca.current_crl(sa.as_ref(), clock.as_ref()).await {
                        tracing::error!(tenant = %tenant.name, issuer = %ca.id(), error = %e, "CRL refresh failed");
                    }
                }
            }
        }
    });
}

/// Refuses to start when a public-trust tenant has fewer remote perspectives than the BR
/// require today (BR §3.2.2.9 phase-in), or when a tenant file carries its own `[mpic]`.
fn check_perspective_minimum(
    dd: &DataDir,
    cfg: &crate::datadir::CaConfig,
    test_minimum: Option<usize>,
) -> anyhow::Result<()> {
    let configured = cfg.mpic.as_ref().map_or(0, |m| m.perspectives.len());
    let today = crate::clock::server_clock().now().date();
    for (i, t) in dd.load_tenant_configs()?.into_iter().enumerate() {
        if i > 0 && t.mpic.is_some() {
            anyhow::bail!(
                "tenant {:?}: [mpic] belongs in the main fleetca.toml (all tenants share the VA)",
                t.ca.name
            );
        }
        if t.ca.trust == crate::datadir::Trust::Public {
            crate::va::mpic::quorum::check_minimum(configured, today, test_minimum)
                .map_err(|e| anyhow::anyhow!("tenant {:?}: {e}", t.ca.name))?;
        }
    }
    if test_minimum.is_some() {
        tracing::warn!("--insecure-mpic-minimum: the BR 3.2.2.9 minimum of perspectives is not enforced; tests only");
    }
    Ok(())
}

/// Makes `va` a primary VA when `[mpic]` lists perspectives.
pub(super) fn with_perspectives(
    va: Va,
    dd: &DataDir,
    cfg: &crate::datadir::CaConfig,
) -> anyhow::Result<Va> {
    let configured = cfg.mpic.as_ref().map_or(0, |m| m.perspectives.len());
    let Some(section) = cfg.mpic.as_ref().filter(|m| !m.perspectives.is_empty()) else {
        return Ok(va);
    };
    let key = if section.client_key.is_absolute() {
        section.client_key.clone()
    } else {
        dd.path().join(&section.client_key)
    };
    super::perspective::check_key_mode(&key)?;
    let perspectives = crate::va::mpic::Perspectives::from_config(section, dd.path())?;
    let regions: Vec<String> = section
        .perspectives
        .iter()
        .map(|p| p.region.to_string())
        .collect();
    tracing::info!(count = configured, regions = %regions.join(","), "validations are corroborated by remote network perspectives");
    Ok(va.with_perspectives(perspectives))
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
