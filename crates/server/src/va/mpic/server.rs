//! `fleetca perspective`: a remote network perspective (BR §3.2.2.9). It answers one endpoint,
//! `POST /v1/validate` with a JSON [`Check`], by running the same VA code as the primary (its own
//! resolver without cache, the same address policy: a perspective is no way into its own
//! network either) and returns an [`Answer`]: pass, or the ACME problem type and the VA's own
//! fixed-text reason. It never asks other perspectives.
//!
//! Only mutual TLS reaches it: a client certificate chaining to `--client-ca` is required at
//! the handshake, so an unauthenticated caller never gets to send a request.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

use super::{read_certs, read_key, Answer, Check, Rir, VALIDATE_PATH};
use crate::va::{Va, VaError, ValidationError, ValidationRequest};

/// Largest request body accepted (a check is a few hundred bytes).
const MAX_REQUEST_BYTES: usize = 16 * 1024;

struct PerspectiveState {
    va: Va,
    region: Rir,
}

/// The perspective's routes; `va` must have no perspectives of its own.
pub fn router(va: Va, region: Rir) -> Router {
    Router::new()
        .route(VALIDATE_PATH, post(validate))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(Arc::new(PerspectiveState { va, region }))
}

async fn validate(
    State(st): State<Arc<PerspectiveState>>,
    body: Result<Json<Check>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(check)) = body else {
        return (
            StatusCode::BAD_REQUEST,
            "the body is not a perspective check",
        )
            .into_response();
    };
    let result = match &check {
        Check::Challenge {
            identifier,
            wildcard,
            kind,
            token,
            key_authorization,
            account_uri,
            caa_identities,
            permitted,
        } => match pki::Permitted::parse(permitted) {
            Err(_) => Err(ValidationError::Malformed(
                "the permitted names do not parse".into(),
            )),
            Ok(permitted) => {
                let req = ValidationRequest {
                    target: identifier.clone(),
                    wildcard: *wildcard,
                    kind: *kind,
                    token: token.clone(),
                    key_authorization: key_authorization.clone(),
                    account_uri: account_uri.clone(),
                    caa_identities: caa_identities.clone(),
                    permitted,
                };
                st.va.validate_here(&req).await.map(drop)
            }
        },
        Check::Caa {
            name,
            wildcard,
            account_uri,
            method,
            caa_identities,
        } => {
            st.va
                .check_caa_here(name, *wildcard, account_uri, *method, caa_identities)
                .await
        }
        Check::DnsTxt { name, expected } => st.va.check_dns_txt_here(name, expected).await,
    };
    let answer = match result {
        Ok(()) => Answer {
            region: st.region,
            pass: true,
            problem: None,
            reason: None,
        },
        Err(e) => Answer {
            region: st.region,
            pass: false,
            problem: Some(e.acme_type().to_string()),
            reason: Some(e.detail().to_string()),
        },
    };
    tracing::info!(check = %check.describe(), pass = answer.pass, problem = ?answer.problem, "perspective check");
    Json(answer).into_response()
}

/// The listener's TLS: `cert`/`key` as server identity, and a client certificate chaining to
/// `client_ca` required of every caller.
pub fn tls_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<rustls::ServerConfig>, VaError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(client_ca)? {
        roots
            .add(c)
            .map_err(|e| VaError::Tls(format!("--client-ca: {e}")))?;
    }
    // No `allow_unauthenticated`: a handshake without a valid client certificate fails.
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| VaError::Tls(format!("--client-ca: {e}")))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| VaError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(cert)?, read_key(key)?)
        .map_err(|e| VaError::Tls(format!("--tls-cert/--tls-key: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
