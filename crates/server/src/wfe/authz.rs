//! Authorizations (RFC 8555 §7.5) and challenges (§7.5.1).

use super::jose::{riding, Riding, RidingPost};
use super::order::{refund_order_charges, stored_problem, take_order_charges};
use super::{json_response, reply, Wfe};
use crate::clock::rfc3339;
use crate::error::Error;
use crate::ra::statuses::{self, challenge_status};
use crate::sa::{AuthzRecord, ChallengeRecord};
use crate::tenant::Tenant;
use acme_types::wire::{self, AuthorizationStatus, ChallengeStatus};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use std::sync::Arc;

/// The challenge object (RFC 8555 §7.1.5, §8).
fn challenge_object(t: &Tenant, c: &ChallengeRecord) -> wire::Challenge {
    wire::Challenge {
        r#type: statuses::challenge_type(c.kind).as_str().to_owned(),
        url: t.url(&format!("chall/{}", c.id)),
        status: challenge_status(c.status),
        token: Some(c.token.clone()),
        validated: c.validated_at.map(rfc3339),
        error: c.error.as_deref().and_then(stored_problem),
    }
}

/// The authorization object (RFC 8555 §7.1.4) with its status now.
pub(super) fn authz_object(
    t: &Tenant,
    a: &AuthzRecord,
    status: AuthorizationStatus,
) -> wire::Authorization {
    wire::Authorization {
        identifier: statuses::identifier(&a.identifier),
        status,
        expires: Some(rfc3339(a.expires)),
        // §7.1.4: a valid authorization lists only the challenge that validated it.
        challenges: a
            .challenges
            .iter()
            .filter(|c| {
                status != AuthorizationStatus::Valid
                    || challenge_status(c.status) == ChallengeStatus::Valid
            })
            .map(|c| challenge_object(t, c))
            .collect(),
        wildcard: a.wildcard.then_some(true),
        // RFC 9444 §4.1: this authorization also covers the names below its identifier.
        subdomain_auth_allowed: a.subdomain_auth_allowed,
    }
}

/// newAuthz (RFC 8555 §7.4.1): 201 with the authorization and its `Location`.
pub(super) async fn new_authz(State(wfe): State<Arc<Wfe>>, v: RidingPost) -> Response {
    let Riding(mut v) = v;
    reply(
        async {
            let body: wire::NewAuthz = v.json()?;
            if body.identifier.ancestor_domain.is_some() {
                return Err(Error::malformed(
                    "ancestorDomain belongs in newOrder identifiers (RFC 9444 §4.2), not newAuthz",
                ));
            }
            // A pre-authorization is an order's worth of work and storage: it draws from the
            // account's newOrder bucket (§6.6), given back if nothing is made. Kept in the
            // database, the token is taken by the request's first statement, with its nonce.
            let charges = vec![(
                super::ratelimit::Limit::NewOrdersPerAccount,
                v.account.id.clone(),
            )];
            let ride = take_order_charges(&wfe, &v.tenant.name, &charges).await?;
            let made = riding!(
                wfe,
                v,
                wfe.ra
                    .new_authz_spending(
                        &v.tenant,
                        &v.account,
                        &body.identifier,
                        body.subdomain_auth_allowed,
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
            Ok(json_response(
                StatusCode::CREATED,
                &authz_object(t, &view.authz, view.status),
                Some(&t.url(&format!("authz/{}", view.authz.id))),
            ))
        }
        .await,
    )
}

pub(super) async fn authz(
    State(wfe): State<Arc<Wfe>>,
    Path((_, id)): Path<(String, String)>,
    v: RidingPost,
) -> Response {
    let Riding(mut v) = v;
    reply(
        async {
            let view = if v.is_post_as_get() {
                riding!(
                    wfe,
                    v,
                    wfe.ra
                        .get_authz_spending(&v.tenant, &v.account, &id, &v.nonce)
                        .await
                )?
            } else {
                #[derive(serde::Deserialize)]
                struct Upd {
                    status: Option<String>,
                }
                let upd: Upd = v.json()?;
                match upd.status.as_deref().and_then(AuthorizationStatus::parse) {
                    Some(AuthorizationStatus::Deactivated) => {
                        wfe.spend_now(&mut v).await?;
                        wfe.ra.deactivate_authz(&v.tenant, &v.account, &id).await?
                    }
                    _ => return Err(Error::malformed(
                        "an authorization can only be updated with {\"status\": \"deactivated\"}",
                    )),
                }
            };
            let t = &v.tenant;
            let mut resp = json_response(
                StatusCode::OK,
                &authz_object(t, &view.authz, view.status),
                Some(&t.url(&format!("authz/{id}"))),
            );
            if view.status == AuthorizationStatus::Pending
                && view
                    .authz
                    .challenges
                    .iter()
                    .any(|c| challenge_status(c.status) == ChallengeStatus::Processing)
            {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Ok(resp)
        }
        .await,
    )
}

pub(super) async fn challenge(
    State(wfe): State<Arc<Wfe>>,
    Path((_, id)): Path<(String, String)>,
    v: RidingPost,
) -> Response {
    let Riding(mut v) = v;
    reply(
        async {
            let (ch, authz) = if v.is_post_as_get() {
                riding!(
                    wfe,
                    v,
                    wfe.ra
                        .get_challenge_spending(&v.tenant, &v.account, &id, &v.nonce)
                        .await
                )?
            } else {
                // §7.5.1: the client signals readiness with an empty JSON object; fields are
                // ignored, except `attObj` (draft-ietf-acme-device-attest §5), which carries a
                // device-attest-01 attestation object.
                let body: serde_json::Map<String, serde_json::Value> = v.json()?;
                let att_obj = match body.get("attObj") {
                    None => None,
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(_) => return Err(Error::malformed("attObj must be a base64url string")),
                };
                // §6.6: the registration authority takes a failed-validation token when it
                // starts a validation (given back on success), so an account that keeps
                // failing waits before starting more, however many it starts at once.
                match att_obj {
                    Some(att) => riding!(
                        wfe,
                        v,
                        wfe.ra
                            .respond_attestation_spending(
                                &v.tenant, &v.account, &id, &att, &v.nonce
                            )
                            .await
                    )?,
                    None => riding!(
                        wfe,
                        v,
                        wfe.ra
                            .respond_challenge_spending(&v.tenant, &v.account, &id, &v.nonce)
                            .await
                    )?,
                }
            };
            let t = &v.tenant;
            let mut resp = json_response(StatusCode::OK, &challenge_object(t, &ch), None);
            let h = resp.headers_mut();
            if let Ok(up) = HeaderValue::from_str(&format!(
                "<{}>;rel=\"up\"",
                t.url(&format!("authz/{}", authz.id))
            )) {
                h.append(header::LINK, up);
            }
            if challenge_status(ch.status) == ChallengeStatus::Processing {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Ok(resp)
        }
        .await,
    )
}
