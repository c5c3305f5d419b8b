//! `/api/tenants/{tenant}/domains...`: tenant domains over the admin API, the same actions as
//! `fleetca domain` (`ra::domains`), audited as `token:<id>`.

use super::api::ApiError;
use super::auth::TokenRecord;
use super::ops::now_unix;
use super::AdminState;
use crate::ra::{DomainError, DomainPolicy};
use crate::sa::DomainMethod;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

type ApiResult = Result<Response, ApiError>;

fn actor(t: &TokenRecord) -> String {
    format!("token:{}", t.id)
}

fn policy(st: &AdminState, tenant: &str) -> Result<DomainPolicy, ApiError> {
    st.tenant(tenant)?;
    let cfgs = st.dd.load_tenant_configs().map_err(ApiError::internal)?;
    cfgs.iter()
        .find(|c| c.ca.name == tenant)
        .map(|c| DomainPolicy::from_config(&c.ca))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no tenant {tenant:?}")))
}

fn domain_error(e: DomainError) -> ApiError {
    match e {
        DomainError::Refused(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
        e @ DomainError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
        e @ DomainError::Validation { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        DomainError::Storage(crate::sa::SaError::Conflict(m)) => {
            ApiError::new(StatusCode::CONFLICT, m)
        }
        DomainError::Storage(e) => ApiError::internal(e),
    }
}

/// `GET /api/tenants/{tenant}/domains`
pub(super) async fn list(
    State(st): State<Arc<AdminState>>,
    Path(tenant): Path<String>,
) -> ApiResult {
    st.tenant(&tenant)?;
    let now = now_unix();
    let rows = st.db.list_domains(Some(&tenant)).await?;
    Ok(Json(Value::Array(
        rows.iter().map(|d| d.summary_json(now)).collect(),
    ))
    .into_response())
}

#[derive(Deserialize)]
pub(super) struct AddBody {
    name: String,
    method: Option<String>,
    #[serde(default)]
    trusted: bool,
}

/// `POST /api/tenants/{tenant}/domains` `{"name", "method"}` or `{"name", "trusted": true}`:
/// answers with `txt_name` and `txt_value` to publish.
pub(super) async fn add(
    State(st): State<Arc<AdminState>>,
    Extension(tok): Extension<TokenRecord>,
    Path(tenant): Path<String>,
    Json(b): Json<AddBody>,
) -> ApiResult {
    let p = policy(&st, &tenant)?;
    let method = match (b.trusted, b.method.as_deref()) {
        (true, None) => DomainMethod::Trusted,
        (false, Some(m)) => match DomainMethod::parse(m) {
            Ok(DomainMethod::Trusted) | Err(_) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "method must be dns-01 or dns-persist-01 (or trusted: true)",
                ))
            }
            Ok(m) => m,
        },
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "give either method or trusted: true",
            ))
        }
    };
    let now = now_unix();
    let rec = crate::ra::add_domain(st.db.as_ref(), &p, &b.name, method, &actor(&tok), now)
        .await
        .map_err(domain_error)?;
    let mut v = rec.summary_json(now);
    v["txt_name"] = json!(rec.txt_name);
    v["txt_value"] = json!(rec.txt_value);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `POST /api/tenants/{tenant}/domains/{name}/validate`
pub(super) async fn validate(
    State(st): State<Arc<AdminState>>,
    Extension(tok): Extension<TokenRecord>,
    Path((tenant, name)): Path<(String, String)>,
) -> ApiResult {
    let p = policy(&st, &tenant)?;
    let now = now_unix();
    let rec = crate::ra::validate_domain(st.db.as_ref(), &st.va, &p, &name, &actor(&tok), now)
        .await
        .map_err(domain_error)?;
    Ok(Json(rec.summary_json(now)).into_response())
}

/// `POST /api/tenants/{tenant}/domains/{name}/remove`
pub(super) async fn remove(
    State(st): State<Arc<AdminState>>,
    Extension(tok): Extension<TokenRecord>,
    Path((tenant, name)): Path<(String, String)>,
) -> ApiResult {
    let p = policy(&st, &tenant)?;
    crate::ra::remove_domain(st.db.as_ref(), &p, &name, &actor(&tok), now_unix())
        .await
        .map_err(domain_error)?;
    Ok(Json(json!({ "tenant": tenant, "removed": name })).into_response())
}
