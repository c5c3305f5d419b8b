//! Partitioned CRLs over plain HTTP: `GET /crl/<tenant>/<shard>.crl` (RFC 5280 §5.2.5; see
//! `ca::crl_shard`).

use super::{reply, Wfe};
use crate::error::Error;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub(super) async fn shard_crl(
    State(wfe): State<Arc<Wfe>>,
    Path((tenant, file)): Path<(String, String)>,
) -> Response {
    reply(
        async {
            let shard: u32 = file
                .strip_suffix(".crl")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| Error::not_found("CRL"))?;
            let crl = wfe.status.shard_crl(&tenant, shard).await?;
            let clock = wfe.ra.clock();
            // Short: the shard is re-signed on the first fetch after a revocation.
            let max_age = (crl.next_update - clock.unix()).clamp(0, 60);
            let mut resp = (StatusCode::OK, Body::from(crl.der)).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pkix-crl"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
                h.insert(header::CACHE_CONTROL, v);
            }
            Ok(resp)
        }
        .await,
    )
}
