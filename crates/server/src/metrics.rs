//! Metric names and the calls that record them. The roles record through the `metrics` facade;
//! `admin::metrics` installs the Prometheus recorder and serves `/metrics` on the admin
//! listener. Without an installed recorder (unit tests, operator commands) every call here is a
//! no-op. Names and labels are a contract with dashboards and alerts: see `docs/admin.md`.

use std::time::Duration;

/// ACME and public HTTP requests, by `listener`, route template `endpoint`, `method`, `status`.
pub const HTTP_REQUESTS: &str = "fleetca_http_requests_total";
/// Request latency in seconds, by `listener` and route template `endpoint`.
pub const HTTP_DURATION: &str = "fleetca_http_request_duration_seconds";
/// Finalizations, by `tenant` and `result` (`issued`, `failed`).
pub const ISSUANCES: &str = "fleetca_issuance_total";
/// Finalization latency (CSR check, signing, storing) in seconds, by `tenant`.
pub const ISSUANCE_DURATION: &str = "fleetca_issuance_duration_seconds";
/// Validations, by challenge `type` and `result` (`valid`, `invalid`).
pub const VALIDATIONS: &str = "fleetca_validations_total";
/// Validation latency in seconds, by challenge `type` and `result`.
pub const VALIDATION_DURATION: &str = "fleetca_validation_duration_seconds";
/// JWS requests refused with `badNonce`, by `reason` (`unknown`, `missing`).
pub const NONCE_REJECTIONS: &str = "fleetca_nonce_rejections_total";
/// Requests refused by a rate limit (`rateLimited`), by `limit`. Call [`rate_limited`].
pub const RATE_LIMITED: &str = "fleetca_rate_limited_total";
/// Expensive requests refused with 503 by the overload gate.
pub const OVERLOAD_SHED: &str = "fleetca_overload_shed_total";
/// CRLs signed, by `tenant`.
pub const CRLS_GENERATED: &str = "fleetca_crl_generated_total";
/// 1 when the tenant's issuing CA key can sign, 0 when its last signature or health check
/// failed (an HSM token removed, reset or unreachable), by `tenant`.
pub const SIGNER_AVAILABLE: &str = "fleetca_signer_available";
/// Certificates by `tenant` and coverage `state` (docs/coverage.md), recomputed by the coverage
/// refresher, not per scrape.
pub const CERTIFICATES: &str = "fleetca_certificates";
/// OCSP responses produced, by `tenant` and `result` (`ok`, `error`).
pub const OCSP_RESPONSES: &str = "fleetca_ocsp_responses_total";
/// CT `add-pre-chain` submissions, by `log` (its configured URL) and `result` (`ok`,
/// `timeout`, `connect`, `http_status`, `malformed`, `bad_signature`).
pub const CT_SUBMISSIONS: &str = "fleetca_ct_submissions_total";
/// CT submission latency in seconds, by `log`.
pub const CT_SUBMISSION_DURATION: &str = "fleetca_ct_submission_duration_seconds";
/// Finalizations left `processing` because the logs gave too few SCTs, by `tenant`.
pub const CT_SHORTFALLS: &str = "fleetca_ct_shortfalls_total";
/// Storage call latency in seconds, by `op` (the `Storage` method name).
pub const DB_DURATION: &str = "fleetca_db_operation_duration_seconds";
/// SQLite writes that waited for the group-commit barrier.
pub const SQLITE_COMMIT_BARRIERS: &str = "fleetca_sqlite_commit_barriers_total";
/// `fdatasync`s of the SQLite WAL the barriers needed (barriers / syncs = group size).
pub const SQLITE_WAL_SYNCS: &str = "fleetca_sqlite_wal_syncs_total";
/// Transactions the SQLite writer thread committed (each one WAL sync).
pub const SQLITE_WRITE_BATCHES: &str = "fleetca_sqlite_write_batches_total";
/// Writes those transactions carried (writes / batches = batch size).
pub const SQLITE_BATCHED_WRITES: &str = "fleetca_sqlite_batched_writes_total";
/// Connections open now, by `listener` (`acme`, `http`, `admin`).
pub const CONNECTIONS_OPEN: &str = "fleetca_connections_open";
/// Connections closed at accept by a cap, by `listener` and `reason` (`total`, `per_ip`).
pub const CONNECTIONS_REFUSED: &str = "fleetca_connections_refused_total";
/// Connections the server closed because a timeout passed, by `listener` and `phase`
/// (`tls_handshake`, `header_read`, `body_read`, `idle`).
pub const CONNECTIONS_TIMED_OUT: &str = "fleetca_connections_timed_out_total";

/// Tenant reloads (SIGHUP, `POST /api/reload`, `POST /api/tenants`, another node's notice, the
/// periodic check), by `result` (`ok`, `refused`).
pub const TENANT_RELOADS: &str = "fleetca_tenant_reloads_total";
/// 1 when the tenant configuration on disk loaded at the last reload attempt, 0 when it was
/// refused (the server keeps serving the previous set; alert on 0).
pub const TENANT_CONFIG_VALID: &str = "fleetca_tenant_config_valid";
/// Tenants served now (disabled ones included: they still publish CRLs and OCSP).
pub const TENANTS: &str = "fleetca_tenants";

/// Records a tenant reload attempt; `served` is the number of tenants served afterwards.
pub fn tenant_reload(ok: bool, served: usize) {
    let result = if ok { "ok" } else { "refused" };
    metrics::counter!(TENANT_RELOADS, "result" => result).increment(1);
    metrics::gauge!(TENANT_CONFIG_VALID).set(if ok { 1.0 } else { 0.0 });
    metrics::gauge!(TENANTS).set(served as f64);
}

/// Tenant domain checks (`domain validate`, dns-persist-01 revalidation), by `tenant`,
/// `method` and `result` (`valid`, `invalid`).
pub const DOMAIN_CHECKS: &str = "fleetca_tenant_domain_checks_total";
/// 1 while a tenant domain grants authorizations, 0 once it does not (record gone at
/// revalidation, expired), by `tenant` and `domain`.
pub const DOMAIN_VALID: &str = "fleetca_tenant_domain_valid";

/// Records one tenant domain check.
pub fn domain_check(tenant: &str, method: &str, valid: bool) {
    let result = if valid { "valid" } else { "invalid" };
    metrics::counter!(DOMAIN_CHECKS, "tenant" => tenant.to_string(),
        "method" => method.to_string(), "result" => result)
    .increment(1);
}

/// Records whether a tenant domain grants authorizations now.
pub fn domain_valid(tenant: &str, domain: &str, valid: bool) {
    metrics::gauge!(DOMAIN_VALID, "tenant" => tenant.to_string(), "domain" => domain.to_string())
        .set(if valid { 1.0 } else { 0.0 });
}

/// Records one answered HTTP request.
pub fn http_request(
    listener: &'static str,
    endpoint: String,
    method: String,
    status: u16,
    elapsed: Duration,
) {
    metrics::counter!(HTTP_REQUESTS, "listener" => listener, "endpoint" => endpoint.clone(),
        "method" => method, "status" => status.to_string())
    .increment(1);
    metrics::histogram!(HTTP_DURATION, "listener" => listener, "endpoint" => endpoint)
        .record(elapsed.as_secs_f64());
}

/// Records one finalization attempt that reached the signer.
pub fn issuance(tenant: &str, issued: bool, elapsed: Duration) {
    let result = if issued { "issued" } else { "failed" };
    metrics::counter!(ISSUANCES, "tenant" => tenant.to_string(), "result" => result).increment(1);
    metrics::histogram!(ISSUANCE_DURATION, "tenant" => tenant.to_string())
        .record(elapsed.as_secs_f64());
}

/// Records one CT submission: `error` is the failure kind, `None` for a verified SCT.
pub fn ct_submission(log: &str, error: Option<&'static str>, elapsed: Duration) {
    metrics::counter!(CT_SUBMISSIONS, "log" => log.to_string(), "result" => error.unwrap_or("ok"))
        .increment(1);
    metrics::histogram!(CT_SUBMISSION_DURATION, "log" => log.to_string())
        .record(elapsed.as_secs_f64());
}

/// Records a finalization deferred for want of SCTs.
pub fn ct_shortfall(tenant: &str) {
    metrics::counter!(CT_SHORTFALLS, "tenant" => tenant.to_string()).increment(1);
}

/// Records one finished validation.
pub fn validation(kind: &str, valid: bool, elapsed: Duration) {
    let result = if valid { "valid" } else { "invalid" };
    metrics::counter!(VALIDATIONS, "type" => kind.to_string(), "result" => result).increment(1);
    metrics::histogram!(VALIDATION_DURATION, "type" => kind.to_string(), "result" => result)
        .record(elapsed.as_secs_f64());
}

/// Records a request refused for its nonce (RFC 8555 §6.5).
pub fn nonce_rejected(reason: &'static str) {
    metrics::counter!(NONCE_REJECTIONS, "reason" => reason).increment(1);
}

/// Records a request refused by the rate limit named `limit` (e.g. `new_order_per_account`).
pub fn rate_limited(limit: &str) {
    metrics::counter!(RATE_LIMITED, "limit" => limit.to_string()).increment(1);
}

/// Records a request shed by the overload gate.
pub fn overload_shed() {
    metrics::counter!(OVERLOAD_SHED).increment(1);
}

/// Records a signed CRL.
pub fn crl_generated(tenant: &str) {
    metrics::counter!(CRLS_GENERATED, "tenant" => tenant.to_string()).increment(1);
}

/// Records whether the tenant's CA key could sign just now.
pub fn signer_available(tenant: &str, available: bool) {
    metrics::gauge!(SIGNER_AVAILABLE, "tenant" => tenant.to_string()).set(if available {
        1.0
    } else {
        0.0
    });
}

/// Sets the number of `tenant`'s certificates in coverage `state`.
pub fn coverage(tenant: &str, state: &'static str, count: i64) {
    metrics::gauge!(CERTIFICATES, "tenant" => tenant.to_string(), "state" => state)
        .set(count as f64);
}

/// Records an OCSP response.
pub fn ocsp_response(tenant: &str, ok: bool) {
    let result = if ok { "ok" } else { "error" };
    metrics::counter!(OCSP_RESPONSES, "tenant" => tenant.to_string(), "result" => result)
        .increment(1);
}

/// Records an accepted connection on `listener`.
pub fn connection_opened(listener: &'static str) {
    metrics::gauge!(CONNECTIONS_OPEN, "listener" => listener).increment(1.0);
}

/// Records a connection on `listener` closed (for any reason).
pub fn connection_closed(listener: &'static str) {
    metrics::gauge!(CONNECTIONS_OPEN, "listener" => listener).decrement(1.0);
}

/// Records a connection on `listener` closed at accept by the cap named `reason`.
pub fn connection_refused(listener: &'static str, reason: &'static str) {
    metrics::counter!(CONNECTIONS_REFUSED, "listener" => listener, "reason" => reason).increment(1);
}

/// Records a connection on `listener` closed because its `phase` timeout passed.
pub fn connection_timed_out(listener: &'static str, phase: &'static str) {
    metrics::counter!(CONNECTIONS_TIMED_OUT, "listener" => listener, "phase" => phase).increment(1);
}

/// Records the latency of one storage call.
pub fn db_operation(op: &'static str, elapsed: Duration) {
    metrics::histogram!(DB_DURATION, "op" => op).record(elapsed.as_secs_f64());
}

/// Times a storage future and records it under `op`.
pub async fn timed_db<T>(op: &'static str, f: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let out = f.await;
    db_operation(op, started.elapsed());
    out
}
