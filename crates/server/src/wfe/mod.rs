//! Web front end: HTTP routes, JWS verification, nonces and problem documents. No policy lives
//! here: every decision is the registration authority's. One file per ACME resource.

mod account;
mod accounts;
mod ari;
mod authz;
mod body;
mod cert;
mod client_ip;
mod crl_shard;
mod directory;
pub mod jose;
mod nonce;
mod ocsp;
mod order;
pub mod overload;
pub mod problem;
mod public;
pub mod ratelimit;
mod revoke;
#[cfg(test)]
mod roles;
#[cfg(test)]
mod wire_tests;

pub use client_ip::TrustedProxies;
pub use nonce::NonceService;

use crate::ca::status::StatusHandle;
use crate::error::{Error, Result};
use crate::ra::Ra;
use crate::tenant::Tenant;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use std::time::Duration;

/// Front-end settings.
#[derive(Clone, Debug)]
pub struct WfeConfig {
    /// External base URL clients use (`https://host:port`, no trailing slash); signed `url`
    /// values are compared against it, so it must match what clients see behind a proxy.
    pub base_url: String,
    /// Largest accepted request body (RFC 8555 leaves the limit to the server).
    pub max_body_bytes: usize,
    /// How long a nonce stays redeemable (`serve --nonce-lifetime-secs`). Every response
    /// carries a fresh one (RFC 8555 §7.2), so a client needs a nonce only seconds after it
    /// got it; a short lifetime keeps the spent set small.
    pub nonce_ttl: Duration,
    /// Most newOrder/finalize/challenge requests running at once (`serve --max-in-flight`);
    /// 0 turns the overload gate off. See [`overload`].
    pub max_in_flight: usize,
    /// Most requests waiting for a slot beyond `max_in_flight`; the rest get 503 at once.
    pub max_waiting: usize,
    /// Longest a request waits for a slot before 503 (`serve --overload-wait-ms`).
    pub overload_wait: Duration,
    /// Load balancers and proxies whose `X-Forwarded-For` names the client for per-IP rate
    /// limits (`serve --trusted-proxy`); empty: the TCP peer is the client.
    pub trusted_proxies: client_ip::TrustedProxies,
}

impl Default for WfeConfig {
    fn default() -> Self {
        Self {
            base_url: "https://127.0.0.1:8443".into(),
            max_body_bytes: 64 * 1024,
            nonce_ttl: Duration::from_secs(300),
            max_in_flight: 256,
            max_waiting: 1024,
            overload_wait: Duration::from_millis(500),
            trusted_proxies: client_ip::TrustedProxies::default(),
        }
    }
}

/// Shared state of the front end.
pub struct Wfe {
    ra: Arc<Ra>,
    /// CRLs and OCSP answers, signed by the CA side; the front end holds no signer.
    status: StatusHandle,
    nonces: NonceService,
    /// Accounts read for `kid` requests, when the nonce store guards them (see `accounts`).
    accounts: Option<accounts::AccountCache>,
    cfg: WfeConfig,
    /// Per-tenant `[ca.rate_limits]` (RFC 8555 §6.6).
    limits: Arc<ratelimit::RateLimiter>,
}

impl Wfe {
    /// A front end over `ra`, serving the CRLs and OCSP answers of `status`, with nonces from
    /// `nonces`, drawing from `limits` (which the Ra's failed-validation budget,
    /// `ratelimit::FailedValidations`, should share).
    pub fn new(
        ra: Arc<Ra>,
        status: StatusHandle,
        cfg: WfeConfig,
        nonces: NonceService,
        limits: Arc<ratelimit::RateLimiter>,
    ) -> Arc<Self> {
        Arc::new(Self {
            ra,
            status,
            accounts: nonces
                .guards_accounts()
                .then(accounts::AccountCache::default),
            nonces,
            cfg,
            limits,
        })
    }

    /// The front end's configuration.
    pub fn config(&self) -> &WfeConfig {
        &self.cfg
    }

    /// The rate limiter.
    pub fn limits(&self) -> &Arc<ratelimit::RateLimiter> {
        &self.limits
    }

    /// Forgets expired spent nonces every few minutes, so the spent set stays bounded.
    pub fn spawn_nonce_pruner(self: &Arc<Self>) {
        let wfe = Arc::clone(self);
        tokio::spawn(async move {
            // Several times per lifetime, so spent nonces are kept little longer than it.
            let every =
                (wfe.cfg.nonce_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(300));
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = wfe.nonces.prune().await {
                    tracing::warn!(error = %e, "pruning spent nonces failed");
                }
            }
        });
    }

    /// The tenant of an ACME request: a disabled tenant has no ACME directory any more.
    fn tenant(&self, name: &str) -> Result<Arc<Tenant>> {
        self.ra
            .tenant(name)
            .filter(|t| !t.disabled)
            .ok_or_else(|| Error::not_found("ACME directory"))
    }
}

/// The ACME routes (`/acme/<tenant>/...`) and the plain public routes (CRLs, CA certificates).
pub fn router(wfe: Arc<Wfe>) -> Router {
    // Expensive work (signature checks, validations, signing, writes) behind the overload gate.
    let mut costly = Router::new()
        .route("/acme/{tenant}/new-order", post(order::new_order))
        .route("/acme/{tenant}/new-authz", post(authz::new_authz))
        .route("/acme/{tenant}/order/{id}/finalize", post(order::finalize))
        .route("/acme/{tenant}/chall/{id}", post(authz::challenge));
    if wfe.cfg.max_in_flight > 0 {
        let gate = overload::Overload::new(
            wfe.cfg.max_in_flight,
            wfe.cfg.max_waiting,
            wfe.cfg.overload_wait,
        );
        costly = costly.route_layer(middleware::from_fn_with_state(gate, overload::gate));
    }
    // Every signed POST counts against the client IP's request rate.
    let signed = Router::new()
        .route("/acme/{tenant}/new-account", post(account::new_account))
        .route("/acme/{tenant}/acct/{id}", post(account::account))
        .route("/acme/{tenant}/acct/{id}/orders", post(account::orders))
        .route("/acme/{tenant}/key-change", post(account::key_change))
        .route("/acme/{tenant}/order/{id}", post(order::order))
        .route("/acme/{tenant}/authz/{id}", post(authz::authz))
        .route("/acme/{tenant}/cert/{id}", post(cert::certificate))
        .route(
            "/acme/{tenant}/cert/{id}/{alt}",
            post(cert::certificate_alt),
        )
        .route("/acme/{tenant}/revoke-cert", post(revoke::revoke_cert))
        .merge(costly)
        .route_layer(middleware::from_fn_with_state(
            wfe.clone(),
            ratelimit::per_ip_requests,
        ));
    // Cheap, unthrottled: a saturated server still tells devices where to go and when.
    let acme = Router::new()
        .route("/acme/{tenant}/directory", get(directory::directory))
        .route(
            "/acme/{tenant}/new-nonce",
            get(directory::new_nonce_get).head(directory::new_nonce_head),
        )
        .route(
            "/acme/{tenant}/renewal-info/{cert_id}",
            get(ari::renewal_info),
        )
        .route(
            "/acme/{tenant}/renewal-explanation",
            get(ari::renewal_explanation),
        )
        .merge(signed)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(wfe.clone(), acme_headers));
    public_router()
        .merge(acme)
        .fallback(not_found)
        .layer(middleware::from_fn(crate::admin::metrics::track_acme))
        .with_state(wfe)
}

/// Routes relying parties fetch over plain HTTP (RFC 5280 §4.2.1.13, §4.2.2.1).
pub fn public_router() -> Router<Arc<Wfe>> {
    Router::new()
        .route("/crl/{file}", get(public::crl))
        .route("/crl/{tenant}/{file}", get(crl_shard::shard_crl))
        .route("/ca/{file}", get(public::ca_cert))
        .route("/ocsp/{tenant}", post(ocsp::ocsp_post))
        .route("/ocsp/{tenant}/{*request}", get(ocsp::ocsp_get))
}

/// The public routes alone, with state, for the plain-HTTP listener.
pub fn public_only(wfe: Arc<Wfe>) -> Router {
    public_router()
        .fallback(not_found)
        .layer(middleware::from_fn(crate::admin::metrics::track_acme))
        .with_state(wfe)
}

async fn not_found() -> Response {
    Error::not_found("resource").into_response()
}

async fn method_not_allowed() -> Response {
    Error::malformed("method not allowed for this resource")
        .with_status(405)
        .into_response()
}

/// §6.5: every ACME response carries a fresh `Replay-Nonce`; §7.1: and a `Link` to the
/// directory. Responses are not cacheable except the directory.
async fn acme_headers(State(wfe): State<Arc<Wfe>>, req: Request, next: Next) -> Response {
    let tenant = req
        .uri()
        .path()
        .strip_prefix("/acme/")
        .and_then(|p| p.split('/').next())
        .unwrap_or("")
        .to_string();
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&wfe.nonces.issue()) {
        h.insert("replay-nonce", v);
    }
    if wfe.ra.tenant(&tenant).is_some_and(|t| !t.disabled) {
        if let Ok(v) = HeaderValue::from_str(&format!(
            "<{}/acme/{tenant}/directory>;rel=\"index\"",
            wfe.cfg.base_url
        )) {
            h.append(header::LINK, v);
        }
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A JSON response (an `acme_types::wire` object) with optional `Location`.
pub(crate) fn json_response<T: serde::Serialize>(
    status: StatusCode,
    body: &T,
    location: Option<&str>,
) -> Response {
    let body = match serde_json::to_vec(body) {
        Ok(b) => b,
        Err(e) => return Error::internal(format!("serialising a response: {e}")).into_response(),
    };
    let mut resp = (status, Body::from(body)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(loc) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        h.insert(header::LOCATION, loc);
    }
    resp
}

/// Turns a handler result into a response.
pub(crate) fn reply(r: Result<Response>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}
