//! `/api/...` handlers: JSON in, JSON out. Every state change goes through [`super::ops`], which
//! writes the audit entry (actor `token:<id>`) in the same transaction as the change.

use super::auth::TokenRecord;
use super::ops::{self, now_unix, RevokeError};
use super::AdminState;
use crate::commands::CertSelection;
use crate::sa::{AdminCert, CertQuery};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// An API failure: status and a message safe to show (internal details are only logged).
pub(super) struct ApiError(StatusCode, String);

impl ApiError {
    pub(super) fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        Self(status, msg.into())
    }
    fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }
    fn not_found(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, msg)
    }
    pub(super) fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "admin API request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error (see the server log)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<crate::sa::SaError> for ApiError {
    fn from(e: crate::sa::SaError) -> Self {
        Self::internal(e)
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}

fn actor(t: &TokenRecord) -> String {
    format!("token:{}", t.id)
}

/// `GET /api/tenants`
pub(super) async fn tenants(State(st): State<Arc<AdminState>>) -> ApiResult {
    let cfgs = st.dd.load_tenant_configs().map_err(ApiError::internal)?;
    ok(Value::Array(
        cfgs.iter()
            .map(|c| {
                json!({
                    "name": c.ca.name,
                    "trust": c.ca.trust,
                    "permit": c.ca.permit,
                    "eab_required": c.ca.eab_required,
                    "lifetime_days": c.ca.lifetime_days,
                    "challenge_types": c.ca.challenge_types,
                    "disabled": c.ca.disabled,
                })
            })
            .collect(),
    ))
}

/// `POST /api/tenants` body: as `fleetca tenant add` (file keys; a PKCS#11 tenant is made on
/// the command line).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantCreate {
    name: String,
    permit: Vec<String>,
    #[serde(default)]
    eab_required: bool,
    #[serde(default)]
    caa_identities: Vec<String>,
    #[serde(default)]
    client_auth: bool,
    lifetime_days: Option<u32>,
}

/// `POST /api/tenants`: creates a tenant and serves it at once. If the tenants do not load
/// with it, the new tenant's files are removed again and the answer says why: a refused
/// request changes nothing.
pub(super) async fn tenant_create(
    State(st): State<Arc<AdminState>>,
    Extension(tok): Extension<TokenRecord>,
    Json(b): Json<TenantCreate>,
) -> ApiResult {
    // The API makes private-trust tenants (a public one needs its CSR signed outside and
    // imported: `fleetca tenant add --trust public`, then `subca import`).
    let new = crate::commands::NewTenant {
        name: b.name,
        trust: crate::datadir::Trust::Private,
        organization: None,
        country: None,
        common_name: None,
        permit: b.permit,
        eab_required: b.eab_required,
        caa_identities: b.caa_identities,
        client_auth: b.client_auth,
        lifetime_days: b.lifetime_days,
        issuing_key_type: pki::keys::KeyType::EcdsaP256,
        ocsp_signer: false,
    };
    let name = new.name.clone();
    let (dd, keys) = (st.dd.clone(), st.keys.clone());
    let cfg = tokio::task::spawn_blocking(move || {
        crate::commands::create_tenant(&dd, &new, &keys, &Default::default(), None)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
    if let Err(e) = st.reloader.reload("POST /api/tenants").await {
        let dir = st.dd.ca_dir(&name);
        if let Err(rm) = std::fs::remove_dir_all(&dir) {
            tracing::error!(dir = %dir.display(), error = %rm, "removing a refused tenant failed");
        }
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the tenants do not load with {name:?}, which was not created: {e:#}"),
        ));
    }
    let summary = json!({
        "name": cfg.ca.name,
        "permit": cfg.ca.permit,
        "eab_required": cfg.ca.eab_required,
        "lifetime_days": cfg.ca.lifetime_days,
    });
    st.db
        .append_audit(&crate::sa::AuditEntry {
            at: now_unix(),
            actor: actor(&tok),
            action: "tenant.add".into(),
            tenant: Some(name.clone()),
            object: Some(name),
            before: None,
            after: Some(summary.to_string()),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(summary)).into_response())
}

/// `POST /api/reload`: loads the data directory's tenants again; 422 with the reason, and the
/// previous tenants still served, if they do not load.
pub(super) async fn reload(State(st): State<Arc<AdminState>>) -> ApiResult {
    match st.reloader.reload("POST /api/reload").await {
        Ok(report) => ok(json!(report)),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("tenant reload refused; the previous tenants keep serving: {e:#}"),
        )),
    }
}

#[derive(Deserialize)]
pub(super) struct TenantFilter {
    tenant: Option<String>,
}

/// `GET /api/eab`
pub(super) async fn eab_list(
    State(st): State<Arc<AdminState>>,
    Query(q): Query<TenantFilter>,
) -> ApiResult {
    let keys = st.db.list_eab_keys(q.tenant.as_deref()).await?;
    let now = now_unix();
    ok(Value::Array(
        keys.iter().map(|k| ops::eab_json(k, now)).collect(),
    ))
}

#[derive(Deserialize)]
pub(super) struct EabCreate {
    tenant: Option<String>,
    uses: Option<u32>,
    /// `30d`, `12h`, ... as on the command line.
    expires: Option<String>,
}

/// `POST /api/eab`: the HMAC key is in this response only.
pub(super) async fn eab_create(
    State(st): State<Arc<AdminState>>,
    Extension(tok): Extension<TokenRecord>,
    Json(b): Json<EabCreate>,
) -> ApiResult {
    let tenant = b
        .tenant
        .unwrap_or_else(|| crate::datadir::DEFAULT_TENANT.to_string());
    st.tenant(&tenant)?;
    let expires = b
        .expires
        .as_deref()
        .map(crate::commands::parse_duration)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let uses = b.uses.unwrap_or(1);
    if uses == 0 {
        return Err(ApiError::bad_request("uses must be at least 1"));
    }
    let new = ops::create_eab(
        st.db.as_ref(),
        &st.keyring,
        &tenant,
        uses,
        expires,
        &actor(&tok),
    )
    .await
    .map_err(ApiError::internal)?;
    let mut v = ops::eab_json(&new.record, now_unix());
    v["kid"] = json!(new.kid);
    v["hmac_key"] = json!(new.hmac_key);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `POST /api/eab/{kid}/revoke`
pub(super) async fn eab_revoke(
    State(st): State<Arc<AdminState>>,
    Extension(tok): Extension<TokenRecord>,
    Path(kid): Path<String>,
) -> ApiResult {
    if !ops::revoke_eab(st.db.as_ref(), &kid, &actor(&tok))
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found(format!(
            "no unrevoked EAB credential with key id {kid:?}"
        )));
    }
    ok(json!({ "kid": kid, "status": "revoked" }))
}

/// `GET /api/accounts`
pub(super) async fn accounts(
    State(st): State<Arc<AdminState>>,
    Query(q): Query<TenantFilter>,
) -> ApiResult {
    let accts = st.db.list_accounts(q.tenant.as_deref()).await?;
    ok(serde_json::to_value(accts).map_err(ApiError::internal)?)
}

/// `POST /api/accounts/{id}/deactivate`
pub(super) async fn account_deactivate(
    State(st): State<Arc<AdminState>>,
    Extension(tok): Extension<TokenRecord>,
    Path(id): Path<String>,
) -> ApiResult {
    match ops::deactivate_account(st.db.as_ref(), &id, &actor(&tok))
        .await
        .map_err(ApiError::internal)?
    {
        Some(_) => ok(json!({ "id": id, "status": "deactivated" })),
        None => Err(ApiError::not_found(format!(
            "no valid account with id {id:?}"
        ))),
    }
}

#[derive(Deserialize)]
pub(super) struct CertSearch {
    tenant: Option<String>,
    name: Option<String>,
    serial: Option<String>,
    account: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/certificates`
pub(super) async fn certificates(
    State(st): State<Arc<AdminState>>,
    Query(q): Query<CertSearch>,
) -> ApiResult {
    let nonempty = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
    let certs = st
        .db
        .find_certs(&CertQuery {
            tenant: nonempty(q.tenant),
            name: nonempty(q.name),
            serial: nonempty(q.serial),
            account_id: nonempty(q.account),
            limit: q.limit.unwrap_or(100).min(1000),
        })
        .await?;
    let now = now_unix();
    ok(Value::Array(
        certs.iter().map(|c| ops::cert_json(c, now)).collect(),
    ))
}

/// The one certificate with `serial` (in `tenant` if given).
async fn find_one(
    st: &AdminState,
    serial: &str,
    tenant: Option<String>,
) -> Result<AdminCert, ApiError> {
    let mut found = st
        .db
        .find_certs(&CertQuery {
            tenant,
            serial: Some(serial.to_string()),
            ..CertQuery::default()
        })
        .await?;
    match found.len() {
        0 => Err(ApiError::not_found(format!(
            "no certificate with serial {serial}"
        ))),
        1 => Ok(found.remove(0)),
        _ => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("serial {serial} exists in several tenants; add ?tenant="),
        )),
    }
}

/// `GET /api/certificates/{serial}`
pub(super) async fn certificate(
    State(st): State<Arc<AdminState>>,
    Path(serial): Path<String>,
    Query(q): Query<TenantFilter>,
) -> ApiResult {
    let c = find_one(&st, &serial, q.tenant).await?;
    let mut v = ops::cert_json(&c, now_unix());
    v["pem"] = json!(pki::cert_info::der_to_pem("CERTIFICATE", &c.der));
    ok(v)
}

#[derive(Deserialize)]
pub(super) struct RevokeBody {
    tenant: Option<String>,
    /// A reason name or code, as `fleetca cert revoke --reason`.
    reason: Option<Value>,
}

/// `POST /api/certificates/{serial}/revoke`
pub(super) async fn certificate_revoke(
    State(st): State<Arc<AdminState>>,
    Extension(tok): Extension<TokenRecord>,
    Path(serial): Path<String>,
    Json(b): Json<RevokeBody>,
) -> ApiResult {
    let reason = match &b.reason {
        None => 0,
        Some(Value::String(s)) => {
            crate::commands::parse_reason(s).map_err(ApiError::bad_request)?
        }
        Some(Value::Number(n)) => {
            crate::commands::parse_reason(&n.to_string()).map_err(ApiError::bad_request)?
        }
        Some(_) => return Err(ApiError::bad_request("reason must be a name or a code")),
    };
    let c = find_one(&st, &serial, b.tenant).await?;
    let tenant = st.tenant(&c.tenant)?;
    // The CRL to re-sign is that of the CA that signed it, which may be a retired one.
    let ca = tenant.issuer(c.issuer_id()).ok_or_else(|| {
        ApiError::internal(format!(
            "the issuing CA {:?} of this certificate is not loaded",
            c.issuer_id()
        ))
    })?;
    match ops::revoke_cert(st.db.as_ref(), ca, &c, reason, &actor(&tok)).await {
        Ok(crl_number) => ok(json!({
            "serial": c.serial, "status": "revoked", "reason": reason, "crl_number": crl_number
        })),
        Err(RevokeError::AlreadyRevoked(s)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("certificate {s} is already revoked"),
        )),
        Err(RevokeError::Other(e)) => Err(ApiError::internal(format!("{e:#}"))),
    }
}

#[derive(Deserialize)]
pub(super) struct RenewEarlyBody {
    tenant: Option<String>,
    serial: Option<String>,
    account: Option<String>,
    suffix: Option<String>,
    issued_before: Option<String>,
    #[serde(default)]
    all: bool,
    /// Only certificates in these coverage states (comma-separated).
    state: Option<String>,
}

/// `POST /api/renew-early`: the selectors of `fleetca renew-early`, exactly one of them.
pub(super) async fn renew_early(
    State(st): State<Arc<AdminState>>,
    Extension(tok): Extension<TokenRecord>,
    Json(b): Json<RenewEarlyBody>,
) -> ApiResult {
    let given = [
        b.serial.is_some(),
        b.account.is_some(),
        b.suffix.is_some(),
        b.issued_before.is_some(),
        b.all,
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if given != 1 {
        return Err(ApiError::bad_request(
            "give exactly one of serial, account, suffix, issued_before, all",
        ));
    }
    if let Some(t) = &b.tenant {
        st.tenant(t)?;
    }
    let sel = CertSelection {
        tenant: b.tenant,
        serial: b.serial,
        account: b.account,
        suffix: b.suffix,
        issued_before: b.issued_before,
        all: b.all,
    };
    let selector = sel
        .selector()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let states = b
        .state
        .as_deref()
        .map(crate::sa::CoverageState::parse_list)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let serials = ops::renew_early(
        st.db.as_ref(),
        sel.tenant.as_deref(),
        &selector,
        &sel.describe(),
        &actor(&tok),
        None,
        states.as_deref().map(|states| ops::CoverageSelect {
            states,
            policy: &st.coverage,
            now: st.clock.unix(),
        }),
    )
    .await
    .map_err(ApiError::internal)?;
    ok(json!({ "certificates": serials.len(), "serials": serials }))
}

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    limit: Option<u32>,
}

/// `GET /api/audit`
pub(super) async fn audit(
    State(st): State<Arc<AdminState>>,
    Query(q): Query<AuditQuery>,
) -> ApiResult {
    let entries = st.db.recent_audit(q.limit.unwrap_or(50).min(1000)).await?;
    ok(serde_json::to_value(entries).map_err(ApiError::internal)?)
}
