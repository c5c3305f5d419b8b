//! The admin listener against a running `fleetca serve`: bearer-token scopes (401/403 change
//! nothing), every path of the served OpenAPI document, the operator actions with their audit
//! entries, and `/metrics` counters moving after an issuance.

mod admin_harness;
mod client;
mod support;

use admin_harness::Env;
use fleetca::sa::TableCounts;
use serde_json::{json, Value};

async fn counts(env: &Env) -> (TableCounts, usize, usize) {
    let db = fleetca::sa::open_database(&env.ca.database_url())
        .await
        .expect("open db");
    let audit = db.recent_audit(10_000).await.expect("audit").len();
    let eab = db.list_eab_keys(None).await.expect("eab").len();
    (db.counts().await.expect("counts"), audit, eab)
}

/// Fills an OpenAPI path template with values that exist.
fn fill(path: &str, serial: &str, account: &str) -> String {
    path.replace("{serial}", serial)
        .replace("{id}", account)
        .replace("{kid}", "eab_unknown")
        .replace("{tenant}", "default")
        .replace("{name}", "unknown.home.arpa")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// `(path, methods)` of every `.route(...)` in `fleetca::admin::router`, from its source. Only
/// the one local `api` router may be merged in, so no route is added elsewhere.
fn router_routes() -> Vec<(String, Vec<String>)> {
    let src = include_str!("../src/admin/mod.rs");
    let start = src
        .find("pub fn router(")
        .expect("admin::router in admin/mod.rs");
    let body = &src[start..start + src[start..].find("\n}\n").expect("end of router")];
    for call in [".merge(", ".nest("] {
        for (i, _) in body.match_indices(call) {
            let arg = &body[i + call.len()..];
            assert!(
                arg.starts_with("api)"),
                "admin::router adds routes this test cannot see: {}",
                &body[i..(i + 60).min(body.len())]
            );
        }
    }
    let mut routes = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find(".route(") {
        rest = &rest[i + ".route(".len()..];
        let open = rest.find('"').expect("route path literal");
        let close = open + 1 + rest[open + 1..].find('"').expect("end of path literal");
        let path = rest[open + 1..close].to_string();
        // The handlers: up to the next builder call.
        let end = [
            ".route(",
            ".route_layer(",
            ".merge(",
            ".fallback(",
            ".layer(",
        ]
        .iter()
        .filter_map(|m| rest[close..].find(m))
        .min()
        .map_or(rest.len(), |e| close + e);
        let handlers = &rest[close..end];
        let methods: Vec<String> = ["get", "post", "put", "patch", "delete"]
            .iter()
            .filter(|m| {
                handlers.match_indices(&format!("{m}(")).any(|(i, _)| {
                    // A method router call (`get(`, `.post(`), not a handler path's tail.
                    !handlers[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
                })
            })
            .map(|m| m.to_string())
            .collect();
        assert!(!methods.is_empty(), "no method for route {path}");
        routes.push((path, methods));
    }
    assert!(routes.len() >= 12, "{routes:?}");
    routes
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api_scopes_openapi_actions_and_metrics() {
    let Some(env) = Env::start("admin_api_scopes_openapi_actions_and_metrics") else {
        return;
    };
    let read = env.token("read");
    let write = env.token("write");
    let admin = env.token("admin");

    let serial = env.issue(&["dev1.routers.example.com"]).await;

    // Search by name suffix, serial and account; show.
    let found = env
        .get_json("/api/certificates?name=routers.example.com", &read)
        .await;
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["serial"], serial.as_str());
    assert_eq!(found[0]["status"], "valid");
    let account = found[0]["account_id"].as_str().unwrap().to_string();
    let by_serial = env
        .get_json(&format!("/api/certificates?serial={serial}"), &read)
        .await;
    assert_eq!(by_serial.as_array().unwrap().len(), 1);
    let by_account = env
        .get_json(&format!("/api/certificates?account={account}"), &read)
        .await;
    assert_eq!(by_account.as_array().unwrap().len(), 1);
    let shown = env
        .get_json(&format!("/api/certificates/{serial}"), &read)
        .await;
    assert!(shown["pem"].as_str().unwrap().contains("BEGIN CERTIFICATE"));

    // The OpenAPI document: every operation exists (401 without a token, not the 404
    // fallback), reads answer 200 with a read token, and nothing changed.
    let (status, doc) = env.get("/api/openapi.json", None).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 12, "{}", paths.len());
    let before = counts(&env).await;
    for (path, ops) in paths {
        let url = fill(path, &serial, &account);
        for method in ops.as_object().unwrap().keys() {
            let public = path == "/api/openapi.json";
            let (status, body) = match method.as_str() {
                "get" => env.get(&url, None).await,
                "post" => env.post(&url, None, &json!({})).await,
                m => panic!("unexpected method {m} for {path}"),
            };
            let want = if public { 200 } else { 401 };
            assert_eq!(status, want, "{method} {url} without a token: {body}");
            if method == "get" && !public {
                let (status, body) = env.get(&url, Some(&read)).await;
                assert_eq!(status, 200, "GET {url} with a read token: {body}");
                let (status, _) = env.get(&url, Some("fca.nope.nope")).await;
                assert_eq!(status, 401, "GET {url} with a forged token");
            }
            if method == "post" {
                // A read token may change nothing; a write token may not mint EAB keys.
                let (status, body) = env.post(&url, Some(&read), &json!({"all": true})).await;
                assert_eq!(status, 403, "POST {url} with a read token: {body}");
                if path == "/api/eab" {
                    let (status, _) = env.post(&url, Some(&write), &json!({})).await;
                    assert_eq!(status, 403, "POST /api/eab with a write token");
                }
            }
        }
    }
    // The router's actual routes (read from its source, so a route left out of the OpenAPI
    // document cannot escape this test): each is documented with the same methods, or is one
    // of the few public pages, and every other one refuses a request without a token.
    let public = ["/api/openapi.json", "/", "/dashboard.js", "/metrics"];
    for (path, methods) in router_routes() {
        if public.contains(&path.as_str()) {
            continue;
        }
        let documented: Vec<String> = paths
            .get(&path)
            .and_then(Value::as_object)
            .map(|ops| ops.keys().cloned().collect())
            .unwrap_or_default();
        assert_eq!(
            sorted(methods.clone()),
            sorted(documented),
            "route {path}: methods in the router vs the OpenAPI document"
        );
        let url = fill(&path, &serial, &account);
        for method in methods {
            let (status, body) = match method.as_str() {
                "get" => env.get(&url, None).await,
                _ => env.post(&url, None, &json!({})).await,
            };
            assert_eq!(status, 401, "{method} {url} without a token: {body}");
        }
    }
    assert_eq!(counts(&env).await, before, "refused requests changed state");

    // EAB: create (admin), list without the key, revoke (write); audited as the token.
    let (status, body) = env
        .post(
            "/api/eab",
            Some(&admin),
            &json!({"uses": 3, "expires": "7d"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    let kid = created["kid"].as_str().unwrap().to_string();
    assert!(created["hmac_key"].as_str().unwrap().len() >= 32);
    let listed = env.get_json("/api/eab", &read).await;
    assert!(!listed
        .to_string()
        .contains(created["hmac_key"].as_str().unwrap()));
    assert_eq!(listed[0]["status"], "usable");
    let (status, body) = env
        .post(&format!("/api/eab/{kid}/revoke"), Some(&write), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");

    // renew-early by serial, then revoke (twice: the second is a conflict).
    let (status, body) = env
        .post("/api/renew-early", Some(&write), &json!({"serial": serial}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["certificates"],
        1
    );
    let revoke = format!("/api/certificates/{serial}/revoke");
    let (status, body) = env
        .post(&revoke, Some(&write), &json!({"reason": "keyCompromise"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = env.post(&revoke, Some(&write), &json!({})).await;
    assert_eq!(status, 409);
    let shown = env
        .get_json(&format!("/api/certificates/{serial}"), &read)
        .await;
    assert_eq!(shown["status"], "revoked");
    assert_eq!(shown["revocation_reason"], 1);

    // Account deactivation.
    let (status, body) = env
        .post(
            &format!("/api/accounts/{account}/deactivate"),
            Some(&write),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let accts = env.get_json("/api/accounts", &read).await;
    assert_eq!(accts[0]["status"], "deactivated");

    // Every change is in the audit log under the token that made it.
    let audit = env.get_json("/api/audit?limit=20", &read).await;
    let write_id = write.split('.').nth(1).unwrap();
    let admin_id = admin.split('.').nth(1).unwrap();
    for (action, actor) in [
        ("eab.create", admin_id),
        ("eab.revoke", write_id),
        ("cert.renew_early", write_id),
        ("cert.revoke", write_id),
        ("account.deactivate", write_id),
    ] {
        assert!(
            audit
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == action && e["actor"] == format!("token:{actor}").as_str()),
            "no {action} by token:{actor} in {audit}"
        );
    }
    assert!(
        !audit
            .to_string()
            .contains(created["hmac_key"].as_str().unwrap()),
        "HMAC key in the audit log"
    );

    // Stats agree with the actions.
    let stats = env.get_json("/api/stats", &read).await;
    let t = &stats["tenants"][0];
    assert_eq!(t["tenant"], "default");
    assert_eq!(t["certificates"]["revoked"], 1, "{stats}");
    assert_eq!(t["certificates"]["valid"], 0, "{stats}");
    assert_eq!(
        t["issued_per_hour"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .sum::<i64>(),
        1
    );

    // A request with a spent nonce is rejected and counted.
    let mut c = client::Client::new(&env.ca.directory_url(), &env.root).await;
    assert_eq!(c.new_account().await.status, 201);
    let url = c.url("newOrder");
    let r = c
        .post_with(
            &url,
            Some(&json!({"identifiers": []})),
            acme_types::sign::JwsKey::Kid(c.kid.clone().unwrap()),
            Some("bm9uY2U".into()),
            &url,
        )
        .await;
    assert_eq!(r.status, 400);

    // Metrics moved: requests by route template, issuance, validation, CRL, nonce, DB.
    let (status, metrics) = env.get("/metrics", None).await;
    assert_eq!(status, 200);
    let value = |needle: &[&str]| -> f64 {
        metrics
            .lines()
            .filter(|l| !l.starts_with('#') && needle.iter().all(|n| l.contains(n)))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert!(
        value(&[
            "fleetca_http_requests_total{",
            "endpoint=\"/acme/{tenant}/new-order\"",
            "status=\"201\""
        ]) >= 1.0,
        "{metrics}"
    );
    assert!(!metrics.contains(&serial), "a raw object id became a label");
    assert_eq!(
        value(&["fleetca_issuance_total{", "result=\"issued\""]),
        1.0,
        "{metrics}"
    );
    assert!(value(&["fleetca_issuance_duration_seconds_count"]) >= 1.0);
    assert!(
        value(&[
            "fleetca_validations_total{",
            "type=\"dns-01\"",
            "result=\"valid\""
        ]) >= 1.0
    );
    assert!(value(&["fleetca_validation_duration_seconds_count", "dns-01"]) >= 1.0);
    assert!(
        value(&["fleetca_crl_generated_total{"]) >= 2.0,
        "startup and revocation"
    );
    assert!(value(&["fleetca_nonce_rejections_total{", "unknown"]) >= 1.0);
    assert!(metrics.contains("fleetca_rate_limited_total"));
    assert!(
        value(&["fleetca_db_operation_duration_seconds_count"]) >= 1.0,
        "{metrics}"
    );
    assert!(
        value(&[
            "fleetca_http_requests_total{",
            "listener=\"admin\"",
            "status=\"401\""
        ]) >= 1.0
    );
}

/// `serve --admin-tls`: the admin API answers over HTTPS with the server's certificate, and a
/// plain-HTTP request (a bearer token in clear) gets no API answer.
#[test]
fn admin_tls_serves_the_api_over_https_only() {
    let mut ca = support::Fleetca::init(admin_harness::PERMITS);
    ca.serve_with(0, 0, 0, &["--admin-tls"]);
    let url = ca.admin_url();
    assert!(url.starts_with("https://"), "{url}");
    let out = ca.cli(&["admin", "token", "create", "--scopes", "read", "--json"]);
    assert!(out.success(), "{out}");
    let token = serde_json::from_str::<Value>(out.stdout.trim()).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let https = client::http_client(ca.root_pem());
        let r = https
            .get(format!("{url}/api/tenants"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("HTTPS request");
        assert_eq!(r.status(), 200);
        let plain_url = url.replacen("https://", "http://", 1);
        let plain = reqwest::Client::new()
            .get(format!("{plain_url}/api/tenants"))
            .bearer_auth(&token)
            .send()
            .await;
        assert!(
            plain.map(|r| r.status() != 200).unwrap_or(true),
            "the admin API answered plain HTTP"
        );
    });
}
