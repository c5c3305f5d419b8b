//! DNS lookups for the VA: hickory-resolver with its cache off (STACK pitfall 6).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;

use super::{VaError, ValidationError};

/// A failed lookup, classified the way validation needs it.
#[derive(Debug, Clone)]
pub(crate) enum DnsFailure {
    /// NXDOMAIN: the name does not exist.
    NxDomain,
    /// NOERROR without records of that type.
    NoData,
    /// Anything else (SERVFAIL, REFUSED, timeout, network): the answer is unknown.
    Failed(String),
}

pub(crate) struct VaResolver {
    resolver: TokioResolver,
}

impl VaResolver {
    pub(crate) fn new(upstream: Option<SocketAddr>, timeout: Duration) -> Result<Self, VaError> {
        let servers: Vec<NameServerConfig> = match upstream {
            Some(sa) => vec![name_server(sa)],
            None => system_name_servers()?
                .into_iter()
                .map(|ip| name_server(SocketAddr::new(ip, 53)))
                .collect(),
        };
        let config = ResolverConfig::from_name_servers(servers);
        let mut opts = ResolverOpts::default();
        // A CA must see the current record: no cache, and whatever does get stored expires at
        // once.
        opts.cache_size = 0;
        opts.positive_max_ttl = Some(Duration::ZERO);
        opts.negative_max_ttl = Some(Duration::ZERO);
        // Never /etc/hosts, never search domains (all queries are absolute names).
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        opts.attempts = 2;
        opts.timeout = (timeout / 2).max(Duration::from_millis(200));
        opts.try_tcp_on_error = true;
        opts.preserve_intermediates = true;
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| VaError::Resolver(e.to_string()))?;
        Ok(VaResolver { resolver })
    }

    /// All records of `rtype` at `name` (absolute; CNAMEs followed by the resolver).
    pub(crate) async fn lookup(
        &self,
        name: &str,
        rtype: RecordType,
    ) -> Result<Vec<RData>, DnsFailure> {
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let qname = Name::from_ascii(&fqdn)
            .map_err(|e| DnsFailure::Failed(format!("invalid name {fqdn}: {e}")))?;
        match self.resolver.lookup(qname, rtype).await {
            Ok(lookup) => {
                let out: Vec<RData> = lookup
                    .answers()
                    .iter()
                    .map(|r| r.data.clone())
                    .filter(|d| d.record_type() == rtype)
                    .collect();
                if out.is_empty() {
                    Err(DnsFailure::NoData)
                } else {
                    Ok(out)
                }
            }
            Err(e) => Err(classify(e)),
        }
    }

    /// A and AAAA for `name`, IPv6 first. Unspecified addresses are dropped here, so nothing
    /// downstream can connect to them.
    pub(crate) async fn lookup_ips(&self, name: &str) -> Result<Vec<IpAddr>, ValidationError> {
        let (v6, v4) = tokio::join!(
            self.lookup(name, RecordType::AAAA),
            self.lookup(name, RecordType::A)
        );
        let mut out = Vec::new();
        for d in [&v6, &v4].into_iter().flatten().flatten() {
            match d {
                RData::AAAA(a) => out.push(IpAddr::V6(a.0)),
                RData::A(a) => out.push(IpAddr::V4(a.0)),
                _ => {}
            }
        }
        if out.is_empty() {
            let err = match (&v6, &v4) {
                (Err(DnsFailure::Failed(e)), _) | (_, Err(DnsFailure::Failed(e))) => {
                    format!("looking up A/AAAA for {name} failed: {e}")
                }
                (Err(DnsFailure::NxDomain), _) | (_, Err(DnsFailure::NxDomain)) => {
                    format!("{name} does not exist (NXDOMAIN)")
                }
                _ => format!("no A or AAAA records found for {name}"),
            };
            return Err(ValidationError::Dns(err));
        }
        let usable = filter_addresses(out);
        if usable.is_empty() {
            return Err(ValidationError::Dns(format!(
                "{name} resolves only to the unspecified address (0.0.0.0 / ::), which is never \
                 contacted"
            )));
        }
        Ok(usable)
    }
}

/// Drops unspecified addresses (also IPv4-mapped `::ffff:0.0.0.0`) and duplicates.
pub(crate) fn filter_addresses(addrs: Vec<IpAddr>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::with_capacity(addrs.len());
    for a in addrs {
        if a.is_unspecified() || a.to_canonical().is_unspecified() || out.contains(&a) {
            continue;
        }
        out.push(a);
    }
    out
}

fn name_server(sa: SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = sa.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = sa.port();
    NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
}

/// `nameserver` lines of /etc/resolv.conf (the `system-config` feature of hickory is off).
fn system_name_servers() -> Result<Vec<IpAddr>, VaError> {
    let text = std::fs::read_to_string("/etc/resolv.conf")
        .map_err(|e| VaError::Resolver(format!("reading /etc/resolv.conf: {e}")))?;
    let servers = parse_resolv_conf(&text);
    if servers.is_empty() {
        return Err(VaError::Resolver(
            "no usable nameserver line in /etc/resolv.conf; set the VA's dns_resolver".into(),
        ));
    }
    Ok(servers)
}

fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            // Drop an IPv6 zone ("fe80::1%eth0"): not expressible as IpAddr.
            let addr = words.next()?.split('%').next()?;
            addr.parse::<IpAddr>().ok()
        })
        .collect()
}

fn classify(e: NetError) -> DnsFailure {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            if nr.response_code == ResponseCode::NXDomain {
                DnsFailure::NxDomain
            } else if nr.response_code == ResponseCode::NoError {
                DnsFailure::NoData
            } else {
                DnsFailure::Failed(format!("server answered {}", nr.response_code))
            }
        }
        NetError::Dns(DnsError::ResponseCode(code)) => {
            DnsFailure::Failed(format!("server answered {code}"))
        }
        NetError::Timeout => DnsFailure::Failed("DNS query timed out".into()),
        other => DnsFailure::Failed(super::truncate(&other.to_string(), 200)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let t = "# c\nsearch x\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nnameserver bad\n";
        assert_eq!(
            parse_resolv_conf(t),
            vec![
                "10.0.0.1".parse::<IpAddr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn unspecified_dropped() {
        let v = filter_addresses(vec![
            "0.0.0.0".parse().unwrap(),
            "::".parse().unwrap(),
            "::ffff:0.0.0.0".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        ]);
        assert_eq!(v, vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
    }
}
