//! Verification of signed ACME requests (RFC 8555 §6.2–6.5): content type, flattened JWS,
//! algorithm, exactly one of `jwk`/`kid`, signature, `url` and `nonce`, in an order that
//! spends no nonce and touches no state for a request that fails any check.

use super::body::{read_limited, BodyError};
use super::Wfe;
use crate::error::{Error, Result};
use crate::sa::{
    AccountGuard, AccountRecord, AccountState, GuardedSpend, KeptAccount, Nonce, PendingSpend,
};
use crate::tenant::Tenant;
use acme_types::jwk::Jwk;
use acme_types::jws::{Jws, JwsError};
use acme_types::problem::ProblemType;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path};
use axum::http::{header, request::Parts, Request};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Which key a resource accepts (§6.2): newAccount only `jwk`, revokeCert either, the rest `kid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMode {
    /// The request must carry the public key in `jwk`.
    Jwk,
    /// The request must name an existing account in `kid`.
    Kid,
    /// Either form.
    Either,
}

/// Who a resource lets sign its requests (§6.2), as a type: a handler that takes a
/// [`SignedPost<AccountRecord>`] holds the account and cannot forget to require one.
pub(super) trait KeyRule: Sized {
    /// Which header field the resource accepts.
    const MODE: KeyMode;
    /// The signer as this rule sees it, from the account `kid` named (if the request used it).
    fn from_account(account: Option<AccountRecord>) -> Result<Self>;
}

/// newAccount (§7.3): signed by the key in `jwk`, for which there is no account yet.
pub(super) struct NewKey;

impl KeyRule for NewKey {
    const MODE: KeyMode = KeyMode::Jwk;
    fn from_account(_: Option<AccountRecord>) -> Result<Self> {
        Ok(NewKey)
    }
}

/// Every account resource: signed by an existing, valid account named in `kid`.
impl KeyRule for AccountRecord {
    const MODE: KeyMode = KeyMode::Kid;
    fn from_account(account: Option<AccountRecord>) -> Result<Self> {
        account.ok_or_else(|| {
            Error::malformed("this resource requires a kid (account URL) in the JWS header")
        })
    }
}

/// revokeCert (§7.6): an account (`kid`) or the certificate's key (`jwk`).
impl KeyRule for Option<AccountRecord> {
    const MODE: KeyMode = KeyMode::Either;
    fn from_account(account: Option<AccountRecord>) -> Result<Self> {
        Ok(account)
    }
}

/// A signed POST to an ACME resource of an enabled tenant whose content type, JWS, key,
/// signature, `url` and `nonce` checked out (§6.2–6.5), signed as `A` requires: Boulder's
/// `validPOSTForAccount` as an axum extractor, so every handler opens the same way.
pub(super) struct SignedPost<A> {
    /// The tenant named in the URL.
    pub(super) tenant: Arc<Tenant>,
    /// The client's address for per-IP limits (the TCP peer, or what a trusted proxy says).
    pub(super) client_ip: Option<IpAddr>,
    /// The parsed request (header and decoded payload; empty payload = POST-as-GET, §6.3).
    pub(super) jws: Jws,
    /// The key that verified the signature.
    pub(super) jwk: Jwk,
    /// The signer: the account, no account, or either, as the resource's [`KeyRule`] says.
    pub(super) account: A,
    /// The nonce: spent, or (for a [`Riding`] request) left to the request's first read.
    pub(super) nonce: Nonce,
}

/// A signed POST whose nonce is spent by the request's first storage read when the storage
/// can (PostgreSQL: one round trip instead of two; see [`Nonce::Pending`]). The handler
/// passes `nonce` to that read, and spends it with [`Wfe::spend_now`] on any path that
/// reaches storage otherwise; a request refused before it reaches storage spends nothing.
pub(super) struct Riding<A>(pub(super) SignedPost<A>);

/// A POST signed by an existing, valid account (`kid`).
pub(super) type AccountPost = SignedPost<AccountRecord>;

/// A [`Riding`] POST signed by an existing, valid account.
pub(super) type RidingPost = Riding<AccountRecord>;

/// Runs `$call` (a registration-authority call whose first read spends `$post.nonce`) and, if
/// that read found the kept account changed (nothing spent or written), decides again on
/// the stored account ([`Wfe::recheck_account`]) and runs it once more. Evaluates to the
/// call's result, or the recheck's refusal, so the caller's clean-up runs for both.
macro_rules! riding {
    ($wfe:expr, $post:ident, $call:expr) => {
        match $call {
            Err(crate::error::Error::AccountChanged) => {
                match $wfe.recheck_account(&mut $post).await {
                    Ok(()) => $call,
                    Err(e) => Err(e),
                }
            }
            r => r,
        }
    };
}
pub(super) use riding;

impl<A> SignedPost<A> {
    /// Whether this is a POST-as-GET (§6.3): an empty payload.
    pub(super) fn is_post_as_get(&self) -> bool {
        self.jws.payload.is_empty()
    }

    /// Parses the payload as JSON; an empty payload is refused (this resource is not POST-as-GET).
    pub(super) fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        if self.is_post_as_get() {
            return Err(Error::malformed(
                "this request needs a JSON payload, not POST-as-GET",
            ));
        }
        serde_json::from_slice(&self.jws.payload)
            .map_err(|e| Error::malformed(format!("payload is not the expected JSON object: {e}")))
    }

    /// Requires POST-as-GET (§6.3): an empty payload.
    pub(super) fn require_post_as_get(&self) -> Result<()> {
        if self.is_post_as_get() {
            Ok(())
        } else {
            Err(Error::malformed(
                "this resource is read with POST-as-GET: the payload must be empty",
            ))
        }
    }
}

impl<A: KeyRule> FromRequest<Arc<Wfe>> for SignedPost<A> {
    type Rejection = Response;

    async fn from_request(req: Request<Body>, wfe: &Arc<Wfe>) -> Result<Self, Response> {
        open_post(req, wfe, false).await
    }
}

impl<A: KeyRule> FromRequest<Arc<Wfe>> for Riding<A> {
    type Rejection = Response;

    async fn from_request(req: Request<Body>, wfe: &Arc<Wfe>) -> Result<Self, Response> {
        let defer = wfe.nonces.spends_with_reads();
        open_post(req, wfe, defer).await.map(Riding)
    }
}

/// Verifies a signed POST; with `defer`, leaves its nonce to be spent by the storage.
async fn open_post<A: KeyRule>(
    req: Request<Body>,
    wfe: &Arc<Wfe>,
    defer: bool,
) -> Result<SignedPost<A>, Response> {
    let (mut parts, body) = req.into_parts();
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(&mut parts, wfe)
        .await
        .map_err(IntoResponse::into_response)?;
    let name = params.get("tenant").map(String::as_str).unwrap_or("");
    let opened = async {
        let tenant = wfe.tenant(name)?;
        let client_ip = wfe.cfg.trusted_proxies.client_of_parts(&parts);
        let (jws, jwk, account, nonce) = wfe
            .verify_post(&tenant, parts, body, A::MODE, defer)
            .await?;
        Ok(SignedPost {
            tenant,
            client_ip,
            jws,
            jwk,
            account: A::from_account(account)?,
            nonce,
        })
    };
    opened.await.map_err(|e: Error| e.into_response())
}

pub(crate) fn jws_error(e: JwsError) -> Error {
    Error::acme(e.problem_type(), e.to_string())
}

impl Wfe {
    /// Reads and verifies a signed POST for `tenant`: the JWS, the key that verified it, the
    /// account its `kid` named, and its nonce: spent, or with `defer` checked and pending.
    async fn verify_post(
        &self,
        tenant: &Tenant,
        parts: Parts,
        body: Body,
        mode: KeyMode,
        defer: bool,
    ) -> Result<(Jws, Jwk, Option<AccountRecord>, Nonce)> {
        check_content_type(&parts)?;
        let body = read_limited(body, self.cfg.max_body_bytes)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => Error::malformed(format!(
                    "request body larger than {} bytes",
                    self.cfg.max_body_bytes
                ))
                .with_status(413),
                BodyError::Unreadable => {
                    Error::malformed("the request body was not received whole")
                }
            })?;
        let jws = Jws::parse(&body).map_err(jws_error)?;
        let header = &jws.header;
        // Whether the signature was already checked (against a kept account's key).
        let mut verified = false;
        let (jwk, account) = match (&header.jwk, &header.kid, mode) {
            (Some(jwk), None, KeyMode::Jwk | KeyMode::Either) => (jwk.clone(), None),
            (None, Some(kid), KeyMode::Kid | KeyMode::Either) => {
                let id = kid
                    .strip_prefix(&tenant.account_url(""))
                    .filter(|id| !id.is_empty() && !id.contains('/'))
                    .ok_or_else(|| {
                        Error::acme(
                            ProblemType::AccountDoesNotExist,
                            "kid is not an account URL of this CA",
                        )
                    })?;
                let (acct, kept) = self.kid_account(tenant, id).await?;
                let jwk = account_key(&acct)?;
                if !kept {
                    (jwk, Some((acct, false)))
                } else if jws.verify(&jwk).is_ok() {
                    verified = true;
                    (jwk, Some((acct, true)))
                } else {
                    // The kept copy may predate a key change: decide on the stored account.
                    self.forget_account(&acct.id);
                    let acct = self.ra.account_for_kid(tenant, &acct.id).await?;
                    (account_key(&acct)?, Some((acct, false)))
                }
            }
            (Some(_), None, KeyMode::Kid) => {
                return Err(Error::malformed(
                    "this resource requires kid (an account URL), not jwk",
                ))
            }
            (None, Some(_), KeyMode::Jwk) => {
                return Err(Error::malformed("this resource requires jwk, not kid"))
            }
            _ => {
                return Err(Error::malformed(
                    "the protected header must contain exactly one of jwk and kid",
                ))
            }
        };
        if !verified {
            jws.verify(&jwk).map_err(jws_error)?;
        }

        // §6.4: the signed url must be the URL the request was sent to.
        let expected = format!(
            "{}{}",
            self.cfg.base_url,
            parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
        );
        if header.url != expected {
            return Err(Error::unauthorized(format!(
                "JWS url {:?} does not match the request URL {expected:?}",
                header.url
            )));
        }
        // §6.5: redeem the nonce last, so a request failing the checks above does not spend it.
        // With a kept account, the spend is also the check that the account did not change.
        if defer {
            let (account, nonce) = pending_nonce(self, header.nonce.as_deref(), account)?;
            return Ok((jws, jwk, account, nonce));
        }
        let account = match (&header.nonce, account) {
            (Some(n), Some((acct, true))) => {
                let guard = AccountGuard {
                    id: &acct.id,
                    thumbprint: &acct.jwk_thumbprint,
                    contact_json: serde_json::to_string(&acct.contact)
                        .map_err(|e| Error::internal(format!("account contacts: {e}")))?,
                };
                match self.nonces.redeem_guarded(n, &guard).await? {
                    Some(GuardedSpend::Spent) => return Ok((jws, jwk, Some(acct), Nonce::Spent)),
                    Some(GuardedSpend::AccountChanged) => {
                        // Decide on the stored account: a deactivated one is refused there,
                        // one whose key changed fails the signature check, and one whose
                        // contacts changed goes on with a nonce spent the ordinary way.
                        self.forget_account(&acct.id);
                        let fresh = self.ra.account_for_kid(tenant, &acct.id).await?;
                        jws.verify(&account_key(&fresh)?).map_err(jws_error)?;
                        Some(fresh)
                    }
                    Some(GuardedSpend::Replayed) | None => {
                        crate::metrics::nonce_rejected("unknown");
                        return Err(bad_nonce());
                    }
                }
            }
            (_, account) => account.map(|(a, _)| a),
        };
        match &header.nonce {
            Some(n) if self.nonces.redeem(n).await? => {}
            Some(_) => {
                crate::metrics::nonce_rejected("unknown");
                return Err(bad_nonce());
            }
            None => {
                crate::metrics::nonce_rejected("missing");
                return Err(Error::acme(
                    ProblemType::BadNonce,
                    "the protected header must contain a nonce",
                ));
            }
        }
        Ok((jws, jwk, account, Nonce::Spent))
    }

    /// Spends `post`'s nonce now if it is still pending: for a [`Riding`] request on a path
    /// that reaches storage other than through a spending read.
    pub(super) async fn spend_now(&self, post: &mut AccountPost) -> Result<()> {
        let Nonce::Pending(p) = &post.nonce else {
            return Ok(());
        };
        let outcome = match &p.guard {
            Some(g) => {
                let guard = AccountGuard {
                    id: &g.id,
                    thumbprint: &g.thumbprint,
                    contact_json: g.contact_json.clone(),
                };
                self.nonces
                    .spend_pending_guarded(&p.id, p.expires, &guard)
                    .await?
            }
            None => match self.nonces.spend_pending(&p.id, p.expires).await? {
                true => GuardedSpend::Spent,
                false => GuardedSpend::Replayed,
            },
        };
        match crate::ra::settle_nonce(outcome) {
            Ok(()) => {
                post.nonce = Nonce::Spent;
                Ok(())
            }
            Err(Error::AccountChanged) => self.recheck_account(post).await,
            Err(e) => Err(e),
        }
    }

    /// A [`Riding`] request's spending read found the kept account it was signed as changed
    /// (nothing was spent): decides on the stored account as [`Self::verify_post`] does (a
    /// deactivated one is refused, one whose key changed fails the signature check) and
    /// spends the nonce unguarded. The caller then repeats its read.
    pub(super) async fn recheck_account(&self, post: &mut AccountPost) -> Result<()> {
        self.forget_account(&post.account.id);
        let fresh = self
            .ra
            .account_for_kid(&post.tenant, &post.account.id)
            .await?;
        post.jws.verify(&account_key(&fresh)?).map_err(jws_error)?;
        post.account = fresh;
        if let Nonce::Pending(p) = std::mem::replace(&mut post.nonce, Nonce::Spent) {
            if !self.nonces.spend_pending(&p.id, p.expires).await? {
                crate::metrics::nonce_rejected("unknown");
                return Err(bad_nonce());
            }
        }
        Ok(())
    }
}

/// A deferred spend's nonce, checked (present, made here, unexpired) but not spent, with the
/// kept account (if the signature was checked against one) as its guard.
fn pending_nonce(
    wfe: &Wfe,
    nonce: Option<&str>,
    account: Option<(AccountRecord, bool)>,
) -> Result<(Option<AccountRecord>, Nonce)> {
    let Some(n) = nonce else {
        crate::metrics::nonce_rejected("missing");
        return Err(Error::acme(
            ProblemType::BadNonce,
            "the protected header must contain a nonce",
        ));
    };
    let Some((id, expires)) = wfe.nonces.pending(n) else {
        crate::metrics::nonce_rejected("unknown");
        return Err(bad_nonce());
    };
    let guard = match &account {
        Some((acct, true)) => Some(KeptAccount {
            id: acct.id.clone(),
            thumbprint: acct.jwk_thumbprint.clone(),
            contact_json: serde_json::to_string(&acct.contact)
                .map_err(|e| Error::internal(format!("account contacts: {e}")))?,
        }),
        _ => None,
    };
    Ok((
        account.map(|(a, _)| a),
        Nonce::Pending(PendingSpend { id, expires, guard }),
    ))
}

impl Wfe {
    /// The account `kid` named, and whether it is a kept copy (to be confirmed by the guarded
    /// nonce spend) rather than read from storage just now.
    async fn kid_account(&self, tenant: &Tenant, id: &str) -> Result<(AccountRecord, bool)> {
        let Some(cache) = &self.accounts else {
            return Ok((self.ra.account_for_kid(tenant, id).await?, false));
        };
        match cache.get(id) {
            // Another tenant's account, or one this node saw leave `valid`: decide on storage.
            Some(a) if a.tenant == tenant.name && a.status == AccountState::Valid => Ok((a, true)),
            _ => {
                let acct = self.ra.account_for_kid(tenant, id).await?;
                cache.put(&acct);
                Ok((acct, false))
            }
        }
    }

    /// Drops a kept account (this node changed it, or a request found it changed).
    pub(crate) fn forget_account(&self, id: &str) {
        if let Some(cache) = &self.accounts {
            cache.forget(id);
        }
    }
}

/// The account's key as stored.
fn account_key(acct: &AccountRecord) -> Result<Jwk> {
    let v: serde_json::Value = serde_json::from_str(&acct.jwk)
        .map_err(|e| Error::internal(format!("stored account key: {e}")))?;
    Jwk::from_json(&v).map_err(|e| Error::internal(format!("stored account key: {e}")))
}

fn bad_nonce() -> Error {
    Error::bad_nonce()
}

/// §6.2: signed requests use `application/jose+json`.
fn check_content_type(parts: &Parts) -> Result<()> {
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/jose+json") {
        Ok(())
    } else {
        Err(Error::malformed(format!(
            "Content-Type must be application/jose+json, not {ct:?}"
        ))
        .with_status(415))
    }
}
