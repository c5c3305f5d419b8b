//! The directory (RFC 8555 §7.1.1) and newNonce (§7.2).

use super::{json_response, reply, Wfe};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

pub(super) async fn directory(State(wfe): State<Arc<Wfe>>, Path(tenant): Path<String>) -> Response {
    reply(wfe.tenant(&tenant).map(|t| {
        let mut meta = json!({
            "caaIdentities": t.caa_identities,
            "externalAccountRequired": t.external_account_required,
            // RFC 9444 §4.1: newAuthz accepts subdomainAuthAllowed.
            "subdomainAuthAllowed": true,
        });
        if let Some(tos) = &t.terms_of_service {
            meta["termsOfService"] = json!(tos);
        }
        if let Some(site) = &t.website {
            meta["website"] = json!(site);
        }
        // draft-aaron-acme-profiles §3: profile name -> description.
        meta["profiles"] =
            t.ca.profiles()
                .iter()
                .map(|p| (p.name.clone(), json!(p.description)))
                .collect::<serde_json::Map<_, _>>()
                .into();
        let body = json!({
            "newNonce": t.url("new-nonce"),
            "newAccount": t.url("new-account"),
            "newOrder": t.url("new-order"),
            // RFC 8555 §7.4.1 pre-authorization.
            "newAuthz": t.url("new-authz"),
            "revokeCert": t.url("revoke-cert"),
            "keyChange": t.url("key-change"),
            // RFC 9773 §3: clients append "/" and the certID.
            "renewalInfo": t.url("renewal-info"),
            "meta": meta,
        });
        let mut resp = json_response(StatusCode::OK, &body, None);
        resp.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60"),
        );
        resp
    }))
}

/// §7.2: HEAD answers 200, GET 204, both with `Cache-Control: no-store`; the nonce itself is
/// added by the ACME header middleware like on every response.
pub(super) async fn new_nonce_head(
    State(wfe): State<Arc<Wfe>>,
    Path(tenant): Path<String>,
) -> Response {
    reply(wfe.tenant(&tenant).map(|_| StatusCode::OK.into_response()))
}

pub(super) async fn new_nonce_get(
    State(wfe): State<Arc<Wfe>>,
    Path(tenant): Path<String>,
) -> Response {
    reply(
        wfe.tenant(&tenant)
            .map(|_| StatusCode::NO_CONTENT.into_response()),
    )
}
