//! `GET /api/stats`: what the dashboard draws, bucketed from the database (not from this
//! process's metrics, so every node of a cluster shows the same picture).

use super::api::ApiError;
use super::ops::now_unix;
use super::AdminState;
use crate::ra::default_window;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Deserialize)]
pub(super) struct StatsQuery {
    /// Hours of issuance/error history (default 48, at most 720).
    hours: Option<u32>,
    /// Days of renewal forecast (default 14, at most 90).
    days: Option<u32>,
}

/// `GET /api/stats`
pub(super) async fn stats(
    State(st): State<Arc<AdminState>>,
    Query(q): Query<StatsQuery>,
) -> Result<Response, ApiError> {
    let now = now_unix();
    let hours = i64::from(q.hours.unwrap_or(48).clamp(1, 720));
    let days = i64::from(q.days.unwrap_or(14).clamp(1, 90));
    let since = (now / 3600 - hours + 1) * 3600;
    let today = now / 86_400 * 86_400;
    let until = today + days * 86_400;

    let mut tenants: Vec<String> = st.tenants.all().iter().map(|t| t.name.clone()).collect();
    let counts = st.db.cert_counts(now).await?;
    for c in &counts {
        if !tenants.contains(&c.tenant) {
            tenants.push(c.tenant.clone());
        }
    }
    let issued = st.db.issued_per_hour(since).await?;
    let failed = st.db.failed_validations_per_hour(since).await?;
    // Renewal load: each certificate counted on the day its ARI window opens (overdue ones
    // today), using the same default window the ARI endpoint serves.
    let mut renewals: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for r in st.db.renewal_candidates(now, until).await? {
        let start = r
            .override_start
            .unwrap_or_else(|| default_window(r.not_before, r.not_after, &r.serial).0);
        if start >= until {
            continue;
        }
        let day = (start.max(now) / 86_400) * 86_400;
        *renewals.entry((r.tenant, day)).or_default() += 1;
    }

    let series = |rows: &[crate::sa::Bucket], tenant: &str, n: i64, width: i64, first: i64| {
        let mut v = vec![0i64; n as usize];
        for b in rows.iter().filter(|b| b.tenant == tenant) {
            let i = (b.start - first) / width;
            if (0..n).contains(&i) {
                v[i as usize] += b.count;
            }
        }
        v
    };
    let per_tenant: Vec<_> = tenants
        .iter()
        .map(|t| {
            let c = counts
                .iter()
                .find(|c| &c.tenant == t)
                .cloned()
                .unwrap_or_default();
            let renew: Vec<crate::sa::Bucket> = renewals
                .iter()
                .filter(|((rt, _), _)| rt == t)
                .map(|((rt, d), n)| crate::sa::Bucket {
                    tenant: rt.clone(),
                    start: *d,
                    count: *n,
                })
                .collect();
            json!({
                "tenant": t,
                "certificates": {
                    "valid": c.valid,
                    "expiring_24h": c.expiring_24h,
                    "revoked": c.revoked,
                    "expired": c.expired,
                },
                "issued_per_hour": series(&issued, t, hours, 3600, since),
                "failed_validations_per_hour": series(&failed, t, hours, 3600, since),
                "renewals_per_day": series(&renew, t, days, 86_400, today),
            })
        })
        .collect();
    Ok(Json(json!({
        "now": now,
        "hours_start": since,
        "days_start": today,
        "tenants": per_tenant,
    }))
    .into_response())
}
