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
                            r#type: s.identifier.r#type,
                            value: s.identifier.value,
                            ancestor_domain: None,
                        }),
                    })
                    .collect();
                (p, status, a.location, a.retry_after)
            }
            Error::AccountChanged => {
                // Handled by the front end, which retries on the stored account; reaching
                // here is a bug, answered like one.
                tracing::error!("a changed account reached the response");
                let mut p = Problem::new(
                    acme_types::problem::ProblemType::ServerInternal,
                    "internal error; please retry later",
                );
                p.status = Some(500);
                (p, 500, None, Some(5))
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
            Error::Unavailable(e) => {
                // One line per failed request while the database is away; the driver's message
                // (refused, reset, pool timeout) names no credentials, and the client gets a
                // fixed text.
                tracing::warn!(error = %e, source = ?std::error::Error::source(&*e), "database unavailable");
                let mut p = Problem::new(
                    acme_types::problem::ProblemType::ServerInternal,
                    "the database is temporarily unavailable; retry after the Retry-After delay",
                );
                p.status = Some(500);
                // 3-6 s, spread so that the clients refused during an outage do not all come
                // back in the same second when it ends.
                let secs = 3 + u64::from(rand::random::<u8>() % 4);
                (p, 500, None, Some(secs))
            }
            Error::SignerUnavailable(e) => {
                // The token's error names the module and token, never the PIN.
                tracing::warn!(error = %e, source = ?std::error::Error::source(&*e), "CA signer unavailable");
                let mut p = Problem::new(
                    acme_types::problem::ProblemType::ServerInternal,
                    "the CA's signing key is temporarily unavailable; retry after the Retry-After delay",
                );
                p.status = Some(500);
                (p, 500, None, Some(30))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn database_outage_is_500_with_retry_after_and_no_internals() {
        let e: Error = crate::sa::SaError::Db(sqlx::Error::PoolTimedOut).into();
        let resp = e.into_response();
        assert_eq!(resp.status(), 500);
        let secs: u64 = resp.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((3..=6).contains(&secs), "{secs}");
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        let p: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(p["type"], "urn:ietf:params:acme:error:serverInternal");
        assert_eq!(p["status"], 500);
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.contains("database is temporarily unavailable"));
        assert!(
            !detail.contains("pool"),
            "driver text stays in the log: {detail}"
        );
    }
}
