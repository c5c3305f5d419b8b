//! Reads a running `fleetca serve`'s Prometheus counters from its admin listener, so a test
//! can check what the server did rather than what a client reported.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{https_get, Fleetca};

/// The admin listener's base URL, as the `serve` writing `log` printed it. `serve` starts
/// the ACME listener before the admin one, so a server that answers ACME may not have printed
/// this line yet: it is polled for.
pub(crate) fn admin_url(log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(url) = text.lines().find_map(|l| {
            l.split_once("Admin (dashboard, /api, /metrics) on ")
                .map(|(_, u)| u.trim().to_string())
        }) {
            return url;
        }
        assert!(
            Instant::now() < deadline,
            "serve printed no admin URL:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `/metrics` text of the `serve` writing `log` (its TLS anchored at `root_pem`).
pub(crate) fn scrape_log(log: &Path, root_pem: &Path) -> String {
    let url = format!("{}/metrics", admin_url(log));
    let (status, body) = https_get(&url, root_pem).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(status, 200, "GET {url}: {body}");
    body
}

/// The `/metrics` text of `ca`.
pub(crate) fn scrape(ca: &Fleetca) -> String {
    scrape_log(&ca.scratch().join("fleetca.log"), ca.root_pem_path())
}

/// The sum of the samples of metric `name` whose labels include every `labels` pair (written
/// as `key="value"`), in Prometheus text `text`; 0 when there are none.
pub(crate) fn sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((m, r)) => (m, r),
                None => (series, ""),
            };
            (metric == name && labels.iter().all(|p| rest.contains(p)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .fold(0.0, |a, b| a + b)
}

/// How many times `ca` has called each storage operation in `ops` so far, from its
/// `fleetca_db_operation_duration_seconds` (one sample per call). Blocks: from an async test,
/// call it inside `tokio::task::block_in_place`.
pub(crate) fn db_calls<const N: usize>(ca: &Fleetca, ops: [&str; N]) -> [f64; N] {
    let text = scrape(ca);
    ops.map(|op| {
        let label = format!("op=\"{op}\"");
        sum(
            &text,
            "fleetca_db_operation_duration_seconds_count",
            &[&label],
        )
    })
}
