//! Plain-HTTP resources for relying parties: CRLs (RFC 5280 §5, fetched from the CRL
//! distribution point) and CA certificates (AIA caIssuers, RFC 5280 §4.2.2.1, DER).

use super::{reply, Wfe};
use crate::error::Error;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

fn der_response(der: Vec<u8>, media: &'static str, max_age: i64) -> Response {
    let mut resp = (StatusCode::OK, Body::from(der)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={}", max_age.max(0))) {
        h.insert(header::CACHE_CONTROL, v);
    }
    resp
}

pub(super) async fn crl(State(wfe): State<Arc<Wfe>>, Path(file): Path<String>) -> Response {
    reply(
        async {
            let name = file
                .strip_suffix(".crl")
                .ok_or_else(|| Error::not_found("CRL"))?;
            if name == "root" {
                let der = wfe
                    .status
                    .root_crl()
                    .ok_or_else(|| Error::not_found("CRL"))?;
                return Ok(der_response(der, "application/pkix-crl", 3600));
            }
            let crl = wfe.status.crl(name).await?;
            // Caches may keep it until shortly before nextUpdate, but not longer than an hour.
            let max_age = (crl.next_update - wfe.ra.clock().unix()).min(3600);
            Ok(der_response(crl.der, "application/pkix-crl", max_age))
        }
        .await,
    )
}

pub(super) async fn ca_cert(State(wfe): State<Arc<Wfe>>, Path(file): Path<String>) -> Response {
    reply((|| {
        let name = file
            .strip_suffix(".cer")
            .ok_or_else(|| Error::not_found("CA certificate"))?;
        let der = if name == "root" {
            wfe.ra
                .tenants()
                .iter()
                .find_map(|t| t.ca.root_der())
                .ok_or_else(|| Error::not_found("CA certificate"))?
        } else {
            wfe.ra
                .issuing_ca(name)
                .map(|ca| ca.cert_der().to_vec())
                .ok_or_else(|| Error::not_found("CA certificate"))?
        };
        Ok(der_response(der, "application/pkix-cert", 86400))
    })())
}
