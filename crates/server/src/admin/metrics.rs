//! The Prometheus side of [`crate::metrics`]: installs the process-wide recorder, serves
//! `GET /metrics` (text exposition format 0.0.4) and counts HTTP requests by route template
//! (never the raw path, whose ids would make one series per object).

use crate::metrics as m;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets (seconds): sub-millisecond storage calls up to slow validations.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the Prometheus recorder once per process and returns its handle (`None` if another
/// recorder was installed first).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::error!(error = %e, "installing the metrics recorder failed"))
                .ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

/// Help texts, and zero values for the counters other components increment, so they are
/// scrapeable (and alertable) before the first event.
fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        m::HTTP_REQUESTS,
        "HTTP requests by listener, route template, method and status"
    );
    describe_histogram!(
        m::HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency by route template"
    );
    describe_counter!(
        m::ISSUANCES,
        "Certificate issuances (finalize) by tenant and result"
    );
    describe_histogram!(
        m::ISSUANCE_DURATION,
        metrics::Unit::Seconds,
        "Finalize latency: CSR check, signing, storing"
    );
    describe_counter!(m::VALIDATIONS, "Challenge validations by type and result");
    describe_histogram!(
        m::VALIDATION_DURATION,
        metrics::Unit::Seconds,
        "Validation latency by type and result"
    );
    describe_counter!(m::NONCE_REJECTIONS, "JWS requests refused with badNonce");
    describe_counter!(
        m::RATE_LIMITED,
        "Requests refused by a rate limit, by limit"
    );
    describe_counter!(m::CRLS_GENERATED, "CRLs signed, by tenant");
    metrics::describe_gauge!(
        m::SIGNER_AVAILABLE,
        "1 when the tenant's CA key can sign, 0 when the last signature or check failed"
    );
    describe_counter!(
        m::OVERLOAD_SHED,
        "Expensive requests refused with 503 while overloaded"
    );
    metrics::describe_gauge!(
        m::CERTIFICATES,
        "Certificates by tenant and coverage state (ok, due, overdue, expiring, silent, revoked, expired)"
    );
    describe_counter!(
        m::OCSP_RESPONSES,
        "OCSP responses produced, by tenant and result"
    );
    describe_histogram!(
        m::DB_DURATION,
        metrics::Unit::Seconds,
        "Storage call latency by operation"
    );
    metrics::describe_gauge!(m::CONNECTIONS_OPEN, "Connections open, by listener");
    describe_counter!(
        m::CONNECTIONS_REFUSED,
        "Connections closed at accept by the total or per-IP cap, by listener and reason"
    );
    describe_counter!(
        m::CONNECTIONS_TIMED_OUT,
        "Connections closed by a timeout, by listener and phase"
    );
    metrics::counter!(m::NONCE_REJECTIONS, "reason" => "unknown").absolute(0);
    metrics::counter!(m::RATE_LIMITED, "limit" => "none").absolute(0);
    metrics::counter!(m::CONNECTIONS_REFUSED, "listener" => "acme", "reason" => "total")
        .absolute(0);
    metrics::counter!(m::CONNECTIONS_TIMED_OUT, "listener" => "acme", "phase" => "header_read")
        .absolute(0);
}

/// `GET /metrics`.
pub(super) async fn scrape() -> Response {
    let body = match install() {
        Some(h) => {
            h.run_upkeep();
            h.render()
        }
        None => String::new(),
    };
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// Middleware for the ACME and public routers: counts each request under its route template.
pub async fn track_acme(req: Request, next: Next) -> Response {
    track("acme", req, next).await
}

/// Middleware for the admin router.
pub(super) async fn track_admin(req: Request, next: Next) -> Response {
    track("admin", req, next).await
}

async fn track(listener: &'static str, req: Request, next: Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().as_str().to_string();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    m::http_request(
        listener,
        endpoint,
        method,
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}
