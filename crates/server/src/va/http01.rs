//! http-01 (RFC 8555 §8.3; RFC 8738 for IP identifiers).
//!
//! GET `http://<identifier>:<http01_port>/.well-known/acme-challenge/<token>` with `Host: <identifier>`.
//! Addresses are tried IPv6 first, then IPv4; the next address is tried only when the TCP
//! connection fails, never after an answer. Redirects (301/302/303/307/308) are followed up to
//! `max_http_redirects` times, only to `http` on `http01_port` or `https` on `tlsalpn01_port`,
//! and only to names (IP literals only when the identifier is an IP). The https certificate is
//! not checked. At most 16 KiB of body is read; with trailing whitespace removed it must equal
//! the key authorization.

use std::net::{IpAddr, SocketAddr};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ACCEPT, CONNECTION, HOST, LOCATION, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};
use url::{Host, Url};

use super::{
    truncate, truncate_bytes, ChallengeKind, HttpHop, Inner, Target, ValidationError,
    ValidationRecord,
};

/// Most body bytes read from the challenge response.
pub(crate) const MAX_BODY: usize = 16 * 1024;
const UA: &str = concat!("fleetca-va/", env!("CARGO_PKG_VERSION"));

pub(crate) async fn validate(
    inner: &Inner,
    target: &Target,
    token: &str,
    key_authorization: &str,
    deadline: Instant,
) -> Result<ValidationRecord, ValidationError> {
    let cfg = &inner.cfg;
    let host_in_url = match target {
        Target::Dns(n) => n.clone(),
        Target::Ip(IpAddr::V4(v4)) => v4.to_string(),
        Target::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
    };
    let mut url = Url::parse(&format!(
        "http://{host_in_url}:{}/.well-known/acme-challenge/{token}",
        cfg.http01_port
    ))
    .map_err(|e| ValidationError::Malformed(format!("cannot build the challenge URL: {e}")))?;
    let mut record = ValidationRecord::new(ChallengeKind::Http01, target);
    record.port = Some(cfg.http01_port);
    // The first request carries the identifier alone as Host, whatever the (lab) port.
    let mut host_header = host_in_url.clone();
    let mut redirects = 0usize;
    loop {
        let hop = fetch(inner, target, &url, &host_header, deadline, &mut record).await?;
        match hop {
            Fetched::Body { status, body, addr } => {
                let shown = truncate_bytes(&body, 200);
                if status != StatusCode::OK {
                    return Err(ValidationError::Unauthorized(format!(
                        "{target}: {url} (address {addr}) answered HTTP {status}, expected 200 \
                         with the key authorization; body: {shown:?}"
                    )));
                }
                if body.len() > MAX_BODY {
                    return Err(ValidationError::IncorrectResponse(format!(
                        "{target}: {url} (address {addr}) returned more than {MAX_BODY} bytes; \
                         expected the key authorization {:?}; body starts with: {shown:?}",
                        truncate(key_authorization, 120)
                    )));
                }
                let trimmed = trim_trailing_ws(&body);
                if trimmed == key_authorization.as_bytes() {
                    return Ok(record);
                }
                return Err(ValidationError::IncorrectResponse(format!(
                    "{target}: {url} (address {addr}) returned {shown:?}, expected the key \
                     authorization {:?}",
                    truncate(key_authorization, 120)
                )));
            }
            Fetched::Redirect { location, status } => {
                redirects += 1;
                if redirects > cfg.max_http_redirects {
                    return Err(ValidationError::Connection(format!(
                        "{target}: too many redirects (more than {}), last from {url}",
                        cfg.max_http_redirects
                    )));
                }
                let next = url.join(&location).map_err(|e| {
                    ValidationError::Connection(format!(
                        "{target}: {url} redirected (HTTP {status}) to an invalid location {:?}: {e}",
                        truncate(&location, 120)
                    ))
                })?;
                check_redirect(inner, target, &url, &next)?;
                host_header = match next.port() {
                    Some(p) => format!("{}:{p}", next.host_str().unwrap_or_default()),
                    None => next.host_str().unwrap_or_default().to_string(),
                };
                url = next;
            }
        }
    }
}

enum Fetched {
    Body {
        status: StatusCode,
        body: Vec<u8>,
        addr: IpAddr,
    },
    Redirect {
        location: String,
        status: StatusCode,
    },
}

fn check_redirect(
    inner: &Inner,
    target: &Target,
    from: &Url,
    to: &Url,
) -> Result<(), ValidationError> {
    let cfg = &inner.cfg;
    let deny = |why: String| {
        Err(ValidationError::Connection(format!(
            "{target}: {from} redirected to {}, which is not allowed: {why}",
            truncate(to.as_str(), 150)
        )))
    };
    let allowed_port = match to.scheme() {
        "http" => cfg.http01_port,
        "https" => cfg.tlsalpn01_port,
        other => return deny(format!("scheme {other:?} (only http and https)")),
    };
    match to.host() {
        Some(Host::Domain(d)) => {
            if d.trim_end_matches('.').is_empty() {
                return deny("empty host".into());
            }
        }
        Some(Host::Ipv4(_)) | Some(Host::Ipv6(_)) => {
            if !matches!(target, Target::Ip(_)) {
                return deny(
                    "redirects to IP addresses are allowed only for IP identifiers".into(),
                );
            }
        }
        None => return deny("no host".into()),
    }
    match to.port_or_known_default() {
        Some(p) if p == allowed_port => {}
        Some(p) => {
            return deny(format!(
                "port {p} (only {} for http and {} for https)",
                cfg.http01_port, cfg.tlsalpn01_port
            ))
        }
        None => return deny("no port".into()),
    }
    if !to.username().is_empty() || to.password().is_some() {
        return deny("credentials in the URL".into());
    }
    Ok(())
}

/// One request: resolve, connect, (TLS), GET; returns the body or the redirect location.
async fn fetch(
    inner: &Inner,
    target: &Target,
    url: &Url,
    host_header: &str,
    deadline: Instant,
    record: &mut ValidationRecord,
) -> Result<Fetched, ValidationError> {
    let port = url.port_or_known_default().unwrap_or(80);
    let (hostname, addrs) = match url.host() {
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_string();
            let addrs = match timeout_at(deadline, inner.resolver.lookup_ips(&d)).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(ValidationError::Dns(format!(
                        "{target}: looking up {d} timed out"
                    )))
                }
            };
            (d, addrs)
        }
        Some(Host::Ipv4(v4)) => (v4.to_string(), vec![IpAddr::V4(v4)]),
        Some(Host::Ipv6(v6)) => (v6.to_string(), vec![IpAddr::V6(v6)]),
        None => {
            return Err(ValidationError::Connection(format!(
                "{target}: {url} has no host"
            )))
        }
    };
    let addrs = super::dns::filter_addresses(addrs);
    if addrs.is_empty() {
        return Err(ValidationError::Connection(format!(
            "{target}: {hostname} is the unspecified address, which is never contacted"
        )));
    }
    record.urls.push(url.to_string());
    record.hops.push(HttpHop {
        url: url.to_string(),
        hostname: hostname.clone(),
        port,
        addresses_resolved: addrs.clone(),
        address_used: None,
        status: None,
    });
    if record.hops.len() == 1 {
        record.hostname = hostname.clone();
        record.addresses_resolved = addrs.clone();
    }
    let (tcp, addr) = connect_any(target, &hostname, &addrs, port, deadline).await?;
    if let Some(h) = record.hops.last_mut() {
        h.address_used = Some(addr);
    }
    if record.hops.len() == 1 {
        record.address_used = Some(addr);
    }
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let sa = SocketAddr::new(addr, port);
    let res = if url.scheme() == "https" {
        let server_name = match url.host() {
            Some(Host::Domain(d)) => ServerName::try_from(d.trim_end_matches('.').to_string())
                .map_err(|e| {
                    ValidationError::Connection(format!("{target}: bad host in {url}: {e}"))
                })?,
            _ => ServerName::IpAddress(addr.into()),
        };
        let connector = tokio_rustls::TlsConnector::from(inner.tls.https.clone());
        let tls = match timeout_at(deadline, connector.connect(server_name, tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(ValidationError::Tls(format!(
                    "{target}: TLS handshake with {sa} for {url} failed: {e}"
                )))
            }
            Err(_) => {
                return Err(ValidationError::Connection(format!(
                    "{target}: TLS handshake with {sa} for {url} timed out"
                )))
            }
        };
        request(target, url, sa, tls, &path, host_header, deadline).await?
    } else {
        request(target, url, sa, tcp, &path, host_header, deadline).await?
    };
    if let Some(h) = record.hops.last_mut() {
        h.status = Some(match &res {
            Fetched::Body { status, .. } | Fetched::Redirect { status, .. } => status.as_u16(),
        });
    }
    Ok(res)
}

async fn request<S>(
    target: &Target,
    url: &Url,
    sa: SocketAddr,
    io: S,
    path: &str,
    host_header: &str,
    deadline: Instant,
) -> Result<Fetched, ValidationError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn_err = |what: &str, e: &dyn std::fmt::Display| {
        ValidationError::Connection(format!(
            "{target}: {what} {url} (address {sa}): {}",
            truncate(&e.to_string(), 200)
        ))
    };
    let timed_out = |what: &str| {
        ValidationError::Connection(format!("{target}: timed out {what} {url} (address {sa})"))
    };
    let (mut sender, conn) = match timeout_at(
        deadline,
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(io)),
    )
    .await
    {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return Err(conn_err("HTTP connection for", &e)),
        Err(_) => return Err(timed_out("starting HTTP to")),
    };
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let host =
        HeaderValue::from_str(host_header).map_err(|e| conn_err("bad Host header for", &e))?;
    let req = Request::get(path)
        .header(HOST, host)
        .header(USER_AGENT, UA)
        .header(ACCEPT, "*/*")
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| conn_err("building the request for", &e))?;
    let result = async {
        let resp = match timeout_at(deadline, sender.send_request(req)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(conn_err("fetching", &e)),
            Err(_) => return Err(timed_out("waiting for the response from")),
        };
        let status = resp.status();
        if status.is_redirection() && matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            return match location {
                Some(location) => Ok(Fetched::Redirect { location, status }),
                None => Err(ValidationError::Connection(format!(
                    "{target}: {url} (address {sa}) answered HTTP {status} without a usable \
                     Location header"
                ))),
            };
        }
        let mut body_stream = resp.into_body();
        let mut body = Vec::new();
        loop {
            let frame = match timeout_at(deadline, body_stream.frame()).await {
                Ok(Some(Ok(f))) => f,
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(conn_err("reading the body of", &e)),
                Err(_) => return Err(timed_out("reading the body of")),
            };
            if let Ok(data) = frame.into_data() {
                body.extend_from_slice(&data);
                if body.len() > MAX_BODY {
                    // One byte more than the cap is enough to know it cannot match.
                    body.truncate(MAX_BODY + 1);
                    break;
                }
            }
        }
        Ok(Fetched::Body {
            status,
            body,
            addr: sa.ip(),
        })
    }
    .await;
    driver.abort();
    result
}

/// TCP connect to each address in turn (IPv6 first, as resolved) until one accepts. The time
/// left is shared out so that a black-holed first address leaves time for the next.
pub(crate) async fn connect_any(
    target: &Target,
    hostname: &str,
    addrs: &[IpAddr],
    port: u16,
    deadline: Instant,
) -> Result<(TcpStream, IpAddr), ValidationError> {
    let mut errors = Vec::new();
    for (i, ip) in addrs.iter().enumerate() {
        let now = Instant::now();
        if now >= deadline {
            errors.push("out of time".to_string());
            break;
        }
        let left = u32::try_from(addrs.len() - i).unwrap_or(1).max(1);
        let slot = (deadline - now) / left;
        let sa = SocketAddr::new(*ip, port);
        match timeout(slot, TcpStream::connect(sa)).await {
            Ok(Ok(s)) => return Ok((s, *ip)),
            Ok(Err(e)) => errors.push(format!("{sa}: {e}")),
            Err(_) => errors.push(format!("{sa}: connection timed out after {slot:?}")),
        }
    }
    Err(ValidationError::Connection(format!(
        "{target}: could not connect to {hostname} on port {port}: {}",
        truncate(&errors.join("; "), 300)
    )))
}

/// RFC 8555 §8.3: "The server SHOULD ignore whitespace characters at the end of the body".
fn trim_trailing_ws(b: &[u8]) -> &[u8] {
    let mut end = b.len();
    while end > 0 && matches!(b[end - 1], b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c) {
        end -= 1;
    }
    &b[..end]
}

#[cfg(test)]
mod tests {
    #[test]
    fn trailing_whitespace_only() {
        assert_eq!(super::trim_trailing_ws(b"abc \r\n\t"), b"abc");
        assert_eq!(super::trim_trailing_ws(b" abc"), b" abc");
        assert_eq!(super::trim_trailing_ws(b"\n"), b"");
    }
}
