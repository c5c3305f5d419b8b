//! What the admin API and dashboard tests share: a served CA with a mock DNS server, the admin
//! listener's URL, tokens made with the CLI, and a dns-01 issuance.
#![allow(dead_code)]

use crate::client::Client;
use crate::support::{self, ChallTestSrv, Fleetca, Tool};
use serde_json::Value;

pub(crate) const PERMITS: &[&str] = &["routers.example.com"];

pub(crate) struct Env {
    pub(crate) ca: Fleetca,
    pub(crate) dns: ChallTestSrv,
    pub(crate) root: String,
    pub(crate) admin: String,
    pub(crate) http: reqwest::Client,
}

impl Env {
    /// `None` (skipped) outside CI when the mock DNS server is missing.
    pub(crate) fn start(test: &'static str) -> Option<Env> {
        std::thread::spawn(move || {
            if !support::require(test, &[Tool::ChallTestSrv]) {
                return None;
            }
            let dns = ChallTestSrv::start();
            let mut ca = Fleetca::init(PERMITS);
            ca.serve(dns.dns_port(), support::free_port(), support::free_port());
            let root = ca.root_pem().to_string();
            let admin = ca.admin_url();
            let http = crate::client::http_client(&root);
            Some(Env {
                ca,
                dns,
                root,
                admin,
                http,
            })
        })
        .join()
        .expect("harness thread")
    }

    /// `fleetca admin token create --scopes SCOPES --json`: the token.
    pub(crate) fn token(&self, scopes: &str) -> String {
        let out = self
            .ca
            .cli(&["admin", "token", "create", "--scopes", scopes, "--json"]);
        assert!(out.success(), "token create failed\n{out}");
        let v: Value = serde_json::from_str(out.stdout.trim()).expect("token JSON");
        v["token"].as_str().expect("token").to_string()
    }

    /// GET on the admin listener with an optional bearer token: (status, body).
    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut req = self.http.get(format!("{}{path}", self.admin));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("admin GET");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    /// POST JSON on the admin listener: (status, body).
    pub(crate) async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> (u16, String) {
        let mut req = self.http.post(format!("{}{path}", self.admin)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("admin POST");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    /// GET with a token, expecting 200 and JSON.
    pub(crate) async fn get_json(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.get(path, Some(token)).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    /// A new account that orders, validates with dns-01 and finalizes `names`; returns the
    /// certificate's serial as stored (lower-case hex).
    pub(crate) async fn issue(&self, names: &[&str]) -> String {
        let mut c = Client::new(&self.ca.directory_url(), &self.root).await;
        assert_eq!(c.new_account().await.status, 201);
        let r = c.new_order(names).await;
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        let order_url = r.location();
        let order = r.json();
        c.authorize_dns01(&order, |n, v| self.dns.set_txt(n, v))
            .await;
        let (ders, _) = c.finalize_and_download(&order_url, &order, names).await;
        let der = &ders[0];
        let (_, x) = x509_parser::parse_x509_certificate(der).unwrap();
        fleetca::sa::normalize_serial(&x.raw_serial_as_string().replace(':', ""))
    }
}
