//! Tenant policy: which names a tenant's issuing CA may certify.
//!
//! The same subtrees go into the issuing CA's Name Constraints extension (RFC 5280 §4.2.1.10,
//! BR §7.1.2.5.2), so this check and relying parties' path validation agree. It is called by
//! the registration authority when an order is made and again by the issuer right before
//! signing (defence in depth).

use ipnet::IpNet;

use crate::identifier::{DnsName, Identifier};
use crate::PkiError;

/// The permitted subtrees of one tenant: DNS suffixes and IP ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permitted {
    /// Permitted DNS subtrees (RFC 5280 §4.2.1.10 dNSName constraints).
    pub dns: Vec<DnsName>,
    /// Permitted IP ranges (RFC 5280 §4.2.1.10 iPAddress constraints).
    pub ip: Vec<IpNet>,
}

/// An identifier that the tenant's policy does not permit. The server maps it to the ACME
/// `rejectedIdentifier` problem (RFC 8555 §6.7).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("identifier {identifier} is not permitted: {reason}")]
pub struct PolicyError {
    /// The identifier that was refused.
    pub identifier: Identifier,
    /// Why, in words a client can act on.
    pub reason: String,
}

impl Permitted {
    /// Parses `--permit` values: each is a DNS suffix (`routers.example.com`) or a CIDR range
    /// (`10.0.0.0/8`, `fd00::/8`). A CIDR must have no host bits set; a bare address and a
    /// wildcard are refused, since a subtree already covers every name below it.
    pub fn parse(values: &[String]) -> Result<Self, PkiError> {
        let mut permitted = Permitted::default();
        for value in values {
            let invalid = |reason: String| PkiError::InvalidPermit {
                value: value.clone(),
                reason,
            };
            let value_trimmed = value.trim();
            if value_trimmed.contains('/') {
                let net: IpNet = value_trimmed
                    .parse()
                    .map_err(|e| invalid(format!("not a CIDR range ({e})")))?;
                if net.trunc() != net {
                    return Err(invalid(format!(
                        "host bits are set (did you mean {}?)",
                        net.trunc()
                    )));
                }
                if !permitted.ip.contains(&net) {
                    permitted.ip.push(net);
                }
            } else if value_trimmed.parse::<std::net::IpAddr>().is_ok() {
                return Err(invalid(
                    "an IP address needs a prefix length, e.g. 10.0.0.1/32".into(),
                ));
            } else {
                let name = DnsName::parse(value_trimmed).map_err(|e| invalid(e.to_string()))?;
                if name.is_wildcard() {
                    return Err(invalid(
                        "use the suffix without `*.`: a subtree covers all names below it".into(),
                    ));
                }
                if !permitted.dns.contains(&name) {
                    permitted.dns.push(name);
                }
            }
        }
        Ok(permitted)
    }

    /// True when at least one IP range is permitted. When false, the issuing CA excludes all
    /// of IPv4 and IPv6 (BR §7.1.2.5.2).
    pub fn permits_any_ip(&self) -> bool {
        !self.ip.is_empty()
    }

    /// True when at least one DNS subtree is permitted. When false, the issuing CA excludes
    /// every DNS name (BR §7.1.2.5.2).
    pub fn permits_any_dns(&self) -> bool {
        !self.dns.is_empty()
    }

    /// RFC 5280 §4.2.1.10: a DNS name is inside a subtree when it equals it or ends with `.`
    /// plus the subtree; a wildcard is judged by its base name; an IP address must lie inside
    /// a permitted range.
    pub fn check(&self, identifier: &Identifier) -> Result<(), PolicyError> {
        let refuse = |reason: String| PolicyError {
            identifier: identifier.clone(),
            reason,
        };
        match identifier {
            Identifier::Dns(name) => {
                if self.dns.iter().any(|tree| name.is_within(tree)) {
                    Ok(())
                } else if self.dns.is_empty() {
                    Err(refuse("this CA may not issue for DNS names".into()))
                } else {
                    Err(refuse(format!(
                        "outside the permitted DNS subtrees ({})",
                        join(&self.dns)
                    )))
                }
            }
            Identifier::Ip(ip) => {
                if self.ip.iter().any(|net| net.contains(ip)) {
                    Ok(())
                } else if self.ip.is_empty() {
                    Err(refuse("this CA may not issue for IP addresses".into()))
                } else {
                    Err(refuse(format!(
                        "outside the permitted IP ranges ({})",
                        join(&self.ip)
                    )))
                }
            }
        }
    }

    /// True when every name `other` permits is also permitted here (each of `other`'s DNS
    /// subtrees lies inside one of ours, each IP range inside one of ours).
    pub fn covers(&self, other: &Permitted) -> bool {
        other
            .dns
            .iter()
            .all(|d| self.dns.iter().any(|tree| d.is_within(tree)))
            && other
                .ip
                .iter()
                .all(|n| self.ip.iter().any(|net| net.contains(n)))
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permitted() -> Permitted {
        Permitted::parse(&[
            "routers.example.com".into(),
            "10.0.0.0/8".into(),
            "fd00::/8".into(),
        ])
        .unwrap()
    }

    fn dns(s: &str) -> Identifier {
        Identifier::parse_dns(s).unwrap()
    }

    #[test]
    fn dns_inside_and_outside() {
        let p = permitted();
        assert!(p.check(&dns("routers.example.com")).is_ok());
        assert!(p.check(&dns("r1.routers.example.com")).is_ok());
        assert!(p.check(&dns("R1.Routers.Example.com.")).is_ok());
        assert!(p.check(&dns("*.routers.example.com")).is_ok());
        let e = p.check(&dns("evilrouters.example.com")).unwrap_err();
        assert_eq!(e.identifier, dns("evilrouters.example.com"));
        assert!(p.check(&dns("example.com")).is_err());
        assert!(p.check(&dns("*.example.com")).is_err());
        assert!(p.check(&dns("routers.example.com.evil.com")).is_err());
        assert!(p.check(&dns("EVILrouters.example.com")).is_err());
    }

    #[test]
    fn ip_inside_and_outside() {
        let p = permitted();
        assert!(p.permits_any_ip());
        assert!(p.check(&Identifier::parse_ip("10.1.2.3").unwrap()).is_ok());
        assert!(p.check(&Identifier::parse_ip("fd12::1").unwrap()).is_ok());
        assert!(p.check(&Identifier::parse_ip("11.0.0.1").unwrap()).is_err());
        assert!(p.check(&Identifier::parse_ip("fe80::1").unwrap()).is_err());
        let dns_only = Permitted::parse(&["routers.example.com".into()]).unwrap();
        assert!(!dns_only.permits_any_ip());
        assert!(dns_only
            .check(&Identifier::parse_ip("10.1.2.3").unwrap())
            .is_err());
        let ip_only = Permitted::parse(&["10.0.0.0/8".into()]).unwrap();
        assert!(ip_only.check(&dns("routers.example.com")).is_err());
    }

    #[test]
    fn parse_rejects_bad_permits() {
        for bad in [
            "10.0.0.1/8",
            "10.0.0.1",
            "*.example.com",
            "10.0.0.0/33",
            "bad..name",
            "com",
        ] {
            assert!(
                Permitted::parse(&[bad.to_string()]).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn covers_is_subset() {
        let p = permitted();
        let inner =
            Permitted::parse(&["a.routers.example.com".into(), "10.1.0.0/16".into()]).unwrap();
        assert!(p.covers(&inner));
        assert!(!inner.covers(&p));
    }
}
