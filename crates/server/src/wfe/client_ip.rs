//! The client's IP address for per-IP rate limits (RFC 8555 §6.6). Without configuration it is
//! the TCP peer. Behind load balancers or TLS-terminating proxies (`serve --trusted-proxy
//! CIDR`), a request whose peer is a trusted proxy is attributed to the address that proxy
//! appended to `X-Forwarded-For`: the list is read from the right, skipping trusted proxies,
//! and the first address that is not one is the client. Everything left of it was written by
//! the client or by untrusted hops, so it is never believed; a forged header from an
//! untrusted peer is ignored entirely.

use ipnet::IpNet;
use std::net::IpAddr;

/// Who may speak for the client.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Proxies in `nets` (addresses or CIDR ranges).
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client address of `req`, when the listener recorded its peer (`ConnectInfo`).
    pub(crate) fn client_of<B>(&self, req: &axum::http::Request<B>) -> Option<IpAddr> {
        self.client_from(req.extensions(), req.headers())
    }

    /// [`Self::client_of`] for a request already split into its parts.
    pub(crate) fn client_of_parts(&self, parts: &axum::http::request::Parts) -> Option<IpAddr> {
        self.client_from(&parts.extensions, &parts.headers)
    }

    fn client_from(
        &self,
        extensions: &axum::http::Extensions,
        headers: &axum::http::HeaderMap,
    ) -> Option<IpAddr> {
        let peer = extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())?;
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        Some(self.client(peer, forwarded))
    }

    /// The client address of a request from `peer` carrying these `X-Forwarded-For` values
    /// (each a comma-separated list; several header lines concatenate in order, RFC 9110
    /// §5.3).
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match parse_hop(hop) {
                Some(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        return ip;
                    }
                }
                // An entry we cannot read ends what we can believe: attribute the request to
                // the last trusted hop rather than guess.
                None => return client,
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a dual-stack socket reports) compare as
/// the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` entry: an address, optionally `[v6]:port` or `v4:port` as some
/// proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = hop.parse::<std::net::SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse().ok())
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ])
    }

    #[test]
    fn an_untrusted_peer_cannot_claim_another_address() {
        let got = proxies().client(ip("203.0.113.9"), ["198.51.100.1"].into_iter());
        assert_eq!(got, ip("203.0.113.9"));
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("10.0.0.1"), ["198.51.100.1"].into_iter()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        // The client forged "1.2.3.4"; the trusted balancer appended what it saw.
        let got = proxies().client(
            ip("10.0.0.5"),
            ["1.2.3.4, 198.51.100.7", "10.1.1.1"].into_iter(),
        );
        assert_eq!(got, ip("198.51.100.7"));
    }

    #[test]
    fn a_trusted_peer_without_the_header_is_itself_the_client() {
        assert_eq!(
            proxies().client(ip("10.0.0.5"), std::iter::empty()),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn garbage_stops_at_the_last_trusted_hop() {
        let got = proxies().client(
            ip("10.0.0.5"),
            ["198.51.100.7, nonsense, 10.2.2.2"].into_iter(),
        );
        assert_eq!(got, ip("10.2.2.2"));
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_understood() {
        let p = proxies();
        assert_eq!(
            p.client(ip("::ffff:10.0.0.5"), ["198.51.100.7:4711"].into_iter()),
            ip("198.51.100.7")
        );
        assert_eq!(
            p.client(ip("::1"), ["[2001:db8::1]:443"].into_iter()),
            ip("2001:db8::1")
        );
        assert_eq!(
            p.client(ip("::1"), ["[2001:db8::2]"].into_iter()),
            ip("2001:db8::2")
        );
    }
}
