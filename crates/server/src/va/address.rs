//! Which addresses the VA may connect to.
//!
//! A validation connects wherever the identifier's DNS (or a redirect) points, so without a
//! rule any account could make the CA fetch from services only the CA's host can reach: its
//! own loopback, link-local neighbours, cloud metadata endpoints (RFC 8555 §10.2 asks the
//! server to defend against exactly this; Boulder refuses the same classes). The VA therefore
//! refuses, for every connection it makes (http-01 first request and each redirect hop,
//! tls-alpn-01):
//! * unspecified / "this network" (`0.0.0.0/8`, `::`), loopback (`127.0.0.0/8`, `::1`),
//!   link-local (`169.254.0.0/16`, `fe80::/10`), multicast (`224.0.0.0/4`, `ff00::/8`), the
//!   limited broadcast address and the rest of the reserved `240.0.0.0/4` (RFC 6890);
//! * well-known metadata endpoints, some of which sit in otherwise allowed ranges;
//! * IPv6 forms that reach one of the above through an embedded IPv4 address: IPv4-mapped
//!   (`::ffff:0:0/96`, RFC 4291 §2.5.5.2), IPv4-compatible (`::/96`, §2.5.5.1), IPv4-translated
//!   (`::ffff:0:0:0/96`, RFC 2765), the NAT64 well-known prefix (`64:ff9b::/96`, RFC 6052) and
//!   6to4 (`2002::/16`, RFC 3056).
//!
//! Private ranges (10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10) are contacted: devices on
//! a LAN are what this CA validates.
//!
//! The operator adjusts this with two lists: `--va-deny-address` refuses more ranges and always
//! wins; `--va-allow-address` lifts a refusal, but only for a range that lies inside the refused
//! one (so `127.0.0.0/8` lifts loopback, while `0.0.0.0/0` lifts nothing and `169.254.0.0/16`
//! lifts link-local but not `169.254.169.254`, which must be named itself).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use ipnet::IpNet;

/// Why an address is not contacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// `0.0.0.0/8`, `::` (Linux connects 0.0.0.0 to the local host).
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `240.0.0.0/4` (reserved for future use, RFC 1112 §4).
    Reserved,
    /// A cloud provider's metadata or host-platform endpoint.
    Metadata,
    /// A range the operator refused with `--va-deny-address`.
    OperatorDenied,
}

impl AddressClass {
    /// Short name used in problem details and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            AddressClass::Unspecified => "unspecified",
            AddressClass::Loopback => "loopback",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Reserved => "reserved",
            AddressClass::Metadata => "cloud metadata",
            AddressClass::OperatorDenied => "refused by the operator",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The refused ranges, most specific class first for each address (a metadata address is
/// reported as metadata, not link-local).
fn refused_ranges() -> &'static [(IpNet, AddressClass)] {
    static TABLE: OnceLock<Vec<(IpNet, AddressClass)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        use AddressClass::*;
        [
            // Metadata / host-platform endpoints: AWS, GCP, Azure, OCI, OpenStack,
            // DigitalOcean (169.254.169.254), AWS ECS task credentials (169.254.170.2),
            // Alibaba Cloud (100.100.100.200), Azure WireServer (168.63.129.16), Oracle
            // Cloud legacy (192.0.0.192), AWS IMDS over IPv6 (fd00:ec2::254), OpenStack over
            // IPv6 (fe80::a9fe:a9fe).
            ("169.254.169.254/32", Metadata),
            ("169.254.170.2/32", Metadata),
            ("100.100.100.200/32", Metadata),
            ("168.63.129.16/32", Metadata),
            ("192.0.0.192/32", Metadata),
            ("fd00:ec2::254/128", Metadata),
            ("fe80::a9fe:a9fe/128", Metadata),
            ("0.0.0.0/8", Unspecified),
            ("::/128", Unspecified),
            ("127.0.0.0/8", Loopback),
            ("::1/128", Loopback),
            ("169.254.0.0/16", LinkLocal),
            ("fe80::/10", LinkLocal),
            ("224.0.0.0/4", Multicast),
            ("ff00::/8", Multicast),
            ("255.255.255.255/32", Broadcast),
            ("240.0.0.0/4", Reserved),
        ]
        .into_iter()
        .map(|(net, class)| (net.parse().expect("static CIDR"), class))
        .collect()
    })
}

/// The IPv4 address an IPv6 address reaches through a translation or tunnelling form, if any.
pub fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low32 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d (IPv4-mapped, RFC 4291 §2.5.5.2).
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low32),
        // ::ffff:0:a.b.c.d (IPv4-translated, RFC 2765 §2.1).
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(low32),
        // ::a.b.c.d (IPv4-compatible, deprecated by RFC 4291 §2.5.5.1); `::` and `::1` are
        // their own classes, not 0.0.0.0 / 0.0.0.1.
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => Some(low32),
        // 64:ff9b::a.b.c.d (NAT64 well-known prefix, RFC 6052 §2.1).
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low32),
        // 2002:AABB:CCDD::/48 (6to4, RFC 3056 §2).
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// The operator's adjustments to the refused classes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// `--va-allow-address`: lifts the refusal of a class for addresses in these ranges, when
    /// the range lies inside the refused range.
    pub allow: Vec<IpNet>,
    /// `--va-deny-address`: also refused; wins over everything.
    pub deny: Vec<IpNet>,
}

impl AddressPolicy {
    /// A policy with these allow and deny ranges (host bits cleared).
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>) -> Self {
        AddressPolicy {
            allow: allow.into_iter().map(|n| n.trunc()).collect(),
            deny: deny.into_iter().map(|n| n.trunc()).collect(),
        }
    }

    /// `Ok` when the VA may connect to `ip`, else the class that refuses it. The address is
    /// judged together with the IPv4 address it embeds, if any.
    pub fn check(&self, ip: IpAddr) -> Result<(), AddressClass> {
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let views = std::iter::once(ip).chain(embedded);
        if views
            .clone()
            .any(|v| self.deny.iter().any(|n| n.contains(&v)))
        {
            return Err(AddressClass::OperatorDenied);
        }
        for v in views {
            for (range, class) in refused_ranges() {
                if !range.contains(&v) {
                    continue;
                }
                let lifted = self
                    .allow
                    .iter()
                    .any(|a| a.contains(&v) && range.contains(a));
                if !lifted {
                    return Err(*class);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn every_refused_class_by_default() {
        use AddressClass::*;
        let p = AddressPolicy::default();
        for (addr, class) in [
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("::", Unspecified),
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("::1", Loopback),
            ("169.254.1.1", LinkLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("ff02::1", Multicast),
            ("255.255.255.255", Broadcast),
            ("240.0.0.1", Reserved),
            ("169.254.169.254", Metadata),
            ("169.254.170.2", Metadata),
            ("100.100.100.200", Metadata),
            ("168.63.129.16", Metadata),
            ("192.0.0.192", Metadata),
            ("fd00:ec2::254", Metadata),
            ("fe80::a9fe:a9fe", Metadata),
        ] {
            assert_eq!(p.check(ip(addr)), Err(class), "{addr}");
        }
    }

    #[test]
    fn embedded_forms_are_judged_by_their_ipv4_address() {
        use AddressClass::*;
        let p = AddressPolicy::default();
        for (addr, class) in [
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:169.254.169.254", Metadata),
            ("::ffff:0.0.0.0", Unspecified),
            ("::ffff:169.254.3.4", LinkLocal),
            ("::ffff:224.0.0.1", Multicast),
            ("::ffff:255.255.255.255", Broadcast),
            ("::ffff:0:127.0.0.1", Loopback),
            ("::127.0.0.1", Loopback),
            ("::169.254.169.254", Metadata),
            ("64:ff9b::127.0.0.1", Loopback),
            ("64:ff9b::a9fe:a9fe", Metadata),
            ("64:ff9b::100.100.100.200", Metadata),
            ("2002:7f00:1::1", Loopback),
            ("2002:a9fe:a9fe::", Metadata),
        ] {
            assert_eq!(p.check(ip(addr)), Err(class), "{addr}");
        }
        // Embedded public or private addresses are as allowed as the addresses themselves.
        for addr in ["::ffff:192.0.2.1", "64:ff9b::10.0.0.1", "2002:c000:201::1"] {
            assert_eq!(p.check(ip(addr)), Ok(()), "{addr}");
        }
    }

    #[test]
    fn public_and_private_ranges_are_contacted() {
        let p = AddressPolicy::default();
        for addr in [
            "192.0.2.1",
            "8.8.8.8",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.10",
            "100.64.0.1",
            "fd12:3456::1",
            "fc00::1",
            "2001:db8::1",
            "169.253.255.255",
            "169.255.0.0",
            "223.255.255.255",
        ] {
            assert_eq!(p.check(ip(addr)), Ok(()), "{addr}");
        }
    }

    #[test]
    fn allow_lifts_only_ranges_inside_the_refused_one() {
        use AddressClass::*;
        let p = AddressPolicy::new(nets(&["127.0.0.0/8", "::1/128"]), vec![]);
        assert_eq!(p.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(p.check(ip("127.0.0.2")), Ok(()));
        assert_eq!(p.check(ip("::1")), Ok(()));
        assert_eq!(p.check(ip("::ffff:127.0.0.1")), Ok(()));
        assert_eq!(p.check(ip("169.254.169.254")), Err(Metadata));

        // A narrower allow lifts only itself.
        let p = AddressPolicy::new(nets(&["127.0.0.1/32"]), vec![]);
        assert_eq!(p.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(p.check(ip("127.0.0.2")), Err(Loopback));

        // Everything-ranges lift nothing: each refused range must be named.
        let p = AddressPolicy::new(nets(&["0.0.0.0/0", "::/0"]), vec![]);
        for addr in ["127.0.0.1", "169.254.1.1", "::1", "fe80::1"] {
            assert!(p.check(ip(addr)).is_err(), "{addr}");
        }

        // Lifting link-local keeps the metadata address inside it refused...
        let p = AddressPolicy::new(nets(&["169.254.0.0/16", "fe80::/10"]), vec![]);
        assert_eq!(p.check(ip("169.254.1.1")), Ok(()));
        assert_eq!(p.check(ip("fe80::1")), Ok(()));
        assert_eq!(p.check(ip("169.254.169.254")), Err(Metadata));
        assert_eq!(p.check(ip("fe80::a9fe:a9fe")), Err(Metadata));
        // ...until it is named.
        let p = AddressPolicy::new(nets(&["169.254.0.0/16", "169.254.169.254/32"]), vec![]);
        assert_eq!(p.check(ip("169.254.169.254")), Ok(()));

        // Allowing a private range does not open a metadata address inside it.
        let p = AddressPolicy::new(nets(&["fd00::/8", "100.64.0.0/10"]), vec![]);
        assert_eq!(p.check(ip("fd00:ec2::254")), Err(Metadata));
        assert_eq!(p.check(ip("100.100.100.200")), Err(Metadata));
    }

    #[test]
    fn deny_wins_over_allow_and_defaults() {
        use AddressClass::*;
        let p = AddressPolicy::new(
            nets(&["127.0.0.0/8"]),
            nets(&["10.20.0.0/16", "127.0.0.5/32", "2001:db8:ff::/48"]),
        );
        // A private range that is normally contacted.
        assert_eq!(p.check(ip("10.20.3.4")), Err(OperatorDenied));
        assert_eq!(p.check(ip("10.21.3.4")), Ok(()));
        // Also through an embedded form.
        assert_eq!(p.check(ip("::ffff:10.20.3.4")), Err(OperatorDenied));
        assert_eq!(p.check(ip("64:ff9b::10.20.3.4")), Err(OperatorDenied));
        // Deny beats allow.
        assert_eq!(p.check(ip("127.0.0.5")), Err(OperatorDenied));
        assert_eq!(p.check(ip("127.0.0.6")), Ok(()));
        assert_eq!(p.check(ip("2001:db8:ff::1")), Err(OperatorDenied));
        // Host bits in a flag value are cleared.
        let p = AddressPolicy::new(vec![], nets(&["192.0.2.77/24"]));
        assert_eq!(p.check(ip("192.0.2.1")), Err(OperatorDenied));
    }
}
