//! Tenants without a restart: a running `fleetca serve` serves a tenant added with the CLI
//! after SIGHUP or `POST /api/reload`, and one created with `POST /api/tenants` at once; a
//! device gets a certificate from it with no restart. A tenant set that does not load is
//! refused whole and the previous one keeps serving. Two PostgreSQL nodes: a tenant added
//! through one is served by the other.

mod admin_harness;
mod client;
mod support;

use admin_harness::Env;
use client::Client;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{Challenge, Tool};

/// How long a reload may take to show (it loads a key and a certificate).
const RELOAD_DEADLINE: Duration = Duration::from_secs(20);

fn directory(env: &Env, tenant: &str) -> String {
    env.ca
        .directory_url()
        .replace("/acme/default/", &format!("/acme/{tenant}/"))
}

/// The HTTP status of `tenant`'s directory.
async fn directory_status(env: &Env, tenant: &str) -> u16 {
    env.http
        .get(directory(env, tenant))
        .send()
        .await
        .expect("GET directory")
        .status()
        .as_u16()
}

/// Polls until `tenant`'s directory answers `want`, or fails with the server log.
async fn wait_directory(env: &Env, tenant: &str, want: u16) {
    let deadline = Instant::now() + RELOAD_DEADLINE;
    loop {
        let got = directory_status(env, tenant).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{tenant} directory: {got}, want {want}\n{}",
            env.ca.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A dns-01 issuance for `name` from `tenant` with the test client; the leaf's DER.
async fn issue(env: &Env, tenant: &str, name: &str) -> Vec<u8> {
    let mut c = Client::new(&directory(env, tenant), &env.root).await;
    let r = c.new_account().await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let r = c.new_order(&[name]).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let order_url = r.location();
    let order = r.json();
    c.authorize_dns01(&order, |n, v| env.dns.set_txt(n, v))
        .await;
    let (ders, _) = c.finalize_and_download(&order_url, &order, &[name]).await;
    ders[0].clone()
}

/// The issuer's common name of a certificate.
fn issuer_cn(der: &[u8]) -> String {
    let (_, x) = x509_parser::parse_x509_certificate(der).expect("certificate");
    x.issuer().to_string()
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_added_by_cli_is_served_after_sighup_and_lego_gets_a_certificate() {
    let test = "tenant_added_by_cli_is_served_after_sighup_and_lego_gets_a_certificate";
    let Some(env) = Env::start(test) else {
        return;
    };
    if !support::require(test, &[Tool::Lego]) {
        return;
    }
    let out = env
        .ca
        .cli(&["tenant", "add", "vendorb", "--permit", "cams.example.net"]);
    assert!(out.success(), "{out}");
    // Added on disk, not served yet: a running server changes only when told to.
    assert_eq!(directory_status(&env, "vendorb").await, 404);

    env.ca.signal("HUP");
    wait_directory(&env, "vendorb", 200).await;
    assert!(env.ca.log().contains("SIGHUP"), "{}", env.ca.log());

    // A device (lego, dns-01) gets a certificate from the new tenant's issuing CA, and the
    // default tenant still issues: no restart.
    let mut endpoint = env.ca.endpoint();
    endpoint.directory = directory(&env, "vendorb");
    let lego = tokio::task::block_in_place(|| {
        support::lego_run(
            &endpoint,
            &["cam1.cams.example.net"],
            Challenge::Dns01 { cts: &env.dns },
        )
    })
    .unwrap_or_else(|o| panic!("lego against the reloaded tenant\n{o}\n{}", env.ca.log()));
    let leaf = std::fs::read_to_string(&lego.leaf_path).unwrap();
    let der = pki::cert_info::pem_to_ders(&leaf).unwrap().remove(0);
    assert!(issuer_cn(&der).contains("vendorb"), "{}", issuer_cn(&der));
    let der = issue(&env, "default", "r1.routers.example.com").await;
    assert!(issuer_cn(&der).contains("default"), "{}", issuer_cn(&der));
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_change_through_the_admin_api_without_a_restart() {
    let Some(env) = Env::start("tenants_change_through_the_admin_api_without_a_restart") else {
        return;
    };
    let admin = env.token("admin");
    let write = env.token("write");

    // POST /api/tenants: created and served at once; a write token may not create CAs.
    let body = json!({"name": "vendorc", "permit": ["sensors.example.org"]});
    let (status, _) = env.post("/api/tenants", Some(&write), &body).await;
    assert_eq!(status, 403);
    assert_eq!(directory_status(&env, "vendorc").await, 404);
    let (status, text) = env.post("/api/tenants", Some(&admin), &body).await;
    assert_eq!(status, 201, "{text}");
    assert_eq!(directory_status(&env, "vendorc").await, 200);
    let der = issue(&env, "vendorc", "s1.sensors.example.org").await;
    assert!(issuer_cn(&der).contains("vendorc"), "{}", issuer_cn(&der));
    // A second one with the same name is refused and changes nothing.
    let (status, text) = env.post("/api/tenants", Some(&admin), &body).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("already exists"), "{text}");

    // New EAB settings: `tenant update` then POST /api/reload.
    let dir: Value = env
        .http
        .get(directory(&env, "vendorc"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(dir["meta"]["externalAccountRequired"], true, "{dir}");
    let out = env
        .ca
        .cli(&["tenant", "update", "vendorc", "--eab-required", "true"]);
    assert!(out.success(), "{out}");
    let (status, text) = env.post("/api/reload", Some(&admin), &json!({})).await;
    assert_eq!(status, 200, "{text}");
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["changed"], json!(["vendorc"]), "{report}");
    let dir: Value = env
        .http
        .get(directory(&env, "vendorc"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dir["meta"]["externalAccountRequired"], true, "{dir}");
    let mut c = Client::new(&directory(&env, "vendorc"), &env.root).await;
    let r = c.new_account().await;
    assert!(r.status >= 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.problem(), "externalAccountRequired");

    // Disabled: no ACME directory, but the CA still publishes its CRL.
    let out = env.ca.cli(&["tenant", "disable", "vendorc"]);
    assert!(out.success(), "{out}");
    let (status, text) = env.post("/api/reload", Some(&admin), &json!({})).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(directory_status(&env, "vendorc").await, 404);
    let plain = env.ca.plain_http_url().expect("plain HTTP URL");
    let crl = reqwest::get(format!("{plain}/crl/vendorc.crl"))
        .await
        .unwrap();
    assert_eq!(crl.status(), 200);
    // The default tenant of fleetca.toml cannot be disabled.
    let out = env.ca.cli(&["tenant", "disable", "default"]);
    assert!(!out.success(), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_tenant_file_is_refused_and_the_old_set_keeps_serving() {
    let Some(env) = Env::start("an_invalid_tenant_file_is_refused_and_the_old_set_keeps_serving")
    else {
        return;
    };
    let admin = env.token("admin");
    let out = env
        .ca
        .cli(&["tenant", "add", "vendorb", "--permit", "cams.example.net"]);
    assert!(out.success(), "{out}");
    let (status, text) = env.post("/api/reload", Some(&admin), &json!({})).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(directory_status(&env, "vendorb").await, 200);

    // Break vendorb's tenant.toml (an unknown key) and add a third tenant: the whole set is
    // refused, so neither the broken edit nor the new tenant is served.
    let out = env
        .ca
        .cli(&["tenant", "add", "vendord", "--permit", "d.example.net"]);
    assert!(out.success(), "{out}");
    let toml = env.ca.data_dir().join("ca/vendorb/tenant.toml");
    let good = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, good.replace("[ca]", "[ca]\npermitt = [\"x\"]")).unwrap();
    let (status, text) = env.post("/api/reload", Some(&admin), &json!({})).await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("permitt"), "the answer says why: {text}");
    assert_eq!(directory_status(&env, "vendord").await, 404);

    // SIGHUP: the refusal is logged and shown in the metrics.
    env.ca.signal("HUP");
    let deadline = Instant::now() + RELOAD_DEADLINE;
    let metrics = loop {
        let (_, m) = env.get("/metrics", None).await;
        if env.ca.log().contains("cause=SIGHUP") || env.ca.log().contains("\"SIGHUP\"") {
            break m;
        }
        assert!(Instant::now() < deadline, "{}", env.ca.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        env.ca.log().contains("tenant reload refused"),
        "{}",
        env.ca.log()
    );
    assert_eq!(
        metric(&metrics, "fleetca_tenant_config_valid"),
        Some(0.0),
        "{metrics}"
    );

    // The previous set keeps serving, vendorb included, and issues.
    assert_eq!(directory_status(&env, "vendorb").await, 200);
    let der = issue(&env, "vendorb", "cam2.cams.example.net").await;
    assert!(issuer_cn(&der).contains("vendorb"));
    let der = issue(&env, "default", "r2.routers.example.com").await;
    assert!(issuer_cn(&der).contains("default"));

    // Fixed: the next reload serves the new set.
    std::fs::write(&toml, good).unwrap();
    let (status, text) = env.post("/api/reload", Some(&admin), &json!({})).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(directory_status(&env, "vendord").await, 200);
    let (_, metrics) = env.get("/metrics", None).await;
    assert_eq!(metric(&metrics, "fleetca_tenant_config_valid"), Some(1.0));
}

/// `fleetca serve` node of `f` on the shared PostgreSQL database `db`; returns the guard, its
/// ACME port and its admin URL.
fn pg_node(
    f: &support::Fleetca,
    db: &str,
    log: &std::path::Path,
) -> (support::ChildGuard, u16, String) {
    let port = support::free_port();
    let mut cmd = std::process::Command::new(support::Fleetca::bin());
    cmd.args(["serve", "--data-dir"])
        .arg(f.data_dir())
        .args(["--database", db, "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(["--insecure-skip-validation"])
        .env("RUST_LOG", "info");
    let mut guard = support::ChildGuard::spawn("fleetca-node", cmd, log);
    let url = format!("https://127.0.0.1:{port}/acme/default/directory");
    support::wait_for(
        &support::Probe::Https {
            url: &url,
            ca_pem: f.root_pem_path(),
        },
        support::STARTUP_DEADLINE,
        Some(&mut guard),
    )
    .expect("node up");
    let admin = support::metrics::admin_url(log);
    (guard, port, admin)
}

#[test]
fn a_tenant_created_on_one_postgres_node_is_served_by_the_other() {
    let test = "a_tenant_created_on_one_postgres_node_is_served_by_the_other";
    if support::postgres_url(test).is_none() {
        return;
    }
    let f = support::Fleetca::init(&["routers.example.com"]);
    let db = support::create_postgres_database();
    let (a, _, admin_a) = pg_node(&f, &db, &f.scratch().join("a.log"));
    let (b, port_b, _) = pg_node(&f, &db, &f.scratch().join("b.log"));
    let mut cmd = std::process::Command::new(support::Fleetca::bin());
    cmd.args([
        "admin",
        "token",
        "create",
        "--scopes",
        "admin",
        "--json",
        "--data-dir",
    ])
    .arg(f.data_dir())
    .env("FLEETCA_DATABASE", &*db);
    let out = support::run(cmd, Duration::from_secs(60));
    assert!(out.success(), "{out}");
    let token: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let token = token["token"].as_str().unwrap().to_string();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_rt = rt.enter();
    let http = client::http_client(f.root_pem());
    let on_b = format!("https://127.0.0.1:{port_b}/acme/vendorb/directory");
    let status = |url: String| {
        let http = http.clone();
        rt.block_on(async move { http.get(url).send().await.unwrap().status().as_u16() })
    };
    assert_eq!(status(on_b.clone()), 404);
    // Created through node A's API; node B learns of it from A's notice, long before its
    // periodic check (60 s) would.
    let r = rt.block_on(
        http.post(format!("{admin_a}/api/tenants"))
            .bearer_auth(&token)
            .json(&json!({"name": "vendorb", "permit": ["cams.example.net"]}))
            .send(),
    );
    let r = r.unwrap();
    assert_eq!(r.status(), 201, "{}", a.log());
    let deadline = Instant::now() + RELOAD_DEADLINE;
    while status(on_b.clone()) != 200 {
        assert!(
            Instant::now() < deadline,
            "node B never served vendorb\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        b.log().contains("another node changed the tenants"),
        "{}",
        b.log()
    );
}
