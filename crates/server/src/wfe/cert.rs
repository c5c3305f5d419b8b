//! Certificate download (RFC 8555 §7.4.2): the leaf and the issuing CA as
//! `application/pem-certificate-chain`, with the chain up to the root offered as an alternate.

use super::jose::{riding, Riding, RidingPost};
use super::{reply, Wfe};
use crate::error::Error;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

async fn download(wfe: Arc<Wfe>, id: String, alt: Option<String>, v: RidingPost) -> Response {
    let Riding(mut v) = v;
    reply(
        async {
            v.require_post_as_get()?;
            let cert = riding!(
                wfe,
                v,
                wfe.ra
                    .get_cert_spending(&v.tenant, &v.account, &id, &v.nonce)
                    .await
            )?;
            let t = &v.tenant;
            // Each certificate is served with its own issuer's chain, also after a rollover.
            let ca = t.issuer_of(&cert).ok_or_else(|| {
                Error::internal(format!(
                    "the issuing CA {:?} of this certificate is not loaded",
                    cert.issuer_id()
                ))
            })?;
            let chains = ca.chains();
            let index = match alt.as_deref() {
                None => 0,
                Some(s) => s
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i >= 1 && *i < chains.len())
                    .ok_or_else(|| Error::not_found("alternate chain"))?,
            };
            let mut pem = pki::cert_info::der_to_pem("CERTIFICATE", &cert.der);
            pem.push_str(&chains[index]);
            let mut resp = (StatusCode::OK, Body::from(pem)).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pem-certificate-chain"),
            );
            for i in 0..chains.len() {
                if i != index {
                    let url = if i == 0 {
                        t.url(&format!("cert/{id}"))
                    } else {
                        t.url(&format!("cert/{id}/{i}"))
                    };
                    if let Ok(v) = HeaderValue::from_str(&format!("<{url}>;rel=\"alternate\"")) {
                        h.append(header::LINK, v);
                    }
                }
            }
            Ok(resp)
        }
        .await,
    )
}

pub(super) async fn certificate(
    State(wfe): State<Arc<Wfe>>,
    Path((_, id)): Path<(String, String)>,
    v: RidingPost,
) -> Response {
    download(wfe, id, None, v).await
}

pub(super) async fn certificate_alt(
    State(wfe): State<Arc<Wfe>>,
    Path((_, id, alt)): Path<(String, String, String)>,
    v: RidingPost,
) -> Response {
    download(wfe, id, Some(alt), v).await
}
