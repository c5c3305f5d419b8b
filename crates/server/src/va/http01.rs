//! http-01 (RFC 8555 §8.3; RFC 8738 for IP identifiers).
//!
//! GET `http://<identifier>:<http01_port>/.well-known/acme-challenge/<token>` with `Host: <identifier>`.
//! Addresses are tried IPv6 first, then IPv4; the next address is tried only when the TCP
//! connection fails, never after an answer. Every address is checked against the
//! [`AddressPolicy`](super::address::AddressPolicy) first, and the connection goes to the
//! checked address itself (no second lookup, so DNS rebinding cannot swap it).
//!
//! Redirects (301/302/303/307/308; RFC 8555 §8.3 lets the server follow them, §10.2 asks it to
//! limit what it reaches) are followed up to `max_http_redirects` times, and only:
//! * to `http` on `http01_port` or `https` on `tlsalpn01_port` (80 and 443 outside a lab);
//! * to the identifier's own host or a name the tenant may issue for (its permitted names);
//!   IP literals only when the identifier is an IP, and then inside the permitted ranges;
//! * without credentials in the URL.
//!
//! The https certificate is not checked. At most 16 KiB of body is read; with trailing
//! whitespace removed it must equal the key authorization.
//!
//! Nothing a server sent (body, headers, Location, redirect URLs) is copied into a problem
//! detail or log line: failures are reported by HTTP status, byte count and a fixed reason,
//! and redirect hops by their number.

use std::net::{IpAddr, SocketAddr};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ACCEPT, CONNECTION, HOST, LOCATION, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use pki::{Identifier, Permitted};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};
use url::{Host, Url};

use super::address::{AddressClass, AddressPolicy};
use super::{truncate, ChallengeKind, HttpHop, Inner, Target, ValidationError, ValidationRecord};

/// Most body bytes read from the challenge response.
pub(crate) const MAX_BODY: usize = 16 * 1024;
const UA: &str = concat!("fleetca-va/", env!("CARGO_PKG_VERSION"));

/// How a request is named in problem details: the challenge URL (built by the CA from the
/// identifier) for the first one, only its number for a redirect (its URL came from a
/// Location header, i.e. from the remote server).
#[derive(Clone, Copy)]
enum Hop<'a> {
    First(&'a Url),
    Redirect(usize),
    /// tls-alpn-01's connection to the identifier.
    TlsAlpn,
}

impl std::fmt::Display for Hop<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hop::First(url) => write!(f, "{url}"),
            Hop::Redirect(n) => write!(f, "redirect {n}"),
            Hop::TlsAlpn => f.write_str("the tls-alpn-01 server"),
        }
    }
}

pub(crate) async fn validate(
    inner: &Inner,
    target: &Target,
    token: &str,
    key_authorization: &str,
    permitted: &Permitted,
    deadline: Instant,
) -> Result<ValidationRecord, ValidationError> {
    let cfg = &inner.cfg;
    let host_in_url = match target {
        Target::Dns(n) => n.clone(),
        Target::Ip(IpAddr::V4(v4)) => v4.to_string(),
        Target::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
    };
    let first = Url::parse(&format!(
        "http://{host_in_url}:{}/.well-known/acme-challenge/{token}",
        cfg.http01_port
    ))
    .map_err(|e| ValidationError::Malformed(format!("cannot build the challenge URL: {e}")))?;
    let mut url = first.clone();
    let mut record = ValidationRecord::new(ChallengeKind::Http01, target);
    record.port = Some(cfg.http01_port);
    // The first request carries the identifier alone as Host, whatever the (lab) port.
    let mut host_header = host_in_url.clone();
    let mut redirects = 0usize;
    loop {
        let hop = if redirects == 0 {
            Hop::First(&first)
        } else {
            Hop::Redirect(redirects)
        };
        match fetch(
            inner,
            target,
            hop,
            &url,
            &host_header,
            deadline,
            &mut record,
        )
        .await?
        {
            Fetched::Body { status, body } => {
                if status != StatusCode::OK {
                    return Err(ValidationError::Unauthorized(format!(
                        "{target}: {hop} answered HTTP {}, expected 200 with the key \
                         authorization",
                        status.as_u16()
                    )));
                }
                if body.len() > MAX_BODY {
                    return Err(ValidationError::IncorrectResponse(format!(
                        "{target}: the response body from {hop} did not match the key \
                         authorization (HTTP 200, more than {MAX_BODY} bytes)"
                    )));
                }
                if trim_trailing_ws(&body) == key_authorization.as_bytes() {
                    return Ok(record);
                }
                return Err(ValidationError::IncorrectResponse(format!(
                    "{target}: the response body from {hop} did not match the key \
                     authorization (HTTP 200, {} bytes)",
                    body.len()
                )));
            }
            Fetched::Redirect { location, status } => {
                redirects += 1;
                if redirects > cfg.max_http_redirects {
                    return Err(ValidationError::Connection(format!(
                        "{target}: too many redirects (more than {})",
                        cfg.max_http_redirects
                    )));
                }
                let status = status.as_u16();
                let next = url.join(&location).map_err(|_| {
                    ValidationError::Connection(format!(
                        "{target}: {hop} answered HTTP {status} with a Location that is not a \
                         valid URL"
                    ))
                })?;
                if let Err(why) = check_redirect(inner, target, permitted, &next) {
                    return Err(ValidationError::Connection(format!(
                        "{target}: redirect {redirects} (HTTP {status} from {hop}) is not \
                         followed: {why}"
                    )));
                }
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
    },
    Redirect {
        location: String,
        status: StatusCode,
    },
}

/// The redirect rules of the module documentation, checked in this order: scheme, host,
/// port, credentials. The reason is fixed text: nothing of the Location header is repeated.
fn check_redirect(
    inner: &Inner,
    target: &Target,
    permitted: &Permitted,
    to: &Url,
) -> Result<(), String> {
    let cfg = &inner.cfg;
    let allowed_port = match to.scheme() {
        "http" => cfg.http01_port,
        "https" => cfg.tlsalpn01_port,
        _ => return Err("only http and https are followed".into()),
    };
    check_redirect_host(target, permitted, to)?;
    if to.port_or_known_default() != Some(allowed_port) {
        return Err(format!(
            "its port is not {} (http) or {} (https)",
            cfg.http01_port, cfg.tlsalpn01_port
        ));
    }
    if !to.username().is_empty() || to.password().is_some() {
        return Err("the URL carries credentials".into());
    }
    Ok(())
}

/// The identifier's own host, or a name (an address, for IP identifiers) the tenant may issue
/// for: a redirect cannot take the CA to hosts the account could not order.
fn check_redirect_host(target: &Target, permitted: &Permitted, to: &Url) -> Result<(), String> {
    let outside = || {
        Err(format!(
            "its host is neither {target} nor a name this CA issues certificates for"
        ))
    };
    match (to.host(), target) {
        (Some(Host::Domain(d)), _) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if matches!(target, Target::Dns(n) if *n == d) {
                return Ok(());
            }
            // RFC 5280 §4.2.1.10 subtrees, as newOrder applies them (ra::order).
            match Identifier::parse_dns(&d) {
                Ok(Identifier::Dns(name)) if !name.is_wildcard() => {
                    if permitted.check(&Identifier::Dns(name)).is_ok() {
                        Ok(())
                    } else {
                        outside()
                    }
                }
                _ => outside(),
            }
        }
        (Some(Host::Ipv4(_)) | Some(Host::Ipv6(_)), Target::Dns(_)) => {
            Err("redirects to IP addresses are followed only for IP identifiers".into())
        }
        (Some(Host::Ipv4(v4)), Target::Ip(ip)) => {
            check_ip_host(IpAddr::V4(v4), *ip, permitted).or_else(|_| outside())
        }
        (Some(Host::Ipv6(v6)), Target::Ip(ip)) => {
            check_ip_host(IpAddr::V6(v6), *ip, permitted).or_else(|_| outside())
        }
        (None, _) => Err("the URL has no host".into()),
    }
}

fn check_ip_host(host: IpAddr, identifier: IpAddr, permitted: &Permitted) -> Result<(), ()> {
    if host == identifier || permitted.check(&Identifier::Ip(host)).is_ok() {
        Ok(())
    } else {
        Err(())
    }
}

/// One request: resolve, check the addresses, connect, (TLS), GET; returns the body or the
/// redirect location.
async fn fetch(
    inner: &Inner,
    target: &Target,
    hop: Hop<'_>,
    url: &Url,
    host_header: &str,
    deadline: Instant,
    record: &mut ValidationRecord,
) -> Result<Fetched, ValidationError> {
    let port = url.port_or_known_default().unwrap_or(80);
    let first = matches!(hop, Hop::First(_));
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
                "{target}: {hop} has no host"
            )))
        }
    };
    record.urls.push(url.to_string());
    record.hops.push(HttpHop {
        url: url.to_string(),
        hostname: hostname.clone(),
        port,
        addresses_resolved: addrs.clone(),
        address_used: None,
        status: None,
    });
    if first {
        record.hostname = hostname.clone();
        record.addresses_resolved = addrs.clone();
    }
    let peer = Peer {
        target,
        what: hop,
        show_addresses: first,
    };
    let (tcp, addr) = connect_any(&inner.cfg.addresses, &peer, &addrs, port, deadline).await?;
    if let Some(h) = record.hops.last_mut() {
        h.address_used = Some(addr);
    }
    if first {
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
                .map_err(|_| {
                    ValidationError::Connection(format!(
                        "{target}: {hop} has a host that cannot be sent as TLS SNI"
                    ))
                })?,
            _ => ServerName::IpAddress(addr.into()),
        };
        let connector = tokio_rustls::TlsConnector::from(inner.tls.https.clone());
        let tls = match timeout_at(deadline, connector.connect(server_name, tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(ValidationError::Tls(format!(
                    "{target}: TLS handshake for {} failed: {}",
                    peer.describe(sa),
                    truncate(&e.to_string(), 120)
                )))
            }
            Err(_) => {
                return Err(ValidationError::Connection(format!(
                    "{target}: TLS handshake for {} timed out",
                    peer.describe(sa)
                )))
            }
        };
        request(&peer, sa, tls, &path, host_header, deadline).await?
    } else {
        request(&peer, sa, tcp, &path, host_header, deadline).await?
    };
    if let Some(h) = record.hops.last_mut() {
        h.status = Some(match &res {
            Fetched::Body { status, .. } | Fetched::Redirect { status, .. } => status.as_u16(),
        });
    }
    Ok(res)
}

/// Who is being contacted, for problem details: the identifier, the request (see [`Hop`]),
/// and whether addresses may be named (only the identifier's own: the addresses of a
/// redirect target are not disclosed).
pub(crate) struct Peer<'a> {
    pub(crate) target: &'a Target,
    what: Hop<'a>,
    show_addresses: bool,
}

impl Peer<'_> {
    /// tls-alpn-01's connection to the identifier's own addresses.
    pub(crate) fn tls_alpn(target: &Target) -> Peer<'_> {
        Peer {
            target,
            what: Hop::TlsAlpn,
            show_addresses: true,
        }
    }

    fn describe(&self, sa: SocketAddr) -> String {
        if self.show_addresses {
            format!("{} (address {sa})", self.what)
        } else {
            self.what.to_string()
        }
    }
}

async fn request<S>(
    peer: &Peer<'_>,
    sa: SocketAddr,
    io: S,
    path: &str,
    host_header: &str,
    deadline: Instant,
) -> Result<Fetched, ValidationError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let target = peer.target;
    let at = peer.describe(sa);
    // hyper's and the OS's own wording (fixed text), never the server's bytes.
    let conn_err = |what: &str, e: &dyn std::fmt::Display| {
        ValidationError::Connection(format!(
            "{target}: {what} {at}: {}",
            truncate(&e.to_string(), 120)
        ))
    };
    let timed_out =
        |what: &str| ValidationError::Connection(format!("{target}: timed out {what} {at}"));
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
                    "{target}: {at} answered HTTP {} without a usable Location header",
                    status.as_u16()
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
        Ok(Fetched::Body { status, body })
    }
    .await;
    driver.abort();
    result
}

/// TCP connect to each permitted address in turn (IPv6 first, as resolved) until one accepts.
/// Addresses the policy refuses are never contacted; when none is left the validation fails
/// with `connection`, naming only the refused classes. The time left is shared out so that
/// a black-holed first address leaves time for the next.
pub(crate) async fn connect_any(
    policy: &AddressPolicy,
    peer: &Peer<'_>,
    addrs: &[IpAddr],
    port: u16,
    deadline: Instant,
) -> Result<(TcpStream, IpAddr), ValidationError> {
    let target = peer.target;
    let mut refused: Vec<AddressClass> = Vec::new();
    let mut usable: Vec<IpAddr> = Vec::with_capacity(addrs.len());
    for ip in addrs {
        match policy.check(*ip) {
            Ok(()) => usable.push(*ip),
            Err(class) => {
                tracing::debug!(identifier = %target, address = %ip, %class, "VA refused to contact an address");
                if !refused.contains(&class) {
                    refused.push(class);
                }
            }
        }
    }
    if usable.is_empty() {
        let classes: Vec<&str> = refused.iter().map(AddressClass::as_str).collect();
        return Err(ValidationError::Connection(format!(
            "{target}: {} leads only to addresses this CA does not contact ({})",
            peer.what,
            classes.join(", ")
        )));
    }
    let mut errors = Vec::new();
    for (i, ip) in usable.iter().enumerate() {
        let now = Instant::now();
        if now >= deadline {
            errors.push("out of time".to_string());
            break;
        }
        let left = u32::try_from(usable.len() - i).unwrap_or(1).max(1);
        let slot = (deadline - now) / left;
        let sa = SocketAddr::new(*ip, port);
        let shown = if peer.show_addresses {
            format!("{sa}: ")
        } else {
            String::new()
        };
        match timeout(slot, TcpStream::connect(sa)).await {
            Ok(Ok(s)) => return Ok((s, *ip)),
            Ok(Err(e)) => errors.push(format!("{shown}{e}")),
            Err(_) => errors.push(format!("{shown}connection timed out after {slot:?}")),
        }
    }
    Err(ValidationError::Connection(format!(
        "{target}: could not connect for {} on port {port}: {}",
        peer.what,
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

    #[test]
    fn redirect_hosts_stay_inside_the_identifier_or_the_permitted_names() {
        use super::{check_redirect_host, Permitted, Target, Url};
        let permitted =
            Permitted::parse(&["routers.example.com".into(), "10.0.0.0/8".into()]).unwrap();
        let ok = |t: &Target, u: &str| check_redirect_host(t, &permitted, &Url::parse(u).unwrap());
        let dns = Target::Dns("gw.routers.example.com".into());
        assert!(ok(&dns, "http://gw.routers.example.com/x").is_ok());
        assert!(ok(&dns, "http://GW.Routers.Example.com./x").is_ok());
        assert!(ok(&dns, "http://central.routers.example.com/x").is_ok());
        assert!(ok(&dns, "http://routers.example.com/x").is_ok());
        for refused in [
            "http://evilrouters.example.com/x",
            "http://routers.example.com.evil.net/x",
            "http://metadata.google.internal/x",
            "http://localhost/x",
            "http://10.0.0.5/x",
            "http://127.1/x",
            "http://[::1]/x",
        ] {
            assert!(ok(&dns, refused).is_err(), "{refused}");
        }
        // An identifier outside the permitted names (issued before a policy change) may still
        // redirect to itself.
        let own = Target::Dns("old.example.org".into());
        assert!(ok(&own, "https://old.example.org/x").is_ok());
        assert!(ok(&own, "https://other.example.org/x").is_err());
        // IP identifiers: the address itself or the permitted ranges.
        let ip = Target::Ip("10.1.2.3".parse().unwrap());
        assert!(ok(&ip, "http://10.1.2.3/x").is_ok());
        assert!(ok(&ip, "http://10.9.9.9/x").is_ok());
        assert!(ok(&ip, "http://gw.routers.example.com/x").is_ok());
        assert!(ok(&ip, "http://192.168.1.1/x").is_err());
        assert!(ok(&ip, "http://169.254.169.254/x").is_err());
        let outside = Target::Ip("192.0.2.7".parse().unwrap());
        assert!(ok(&outside, "http://192.0.2.7/x").is_ok());
        assert!(ok(&outside, "http://192.0.2.8/x").is_err());
    }
}
