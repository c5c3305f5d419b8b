//! The blocking HTTPS transport to the ACME server (ureq + rustls): directory,
//! nonces, signed POSTs (RFC 8555 §6.2-§6.5), `badNonce` retry, Retry-After
//! and the server's `Date` (for clock sanity).

use crate::timefmt::parse_http_date;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use acme_types::sign::{sign_jws, AccountKey, JwsHeader, JwsKey};
use acme_types::wire::Directory;
use acme_types::Problem;
use rustls_pki_types::CertificateDer;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{Connector, TcpConnector};

use crate::error::{AgentError, Result};

/// Largest response body accepted (certificate chains are a few KB).
const MAX_BODY: u64 = 1 << 20;
/// Bundles searched for the system's trust anchors.
const SYSTEM_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// One HTTP response, fully read.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// `Location` header.
    pub location: Option<String>,
    /// `Retry-After` in seconds (delta form; an HTTP date is converted).
    pub retry_after: Option<Duration>,
    /// `Content-Type` without parameters.
    pub content_type: String,
    /// `Date` as Unix seconds.
    pub date: Option<i64>,
    /// `Link` headers with rel="alternate" or "up".
    pub links: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// Parses the body as JSON of type `T`, checking the content type.
    pub fn json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T> {
        if !self.content_type.ends_with("json") {
            return Err(AgentError::Server {
                url: url.into(),
                status: Some(self.status),
                detail: format!("expected JSON, got content type {:?}", self.content_type),
            });
        }
        serde_json::from_slice(&self.body).map_err(|e| AgentError::Server {
            url: url.into(),
            status: Some(self.status),
            detail: format!("malformed JSON: {e}"),
        })
    }
}

/// An ACME connection: the directory, a nonce pool of one, the account URL.
pub struct AcmeHttp {
    agent: ureq::Agent,
    /// The directory object.
    pub directory: Directory,
    /// The directory URL.
    pub directory_url: String,
    nonce: Option<String>,
    /// The last `Date` the server sent minus local time, in seconds.
    pub clock_skew: Option<i64>,
    /// The last `Date` the server sent (Unix seconds).
    pub server_date: Option<i64>,
    /// Time shared with the TLS verifier (clock-ahead check, `tls.rs`).
    session_clock: Arc<crate::tls::SessionClock>,
    /// Set when the local clock made the server's certificate look expired
    /// or not yet valid and the server's `Date` settled it: the log line.
    pub clock_note: Option<String>,
}

fn load_roots(server_root: Option<&Path>) -> Result<Vec<CertificateDer<'static>>> {
    // The agent's own PEM reader (keys.rs), not a second one from ureq.
    fn add(out: &mut Vec<CertificateDer<'static>>, pem: &[u8]) {
        let certs = crate::keys::pem_certs(&String::from_utf8_lossy(pem));
        out.extend(certs.into_iter().map(CertificateDer::from));
    }
    let mut out = Vec::new();
    if let Some(p) = server_root {
        let pem = std::fs::read(p).map_err(|e| AgentError::io(p, e))?;
        add(&mut out, &pem);
        if out.is_empty() {
            return Err(AgentError::Config(format!(
                "{}: no PEM certificate found",
                p.display()
            )));
        }
    }
    for bundle in SYSTEM_BUNDLES {
        if let Ok(pem) = std::fs::read(bundle) {
            add(&mut out, &pem);
            break;
        }
    }
    Ok(out)
}

/// The rustls crypto provider the agent uses everywhere: aws-lc-rs when the
/// `aws-lc-rs` feature is on, else ring (the default, smaller build).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
compile_error!("fleetca-agent needs a crypto provider: enable `ring` or `aws-lc-rs`");

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Current Unix time from the local clock.
///
/// Debug builds only (the test binary): `FLEETCA_AGENT_FAKE_NOW=<unix>` makes
/// the clock start at that time and advance normally, to test a device that
/// booted at 1970 or 2000. Release builds ignore it.
pub fn now_unix() -> i64 {
    let real = now_real().0;
    if cfg!(debug_assertions) {
        static FAKE: std::sync::OnceLock<Option<(i64, i64)>> = std::sync::OnceLock::new();
        let fake = FAKE.get_or_init(|| {
            let t = std::env::var("FLEETCA_AGENT_FAKE_NOW").ok()?.parse().ok()?;
            Some((t, real))
        });
        if let Some((start, at)) = fake {
            return start + (real - at);
        }
    }
    real
}

/// The system clock: Unix seconds and the nanoseconds into that second
/// (negative seconds before 1970).
pub fn now_real() -> (i64, u32) {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let (s, n) = (d.as_secs() as i64, d.subsec_nanos());
            if n == 0 {
                (-s, 0)
            } else {
                (-s - 1, 1_000_000_000 - n)
            }
        }
    }
}

fn parse_links(resp: &ureq::http::Response<ureq::Body>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for v in resp.headers().get_all("link") {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let mut it = part.split(';');
            let Some(url) = it.next() else { continue };
            let url = url.trim().trim_start_matches('<').trim_end_matches('>');
            for p in it {
                if let Some(rel) = p.trim().strip_prefix("rel=") {
                    out.push((rel.trim_matches('"').to_owned(), url.to_owned()));
                }
            }
        }
    }
    out
}

impl AcmeHttp {
    /// Connects: builds the TLS client (system roots plus `server_root`,
    /// certificates checked at no time earlier than `floor`, see
    /// [`crate::tls`]) and fetches the directory.
    pub fn connect(
        directory_url: &str,
        server_root: Option<&Path>,
        floor: i64,
    ) -> Result<AcmeHttp> {
        let roots = load_roots(server_root)?;
        if roots.is_empty() {
            return Err(AgentError::Config(
                "no trust anchors: pass --server-root or install a CA bundle".into(),
            ));
        }
        let session_clock = Arc::new(crate::tls::SessionClock::default());
        let tls = crate::tls::client_config(&roots, floor, now_unix, session_clock.clone())?;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .timeout_connect(Some(Duration::from_secs(10)))
            .max_redirects(0)
            .user_agent(concat!("fleetca-agent/", env!("CARGO_PKG_VERSION")))
            .build();
        let connector = TcpConnector::default().chain(crate::tls::TlsConnector { config: tls });
        let agent = ureq::Agent::with_parts(config, connector, DefaultResolver::default());
        let mut http = AcmeHttp {
            agent,
            directory: Directory {
                new_nonce: String::new(),
                new_account: String::new(),
                new_order: String::new(),
                new_authz: None,
                revoke_cert: String::new(),
                key_change: String::new(),
                renewal_info: None,
                meta: None,
            },
            directory_url: directory_url.to_owned(),
            nonce: None,
            clock_skew: None,
            server_date: None,
            session_clock,
            clock_note: None,
        };
        let resp = http.get(directory_url)?;
        if resp.status != 200 {
            return Err(server_error(directory_url, &resp));
        }
        http.directory = resp.json(directory_url)?;
        Ok(http)
    }

    fn finish(
        &mut self,
        url: &str,
        result: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Response> {
        let mut resp = result.map_err(|e| AgentError::Network {
            url: url.into(),
            detail: e.to_string(),
        })?;
        if let Some(n) = header(&resp, "replay-nonce") {
            self.nonce = Some(n);
        }
        let date = header(&resp, "date").and_then(|d| parse_http_date(&d));
        if let Some(p) = self.session_clock.take_probation() {
            self.settle_clock(url, p, date)?;
        }
        if let Some(d) = date {
            self.clock_skew = Some(d - now_unix());
            self.server_date = Some(d);
        }
        let retry_after = header(&resp, "retry-after").and_then(|v| {
            v.trim()
                .parse::<u64>()
                .ok()
                .or_else(|| {
                    parse_http_date(&v).map(|t| (t - date.unwrap_or_else(now_unix)).max(0) as u64)
                })
                .map(Duration::from_secs)
        });
        let content_type = header(&resp, "content-type")
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let out = Response {
            status: resp.status().as_u16(),
            location: header(&resp, "location"),
            retry_after,
            content_type,
            date,
            links: parse_links(&resp),
            body: Vec::new(),
        };
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| AgentError::Network {
                url: url.into(),
                detail: format!("reading body: {e}"),
            })?;
        Ok(Response { body, ..out })
    }

    /// The connection this response came over passed TLS only with a
    /// relaxed time check (`tls.rs`): accept it if the server's `Date` says
    /// the local clock is the outlier, else fail as the TLS error it was.
    fn settle_clock(
        &mut self,
        url: &str,
        p: crate::tls::Probation,
        date: Option<i64>,
    ) -> Result<()> {
        use crate::schedule::fmt_time;
        match self.session_clock.settle(p, date) {
            Some(off) => {
                let note = format!(
                    "local clock ({}) is outside the validity of the server's TLS certificate \
                     ({} .. {}); the server's Date ({}), read over the same connection, is \
                     inside it: using server time for this session (local clock off by {off}s)",
                    fmt_time(p.local),
                    fmt_time(p.from),
                    fmt_time(p.until),
                    fmt_time(p.local + off),
                );
                crate::log::warn(&note);
                self.clock_note = Some(note);
                Ok(())
            }
            None => Err(AgentError::Network {
                url: url.into(),
                detail: format!(
                    "TLS: the server's certificate is not valid at the local time ({}) and the \
                     server's Date ({}) does not fall in its validity ({} .. {})",
                    fmt_time(p.local),
                    date.map_or_else(|| "none".into(), fmt_time),
                    fmt_time(p.from),
                    fmt_time(p.until),
                ),
            }),
        }
    }

    /// Plain GET (directory, renewalInfo).
    pub fn get(&mut self, url: &str) -> Result<Response> {
        let r = self.agent.get(url).call();
        self.finish(url, r)
    }

    fn fresh_nonce(&mut self) -> Result<String> {
        if let Some(n) = self.nonce.take() {
            return Ok(n);
        }
        let url = self.directory.new_nonce.clone();
        let r = self.agent.head(&url).call();
        let resp = self.finish(&url, r)?;
        if !(200..300).contains(&resp.status) {
            return Err(server_error(&url, &resp));
        }
        self.nonce.take().ok_or_else(|| AgentError::Server {
            url,
            status: Some(resp.status),
            detail: "no Replay-Nonce header".into(),
        })
    }

    /// Signed POST (RFC 8555 §6.2); `payload` `None` is POST-as-GET (§6.3).
    /// Retries once on `badNonce` (§6.5) and returns any other problem as
    /// [`AgentError::Server`].
    pub fn post(
        &mut self,
        url: &str,
        key: &AccountKey,
        kid: Option<&str>,
        payload: Option<&serde_json::Value>,
    ) -> Result<Response> {
        let body = match payload {
            Some(p) => serde_json::to_vec(p).map_err(|e| AgentError::Key(e.to_string()))?,
            None => Vec::new(),
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let header = JwsHeader {
                key: match kid {
                    Some(k) => JwsKey::Kid(k.to_owned()),
                    None => JwsKey::Jwk,
                },
                nonce: Some(self.fresh_nonce()?),
                url: url.to_owned(),
            };
            let jws = sign_jws(key, &header, &body).map_err(|e| AgentError::Key(e.to_string()))?;
            let r = self
                .agent
                .post(url)
                .content_type("application/jose+json")
                .send(jws.to_string().as_bytes());
            let resp = self.finish(url, r)?;
            if resp.status < 400 {
                return Ok(resp);
            }
            let problem = problem_of(&resp);
            let bad_nonce = problem
                .as_ref()
                .is_some_and(|p| p.r#type.ends_with(":badNonce"));
            if bad_nonce && attempts < 3 {
                continue;
            }
            return Err(server_error(url, &resp));
        }
    }
}

fn problem_of(resp: &Response) -> Option<Problem> {
    serde_json::from_slice::<Problem>(&resp.body).ok()
}

/// Describes an error response: the problem document when there is one,
/// else the status and the start of the body.
pub fn server_error(url: &str, resp: &Response) -> AgentError {
    let error = describe_error(url, resp);
    // RFC 8555 §6.6 (rateLimited, 429) and RFC 9110 §15.6.4 (503): the
    // server says when to come back.
    match (resp.status, resp.retry_after) {
        (429 | 503, Some(after)) => AgentError::RetryLater {
            retry_after: after,
            error: Box::new(error),
        },
        _ => error,
    }
}

fn describe_error(url: &str, resp: &Response) -> AgentError {
    let detail = match problem_of(resp) {
        Some(p) => format!("{}: {}", p.r#type, p.detail),
        None => {
            let text = String::from_utf8_lossy(&resp.body);
            let short: String = text.chars().take(200).collect();
            format!("unexpected response: {short:?}")
        }
    };
    AgentError::Server {
        url: url.into(),
        status: Some(resp.status),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
