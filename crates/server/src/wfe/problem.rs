//! The one place domain errors become RFC 7807 problem documents (RFC 8555 §6.7).

use crate::error::Error;
use acme_types::problem::{Problem, Subproblem};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The media type of ACME problem documents (RFC 7807 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (problem, status, location, retry_after) = match self {
            Error::Acme(a) => {
                let status = a.status.unwrap_or_else(|| a.kind.default_status());
                let mut p = Problem::new(a.kind, a.detail);
                p.status = Some(status);
                p.subproblems = a
                    .subproblems
                    .into_iter()
                    .map(|s| Subproblem {
                        r#type: s.kind.urn().to_string(),
                        detail: s.detail,
                        identifier: Some(acme_types::wire::Identifier {
                            r#type: s.identifier.0,
                            value: s.identifier.1,
                        }),
                    })
                    .collect();
                (p, status, a.location, a.retry_after)
            }
            Error::Internal(e) => {
                // Logged with its chain here; the client learns nothing about internals.
                tracing::error!(error = %e, source = ?std::error::Error::source(&*e), "internal error");
                let mut p = Problem::new(
                    acme_types::problem::ProblemType::ServerInternal,
                    "internal error; please retry later",
                );
                p.status = Some(500);
                (p, 500, None, Some(5))
            }
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut resp = (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        )
            .into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(loc) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            h.insert(header::LOCATION, loc);
        }
        if status == 413 {
            // The unread rest of the body would corrupt the next request on this connection.
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
