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
                explanation_url: w.explanation_url.clone(),
            };
            let mut resp = json_response(StatusCode::OK, &body, None);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(w.retry_after));
            Ok(resp)
        }
        .await,
    )
}

/// What a "renew now" answer's default `explanationURL` shows (RFC 9773 §4.2: a page that
/// explains the window). Static text: nothing of the request is echoed.
pub(super) const RENEWAL_EXPLANATION: &str = "\
This certificate authority asks for renewal now.

The certificate this renewalInfo answer is about has passed the end of its
renewal window without being replaced, or has less than a set share of its
lifetime left. Its suggested window therefore lies in the past, which RFC 9773
section 4.2 asks clients to treat as \"renew immediately\".

If your client keeps failing to renew, check its logs: the order, the
challenge or installing the new certificate is failing. The operator of this
CA sees the certificate as \"overdue\" or \"expiring\" in its coverage view.
";

/// `GET <tenant>/renewal-explanation`: the default `explanationURL` of steered answers.
pub(super) async fn renewal_explanation(
    State(wfe): State<Arc<Wfe>>,
    Path(tenant): Path<String>,
) -> Response {
    reply(
        async {
            wfe.tenant(&tenant)?;
            let mut resp = Response::new(axum::body::Body::from(RENEWAL_EXPLANATION));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Ok(resp)
        }
        .await,
    )
}
