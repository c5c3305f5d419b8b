//! Verification of signed ACME requests (RFC 8555 §6.2–6.5): content type, flattened JWS,
//! algorithm, exactly one of `jwk`/`kid`, signature, `url` and `nonce`, in an order that
//! spends no nonce and touches no state for a request that fails any check.

use super::Wfe;
use crate::error::{Error, Result};
use crate::sa::AccountRecord;
use crate::tenant::Tenant;
use acme_types::jwk::Jwk;
use acme_types::jws::{Jws, JwsError};
use acme_types::problem::ProblemType;
use axum::body::{to_bytes, Body};
use axum::http::{header, request::Parts, Request};

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

/// A request whose signature, URL and nonce checked out.
pub struct Verified {
    /// The parsed request (header and decoded payload; empty payload = POST-as-GET, §6.3).
    pub jws: Jws,
    /// The key that verified the signature.
    pub jwk: Jwk,
    /// The account, when the request used `kid`.
    pub account: Option<AccountRecord>,
}

impl Verified {
    /// The account, which `KeyMode::Kid` guarantees.
    pub fn account(&self) -> Result<&AccountRecord> {
        self.account.as_ref().ok_or_else(|| {
            Error::malformed("this resource requires a kid (account URL) in the JWS header")
        })
    }

    /// Parses the payload as JSON; an empty payload is refused (this resource is not POST-as-GET).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        if self.jws.payload.is_empty() {
            return Err(Error::malformed(
                "this request needs a JSON payload, not POST-as-GET",
            ));
        }
        serde_json::from_slice(&self.jws.payload)
            .map_err(|e| Error::malformed(format!("payload is not the expected JSON object: {e}")))
    }

    /// Requires POST-as-GET (§6.3): an empty payload.
    pub fn require_post_as_get(&self) -> Result<()> {
        if self.jws.payload.is_empty() {
            Ok(())
        } else {
            Err(Error::malformed(
                "this resource is read with POST-as-GET: the payload must be empty",
            ))
        }
    }
}

pub(crate) fn jws_error(e: JwsError) -> Error {
    Error::acme(e.problem_type(), e.to_string())
}

impl Wfe {
    /// Reads and verifies a signed POST for `tenant`.
    pub async fn verify_post(
        &self,
        tenant: &Tenant,
        req: Request<Body>,
        mode: KeyMode,
    ) -> Result<Verified> {
        let (parts, body) = req.into_parts();
        check_content_type(&parts)?;
        let body = to_bytes(body, self.cfg.max_body_bytes).await.map_err(|_| {
            Error::malformed(format!(
                "request body larger than {} bytes",
                self.cfg.max_body_bytes
            ))
            .with_status(413)
        })?;
        let jws = Jws::parse(&body).map_err(jws_error)?;
        let header = &jws.header;
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
                let acct = self.ra.account_for_kid(tenant, id).await?;
                let v: serde_json::Value = serde_json::from_str(&acct.jwk)
                    .map_err(|e| Error::internal(format!("stored account key: {e}")))?;
                let jwk = Jwk::from_json(&v)
                    .map_err(|e| Error::internal(format!("stored account key: {e}")))?;
                (jwk, Some(acct))
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
        jws.verify(&jwk).map_err(jws_error)?;

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
        match &header.nonce {
            Some(n) if self.nonces.redeem(n).await? => {}
            Some(_) => {
                crate::metrics::nonce_rejected("unknown");
                return Err(Error::acme(
                    ProblemType::BadNonce,
                    "nonce unknown, expired or already used; retry with the fresh Replay-Nonce",
                ));
            }
            None => {
                crate::metrics::nonce_rejected("missing");
                return Err(Error::acme(
                    ProblemType::BadNonce,
                    "the protected header must contain a nonce",
                ));
            }
        }
        Ok(Verified { jws, jwk, account })
    }
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
