//! renewalInfo (RFC 9773 §4): `GET <renewalInfo>/<certID>`, no JWS, so devices and monitoring
//! can poll it cheaply.

use super::{json_response, reply, Wfe};
use crate::clock::rfc3339;
use acme_types::ari::{RenewalInfo, SuggestedWindow};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use std::sync::Arc;

/// §4.2: `suggestedWindow` and `Retry-After` (§4.3). A certID that does not parse is
/// `malformed` (400); a certificate this CA did not issue is 404.
pub(super) async fn renewal_info(
    State(wfe): State<Arc<Wfe>>,
    Path((tenant, cert_id)): Path<(String, String)>,
) -> Response {
    reply(
        async {
            let t = wfe.tenant(&tenant)?;
            let w = wfe.ra.renewal_info(&t, &cert_id).await?;
            let body = RenewalInfo {
                suggested_window: SuggestedWindow {
                    start: rfc3339(w.start),
                    end: rfc3339(w.end),
                },
                explanation_url: None,
            };
            let body = serde_json::to_value(&body)
                .map_err(|e| crate::error::Error::internal(e.to_string()))?;
            let mut resp = json_response(StatusCode::OK, &body, None);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(w.retry_after));
            Ok(resp)
        }
        .await,
    )
}
