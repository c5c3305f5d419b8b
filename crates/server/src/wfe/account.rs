//! Accounts: newAccount (RFC 8555 §7.3), account update/deactivation (§7.3.2, §7.3.6),
//! the orders list (§7.1.2.1) and keyChange (§7.3.5).

use super::jose::{jws_error, AccountPost, NewKey, SignedPost};
use super::{json_response, reply, Wfe};
use crate::error::Error;
use crate::ra::{statuses, AccountUpdate, NewAccount};
use crate::sa::AccountRecord;
use crate::tenant::Tenant;
use acme_types::wire;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use std::sync::Arc;

/// The account object (RFC 8555 §7.1.2).
pub(super) fn account_object(t: &Tenant, a: &AccountRecord) -> wire::Account {
    wire::Account {
        status: statuses::account_status(a.status),
        contact: a.contact.clone(),
        terms_of_service_agreed: Some(a.tos_agreed),
        external_account_binding: None,
        orders: Some(t.url(&format!("acct/{}/orders", a.id))),
    }
}

/// The account object with `externalAccountBinding` (§7.1.2) when it was created with one.
async fn account_object_with_eab(
    wfe: &Wfe,
    t: &Tenant,
    a: &AccountRecord,
) -> Result<wire::Account, Error> {
    Ok(wire::Account {
        external_account_binding: wfe.ra.account_binding(a).await?,
        ..account_object(t, a)
    })
}

pub(super) async fn new_account(State(wfe): State<Arc<Wfe>>, v: SignedPost<NewKey>) -> Response {
    reply(
        async {
            let (t, ip) = (&v.tenant, v.client_ip);
            let body: wire::NewAccount = v.json()?;
            // §6.6: creating accounts is limited per client IP; finding an existing one is not.
            let charges: Vec<_> = ip
                .filter(|_| !body.only_return_existing)
                .map(|ip| (super::ratelimit::Limit::NewAccountsPerIp, ip.to_string()))
                .into_iter()
                .collect();
            let mut charged = !charges.is_empty();
            if let Err(e) = wfe.limits().take(&t.name, &charges).await {
                let exists = wfe
                    .ra
                    .storage()
                    .get_account_by_key(&t.name, &v.jwk.thumbprint())
                    .await?
                    .is_some();
                if !exists {
                    return Err(e);
                }
                charged = false;
            }
            let result = wfe
                .ra
                .new_account(
                    t,
                    &v.jwk,
                    NewAccount {
                        contact: body.contact.unwrap_or_default(),
                        tos_agreed: body.terms_of_service_agreed.unwrap_or(false),
                        only_return_existing: body.only_return_existing,
                        // §7.3.4: verified (url, payload key, MAC) and consumed by the RA.
                        eab_binding: body.external_account_binding,
                        eab_kid: None,
                    },
                )
                .await;
            if charged && !matches!(result, Ok((_, true))) {
                wfe.limits().refund(&t.name, &charges).await;
            }
            let (acct, created) = result?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(
                status,
                &account_object_with_eab(&wfe, t, &acct).await?,
                Some(&t.account_url(&acct.id)),
            ))
        }
        .await,
    )
}

pub(super) async fn account(
    State(wfe): State<Arc<Wfe>>,
    Path((_, id)): Path<(String, String)>,
    v: AccountPost,
) -> Response {
    reply(
        async {
            let (t, acct) = (&v.tenant, &v.account);
            if acct.id != id {
                return Err(Error::unauthorized(
                    "the request is signed by a different account",
                ));
            }
            let acct = if v.is_post_as_get() {
                acct.clone()
            } else {
                let upd: wire::AccountUpdate = v.json()?;
                wfe.forget_account(&acct.id);
                wfe.ra
                    .update_account(
                        acct,
                        AccountUpdate {
                            contact: upd.contact,
                            status: upd.status,
                        },
                    )
                    .await?
            };
            Ok(json_response(
                StatusCode::OK,
                &account_object_with_eab(&wfe, t, &acct).await?,
                Some(&t.account_url(&acct.id)),
            ))
        }
        .await,
    )
}

#[derive(serde::Deserialize)]
pub(super) struct Cursor {
    cursor: Option<String>,
}

pub(super) async fn orders(
    State(wfe): State<Arc<Wfe>>,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<Cursor>,
    v: AccountPost,
) -> Response {
    reply(
        async {
            let (t, acct) = (&v.tenant, &v.account);
            v.require_post_as_get()?;
            if acct.id != id {
                return Err(Error::unauthorized(
                    "an account can only list its own orders",
                ));
            }
            let (ids, next) = wfe.ra.list_orders(acct, q.cursor.as_deref()).await?;
            let list = wire::OrdersList {
                orders: ids.iter().map(|o| t.url(&format!("order/{o}"))).collect(),
            };
            let mut resp = json_response(StatusCode::OK, &list, None);
            if let Some(next) = next {
                // §7.1.2.1: further pages are linked with rel="next".
                let link = format!(
                    "<{}?cursor={}>;rel=\"next\"",
                    t.url(&format!("acct/{id}/orders")),
                    next
                );
                if let Ok(v) = HeaderValue::from_str(&link) {
                    resp.headers_mut().append(header::LINK, v);
                }
            }
            Ok(resp)
        }
        .await,
    )
}

pub(super) async fn key_change(State(wfe): State<Arc<Wfe>>, outer: AccountPost) -> Response {
    reply(
        async {
            let (t, acct) = (&outer.tenant, &outer.account);
            // §7.3.5: the inner JWS is signed by the new key, names the account and the old key.
            let inner = outer.jws.parse_inner_keychange().map_err(jws_error)?;
            let (new_key, body) = (inner.new_key, inner.key_change);
            wfe.forget_account(&acct.id);
            let acct = wfe.ra.change_key(t, acct, &body.old_key, &new_key).await?;
            Ok(json_response(
                StatusCode::OK,
                &account_object(t, &acct),
                Some(&t.account_url(&acct.id)),
            ))
        }
        .await,
    )
}
