//! The directory (RFC 8555 §7.1.1) and newNonce (§7.2).

use super::{json_response, reply, Wfe};
use acme_types::wire;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub(super) async fn directory(State(wfe): State<Arc<Wfe>>, Path(tenant): Path<String>) -> Response {
    reply(wfe.tenant(&tenant).map(|t| {
        let body = wire::Directory {
            new_nonce: t.url("new-nonce"),
            new_account: t.url("new-account"),
            new_order: t.url("new-order"),
            // RFC 8555 §7.4.1 pre-authorization.
            new_authz: Some(t.url("new-authz")),
            revoke_cert: t.url("revoke-cert"),
            key_change: t.url("key-change"),
            // RFC 9773 §3: clients append "/" and the certID.
            renewal_info: Some(t.url("renewal-info")),
            meta: Some(wire::DirectoryMeta {
                terms_of_service: t.terms_of_service.clone(),
                website: t.website.clone(),
                caa_identities: t.caa_identities.clone(),
                external_account_required: t.external_account_required,
                // draft-aaron-acme-profiles §3: profile name -> description.
                profiles: Some(
                    t.ca.profiles()
                        .iter()
                        .map(|p| (p.name.clone(), p.description.clone()))
                        .collect(),
                ),
                // RFC 9444 §4.1: newAuthz accepts subdomainAuthAllowed.
                subdomain_auth_allowed: true,
            }),
        };
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
