//! revokeCert (RFC 8555 §7.6).

use super::jose::SignedPost;
use super::{reply, Wfe};
use crate::error::Error;
use crate::ra::RevokeAuth;
use crate::sa::AccountRecord;
use acme_types::wire;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// §7.6: signed by the account that ordered the certificate (`kid`) or by the certificate's
/// own key (`jwk`).
pub(super) async fn revoke_cert(
    State(wfe): State<Arc<Wfe>>,
    v: SignedPost<Option<AccountRecord>>,
) -> Response {
    reply(
        async {
            let body: wire::RevokeCert = v.json()?;
            let der = acme_types::b64::decode(&body.certificate)
                .map_err(|e| Error::malformed(format!("certificate is not base64url: {e}")))?;
            let auth = match v.account {
                Some(a) => RevokeAuth::Account(a),
                None => RevokeAuth::CertKey(v.jwk),
            };
            wfe.ra.revoke(&v.tenant, &auth, &der, body.reason).await?;
            Ok(StatusCode::OK.into_response())
        }
        .await,
    )
}
