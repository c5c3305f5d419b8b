//! revokeCert (RFC 8555 §7.6).

use super::jose::KeyMode;
use super::{reply, Wfe};
use crate::error::Error;
use crate::ra::RevokeAuth;
use acme_types::wire;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub(super) async fn revoke_cert(
    State(wfe): State<Arc<Wfe>>,
    Path(tenant): Path<String>,
    req: Request,
) -> Response {
    reply(
        async {
            let t = wfe.tenant(&tenant)?;
            let v = wfe.verify_post(&t, req, KeyMode::Either).await?;
            let body: wire::RevokeCert = v.json()?;
            let der = acme_types::b64::decode(&body.certificate)
                .map_err(|e| Error::malformed(format!("certificate is not base64url: {e}")))?;
            let auth = match v.account {
                Some(a) => RevokeAuth::Account(a),
                None => RevokeAuth::CertKey(v.jwk),
            };
            wfe.ra.revoke(&t, &auth, &der, body.reason).await?;
            Ok(StatusCode::OK.into_response())
        }
        .await,
    )
}
