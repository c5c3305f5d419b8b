//! Orders: newOrder (RFC 8555 §7.4), order status, and finalize.

use super::jose::AccountPost;
use super::ratelimit::{Charge, Limit};
use super::{json_response, reply, Wfe};
use crate::clock::rfc3339;
use crate::error::Error;
use crate::ra::OrderView;
use crate::tenant::Tenant;
use acme_types::wire::{self, OrderStatus};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;
use std::sync::Arc;

pub(super) fn order_json(t: &Tenant, v: &OrderView) -> serde_json::Value {
    let o = &v.order;
    let mut body = json!({
        "status": v.status,
        "expires": rfc3339(o.expires),
        "identifiers": o.identifiers,
        "authorizations": o.authz_ids.iter().map(|a| t.url(&format!("authz/{a}"))).collect::<Vec<_>>(),
        "finalize": t.url(&format!("order/{}/finalize", o.id)),
    });
    if let Some(cert) = &o.cert_id {
        body["certificate"] = json!(t.url(&format!("cert/{cert}")));
    }
    if let Some(lc) = &v.lifecycle {
        // draft-aaron-acme-profiles §4: the order object names its profile.
        body["profile"] = json!(lc.profile);
    }
    if let Some(err) = o
        .error
        .as_ref()
        .and_then(|e| serde_json::from_str::<serde_json::Value>(e).ok())
    {
        body["error"] = err;
    }
    body
}

fn order_response(t: &Tenant, v: &OrderView, status: StatusCode) -> Response {
    let mut resp = json_response(
        status,
        &order_json(t, v),
        Some(&t.url(&format!("order/{}", v.order.id))),
    );
    if v.status == OrderStatus::Processing {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

pub(super) async fn new_order(State(wfe): State<Arc<Wfe>>, v: AccountPost) -> Response {
    reply(
        async {
            let (t, acct) = (&v.tenant, &v.account);
            let body: wire::NewOrder = v.json()?;
            if body.not_before.is_some() || body.not_after.is_some() {
                // §7.4 lets the server refuse these; the validity period is the CA's policy.
                return Err(Error::malformed(
                    "notBefore and notAfter are not supported: the CA sets the validity period",
                ));
            }
            let opts = crate::ra::OrderOptions {
                profile: body.profile,
                replaces: body.replaces,
            };
            let idents = body.identifiers;
            // §6.6: refused before anything is stored; given back if the order is not made.
            let charges = new_order_charges(&wfe, &t.name, &acct.id, &idents);
            wfe.limits().take(&t.name, &charges).await?;
            let view = match wfe.ra.new_order_with(t, acct, &idents, &opts).await {
                Ok(view) => view,
                Err(e) => {
                    wfe.limits().refund(&t.name, &charges).await;
                    return Err(e);
                }
            };
            Ok(order_response(t, &view, StatusCode::CREATED))
        }
        .await,
    )
}

/// The buckets a newOrder draws from: the account's, and each distinct registered name's.
fn new_order_charges(
    wfe: &Wfe,
    tenant: &str,
    account: &str,
    idents: &[wire::Identifier],
) -> Vec<Charge> {
    let mut charges = vec![(Limit::NewOrdersPerAccount, account.to_string())];
    let mut names: Vec<String> = idents
        .iter()
        .map(|i| wfe.limits().name_key(tenant, &i.value))
        .collect();
    names.sort();
    names.dedup();
    charges.extend(names.into_iter().map(|n| (Limit::CertificatesPerName, n)));
    charges
}

pub(super) async fn order(
    State(wfe): State<Arc<Wfe>>,
    Path((_, id)): Path<(String, String)>,
    v: AccountPost,
) -> Response {
    reply(
        async {
            v.require_post_as_get()?;
            let view = wfe.ra.get_order(&v.tenant, &v.account, &id).await?;
            Ok(order_response(&v.tenant, &view, StatusCode::OK))
        }
        .await,
    )
}

pub(super) async fn finalize(
    State(wfe): State<Arc<Wfe>>,
    Path((_, id)): Path<(String, String)>,
    v: AccountPost,
) -> Response {
    reply(
        async {
            let body: wire::Finalize = v.json()?;
            let csr = acme_types::b64::decode(&body.csr).map_err(|e| {
                Error::acme(
                    acme_types::problem::ProblemType::BadCsr,
                    format!("csr is not base64url: {e}"),
                )
            })?;
            let view = wfe.ra.finalize(&v.tenant, &v.account, &id, csr).await?;
            Ok(order_response(&v.tenant, &view, StatusCode::OK))
        }
        .await,
    )
}
