//! A small asynchronous ACME client for the load generator (and usable from tests): it signs
//! requests with `acme-types`, follows the RFC 8555 flow, and reports every failure as an error
//! instead of panicking.

use acme_types::sign::{sign_jws, AccountKey, AccountKeyKind, JwsHeader, JwsKey};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a client step failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Transport failure.
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered with a problem document or an unexpected status.
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        /// Request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Response body (problem document).
        body: String,
    },
    /// Anything else (missing header, bad JSON, signing failure, timeout).
    #[error("{0}")]
    Other(String),
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    fn ok(self, url: &str) -> Result<Resp, ClientError> {
        if self.status < 300 {
            Ok(self)
        } else {
            Err(ClientError::Status {
                url: url.into(),
                status: self.status,
                body: String::from_utf8_lossy(&self.body).into(),
            })
        }
    }
}

/// An HTTPS client trusting exactly the roots in `roots_pem`.
pub fn http_client(roots_pem: &str) -> Result<reqwest::Client, ClientError> {
    Ok(http_client_builder(roots_pem)?.build()?)
}

/// The builder behind [`http_client`], for callers that add to it (default headers, say).
pub fn http_client_builder(roots_pem: &str) -> Result<reqwest::ClientBuilder, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    for der in
        pki::cert_info::pem_to_ders(roots_pem).map_err(|e| ClientError::Other(e.to_string()))?
    {
        roots
            .add(der.into())
            .map_err(|e| ClientError::Other(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Other(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // No redirects: a JWS is bound to the URL it was signed for (RFC 8555 §6.4), so a POST
    // re-sent to another URL could only fail. No automatic retries: the caller retries
    // badNonce itself, with a fresh nonce. Both layers also cost a header-map clone per request.
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .timeout(Duration::from_secs(60)))
}

/// One ACME account's client.
pub struct AcmeClient {
    /// The HTTP client.
    pub http: reqwest::Client,
    /// The directory object.
    pub directory: Value,
    /// The account key.
    pub key: AccountKey,
    /// The account URL once registered.
    pub kid: Option<String>,
    /// The `Replay-Nonce` of the latest response, used for the next request instead of a
    /// newNonce round trip (RFC 8555 §7.2: every response carries a fresh nonce).
    spare_nonce: std::sync::Mutex<Option<String>>,
}

impl AcmeClient {
    /// Fetches the directory with a fresh P-256 account key.
    pub async fn new(http: reqwest::Client, directory_url: &str) -> Result<Self, ClientError> {
        let key = AccountKey::generate(AccountKeyKind::EcdsaP256)
            .map_err(|e| ClientError::Other(e.to_string()))?;
        let directory = http.get(directory_url).send().await?.json().await?;
        Ok(Self {
            http,
            directory,
            key,
            kid: None,
            spare_nonce: std::sync::Mutex::new(None),
        })
    }

    /// A URL from the directory.
    pub fn url(&self, name: &str) -> Result<String, ClientError> {
        self.directory[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ClientError::Other(format!("directory lacks {name}")))
    }

    /// A nonce for the next request: the one the previous response carried, else a fresh one
    /// from newNonce.
    async fn next_nonce(&self) -> Result<String, ClientError> {
        let spare = self.spare_nonce.lock().ok().and_then(|mut n| n.take());
        match spare {
            Some(n) => Ok(n),
            None => self.nonce().await,
        }
    }

    /// A fresh nonce (HEAD newNonce).
    pub async fn nonce(&self) -> Result<String, ClientError> {
        SENT.nonces.fetch_add(1, Relaxed);
        let mut r = self.http.head(self.url("newNonce")?).send().await;
        for attempt in 1..5u64 {
            if r.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            r = self.http.head(self.url("newNonce")?).send().await;
        }
        let r = r?;
        r.headers()
            .get("replay-nonce")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| ClientError::Other("no Replay-Nonce".into()))
    }

    /// Sends a signed request (`None` = POST-as-GET) and returns whatever came back.
    pub async fn post_raw(&self, url: &str, payload: Option<&Value>) -> Result<Resp, ClientError> {
        let key = match &self.kid {
            Some(k) => JwsKey::Kid(k.clone()),
            None => JwsKey::Jwk,
        };
        let bytes = payload
            .map(|p| p.to_string().into_bytes())
            .unwrap_or_default();
        let jws = sign_jws(
            &self.key,
            &JwsHeader {
                key,
                nonce: Some(self.next_nonce().await?),
                url: url.to_string(),
            },
            &bytes,
        )
        .map_err(|e| ClientError::Other(e.to_string()))?;
        SENT.posts.fetch_add(1, Relaxed);
        let r = self
            .http
            .post(url)
            .header("content-type", "application/jose+json")
            .body(jws.to_string())
            .send()
            .await?;
        if let Some(n) = r
            .headers()
            .get("replay-nonce")
            .and_then(|v| v.to_str().ok())
        {
            if let Ok(mut spare) = self.spare_nonce.lock() {
                *spare = Some(n.to_string());
            }
        }
        Ok(Resp {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.bytes().await?.to_vec(),
        })
    }

    /// Sends a signed request and requires a 2xx answer. A `badNonce` (§6.5), a 503 and a
    /// failed connection (a node behind the load balancer died) are retried with a fresh nonce
    /// a few times, as a device would.
    pub async fn post(&self, url: &str, payload: Option<&Value>) -> Result<Resp, ClientError> {
        let mut attempt: u64 = 0;
        loop {
            attempt += 1;
            let last = match self.post_raw(url, payload).await {
                Ok(r)
                    if r.status == 400
                        && r.json()["type"] == "urn:ietf:params:acme:error:badNonce" =>
                {
                    Ok(r)
                }
                Ok(r) if r.status == 503 => {
                    BUSY_ANSWERS.fetch_add(1, Relaxed);
                    Ok(r)
                }
                Ok(r) => return r.ok(url),
                Err(ClientError::Http(e)) => Err(ClientError::Http(e)),
                Err(e) => return Err(e),
            };
            // A 503 from an overloaded server says when to come back (capped for the bench).
            let retry_after = match &last {
                Ok(r) if r.status == 503 => r
                    .header("retry-after")
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(5))),
                _ => None,
            };
            if attempt >= 5 {
                return last.and_then(|r| r.ok(url));
            }
            tokio::time::sleep(retry_after.unwrap_or(Duration::from_millis(100 * attempt))).await;
        }
    }

    /// Registers (or finds) the account.
    pub async fn register(&mut self) -> Result<(), ClientError> {
        let r = self
            .post(
                &self.url("newAccount")?,
                Some(&json!({"termsOfServiceAgreed": true})),
            )
            .await?;
        self.kid = Some(
            r.header("location")
                .ok_or_else(|| ClientError::Other("newAccount without Location".into()))?,
        );
        Ok(())
    }

    /// Polls `url` until `done(body)` or `deadline`, honouring `Retry-After` up to a second.
    pub async fn poll(
        &self,
        url: &str,
        deadline: Instant,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, ClientError> {
        loop {
            SENT.polls.fetch_add(1, Relaxed);
            let r = self.post(url, None).await?;
            let v = r.json();
            if done(&v) {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Other(format!("timed out polling {url}: {v}")));
            }
            let wait = r
                .header("retry-after")
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(1)
                .min(1);
            tokio::time::sleep(Duration::from_millis(if wait == 0 { 50 } else { 200 })).await;
        }
    }
}

/// 503 answers the bench's requests got (and retried) in this process: the report prints it,
/// so a test can hold it against the server's own count.
pub static BUSY_ANSWERS: AtomicU64 = AtomicU64::new(0);

/// What this process's clients sent, for the report's requests per certificate: every request
/// the server must answer costs it CPU (a signed POST, a JWS verification), so a server that
/// makes clients poll more shows up here before it shows up in the rate.
pub struct Sent {
    /// Signed POSTs, retries and polls included.
    pub posts: AtomicU64,
    /// POSTs made by polling an authorization or order until it settled.
    pub polls: AtomicU64,
    /// HEAD newNonce requests (a client without a spare nonce from the previous answer).
    pub nonces: AtomicU64,
}

/// [`Sent`]'s counts at one moment.
#[derive(Clone, Copy)]
pub struct SentCounts {
    /// Signed POSTs.
    pub posts: u64,
    /// Of them, polls.
    pub polls: u64,
    /// HEAD newNonce requests.
    pub nonces: u64,
}

impl Sent {
    /// The counts so far.
    pub fn snapshot(&self) -> SentCounts {
        SentCounts {
            posts: self.posts.load(Relaxed),
            polls: self.polls.load(Relaxed),
            nonces: self.nonces.load(Relaxed),
        }
    }
}

/// The requests this process sent (see [`Sent`]).
pub static SENT: Sent = Sent {
    posts: AtomicU64::new(0),
    polls: AtomicU64::new(0),
    nonces: AtomicU64::new(0),
};

#[cfg(test)]
mod tests {
    use super::*;

    /// A 307 answer to a POST is returned to the caller, not followed: the JWS it carried was
    /// signed for the first URL (RFC 8555 §6.4).
    #[tokio::test]
    async fn redirects_are_not_followed() {
        let app = axum::Router::new()
            .route(
                "/a",
                axum::routing::post(|| async {
                    (
                        axum::http::StatusCode::TEMPORARY_REDIRECT,
                        [("location", "/b")],
                    )
                }),
            )
            .route("/b", axum::routing::post(|| async { "followed" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let root = rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .unwrap()
            .cert
            .pem();
        let http = http_client(&root).unwrap();
        let r = http
            .post(format!("http://{addr}/a"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 307);
        assert_eq!(r.text().await.unwrap(), "");
    }
}
