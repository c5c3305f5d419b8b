//! The operator surface, on its own listener (`fleetca serve --admin-listen`, default
//! `127.0.0.1:9443`, plain HTTP: see `docs/admin.md` for why loopback-only by default):
//! the dashboard at `/`, the REST API under `/api/` (bearer tokens with scopes, [`auth`]),
//! its OpenAPI document at `/api/openapi.json`, and Prometheus metrics at `/metrics`.

mod api;
pub mod auth;
mod coverage;
mod dashboard;
mod domains;
pub mod metrics;
pub mod ops;
mod stats;

use crate::datadir::DataDir;
use crate::ra::EabKeyring;
use crate::sa::Database;
use crate::tenant::{Tenant, TenantSet};
use auth::{AuthError, Scope, TokenStore};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the admin handlers share.
pub struct AdminState {
    /// The server's database.
    pub db: Arc<dyn Database>,
    /// The data directory (tenant configs, token file).
    pub dd: DataDir,
    /// Served tenants, whose issuing CAs re-sign CRLs after a revocation.
    pub tenants: Arc<TenantSet>,
    /// Loads the tenants again (`POST /api/reload`, `POST /api/tenants`).
    pub(crate) reloader: Arc<crate::commands::Reloader>,
    /// How `serve` reads encrypted keys: a tenant created through the API signs its issuing
    /// CA with the root key the same way.
    pub(crate) keys: crate::commands::KeyProtection,
    /// Admin API tokens.
    pub tokens: TokenStore,
    /// Seals new EAB HMAC keys.
    pub keyring: Arc<EabKeyring>,
    /// Coverage thresholds (the same as the refresher's, so the API and the gauges agree).
    pub coverage: crate::sa::CoveragePolicy,
    /// The server's clock (coverage states are relative to it).
    pub clock: Arc<dyn crate::clock::Clock>,
    /// Checks tenant domains' DNS records (`POST /api/tenants/{t}/domains/{name}/validate`).
    pub va: crate::va::Va,
}

impl AdminState {
    fn tenant(&self, name: &str) -> Result<Arc<Tenant>, api::ApiError> {
        self.tenants
            .get(name)
            .ok_or_else(|| api::ApiError::new(StatusCode::NOT_FOUND, format!("no tenant {name:?}")))
    }
}

/// The OpenAPI 3.1 document of `/api/` (hand-written; a test checks every path answers).
pub const OPENAPI: &str = include_str!("openapi.json");

/// The admin listener's routes.
pub fn router(state: Arc<AdminState>) -> Router {
    let api = Router::new()
        .route("/api/tenants", get(api::tenants).post(api::tenant_create))
        .route("/api/reload", post(api::reload))
        .route("/api/eab", get(api::eab_list).post(api::eab_create))
        .route("/api/eab/{kid}/revoke", post(api::eab_revoke))
        .route("/api/accounts", get(api::accounts))
        .route(
            "/api/accounts/{id}/deactivate",
            post(api::account_deactivate),
        )
        .route("/api/certificates", get(api::certificates))
        .route("/api/certificates/{serial}", get(api::certificate))
        .route(
            "/api/certificates/{serial}/revoke",
            post(api::certificate_revoke),
        )
        .route("/api/renew-early", post(api::renew_early))
        .route("/api/audit", get(api::audit))
        .route(
            "/api/tenants/{tenant}/domains",
            get(domains::list).post(domains::add),
        )
        .route(
            "/api/tenants/{tenant}/domains/{name}/validate",
            post(domains::validate),
        )
        .route(
            "/api/tenants/{tenant}/domains/{name}/remove",
            post(domains::remove),
        )
        .route("/api/stats", get(stats::stats))
        .route("/api/coverage", get(coverage::list))
        .route("/api/coverage/summary", get(coverage::summary))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(api)
        .route("/api/openapi.json", get(openapi))
        .route("/", get(dashboard::page))
        .route("/dashboard.js", get(dashboard::script))
        .route("/metrics", get(metrics::scrape))
        .fallback(|| async { api::ApiError::new(StatusCode::NOT_FOUND, "no such resource") })
        .layer(middleware::from_fn(metrics::track_admin))
        .with_state(state)
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The scope a request needs: reads need `read`; minting EAB credentials, creating a tenant
/// (a new issuing CA) and reloading the tenants need `admin`; every other change needs
/// `write`.
fn needed_scope(method: &Method, path: &str) -> Scope {
    if method == Method::GET || method == Method::HEAD {
        Scope::Read
    } else if matches!(path, "/api/eab" | "/api/tenants" | "/api/reload") {
        Scope::Admin
    } else {
        Scope::Write
    }
}

/// Checks `Authorization: Bearer <token>` before any handler (or body parsing) runs, and
/// hands the token record to the handler for the audit actor.
async fn require_token(
    State(st): State<Arc<AdminState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let need = needed_scope(req.method(), req.uri().path());
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("");
    match st.tokens.authorize(presented, need).await {
        Ok(rec) => {
            req.extensions_mut().insert(rec);
            next.run(req).await
        }
        Err(AuthError::Unauthenticated) => {
            let mut r =
                api::ApiError::new(StatusCode::UNAUTHORIZED, "a valid bearer token is required")
                    .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"fleetca-admin\""),
            );
            r
        }
        Err(AuthError::Forbidden) => api::ApiError::new(
            StatusCode::FORBIDDEN,
            format!("this token lacks the {:?} scope", need.as_str()),
        )
        .into_response(),
    }
}

/// Serves the admin routes in the background on `listener`, which `serve` bound at start-up
/// (a listener that cannot bind stops `serve` there); returns the bound address.
pub fn spawn(
    listener: std::net::TcpListener,
    state: Arc<AdminState>,
    tls: Option<Arc<rustls::ServerConfig>>,
    serving: &crate::listener::Serving,
) -> std::io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() && tls.is_none() {
        tracing::warn!(%addr, "the admin listener (plain HTTP) is not on loopback: use --admin-tls, a TLS proxy or a private network");
    }
    let listener = tokio::net::TcpListener::from_std(listener)?;
    serving.spawn("admin", listener, router(state), tls);
    Ok(addr)
}
