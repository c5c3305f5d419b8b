//! `fleetca serve`: loads the data directory, opens storage, and runs the ACME server over
//! HTTPS plus a plain-HTTP listener for CRLs and CA certificates.

use super::{parse_net, parse_socket, KeyProtection};
use crate::clock::Clock;
use crate::datadir::{DataDir, DEFAULT_TENANT};
use crate::ra::{Ra, RaConfig};
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
    /// Seconds between checks of each dns-persist-01 tenant domain's record (the server
    /// revalidates them on its own; a record gone stops the domain's grants at once).
    #[arg(long, env = "FLEETCA_DOMAIN_RECHECK_SECS", default_value_t = 3600)]
    pub domain_recheck_secs: u64,
    /// LAB AND BENCHMARKS ONLY: wait this many milliseconds before every certificate signature,
    /// standing in for a remote HSM. Refused for public-trust CAs.
    #[arg(long, hide = true, default_value_t = 0)]
    pub signer_delay_ms: u64,
    /// Listener timeouts and connection caps.
    #[command(flatten)]
    pub listeners: super::listen::ListenerArgs,
    /// Expiry hygiene schedule and retention.
    #[command(flatten)]
    pub housekeeping: super::housekeeping::HousekeepingArgs,
    /// Passphrase for encrypted CA keys.
    #[command(flatten)]
    pub keys: KeyProtection,
}

/// Runs the server until SIGINT/SIGTERM.
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
    let listener = bind("--listen", "FLEETCA_LISTEN", args.listen)?;
    let http_listener = bind("--http-listen", "FLEETCA_HTTP_LISTEN", args.http_listen)?;
    let admin_listener = bind("--admin-listen", "FLEETCA_ADMIN_LISTEN", args.admin_listen)?;
    let bound = listener.local_addr()?;
    let base_url = args
        .base_url
        .clone()
        .unwrap_or_else(|| format!("https://{bound}"))
        .trim_end_matches('/')
        .to_string();
    let cfg = dd.load_config()?;
    // Name templates are checked before anything is opened, so a tenant whose templates are
    // refused (public trust, no roots, escaping the permitted names) never serves.
    for c in dd.load_tenant_configs()? {
        super::load::load_attested_names(&c)?;
    }
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
    let db = crate::sa::open_database(&database)
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
    // Profiles, ARI links and overrides, CRL shards (sa::lifecycle) share the database too.
    let lifecycle_store: Arc<dyn crate::sa::LifecycleStore> = db.clone();
    // Every storage call of the ACME path is timed for /metrics.
    let sa: Arc<dyn Storage> = Arc::new(crate::sa::MeteredStorage::new(db.clone()));
    let clock: Arc<dyn Clock> = crate::clock::server_clock();
    let pin_file = args.keys.pkcs11_pin_file.as_deref();
    let ca = Arc::new(super::load::load_issuing_ca(
        &dd,
        &cfg,
        passphrase.as_deref(),
        pin_file,
    )?);
    let tenant = Arc::new(crate::tenant::Tenant {
        name: cfg.ca.name.clone(),
        base_url: base_url.clone(),
        ca,
        terms_of_service: cfg.ca.terms_of_service.clone(),
        website: cfg.ca.website.clone(),
        caa_identities: cfg.ca.caa_identities.clone(),
        external_account_required: cfg.ca.eab_required,
        challenge_types: cfg.ca.challenge_types.clone(),
        attestation_roots: super::load::load_attestation_roots(&dd, &cfg)?,
        attested_names: super::load::load_attested_names(&cfg)?,
    });
    // Further tenants (`fleetca tenant add`): each its own issuing CA, policy and EAB rule.
    let mut tenants = vec![tenant.clone()];
    for tcfg in dd.load_tenant_configs()?.into_iter().skip(1) {
        let ca = super::load::load_issuing_ca(&dd, &tcfg, passphrase.as_deref(), pin_file)
            .with_context(|| format!("loading tenant {:?}", tcfg.ca.name))?;
        tenants.push(Arc::new(crate::tenant::Tenant {
            name: tcfg.ca.name.clone(),
            base_url: base_url.clone(),
            ca: Arc::new(ca),
            terms_of_service: tcfg.ca.terms_of_service.clone(),
            website: tcfg.ca.website.clone(),
            caa_identities: tcfg.ca.caa_identities.clone(),
            external_account_required: tcfg.ca.eab_required,
            challenge_types: tcfg.ca.challenge_types.clone(),
            attestation_roots: super::load::load_attestation_roots(&dd, &tcfg)
                .with_context(|| format!("loading tenant {:?}", tcfg.ca.name))?,
            attested_names: super::load::load_attested_names(&tcfg)?,
        }));
    }
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
    if !args.va_allow_addresses.is_empty() {
        let ranges: Vec<String> = args
            .va_allow_addresses
            .iter()
            .map(|n| n.to_string())
            .collect();
        tracing::warn!(ranges = %ranges.join(", "), "--va-allow-address: validations may contact these normally refused ranges");
    }
    let ra = Ra::new_with_eab(
        sa.clone(),
        clock.clone(),
        tenants.clone(),
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
            ..RaConfig::default()
        },
        Some(eab),
    );
    ra.set_lifecycle_store(lifecycle_store);
    // Tenant domains (issue 17): grants at newOrder, dns-persist-01 revalidation.
    ra.set_domain_store(db.clone());
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
    for t in &tenants {
        t.ca.set_crl_shards(args.crl_shards);
    }
    // Delegated OCSP responders (RFC 6960 §4.2.2.2) where `init --ocsp-signer` made one.
    super::housekeeping::start_ocsp_responders(&dd, &tenants, passphrase.clone(), clock.clone())?;
    let resumed = ra.resume_validations().await?;
    ra.spawn_validation_sweeper();
    if !crate::sa::is_postgres_url(&database) {
        ra.release_claims_of_a_dead_single_node().await?;
    }
    ra.spawn_finalize_sweeper();
    if resumed > 0 {
        tracing::info!(count = resumed, "resumed validations left in processing");
    }
    for t in &tenants {
        t.ca.current_crl(sa.as_ref(), clock.as_ref()).await?;
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
    let wfe = Wfe::new(ra.clone(), wfe_cfg, nonces);
    // Per-tenant `[ca.rate_limits]`; the hourly and weekly buckets are shared through
    // PostgreSQL, the rest are per node (see wfe::ratelimit).
    let limits = dd
        .load_tenant_configs()?
        .into_iter()
        .map(|c| (c.ca.name, c.ca.rate_limits))
        .collect();
    wfe.set_rate_limits(Arc::new(
        crate::wfe::ratelimit::RateLimiter::new(limits).with_store(db.rate_store()),
    ));
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
    serving.spawn("http", http_listener, http_app, None);
    for t in &tenants {
        spawn_crl_refresher(t.clone(), sa.clone(), clock.clone());
        super::housekeeping::spawn_signer_monitor(t.clone());
    }
    // Dashboard, admin API and metrics, on the listener bound at start-up.
    let tokens = crate::admin::auth::TokenStore::new(db.clone());
    tokens.import_legacy_file(&dd).await?;
    let admin_state = Arc::new(crate::admin::AdminState {
        db: db.clone(),
        dd: dd.clone(),
        tenants: tenants.clone(),
        tokens,
        keyring: eab_keyring,
        va: va.clone(),
    });
    let admin_tls = args.admin_tls.then(|| tls.clone());
    let scheme = if admin_tls.is_some() { "https" } else { "http" };
    let a = crate::admin::spawn(admin_listener, admin_state, admin_tls, &admin_serving)
        .context("starting the admin listener")?;
    println!("Admin (dashboard, /api, /metrics) on {scheme}://{a}");
    super::housekeeping::spawn_pruner(db.clone(), clock.clone(), &args.housekeeping);

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

    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        shutdown.shutdown();
    });
    // Returns once the ACME listener has stopped and its connections have closed (or had
    // their grace period).
    https.await?;
    Ok(())
}

/// Binds a listener `serve` was asked for. Failing fast: the error names the flag, its
/// environment variable and the address, and `serve` exits non-zero instead of running
/// without the listener (no admin API, no metrics, no CRLs).
fn bind(flag: &str, env: &str, addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        anyhow::anyhow!("{flag} {addr}: {e} (set {flag} or {env} to a free address)")
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn trust_anchor(dd: &DataDir) -> PathBuf {
    if dd.root_cert().exists() {
        dd.root_cert()
    } else {
        dd.tls_root()
    }
}

/// Re-signs the CRL before half its validity passes, even when nothing is revoked.
fn spawn_crl_refresher(
    tenant: Arc<crate::tenant::Tenant>,
    sa: Arc<dyn Storage>,
    clock: Arc<dyn Clock>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        loop {
            tick.tick().await;
            if let Err(e) = tenant.ca.current_crl(sa.as_ref(), clock.as_ref()).await {
                tracing::error!(error = %e, "CRL refresh failed");
            }
        }
    });
}

async fn shutdown_signal() {
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
