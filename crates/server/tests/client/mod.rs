//! A small ACME client for the server's integration tests: it signs with acme-types and lets a
//! test send deliberately broken requests (bad nonce, wrong url, tampered JWS, ...).
#![allow(dead_code)]

use acme_types::b64;
use acme_types::sign::{sign_jws, AccountKey, AccountKeyKind, JwsHeader, JwsKey};
use serde_json::{json, Value};

/// A response: status, headers, body as JSON when it is JSON.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Resp {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    pub(crate) fn location(&self) -> String {
        self.header("location").expect("Location header")
    }
    /// The problem type's ACME name, e.g. "badNonce". The document must carry the full
    /// `urn:ietf:params:acme:error:` URN (RFC 8555 §6.7): a bare "badNonce" fails the test.
    pub(crate) fn problem(&self) -> String {
        let ct = self.header("content-type").unwrap_or_default();
        assert_eq!(
            ct,
            "application/problem+json",
            "expected a problem document, got {} {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        let ty = body["type"].as_str().unwrap_or_default();
        match ty.strip_prefix("urn:ietf:params:acme:error:") {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => panic!(
                "problem type {ty:?} is not an urn:ietf:params:acme:error: URN: {} {body}",
                self.status
            ),
        }
    }
    pub(crate) fn links(&self, rel: &str) -> Vec<String> {
        self.headers
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter(|v| v.contains(&format!("rel=\"{rel}\"")))
            .filter_map(|v| {
                v.split('>')
                    .next()
                    .map(|s| s.trim_start_matches('<').to_string())
            })
            .collect()
    }
}

pub(crate) struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) directory: Value,
    pub(crate) key: AccountKey,
    pub(crate) kid: Option<String>,
}

/// The bench client's HTTPS client (roots from `root_pem`, no redirects, no retries), so the
/// tests see exactly what the server answered.
pub(crate) fn http_client(root_pem: &str) -> reqwest::Client {
    fleetca::bench::client::http_client(root_pem).expect("http client")
}

impl Client {
    pub(crate) async fn new(directory_url: &str, root_pem: &str) -> Client {
        Self::with_key(
            directory_url,
            root_pem,
            AccountKey::generate(AccountKeyKind::EcdsaP256).expect("key"),
        )
        .await
    }

    pub(crate) async fn with_key(directory_url: &str, root_pem: &str, key: AccountKey) -> Client {
        let http = http_client(root_pem);
        let directory: Value = http
            .get(directory_url)
            .send()
            .await
            .expect("directory")
            .json()
            .await
            .expect("directory json");
        Client {
            http,
            directory,
            key,
            kid: None,
        }
    }

    pub(crate) fn url(&self, name: &str) -> String {
        self.directory[name]
            .as_str()
            .unwrap_or_else(|| panic!("directory lacks {name}"))
            .to_string()
    }

    pub(crate) async fn nonce(&self) -> String {
        let r = self
            .http
            .head(self.url("newNonce"))
            .send()
            .await
            .expect("newNonce");
        r.headers()
            .get("replay-nonce")
            .expect("Replay-Nonce")
            .to_str()
            .expect("ascii")
            .to_string()
    }

    /// Sends a raw body with the ACME content type.
    pub(crate) async fn post_raw(&self, url: &str, body: Vec<u8>, content_type: &str) -> Resp {
        let r = self
            .http
            .post(url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.expect("body").to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// Signs and sends `payload` (None = POST-as-GET) to `url` with kid if known, jwk otherwise.
    pub(crate) async fn post(&self, url: &str, payload: Option<&Value>) -> Resp {
        let key = match &self.kid {
            Some(k) => JwsKey::Kid(k.clone()),
            None => JwsKey::Jwk,
        };
        self.post_with(url, payload, key, Some(self.nonce().await), url)
            .await
    }

    pub(crate) async fn post_with(
        &self,
        url: &str,
        payload: Option<&Value>,
        key: JwsKey,
        nonce: Option<String>,
        signed_url: &str,
    ) -> Resp {
        let bytes = payload
            .map(|p| p.to_string().into_bytes())
            .unwrap_or_default();
        let jws = sign_jws(
            &self.key,
            &JwsHeader {
                key,
                nonce,
                url: signed_url.to_string(),
            },
            &bytes,
        )
        .expect("sign");
        self.post_raw(url, jws.to_string().into_bytes(), "application/jose+json")
            .await
    }

    /// The account URL (`kid`) of this client's account.
    pub(crate) fn kid(&self) -> &str {
        self.kid.as_deref().expect("an account")
    }

    /// A request to `url` signed with this client's key (kid if known) and a fresh nonce, not
    /// sent: to send the very same bytes twice (a replay).
    pub(crate) async fn signed(&self, url: &str, payload: Option<&Value>) -> Vec<u8> {
        let key = match &self.kid {
            Some(k) => JwsKey::Kid(k.clone()),
            None => JwsKey::Jwk,
        };
        let bytes = payload
            .map(|p| p.to_string().into_bytes())
            .unwrap_or_default();
        let header = JwsHeader {
            key,
            nonce: Some(self.nonce().await),
            url: url.to_string(),
        };
        sign_jws(&self.key, &header, &bytes)
            .expect("sign")
            .to_string()
            .into_bytes()
    }

    pub(crate) async fn new_account(&mut self) -> Resp {
        let r = self
            .post(
                &self.url("newAccount"),
                Some(&json!({"termsOfServiceAgreed": true, "contact": ["mailto:ops@example.com"]})),
            )
            .await;
        if r.status == 201 || r.status == 200 {
            self.kid = Some(r.location());
        }
        r
    }

    pub(crate) async fn new_order(&self, names: &[&str]) -> Resp {
        let idents: Vec<Value> = names
            .iter()
            .map(|n| {
                let kind = if n.parse::<std::net::IpAddr>().is_ok() {
                    "ip"
                } else {
                    "dns"
                };
                json!({"type": kind, "value": n})
            })
            .collect();
        self.post(
            &self.url("newOrder"),
            Some(&json!({ "identifiers": idents })),
        )
        .await
    }

    pub(crate) fn key_authorization(&self, token: &str) -> String {
        acme_types::keyauth::key_authorization(token, self.key.jwk())
    }

    /// Answers every authorization of `order` that is not valid yet with dns-01, publishing
    /// the TXT record through `set_txt(record name, value)`, and waits until each is valid.
    pub(crate) async fn authorize_dns01(&self, order: &Value, set_txt: impl Fn(&str, &str)) {
        for authz_url in order["authorizations"].as_array().expect("authorizations") {
            let authz_url = authz_url.as_str().expect("authorization URL");
            let authz = self.post(authz_url, None).await.json();
            if authz["status"] == "valid" {
                continue;
            }
            let ch = authz["challenges"]
                .as_array()
                .expect("challenges")
                .iter()
                .find(|c| c["type"] == "dns-01")
                .unwrap_or_else(|| panic!("dns-01 offered: {authz}"))
                .clone();
            let name = authz["identifier"]["value"].as_str().expect("identifier");
            let value = acme_types::keyauth::dns01_txt_value(
                &self.key_authorization(ch["token"].as_str().expect("token")),
            );
            set_txt(&format!("_acme-challenge.{name}"), &value);
            let r = self
                .post(ch["url"].as_str().expect("challenge URL"), Some(&json!({})))
                .await;
            assert_eq!(
                r.status,
                200,
                "challenge POST: {}",
                String::from_utf8_lossy(&r.body)
            );
            let done = self.poll(authz_url, |a| a["status"] != "pending").await;
            assert_eq!(done["status"], "valid", "authorization failed: {done}");
        }
    }

    /// Finalizes `order` (found at `order_url`) with a fresh P-256 CSR for `names` and
    /// downloads the certificate: returns the chain's DERs, leaf first, and the final order.
    pub(crate) async fn finalize_and_download(
        &self,
        order_url: &str,
        order: &Value,
        names: &[&str],
    ) -> (Vec<Vec<u8>>, Value) {
        let (csr_der, _key) = csr(names, &rcgen::PKCS_ECDSA_P256_SHA256);
        let r = self
            .post(
                order["finalize"].as_str().expect("finalize URL"),
                Some(&json!({"csr": b64url(&csr_der)})),
            )
            .await;
        assert_eq!(
            r.status,
            200,
            "finalize: {}",
            String::from_utf8_lossy(&r.body)
        );
        let order = self.poll(order_url, |o| o["status"] != "processing").await;
        assert_eq!(order["status"], "valid", "{order}");
        let chain = self
            .post(
                order["certificate"].as_str().expect("certificate URL"),
                None,
            )
            .await
            .body;
        let pem = String::from_utf8(chain).expect("PEM chain");
        (pki::cert_info::pem_to_ders(&pem).expect("chain"), order)
    }

    /// Polls `url` (POST-as-GET) until `done(body)` or the deadline.
    pub(crate) async fn poll(&self, url: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let r = self.post(url, None).await;
            let v = r.json();
            if done(&v) {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out polling {url}: {v}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// A CSR (DER) for `names` with a fresh key of `alg`.
pub(crate) fn csr(
    names: &[&str],
    alg: &'static rcgen::SignatureAlgorithm,
) -> (Vec<u8>, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate_for(alg).expect("key");
    csr_with_key(names, &key)
}

pub(crate) fn csr_with_key(names: &[&str], key: &rcgen::KeyPair) -> (Vec<u8>, rcgen::KeyPair) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    let der = params.serialize_request(key).expect("csr").der().to_vec();
    let copy = rcgen::KeyPair::try_from(key.serialize_der().as_slice()).expect("key copy");
    (der, copy)
}

pub(crate) fn b64url(b: &[u8]) -> String {
    b64::encode(b)
}
