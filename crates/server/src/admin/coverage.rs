//! `GET /api/coverage` (the `fleetca coverage --json` objects, paginated) and
//! `GET /api/coverage/summary` (what the dashboard's coverage panel draws: counts per tenant and
//! state, and the worst offenders). Both read the coverage table the refresher keeps, through
//! its indexes (docs/coverage.md), after the same catch-up pass the refresher runs.

use super::api::ApiError;
use super::AdminState;
use crate::sa::{CoverageFilter, CoverageState};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Default and largest page.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;
/// Rows in the dashboard's worst-offenders table.
const WORST: u32 = 20;

#[derive(Deserialize)]
pub(super) struct CoverageQuery {
    tenant: Option<String>,
    /// Comma-separated states.
    state: Option<String>,
    limit: Option<u32>,
    /// The `next` cursor of the previous page (from its `Link` header).
    after: Option<String>,
}

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, msg)
}

/// `NOTAFTER.ID` (the id never starts with a digit-dot prefix ambiguity: the first dot splits).
fn parse_cursor(s: &str) -> Result<(i64, String), ApiError> {
    let (na, id) = s
        .split_once('.')
        .ok_or_else(|| bad_request("after: not a cursor from a Link header"))?;
    let na = na
        .parse::<i64>()
        .map_err(|_| bad_request("after: not a cursor from a Link header"))?;
    if id.is_empty() || id.len() > 128 {
        return Err(bad_request("after: not a cursor from a Link header"));
    }
    Ok((na, id.to_string()))
}

/// `GET /api/coverage?tenant=&state=due,overdue&limit=&after=`: a JSON array in notAfter
/// order; a full page carries `Link: <...>; rel="next"` (RFC 8288) to the next one.
pub(super) async fn list(
    State(st): State<Arc<AdminState>>,
    Query(q): Query<CoverageQuery>,
) -> Result<Response, ApiError> {
    let states = match q.state.as_deref() {
        Some(s) => CoverageState::parse_list(s).map_err(bad_request)?,
        None => Vec::new(),
    };
    let tenant = q.tenant.filter(|t| !t.trim().is_empty());
    if let Some(t) = &tenant {
        st.tenant(t)?;
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    // Catch up with the refresher (cheap when nothing is new), so a certificate issued a
    // moment ago is listed, as `fleetca coverage` lists it.
    crate::ra::coverage::sync(st.db.as_ref()).await?;
    let after = q.after.as_deref().map(parse_cursor).transpose()?;
    let now = st.clock.unix();
    let rows = st
        .db
        .coverage_list(
            now,
            &st.coverage,
            &CoverageFilter {
                tenant: tenant.clone(),
                states: states.clone(),
                after,
                limit,
            },
        )
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| {
            rows.last()
                .map(|r| format!("{}.{}", r.not_after, r.cert_id))
        })
        .flatten();
    let mut resp = Json(&rows).into_response();
    if let Some(cursor) = next {
        let mut qs = url::form_urlencoded::Serializer::new(String::new());
        if let Some(t) = &tenant {
            qs.append_pair("tenant", t);
        }
        if !states.is_empty() {
            let s: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
            qs.append_pair("state", &s.join(","));
        }
        qs.append_pair("limit", &limit.to_string());
        qs.append_pair("after", &cursor);
        if let Ok(v) =
            HeaderValue::from_str(&format!("</api/coverage?{}>; rel=\"next\"", qs.finish()))
        {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

/// `GET /api/coverage/summary`: `{now, policy, tenants: [{tenant, counts: {state: n}}],
/// worst: [row]}`; worst offenders are the at-risk certificates that expire first.
pub(super) async fn summary(State(st): State<Arc<AdminState>>) -> Result<Response, ApiError> {
    crate::ra::coverage::sync(st.db.as_ref()).await?;
    let now = st.clock.unix();
    let counts = st.db.coverage_counts(now, &st.coverage).await?;
    let mut per: BTreeMap<String, BTreeMap<&'static str, i64>> = st
        .tenants
        .all()
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                CoverageState::ALL.iter().map(|s| (s.as_str(), 0)).collect(),
            )
        })
        .collect();
    for c in &counts {
        *per.entry(c.tenant.clone())
            .or_default()
            .entry(c.state.as_str())
            .or_default() += c.count;
    }
    let worst = st
        .db
        .coverage_list(
            now,
            &st.coverage,
            &CoverageFilter {
                states: vec![
                    CoverageState::Expiring,
                    CoverageState::Overdue,
                    CoverageState::Silent,
                ],
                limit: WORST,
                ..CoverageFilter::default()
            },
        )
        .await?;
    Ok(Json(json!({
        "now": now,
        "policy": {
            "expiring_share": st.coverage.expiring_ppm as f64 / 1e6,
            "silent_after_secs": st.coverage.silent_after,
        },
        "tenants": per
            .into_iter()
            .map(|(t, c)| json!({"tenant": t, "counts": c}))
            .collect::<Vec<_>>(),
        "worst": worst,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_cursor;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        assert_eq!(
            parse_cursor("1800000000.abc.def").ok().map(|c| c.1),
            Some("abc.def".to_string())
        );
        for bad in ["", "x.y", "12", "12."] {
            assert!(parse_cursor(bad).is_err(), "{bad}");
        }
    }
}
