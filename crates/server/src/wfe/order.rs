//! Orders: newOrder (RFC 8555 §7.4), order status, and finalize.

use super::jose::{riding, Riding, RidingPost};
use super::ratelimit::{Charge, Limit};
use super::{json_response, reply, Wfe};
use crate::clock::rfc3339;
use crate::error::Error;
use crate::ra::{statuses, OrderCharge, OrderView};
use crate::tenant::Tenant;
use acme_types::problem::Problem;
use acme_types::wire::{self, OrderStatus};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use std::sync::Arc;

/// The order object (RFC 8555 §7.1.3).
pub(super) fn order_object(t: &Tenant, v: &OrderView) -> wire::Order {
    let o = &v.order;
    wire::Order {
        status: v.status,
        expires: Some(rfc3339(o.expires)),
        identifiers: o.identifiers.iter().map(statuses::identifier).collect(),
        not_before: None,
        not_after: None,
        error: o.error.as_deref().and_then(stored_problem),
        authorizations: o
            .authz_ids
            .iter()
            .map(|a| t.url(&format!("authz/{a}")))
            .collect(),
        finalize: t.url(&format!("order/{}/finalize", o.id)),
        certificate: o.cert_id.as_ref().map(|c| t.url(&format!("cert/{c}"))),
        replaces: None,
        // draft-aaron-acme-profiles §4: the order object names its profile.
        profile: v.lifecycle.as_ref().map(|lc| lc.profile.clone()),
    }
}

/// A problem document as storage keeps it (JSON of an `acme_types::problem::Problem`);
/// one that does not parse is left out rather than failing the whole response.
pub(super) fn stored_problem(json: &str) -> Option<Problem> {
    serde_json::from_str(json).ok()
}

fn order_response(t: &Tenant, v: &OrderView, status: StatusCode) -> Response {
    let mut resp = json_response(
        status,
        &order_object(t, v),
        Some(&t.url(&format!("order/{}", v.order.id))),
    );
    if v.status == OrderStatus::Processing {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

pub(super) async fn new_order(State(wfe): State<Arc<Wfe>>, v: RidingPost) -> Response {
    let Riding(mut v) = v;
    reply(
        async {
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
            // Buckets kept in the database are taken by newOrder's first statement, with its
            // nonce; buckets in memory here, first.
            let charges = new_order_charges(&wfe, &v.tenant.name, &v.account.id, &idents);
            let ride = take_order_charges(&wfe, &v.tenant.name, &charges).await?;
            let made = riding!(
                wfe,
                v,
                wfe.ra
                    .new_order_spending(
                        &v.tenant,
                        &v.account,
                        &idents,
                        &opts,
                        &v.nonce,
                        ride.as_ref()
                    )
                    .await
            );
            let t = &v.tenant;
            let view = match made {
                Ok(view) => view,
                Err(e) => {
                    refund_order_charges(&wfe, &t.name, &charges, ride.as_ref()).await;
                    return Err(e);
                }
            };
            Ok(order_response(t, &view, StatusCode::CREATED))
        }
        .await,
    )
}

/// Takes `charges` (§6.6) for a request that makes an order's worth of objects. Buckets kept
/// in the database are taken later, by the request's first statement with its nonce: the
/// answer is then the charge to hand the registration authority. Buckets in memory are
/// taken here, now.
pub(super) async fn take_order_charges(
    wfe: &Wfe,
    tenant: &str,
    charges: &[Charge],
) -> Result<Option<OrderCharge>, Error> {
    let ride = wfe
        .limits()
        .storage_charge(tenant, charges)
        .map(|c| OrderCharge::new(c, super::ratelimit::refused_charge));
    if ride.is_none() {
        wfe.limits().take(tenant, charges).await?;
    }
    Ok(ride)
}

/// Gives `charges` back after the request made nothing, unless they were never taken (the
/// database refused them, or the request failed before its first statement).
pub(super) async fn refund_order_charges(
    wfe: &Wfe,
    tenant: &str,
    charges: &[Charge],
    ride: Option<&OrderCharge>,
) {
    if ride.is_none_or(OrderCharge::taken) {
        wfe.limits().refund(tenant, charges).await;
    }
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
    v: RidingPost,
) -> Response {
    let Riding(mut v) = v;
    reply(
        async {
            v.require_post_as_get()?;
            // Clients poll the order after finalize: its nonce rides the read.
            let view = riding!(
                wfe,
                v,
                wfe.ra
                    .get_order_spending(&v.tenant, &v.account, &id, &v.nonce)
                    .await
            )?;
            Ok(order_response(&v.tenant, &view, StatusCode::OK))
        }
        .await,
    )
}

pub(super) async fn finalize(
    State(wfe): State<Arc<Wfe>>,
    Path((_, id)): Path<(String, String)>,
    v: RidingPost,
) -> Response {
    let Riding(mut v) = v;
    reply(
        async {
            let body: wire::Finalize = v.json()?;
            let csr = acme_types::b64::decode(&body.csr).map_err(|e| {
                Error::acme(
                    acme_types::problem::ProblemType::BadCsr,
                    format!("csr is not base64url: {e}"),
                )
            })?;
            let view = riding!(
                wfe,
                v,
                wfe.ra
                    .finalize_spending(&v.tenant, &v.account, &id, csr.clone(), &v.nonce)
                    .await
            )?;
            Ok(order_response(&v.tenant, &view, StatusCode::OK))
        }
        .await,
    )
}
