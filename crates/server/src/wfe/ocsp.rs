//! The OCSP responder over HTTP (RFC 6960 Appendix A; RFC 5019 for the caching profile):
//! `GET /ocsp/<tenant>/<base64 DER request>` and `POST /ocsp/<tenant>` with
//! `application/ocsp-request`. Served on the plain-HTTP listener (relying parties fetch OCSP
//! without TLS) and on the HTTPS one.

use super::{reply, Wfe};
use crate::ca::ocsp::OcspAnswer;
use crate::error::Error;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::sync::Arc;

/// Largest OCSP request accepted (a request for a few certificates is a few hundred octets).
const MAX_REQUEST: usize = 8 * 1024;

/// How long shared HTTP caches may keep a response. Short, so a revocation reaches relying
/// parties behind a cache within a minute, whatever the response's nextUpdate says.
const CACHE_MAX_AGE: i64 = 60;

fn http_date(unix: i64) -> Option<HeaderValue> {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).ok()?;
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    HeaderValue::from_str(&t.format(&fmt).ok()?).ok()
}

fn ocsp_http(a: OcspAnswer, now: i64, get: bool) -> Response {
    let mut resp = (StatusCode::OK, Body::from(a.der)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/ocsp-response"),
    );
    match (a.cacheable && get, a.this_update, a.next_update) {
        (true, Some(this), Some(next)) => {
            let max_age = (next - now).clamp(0, CACHE_MAX_AGE);
            if let Ok(v) = HeaderValue::from_str(&format!(
                "public, max-age={max_age}, no-transform, must-revalidate"
            )) {
                h.insert(header::CACHE_CONTROL, v);
            }
            if let Some(v) = http_date(this) {
                h.insert(header::LAST_MODIFIED, v);
            }
            if let Some(v) = http_date(now + max_age) {
                h.insert(header::EXPIRES, v);
            }
        }
        _ => {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    resp
}

async fn answer(wfe: &Wfe, ca_id: &str, der: &[u8], get: bool) -> Result<Response, Error> {
    // `ca_id` is the id of an issuing CA, active or retired (`IssuingCa::id`).
    let a = wfe.status.ocsp(ca_id, der).await?;
    Ok(ocsp_http(a, wfe.ra.clock().unix(), get))
}

fn malformed() -> Response {
    let der = pki::ocsp::error_response(&pki::ocsp::OcspError::Malformed(String::new()));
    ocsp_http(
        OcspAnswer {
            der,
            this_update: None,
            next_update: None,
            cacheable: false,
        },
        0,
        false,
    )
}

/// RFC 6960 Appendix A.1: GET with the base64 DER request (URL-encoded) as the last path part.
pub(super) async fn ocsp_get(
    State(wfe): State<Arc<Wfe>>,
    Path((tenant, encoded)): Path<(String, String)>,
) -> Response {
    let cleaned: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cleaned.as_bytes()));
    match der {
        Ok(der) if der.len() <= MAX_REQUEST => reply(answer(&wfe, &tenant, &der, true).await),
        _ => malformed(),
    }
}

/// RFC 6960 Appendix A.1: POST with `Content-Type: application/ocsp-request`.
pub(super) async fn ocsp_post(
    State(wfe): State<Arc<Wfe>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ct_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("application/ocsp-request"));
    if !ct_ok || body.len() > MAX_REQUEST {
        return malformed();
    }
    reply(answer(&wfe, &tenant, &body, false).await)
}
