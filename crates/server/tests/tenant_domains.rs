//! Tenant domains (issue 17) end to end, over HTTPS against a real `fleetca serve` whose DNS
//! is a real pebble-challtestsrv on loopback.
//!
//! Tenant `routers` (permitted `example.com`) proves `routers.example.com` once, by dns-01 or by
//! dns-persist-01, with `fleetca domain add|validate`. From then on:
//! - three real `fleetca-agent` processes holding the tenant's EAB credential, none running any
//!   listener (their http-01 port has nothing behind it and the server's http-01 port is
//!   another), each get `config.routers.example.com` and their own
//!   `<serial>.routers.example.com` with their own key, and the CA creates no challenge at all;
//! - lego and certbot with the EAB credential get a subdomain certificate with a webroot that
//!   nothing serves;
//! - an account without EAB, and a name outside the domain, still get challenges;
//! - after `domain remove` a new order gets challenges again and an order made ready by the
//!   domain can no longer be finalized;
//! - with dns-persist-01, removing the record makes the server's own revalidation fail: the
//!   domain stops granting and `/metrics` says so.
//!
//! `FLEETCA_TEST_BACKEND=postgres` runs it all on PostgreSQL.

mod client;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use client::Client;
use serde_json::{json, Value};
use support::{free_port, ChallTestSrv, Fleetca, Tool};

const TENANT: &str = "routers";
const DOMAIN: &str = "routers.example.com";
const CONFIG_NAME: &str = "config.routers.example.com";
const CAA_ID: &str = "ca.example";

struct Env {
    ca: Fleetca,
    dns: ChallTestSrv,
    root: String,
}

/// A CA with tenant `routers` (permitted `example.com`), serving with DNS from challtestsrv;
/// `extra` goes to `serve`.
fn start(extra: &[&str]) -> Env {
    let dns = ChallTestSrv::start();
    let mut ca = Fleetca::init(&["home.arpa"]);
    let out = ca.cli(&[
        "tenant",
        "add",
        TENANT,
        "--permit",
        "example.com",
        "--caa-identity",
        CAA_ID,
    ]);
    assert!(out.success(), "{out}");
    // The VA's http-01 port: nothing listens there, so no http-01 challenge could pass.
    ca.serve_with(dns.dns_port(), free_port(), free_port(), extra);
    let root = ca.root_pem().to_string();
    Env { ca, dns, root }
}

impl Env {
    fn directory(&self) -> String {
        self.ca
            .directory_url()
            .replace("/acme/default/", &format!("/acme/{TENANT}/"))
    }

    fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.ca.cli(args);
        assert!(out.success(), "fleetca {args:?}\n{out}");
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    fn domain(&self, verb: &str, extra: &[&str]) -> support::CmdOutput {
        let mut args = vec!["domain", verb, "--tenant", TENANT];
        args.extend_from_slice(extra);
        self.ca.cli(&args)
    }

    fn validate(&self) -> support::CmdOutput {
        let resolver = self.dns.dns_addr();
        self.domain("validate", &[DOMAIN, "--json", "--dns-resolver", &resolver])
    }

    fn listed(&self) -> Value {
        let v = self.cli_json(&["domain", "list", "--tenant", TENANT, "--json"]);
        v.as_array()
            .and_then(|a| a.iter().find(|d| d["name"] == DOMAIN).cloned())
            .unwrap_or(Value::Null)
    }

    async fn counts(&self) -> fleetca::sa::TableCounts {
        self.ca.counts().await
    }

    /// An account of the tenant, bound to EAB credential `cred` (kid, HMAC key) if given.
    async fn account(&self, cred: Option<&(String, String)>) -> Client {
        let mut c = Client::new(&self.directory(), &self.root).await;
        let mut payload = json!({"termsOfServiceAgreed": true});
        if let Some((kid, key)) = cred {
            payload["externalAccountBinding"] = acme_types::eab::eab_jws(
                kid,
                &acme_types::b64::decode(key).unwrap(),
                &c.url("newAccount"),
                c.key.jwk(),
                acme_types::eab::EabAlgorithm::HS256,
            );
        }
        let r = c.post(&c.url("newAccount"), Some(&payload)).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        c.kid = Some(r.location());
        c
    }
}

/// Orders `names`; returns (order URL, order, each authorization).
async fn order(c: &Client, names: &[&str]) -> (String, Value, Vec<Value>) {
    let r = c.new_order(names).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let url = r.location();
    let o = r.json();
    let mut authzs = Vec::new();
    for a in o["authorizations"].as_array().unwrap() {
        authzs.push(c.post(a.as_str().unwrap(), None).await.json());
    }
    (url, o, authzs)
}

/// Runs the agent for `serial` with the tenant's EAB credential and `extra` arguments; returns
/// its output and out dir.
fn run_agent(
    env: &Env,
    agent: &Path,
    serial: &str,
    cred: &(String, String),
    extra: &[&str],
) -> (support::CmdOutput, PathBuf) {
    let dir = env.ca.scratch().join(format!("agent-{serial}"));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("eab.key");
    std::fs::write(&key_file, &cred.1).unwrap();
    let mut cmd = Command::new(agent);
    cmd.arg("issue")
        .args(["--server", &env.directory()])
        .arg("--server-root")
        .arg(env.ca.root_pem_path())
        .arg("--out-dir")
        .arg(dir.join("out"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["--eab-kid", &cred.0])
        .arg("--eab-hmac-key-file")
        .arg(&key_file)
        .args(["--domain", CONFIG_NAME])
        .args(["--domain", &format!("{serial}.{DOMAIN}")])
        // A port nothing listens on, never the one the CA's VA would contact.
        .args(["--http-port", &free_port().to_string()])
        .args(["--order-timeout", "60"])
        .args(extra);
    (support::run(cmd, Duration::from_secs(90)), dir.join("out"))
}

fn san_names(pem: &str) -> Vec<String> {
    let ders = pki::cert_info::pem_to_ders(pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&ders[0]).unwrap();
    let mut names: Vec<String> = cert
        .subject_alternative_name()
        .unwrap()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn dns01_domain_grants_the_tenants_eab_accounts_until_it_is_removed() {
    const TEST: &str = "dns01_domain_grants_the_tenants_eab_accounts_until_it_is_removed";
    if !support::require(TEST, &[Tool::ChallTestSrv]) {
        return;
    }
    let Some(agent) = support::agent_bin(TEST) else {
        return;
    };
    let env = tokio::task::spawn_blocking(|| start(&[])).await.unwrap();
    let cred = env.ca.eab_create(TENANT, 10);

    // The record to publish: the BR §3.2.2.4.7 random value at _acme-challenge.<domain>.
    let added = env.cli_json(&[
        "domain", "add", "--tenant", TENANT, DOMAIN, "--method", "dns-01", "--json",
    ]);
    assert_eq!(added["txt_name"], format!("_acme-challenge.{DOMAIN}"));
    let value = added["txt_value"].as_str().unwrap().to_string();
    assert!(value.len() >= 22, "{added}");
    assert_eq!(env.listed()["status"], "pending");

    // Not published yet: validation fails, is recorded, and grants nothing.
    let out = env.validate();
    assert!(!out.success(), "{out}");
    assert!(out.combined().contains("unauthorized"), "{out}");
    assert_eq!(env.listed()["status"], "invalid");
    let eab_acct = env.account(Some(&cred)).await;
    let (_, o, authzs) = order(&eab_acct, &[CONFIG_NAME]).await;
    support::authz::assert_challenged(&o, &authzs);
    // A wrong value is no better.
    env.dns
        .set_txt(&format!("_acme-challenge.{DOMAIN}"), "not-the-value");
    let out = env.validate();
    assert!(out.combined().contains("incorrectResponse"), "{out}");
    env.dns.clear_txt(&format!("_acme-challenge.{DOMAIN}"));

    env.dns
        .set_txt(&format!("_acme-challenge.{DOMAIN}"), &value);
    let out = env.validate();
    assert!(out.success(), "{out}");
    let d = env.listed();
    assert_eq!(d["status"], "valid", "{d}");
    assert_eq!(d["method"], "dns-01");
    assert_eq!(
        d["evidence"]["txt_name"],
        format!("_acme-challenge.{DOMAIN}")
    );
    assert_eq!(d["evidence"]["caa_checked"], true);
    // BR reuse period by date (200 days from 2026-03-15, 100 from 2027-03-15).
    let validated = d["validated_at"].as_i64().unwrap();
    let days = (d["expires_at"].as_i64().unwrap() - validated) / 86400;
    assert_eq!(days, fleetca::ra::br_reuse_days(validated), "{d}");
    // The record may go once validated: the domain grants for the reuse period.
    env.dns.clear_txt(&format!("_acme-challenge.{DOMAIN}"));

    // Three agents, nothing listening, each its own key: no challenge is ever created.
    let before = env.counts().await;
    let mut keys = Vec::new();
    // The second says outright that it answers no challenge (`--challenge none`).
    for (serial, extra) in [
        ("sn-0001", &[][..]),
        ("sn-0002", &["--challenge", "none"][..]),
        ("sn-0003", &[][..]),
    ] {
        let (out, out_dir) = run_agent(&env, &agent, serial, &cred, extra);
        assert_eq!(out.status.and_then(|s| s.code()), Some(10), "{out}");
        let pem = std::fs::read_to_string(out_dir.join("cert.pem")).unwrap();
        let mut want = vec![CONFIG_NAME.to_string(), format!("{serial}.{DOMAIN}")];
        want.sort();
        assert_eq!(san_names(&pem), want);
        keys.push(std::fs::read_to_string(out_dir.join("key.pem")).unwrap());
    }
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 3, "each agent has its own key");
    let after = env.counts().await;
    assert_eq!(
        after.challenges, before.challenges,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.certificates, before.certificates + 3);

    // Wildcards under the DNS-validated domain are granted too; the authorization names
    // the domain (no challenges) and expires no later than it.
    let (order_url, o, authzs) = order(&eab_acct, &[&format!("*.{DOMAIN}")]).await;
    support::authz::assert_granted(&o, &authzs);
    assert!(authzs[0]["wildcard"] == true);
    let expires = time::OffsetDateTime::parse(
        authzs[0]["expires"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp();
    assert!(expires <= d["expires_at"].as_i64().unwrap());
    let (chain, _) = eab_acct
        .finalize_and_download(&order_url, &o, &[&format!("*.{DOMAIN}")])
        .await;
    assert!(!chain.is_empty());

    // A name outside the domain, and an account without EAB, get ordinary challenges.
    let (_, o, authzs) = order(&eab_acct, &["other.example.com"]).await;
    support::authz::assert_challenged(&o, &authzs);
    let plain = env.account(None).await;
    let (_, o, authzs) = order(&plain, &[CONFIG_NAME]).await;
    support::authz::assert_challenged(&o, &authzs);

    // An order made ready by the domain, then the domain removed: the order cannot be
    // finalized, and the next order gets challenges.
    let (ready_url, ready, authzs) = order(&eab_acct, &["sn-0009.routers.example.com"]).await;
    support::authz::assert_granted(&ready, &authzs);
    let out = env.domain("remove", &[DOMAIN, "--json"]);
    assert!(out.success(), "{out}");
    assert_eq!(env.listed(), Value::Null);
    let now = eab_acct.post(&ready_url, None).await.json();
    assert_eq!(now["status"], "invalid", "{now}");
    let (csr, _) = client::csr(
        &["sn-0009.routers.example.com"],
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let r = eab_acct
        .post(
            ready["finalize"].as_str().unwrap(),
            Some(&json!({"csr": client::b64url(&csr)})),
        )
        .await;
    assert_eq!(r.problem(), "orderNotReady", "{:?}", r.json());
    let (_, o, authzs) = order(&eab_acct, &[CONFIG_NAME]).await;
    support::authz::assert_challenged(&o, &authzs);
    // An agent that answers no challenge now fails clearly (exit 22), issuing nothing.
    let before = env.counts().await;
    let (out, _) = run_agent(&env, &agent, "sn-0004", &cred, &["--challenge", "none"]);
    assert_eq!(out.status.and_then(|s| s.code()), Some(22), "{out}");
    assert!(out.combined().contains("--challenge none"), "{out}");
    assert_eq!(env.counts().await.certificates, before.certificates);

    // The audit log has every step.
    let audit = env.ca.cli(&["domain", "list", "--tenant", TENANT]);
    assert!(audit.success(), "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_persist_domain_is_revalidated_and_alerts_when_its_record_is_gone() {
    const TEST: &str = "dns_persist_domain_is_revalidated_and_alerts_when_its_record_is_gone";
    if !support::require(TEST, &[Tool::ChallTestSrv]) {
        return;
    }
    let env = tokio::task::spawn_blocking(|| start(&["--domain-recheck-secs", "1"]))
        .await
        .unwrap();
    let cred = env.ca.eab_create(TENANT, 5);
    let added = env.cli_json(&[
        "domain",
        "add",
        "--tenant",
        TENANT,
        DOMAIN,
        "--method",
        "dns-persist-01",
        "--json",
    ]);
    let txt_name = format!("_validation-persist.{DOMAIN}");
    assert_eq!(added["txt_name"], txt_name);
    let value = added["txt_value"].as_str().unwrap();
    // draft-ietf-acme-dns-persist: issuer; accounturi=...; policy=wildcard.
    assert!(
        value.starts_with(&format!("{CAA_ID}; accounturi=")),
        "{value}"
    );
    assert!(
        value.ends_with(&format!("/acme/{TENANT}; policy=wildcard")),
        "{value}"
    );

    // A record for another CA does not validate.
    env.dns
        .set_txt(&txt_name, &value.replace(CAA_ID, "other-ca.example"));
    assert!(!env.validate().success());
    env.dns.clear_txt(&txt_name);
    env.dns.set_txt(&txt_name, value);
    let out = env.validate();
    assert!(out.success(), "{out}");
    assert_eq!(env.listed()["method"], "dns-persist-01");

    let c = env.account(Some(&cred)).await;
    let (_, o, authzs) = order(&c, &[CONFIG_NAME]).await;
    support::authz::assert_granted(&o, &authzs);

    // The server revalidates on its own while the record is there...
    let first_check = env.listed()["last_checked_at"].as_i64().unwrap();
    wait_until("a revalidation", || {
        env.listed()["last_checked_at"].as_i64().unwrap() > first_check
    });
    assert_eq!(env.listed()["status"], "valid");

    // ...and once it is gone, the domain stops granting and the metrics say so.
    env.dns.clear_txt(&txt_name);
    wait_until("the revalidation to fail", || {
        env.listed()["status"] == "invalid"
    });
    let d = env.listed();
    assert_eq!(
        d["last_error"]["type"], "urn:ietf:params:acme:error:unauthorized",
        "{d}"
    );
    let metrics = scrape(&env.ca);
    let labels = [r#"tenant="routers""#, r#"domain="routers.example.com""#];
    wait_until("the gauge to drop", || {
        support::metrics::sum(&scrape(&env.ca), "fleetca_tenant_domain_valid", &labels) == 0.0
    });
    assert!(
        support::metrics::sum(
            &metrics,
            "fleetca_tenant_domain_checks_total",
            &[r#"result="invalid""#, r#"method="dns-persist-01""#],
        ) >= 1.0,
        "{metrics}"
    );
    assert!(env.ca.log().contains("dns-persist-01 revalidation failed"));
    let (_, o, authzs) = order(&c, &[CONFIG_NAME]).await;
    support::authz::assert_challenged(&o, &authzs);
}

#[tokio::test(flavor = "multi_thread")]
async fn lego_and_certbot_with_eab_get_a_subdomain_with_a_webroot_nothing_serves() {
    const TEST: &str = "lego_and_certbot_with_eab_get_a_subdomain_with_a_webroot_nothing_serves";
    if !support::require(TEST, &[Tool::ChallTestSrv, Tool::Lego, Tool::Certbot]) {
        return;
    }
    let env = tokio::task::spawn_blocking(|| start(&[])).await.unwrap();
    let added = env.cli_json(&[
        "domain", "add", "--tenant", TENANT, DOMAIN, "--method", "dns-01", "--json",
    ]);
    env.dns.set_txt(
        added["txt_name"].as_str().unwrap(),
        added["txt_value"].as_str().unwrap(),
    );
    assert!(env.validate().success());
    let before = env.counts().await;
    let webroot = env.ca.scratch().join("webroot-never-served");
    std::fs::create_dir_all(&webroot).unwrap();

    let (kid, hmac) = env.ca.eab_create(TENANT, 1);
    let lego_path = env.ca.scratch().join("lego");
    let mut cmd = Command::new(Tool::Lego.path());
    cmd.env("LEGO_CA_CERTIFICATES", env.ca.root_pem_path())
        .arg("--path")
        .arg(&lego_path)
        .args(["--accept-tos", "--email", "ops@example.com"])
        .args(["--server", &env.directory()])
        .args(["--domains", "lego-7.routers.example.com"])
        .arg("--eab")
        .arg(format!("--kid={kid}"))
        .arg(format!("--hmac={hmac}"))
        .arg("--http")
        .arg("--http.webroot")
        .arg(&webroot)
        .arg("run");
    let out = support::run(cmd, support::CLIENT_TIMEOUT);
    assert!(out.success(), "{out}");
    let pem =
        std::fs::read_to_string(lego_path.join("certificates/lego-7.routers.example.com.crt"))
            .unwrap();
    assert_eq!(san_names(&pem), vec!["lego-7.routers.example.com"]);

    let (kid, hmac) = env.ca.eab_create(TENANT, 1);
    let cb = env.ca.scratch().join("certbot");
    let mut cmd = Command::new(Tool::Certbot.path());
    cmd.env("REQUESTS_CA_BUNDLE", env.ca.root_pem_path())
        .arg("certonly")
        .args(["--non-interactive", "--server", &env.directory()])
        .arg("--config-dir")
        .arg(cb.join("config"))
        .arg("--work-dir")
        .arg(cb.join("work"))
        .arg("--logs-dir")
        .arg(cb.join("logs"))
        .arg("--webroot")
        .arg("-w")
        .arg(&webroot)
        .args(["--agree-tos", "--register-unsafely-without-email"])
        .args(["--cert-name", "cb", "--key-type", "ecdsa"])
        .arg(format!("--eab-kid={kid}"))
        .arg(format!("--eab-hmac-key={hmac}"))
        .args(["-d", "certbot-7.routers.example.com"]);
    let out = support::run(cmd, support::CLIENT_TIMEOUT);
    assert!(out.success(), "{out}");
    let pem = std::fs::read_to_string(cb.join("config/live/cb/cert.pem")).unwrap();
    assert_eq!(san_names(&pem), vec!["certbot-7.routers.example.com"]);

    let after = env.counts().await;
    assert_eq!(
        after.challenges, before.challenges,
        "no challenge was created"
    );
    // Nothing was ever written for a challenge into the webroot.
    let acme_dir = webroot.join(".well-known/acme-challenge");
    let written = std::fs::read_dir(&acme_dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(written, 0);
}

#[test]
fn trusted_domains_are_for_private_tenants_and_audited() {
    let ca = Fleetca::init(&["home.arpa"]);
    let out = ca.cli(&["tenant", "add", TENANT, "--permit", "example.com"]);
    assert!(out.success(), "{out}");
    let out = ca.cli(&[
        "domain",
        "add",
        "--tenant",
        TENANT,
        DOMAIN,
        "--trusted",
        "--json",
    ]);
    assert!(out.success(), "{out}");
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["domain"]["status"], "valid", "{v}");
    assert_eq!(v["domain"]["method"], "trusted");
    assert_eq!(v["txt_name"], Value::Null);
    // A name outside the tenant's permitted names, a wildcard and a bad method are refused.
    for args in [
        &["home.arpa", "--trusted"][..],
        &["*.routers.example.com", "--trusted"][..],
        &["x.example.com", "--method", "http-01"][..],
        &["y.example.com", "--method", "trusted"][..],
    ] {
        let mut a = vec!["domain", "add", "--tenant", TENANT];
        a.extend_from_slice(args);
        let out = ca.cli(&a);
        assert!(!out.success(), "{args:?} was accepted\n{out}");
    }
    // Adding it twice is refused; the list holds it once.
    let out = ca.cli(&["domain", "add", "--tenant", TENANT, DOMAIN, "--trusted"]);
    assert!(!out.success(), "{out}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let audit = rt.block_on(async {
        fleetca::sa::open_database(&ca.database_url())
            .await
            .unwrap()
            .recent_audit(50)
            .await
            .unwrap()
    });
    let add = audit
        .iter()
        .find(|e| e.action == "domain.add")
        .expect("domain.add audited");
    assert_eq!(add.tenant.as_deref(), Some(TENANT));
    assert_eq!(add.object.as_deref(), Some(DOMAIN));
    assert!(add.actor.starts_with("cli:"));
}

/// `/metrics` of `ca`, from a thread outside the test's runtime (the scrape runs its own).
fn scrape(ca: &Fleetca) -> String {
    std::thread::scope(|s| s.spawn(|| support::metrics::scrape(ca)).join().unwrap())
}

/// Polls `done` every 100 ms for up to 30 s.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api_adds_validates_lists_and_removes_domains() {
    const TEST: &str = "admin_api_adds_validates_lists_and_removes_domains";
    if !support::require(TEST, &[Tool::ChallTestSrv]) {
        return;
    }
    let env = tokio::task::spawn_blocking(|| start(&[])).await.unwrap();
    let token = |scopes: &str| {
        let v = env.cli_json(&["admin", "token", "create", "--scopes", scopes, "--json"]);
        v["token"].as_str().unwrap().to_string()
    };
    let (read, write) = (token("read"), token("read,write"));
    let base = format!("{}/api/tenants/{TENANT}/domains", env.ca.admin_url());
    let http = client::http_client(&env.root);
    let call = |url: String, tok: &str, body: Option<Value>| {
        let req = match body {
            Some(b) => http.post(url).json(&b),
            None => http.get(url),
        };
        let req = req.bearer_auth(tok.to_string());
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let add = json!({"name": DOMAIN, "method": "dns-persist-01"});

    // A read token changes nothing; a bad method, an outside name and an unknown tenant are
    // refused.
    let (s, _) = call(base.clone(), &read, Some(add.clone())).await;
    assert_eq!(s, 403);
    let (s, v) = call(
        base.clone(),
        &write,
        Some(json!({"name": DOMAIN, "method": "http-01"})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = call(
        base.clone(),
        &write,
        Some(json!({"name": "home.arpa", "trusted": true})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let other = base.replace(&format!("/{TENANT}/"), "/nosuch/");
    let (s, _) = call(other, &write, Some(add.clone())).await;
    assert_eq!(s, 404);
    assert_eq!(call(base.clone(), &read, None).await.1, json!([]));

    let (s, added) = call(base.clone(), &write, Some(add.clone())).await;
    assert_eq!(s, 201, "{added}");
    assert_eq!(added["txt_name"], format!("_validation-persist.{DOMAIN}"));
    let (s, _) = call(base.clone(), &write, Some(add)).await;
    assert_eq!(s, 409);

    // Validation: 422 without the record (recorded as invalid), 200 once it is published.
    let validate = format!("{base}/{DOMAIN}/validate");
    let (s, v) = call(validate.clone(), &write, Some(json!({}))).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(
        call(base.clone(), &read, None).await.1[0]["status"],
        "invalid"
    );
    env.dns.set_txt(
        added["txt_name"].as_str().unwrap(),
        added["txt_value"].as_str().unwrap(),
    );
    let (s, v) = call(validate, &write, Some(json!({}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "valid");
    let listed = call(base.clone(), &read, None).await.1;
    assert_eq!(
        listed[0]["evidence"]["method"], "dns-persist-01",
        "{listed}"
    );

    let (s, _) = call(format!("{base}/{DOMAIN}/remove"), &write, Some(json!({}))).await;
    assert_eq!(s, 200);
    let (s, _) = call(format!("{base}/{DOMAIN}/remove"), &write, Some(json!({}))).await;
    assert_eq!(s, 404);
    assert_eq!(call(base.clone(), &read, None).await.1, json!([]));

    // Audited as the token.
    let audit_url = base.replace(&format!("/tenants/{TENANT}/domains"), "/audit");
    let (_, audit) = call(audit_url, &read, None).await;
    let text = audit.to_string();
    for action in ["domain.add", "domain.validate", "domain.remove"] {
        assert!(text.contains(action), "{action} not audited: {text}");
    }
    assert!(text.contains("token:"), "{text}");
}

/// Publishes one CAA property at `host` through challtestsrv's management API.
fn add_caa(dns: &ChallTestSrv, host: &str, tag: &str, value: &str) {
    let body = json!({"host": format!("{host}."), "policies": [{"tag": tag, "value": value}]});
    support::http_post_local(dns.management_port(), "/add-caa", &body.to_string())
        .unwrap_or_else(|e| panic!("challtestsrv add-caa: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn caa_and_a_revoked_credential_stop_what_the_domain_grants() {
    const TEST: &str = "caa_and_a_revoked_credential_stop_what_the_domain_grants";
    if !support::require(TEST, &[Tool::ChallTestSrv]) {
        return;
    }
    let env = tokio::task::spawn_blocking(|| start(&[])).await.unwrap();

    // CAA at the domain forbidding this CA: validation fails with `caa`, nothing is granted.
    let blocked = "blocked.example.com";
    let added = env.cli_json(&[
        "domain", "add", "--tenant", TENANT, blocked, "--method", "dns-01", "--json",
    ]);
    env.dns.set_txt(
        added["txt_name"].as_str().unwrap(),
        added["txt_value"].as_str().unwrap(),
    );
    add_caa(&env.dns, blocked, "issue", "other-ca.example");
    let resolver = env.dns.dns_addr();
    let out = env.domain("validate", &[blocked, "--dns-resolver", &resolver]);
    assert!(!out.success(), "{out}");
    assert!(out.combined().contains("(caa)"), "{out}");

    let added = env.cli_json(&[
        "domain", "add", "--tenant", TENANT, DOMAIN, "--method", "dns-01", "--json",
    ]);
    env.dns.set_txt(
        added["txt_name"].as_str().unwrap(),
        added["txt_value"].as_str().unwrap(),
    );
    assert!(env.validate().success());
    let cred = env.ca.eab_create(TENANT, 2);
    let c = env.account(Some(&cred)).await;

    // CAA below the domain forbidding this CA: the name is granted (no challenge) but CAA of
    // that very name is checked before signing, and refuses it.
    let name = "caa-denied.routers.example.com";
    add_caa(&env.dns, name, "issue", "other-ca.example");
    let (_, o, authzs) = order(&c, &[name]).await;
    support::authz::assert_granted(&o, &authzs);
    let before = env.counts().await;
    let (csr, _) = client::csr(&[name], &rcgen::PKCS_ECDSA_P256_SHA256);
    let r = c
        .post(
            o["finalize"].as_str().unwrap(),
            Some(&json!({"csr": client::b64url(&csr)})),
        )
        .await;
    assert_eq!(r.problem(), "caa", "{:?}", r.json());
    assert_eq!(env.counts().await.certificates, before.certificates);

    // The credential revoked: its accounts stop inheriting at once.
    let out = env.ca.cli(&["eab", "revoke", &cred.0]);
    assert!(out.success(), "{out}");
    let (_, o, authzs) = order(&c, &[CONFIG_NAME]).await;
    support::authz::assert_challenged(&o, &authzs);
}
