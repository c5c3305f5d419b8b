//! The dashboard in headless Chromium: after an issuance, the page (token in the URL fragment)
//! shows the valid-certificate count the API reports, and its search finds the certificate.
//! Chromium comes from the Debian `chromium` package (`.ci/run` installs it); outside CI a
//! missing browser skips the test, under CI it fails.

mod admin_harness;
mod client;
mod support;

use admin_harness::Env;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FLEETCA_CHROMIUM").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|n| {
            std::env::var_os("PATH")
                .map(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join(n))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .find(|p| p.is_file())
}

/// The DOM after the page's scripts ran (Chromium's virtual time waits for the fetches).
fn render(browser: &PathBuf, url: &str, profile: &std::path::Path) -> String {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(["--dump-dom", url]);
    let out = support::run(cmd, Duration::from_secs(90));
    assert!(out.success(), "chromium failed\n{out}");
    out.stdout.clone()
}

/// The text of the element with `id` (a flat element: no nested tags).
fn text_of(dom: &str, id: &str) -> Option<String> {
    let start = dom.find(&format!("id=\"{id}\""))?;
    let open_end = dom[start..].find('>')? + start + 1;
    let close = dom[open_end..].find('<')? + open_end;
    Some(dom[open_end..close].trim().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_shows_api_counts_and_finds_a_certificate() {
    let Some(browser) = chromium() else {
        support::gate(
            "dashboard_shows_api_counts_and_finds_a_certificate",
            false,
            "chromium is not installed (apt-get install chromium; .ci/run does)",
        );
        return;
    };
    let Some(env) = Env::start("dashboard_shows_api_counts_and_finds_a_certificate") else {
        return;
    };
    let serial = env.issue(&["cam7.routers.example.com"]).await;
    env.issue(&["cam8.routers.example.com"]).await;
    let token = env.token("read");

    let stats = env.get_json("/api/stats", &token).await;
    let api_valid: i64 = stats["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["certificates"]["valid"].as_i64().unwrap())
        .sum();
    assert_eq!(api_valid, 2, "{stats}");

    let profile = tempfile::tempdir().unwrap();
    let url = format!(
        "{}/#token={token}&search=cam7.routers.example.com",
        env.admin
    );
    let browser2 = browser.clone();
    let profile_path = profile.path().to_path_buf();
    let dom = tokio::task::spawn_blocking(move || render(&browser2, &url, &profile_path))
        .await
        .unwrap();

    assert!(
        dom.contains("data-loaded=\"true\""),
        "the page did not load its data:\n{dom}"
    );
    assert_eq!(
        text_of(&dom, "total-valid").as_deref(),
        Some(api_valid.to_string().as_str()),
        "valid count differs from the API's\n{dom}"
    );
    assert!(dom.contains("data-tenant=\"default\""), "{dom}");
    assert!(
        dom.contains(&format!("data-serial=\"{serial}\"")),
        "search did not find {serial}\n{dom}"
    );
    assert!(
        text_of(&dom, "search-summary").is_some_and(|s| s.starts_with("1 certificate(s)")),
        "search should find exactly one\n{dom}"
    );
    assert!(dom.contains("<svg"), "no charts drawn\n{dom}");
    assert!(!dom.contains(&token), "the token stayed in the page");
}
