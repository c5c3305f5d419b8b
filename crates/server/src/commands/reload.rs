//! Tenants without a restart: a running `serve` loads the data directory's tenants again
//! (SIGHUP, `POST /api/reload`, `POST /api/tenants`, another node's notice), checks the whole
//! new set before serving any of it, and swaps it in through the one [`TenantSet`]. A set that
//! does not load is refused whole and the previous one keeps serving.
//!
//! Several PostgreSQL nodes share the data directory's tenant files (the CA keys are files or
//! HSM objects, never database rows) and learn of a change through `LISTEN/NOTIFY` on
//! [`CHANNEL`], with a periodic comparison of the files as the fallback for a notice missed
//! while a node's listening connection was down (docs/zero-downtime.md).

use super::load;
use crate::ca::IssuingCa;
use crate::clock::Clock;
use crate::datadir::{CaConfig, DataDir, Trust};
use crate::tenant::{Tenant, TenantSet};
use anyhow::Context;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The PostgreSQL notification channel a node announces a changed tenant set on.
pub(crate) const CHANNEL: &str = "fleetca_tenants";

/// What a tenant is loaded with, besides its files.
#[derive(Clone)]
pub(crate) struct TenantLoader {
    pub(crate) dd: DataDir,
    pub(crate) base_url: String,
    pub(crate) passphrase: Option<Vec<u8>>,
    pub(crate) pin_file: Option<PathBuf>,
    pub(crate) crl_shards: u32,
    pub(crate) clock: Arc<dyn Clock>,
    /// A lab-only `serve` flag in force (`--insecure-skip-validation`, `--signer-delay-ms`),
    /// which no public-trust tenant may be served with.
    pub(crate) lab_flag: Option<&'static str>,
}

/// A fingerprint of the files a tenant is loaded from: equal fingerprints, same tenant.
pub(crate) type Fingerprint = u64;

/// One loaded tenant and the fingerprint of its files.
type Loaded = (Fingerprint, Arc<Tenant>);

impl TenantLoader {
    /// Fingerprints of every tenant's files, by name, without loading any key.
    pub(crate) fn fingerprints(&self) -> anyhow::Result<BTreeMap<String, Fingerprint>> {
        self.dd
            .load_tenant_configs()?
            .iter()
            .map(|c| Ok((c.ca.name.clone(), self.fingerprint(c)?)))
            .collect()
    }

    fn fingerprint(&self, cfg: &CaConfig) -> anyhow::Result<Fingerprint> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        toml::to_string(cfg)?.hash(&mut h);
        let name = &cfg.ca.name;
        let mut files = vec![self.dd.ca_cert(name), self.dd.ca_chain(name)];
        if cfg.ca.trust == Trust::Private {
            files.push(self.dd.root_cert());
        }
        files.extend(
            cfg.ca
                .attestation_roots
                .iter()
                .map(|p| self.dd.path().join(p)),
        );
        for f in files {
            // A missing file hashes as absent; loading reports it if it matters.
            std::fs::read(&f).ok().hash(&mut h);
        }
        Ok(h.finish())
    }

    /// Loads and checks every tenant of the data directory, reusing a tenant of `previous`
    /// whose files have not changed (its issuing CA keeps its state: OCSP responder, CRL
    /// shards). Any failure refuses the whole set.
    fn load(&self, previous: &HashMap<String, Loaded>) -> anyhow::Result<Vec<Loaded>> {
        let cfgs = self.dd.load_tenant_configs()?;
        let mut out = Vec::with_capacity(cfgs.len());
        for (i, cfg) in cfgs.iter().enumerate() {
            let name = &cfg.ca.name;
            if i == 0 && cfg.ca.disabled {
                anyhow::bail!("tenant {name:?} (fleetca.toml) cannot be disabled");
            }
            if let (Some(flag), Trust::Public) = (self.lab_flag, cfg.ca.trust) {
                anyhow::bail!("tenant {name:?} is public-trust, which {flag} is refused for");
            }
            if cfg.ca.trust == Trust::Public && !self.dd.ca_cert(name).exists() {
                tracing::warn!(tenant = %name, csr = %self.dd.ca_csr(name).display(), "public-trust tenant not served yet: its certificate has not been imported (`fleetca subca import --tenant NAME`)");
                continue;
            }
            let fp = self.fingerprint(cfg)?;
            match previous.get(name) {
                Some((old, t)) if *old == fp => out.push((fp, t.clone())),
                _ => out.push((
                    fp,
                    self.build(cfg)
                        .with_context(|| format!("loading tenant {name:?}"))?,
                )),
            }
        }
        Ok(out)
    }

    /// The tenant `cfg` describes, its issuing CA ready to sign.
    pub(crate) fn build(&self, cfg: &CaConfig) -> anyhow::Result<Arc<Tenant>> {
        // Name templates first: a tenant whose templates are refused (public trust, no roots,
        // escaping the permitted names) never serves.
        let attested_names = load::load_attested_names(cfg)?;
        // BR §6.3.2 by date: a public-trust tenant whose lifetime the schedule has shortened
        // below its configuration is refused, at start and at every reload.
        load::check_lifetime(cfg, self.clock.now())?;
        let mut parts = load::load_issuing_ca_parts(
            &self.dd,
            cfg,
            self.passphrase.as_deref(),
            self.pin_file.as_deref(),
        )?;
        parts.crl_shards = self.crl_shards;
        // A delegated OCSP responder (RFC 6960 §4.2.2.2) where `init --ocsp-signer` made one.
        parts.ocsp_responder = crate::ca::ocsp_signer::current(
            &self.dd.ca_dir(&cfg.ca.name),
            &parts.cert_der,
            parts.signer.as_ref(),
            self.passphrase.as_deref(),
            self.clock.now(),
        )
        .context("OCSP responder")?
        .map(|(r, _)| r);
        if parts.ocsp_responder.is_some() {
            tracing::info!(tenant = %cfg.ca.name, "OCSP responses signed by a delegated responder");
        }
        let ca = IssuingCa::new(parts);
        // Issuing CAs replaced by `tenant rollover` keep answering for what they issued.
        let retired = load::load_retired_ca_parts(
            &self.dd,
            cfg,
            self.passphrase.as_deref(),
            self.pin_file.as_deref(),
        )?
        .into_iter()
        .map(|mut r| {
            r.crl_shards = self.crl_shards;
            IssuingCa::new(r)
        })
        .collect::<Vec<_>>();
        // Certificate Transparency (docs/ct.md): refused here when the logs cannot meet the
        // CT policy for the CA's longest validity.
        let ct = load::load_ct(cfg, &ca)?;
        Ok(Arc::new(Tenant {
            name: cfg.ca.name.clone(),
            base_url: self.base_url.clone(),
            ca: Arc::new(ca),
            retired: retired.into_iter().map(Arc::new).collect(),
            terms_of_service: cfg.ca.terms_of_service.clone(),
            website: cfg.ca.website.clone(),
            caa_identities: cfg.ca.caa_identities.clone(),
            external_account_required: cfg.ca.eab_required,
            challenge_types: cfg.ca.challenge_types.clone(),
            attestation_roots: load::load_attestation_roots(&self.dd, cfg)?,
            attested_names,
            disabled: cfg.ca.disabled,
            ct,
        }))
    }
}

/// What a reload changed, by tenant name.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct ReloadReport {
    pub(crate) added: Vec<String>,
    pub(crate) changed: Vec<String>,
    pub(crate) removed: Vec<String>,
    /// Every tenant served afterwards.
    pub(crate) tenants: Vec<String>,
}

impl ReloadReport {
    fn is_change(&self) -> bool {
        !(self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty())
    }
}

/// Reloads the tenants of a running server; one reload at a time.
pub(crate) struct Reloader {
    loader: TenantLoader,
    set: Arc<TenantSet>,
    limits: Arc<crate::wfe::ratelimit::RateLimiter>,
    /// The tenants served now with their fingerprints; the lock serialises reloads.
    state: tokio::sync::Mutex<HashMap<String, Loaded>>,
    /// Where a changed set is announced to the other nodes (PostgreSQL only).
    notifier: Option<Notifier>,
}

impl Reloader {
    /// Loads the initial set (failing start-up if it does not load) and serves it in `set`.
    pub(crate) fn start(
        loader: TenantLoader,
        set: Arc<TenantSet>,
        limits: Arc<crate::wfe::ratelimit::RateLimiter>,
        database: &str,
    ) -> anyhow::Result<Arc<Self>> {
        let loaded = loader.load(&HashMap::new())?;
        set.replace(loaded.iter().map(|(_, t)| t.clone()).collect());
        crate::metrics::tenant_reload(true, loaded.len());
        let notifier = crate::sa::is_postgres_url(database)
            .then(|| Notifier::new(database))
            .transpose()?;
        Ok(Arc::new(Self {
            state: tokio::sync::Mutex::new(
                loaded
                    .into_iter()
                    .map(|(fp, t)| (t.name.clone(), (fp, t)))
                    .collect(),
            ),
            loader,
            set,
            limits,
            notifier,
        }))
    }

    /// Loads the tenants again (`cause` is logged). On success the new set is served and, if
    /// it differs, announced to the other nodes; on failure the previous set keeps serving
    /// and the error says why.
    pub(crate) async fn reload(&self, cause: &str) -> anyhow::Result<ReloadReport> {
        let mut state = self.state.lock().await;
        let loader = self.loader.clone();
        let previous = state.clone();
        // Keys are read from files or an HSM: off the async workers.
        let loaded = tokio::task::spawn_blocking(move || {
            let limits = loader
                .dd
                .load_tenant_configs()?
                .into_iter()
                .map(|c| (c.ca.name, c.ca.rate_limits))
                .collect::<HashMap<_, _>>();
            Ok::<_, anyhow::Error>((loader.load(&previous)?, limits))
        })
        .await
        .map_err(|e| anyhow::anyhow!("the reload task failed: {e}"))
        .and_then(|r| r);
        let (loaded, limits) = match loaded {
            Ok(l) => l,
            Err(e) => {
                crate::metrics::tenant_reload(false, state.len());
                tracing::error!(
                    cause,
                    error = format!("{e:#}"),
                    "tenant reload refused; the previous tenants keep serving"
                );
                return Err(e);
            }
        };
        let mut report = ReloadReport::default();
        for (fp, t) in &loaded {
            match state.get(&t.name) {
                None => report.added.push(t.name.clone()),
                Some((old, _)) if old != fp => report.changed.push(t.name.clone()),
                Some(_) => {}
            }
            report.tenants.push(t.name.clone());
        }
        report.removed = state
            .keys()
            .filter(|n| !report.tenants.contains(n))
            .cloned()
            .collect();
        report.removed.sort();
        self.limits.set_configs(limits);
        self.set
            .replace(loaded.iter().map(|(_, t)| t.clone()).collect());
        *state = loaded
            .into_iter()
            .map(|(fp, t)| (t.name.clone(), (fp, t)))
            .collect();
        crate::metrics::tenant_reload(true, state.len());
        drop(state);
        if report.is_change() {
            tracing::info!(
                cause,
                added = ?report.added,
                changed = ?report.changed,
                removed = ?report.removed,
                "reloaded tenants"
            );
            if let Some(n) = &self.notifier {
                n.announce().await;
            }
        } else {
            tracing::info!(cause, "reloaded tenants: no change");
        }
        Ok(report)
    }

    /// Whether the tenant files differ from what is served (the periodic check).
    async fn files_changed(&self) -> bool {
        let loader = self.loader.clone();
        let Ok(Ok(now)) = tokio::task::spawn_blocking(move || loader.fingerprints()).await else {
            // Unreadable now: a reload would say why; let it.
            return true;
        };
        let state = self.state.lock().await;
        now.len() != state.len()
            || now
                .iter()
                .any(|(name, fp)| state.get(name).is_none_or(|(old, _)| old != fp))
    }

    /// Reloads on SIGHUP until the process ends.
    pub(crate) fn spawn_sighup(self: &Arc<Self>) -> anyhow::Result<()> {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        let me = Arc::clone(self);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                // A refusal is logged and counted in fleetca_tenant_config_valid.
                let _ = me.reload("SIGHUP").await;
            }
        });
        Ok(())
    }

    /// On PostgreSQL: reloads when another node announces a change, and every `every`
    /// compares the tenant files with what is served (a notice is lost while the listening
    /// connection is down).
    pub(crate) fn spawn_followers(self: &Arc<Self>, every: Duration) {
        let Some(n) = &self.notifier else {
            return;
        };
        let (me, url, node) = (Arc::clone(self), n.url.clone(), n.node.clone());
        tokio::spawn(async move { me.listen(&url, &node).await });
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            let mut refused: Option<BTreeMap<String, Fingerprint>> = None;
            loop {
                tick.tick().await;
                if !me.files_changed().await {
                    continue;
                }
                // A set already refused is not retried (and logged) until its files change.
                let loader = me.loader.clone();
                let now = tokio::task::spawn_blocking(move || loader.fingerprints().ok())
                    .await
                    .ok()
                    .flatten();
                if now.is_some() && now == refused {
                    continue;
                }
                refused = match me.reload("periodic check").await {
                    Ok(_) => None,
                    Err(_) => now,
                };
            }
        });
    }

    async fn listen(&self, url: &str, node: &str) {
        use sqlx::postgres::PgListener;
        let mut connected_before = false;
        loop {
            let listener = async {
                let mut l = PgListener::connect(url).await?;
                l.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(l)
            }
            .await;
            let mut listener = match listener {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "listening for tenant changes failed; retrying");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            if connected_before {
                // Notices sent while disconnected are lost: catch up.
                let _ = self.reload("reconnected to the database").await;
            }
            connected_before = true;
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) if n.payload() != node => {
                        let _ = self.reload("another node changed the tenants").await;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => {
                        tracing::warn!("the tenant-change listener lost its connection");
                        break;
                    }
                }
            }
        }
    }
}

/// Announces a changed tenant set on [`CHANNEL`] (the payload names this node, so that it
/// does not reload for its own notice).
struct Notifier {
    url: String,
    node: String,
    pool: sqlx::PgPool,
}

impl Notifier {
    fn new(url: &str) -> anyhow::Result<Self> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy(url)
            .context("the tenant-change notifier's database URL")?;
        Ok(Self {
            url: url.to_string(),
            node: format!("{:032x}", rand::random::<u128>()),
            pool,
        })
    }

    async fn announce(&self) {
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(&self.node)
            .execute(&self.pool)
            .await;
        if let Err(e) = sent {
            // The other nodes' periodic check picks the change up instead.
            tracing::warn!(error = %e, "announcing the tenant change to other nodes failed");
        }
    }
}
