//! Caps on concurrent connections, in total and per client address. A connection above either
//! cap is closed as soon as it is accepted, before any byte is read, so a flood of idle
//! connections costs the server one descriptor each for an instant and cannot take the
//! descriptors the database, the logs and the validation authority need.
//!
//! The client is the TCP peer, never `X-Forwarded-For` or PROXY protocol: those name the client
//! for rate limits once a request has been read, but the cap must decide before reading, and
//! a header is the attacker's to forge. Behind a load balancer every connection comes from the
//! balancer: the balancers named with `serve --trusted-proxy` are therefore exempt from the
//! per-IP cap (never from the total one); a deployment behind others sets the per-IP cap high.

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The listener group's total cap (`serve --max-connections`) is reached.
    Total,
    /// The client address's cap (`serve --max-connections-per-ip`) is reached.
    PerIp,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Total => "total",
            Refusal::PerIp => "per_ip",
        }
    }
}

/// The key a client address is counted under: an IPv4 address (IPv4-mapped IPv6 included), or
/// an IPv6 /64. One IPv6 subscriber is routinely given a whole /64, so counting single IPv6
/// addresses would give one client 2^64 budgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ClientKey(IpAddr);

impl ClientKey {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                ClientKey(IpAddr::V6(Ipv6Addr::from(bits)))
            }
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<ClientKey, usize>,
}

/// Connection counts shared by the listeners that draw on one budget.
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    per_ip_exempt: Vec<IpNet>,
    counts: Mutex<Counts>,
}

impl ConnectionLimits {
    /// At most `max_total` connections at once, at most `max_per_ip` from one client outside
    /// `per_ip_exempt` (the trusted load balancers); 0 means no cap of that kind.
    pub fn new(max_total: usize, max_per_ip: usize, per_ip_exempt: Vec<IpNet>) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            per_ip_exempt,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Counts a new connection from `ip`, or says which cap refuses it. The connection is
    /// counted until the returned permit is dropped.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let key = ClientKey::of(ip);
        // A poisoned lock only means another connection's task panicked mid-update of two
        // integers; the counts are still the best information there is.
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if self.max_total > 0 && c.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let exempt = self
            .per_ip_exempt
            .iter()
            .any(|net| net.contains(&ip.to_canonical()));
        let n = c.per_client.entry(key).or_insert(0);
        if self.max_per_ip > 0 && *n >= self.max_per_ip && !exempt {
            return Err(Refusal::PerIp);
        }
        *n += 1;
        c.total += 1;
        Ok(ConnectionPermit {
            limits: Arc::clone(self),
            key,
        })
    }

    /// Connections counted now.
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    fn release(&self, key: ClientKey) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_client.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                // Forget idle clients, so the map is bounded by the open connections.
                c.per_client.remove(&key);
            }
        }
    }
}

/// One counted connection; dropping it gives the slot back.
pub struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    key: ClientKey,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.limits.release(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_ip_cap_then_total_cap_and_release() {
        let l = ConnectionLimits::new(3, 2, vec![]);
        let a1 = l.try_acquire(ip("192.0.2.1")).unwrap();
        let _a2 = l.try_acquire(ip("192.0.2.1")).unwrap();
        assert_eq!(
            l.try_acquire(ip("192.0.2.1")).err(),
            Some(Refusal::PerIp),
            "third from one address"
        );
        let _b1 = l.try_acquire(ip("192.0.2.2")).unwrap();
        assert_eq!(l.try_acquire(ip("192.0.2.3")).err(), Some(Refusal::Total));
        drop(a1);
        assert_eq!(l.open(), 2);
        l.try_acquire(ip("192.0.2.3")).unwrap();
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let l = ConnectionLimits::new(0, 1, vec![]);
        let _a = l.try_acquire(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            l.try_acquire(ip("2001:db8:1:2:ffff::9")).err(),
            Some(Refusal::PerIp),
            "same /64"
        );
        let _b = l.try_acquire(ip("2001:db8:1:3::1")).unwrap();
        let _c = l.try_acquire(ip("192.0.2.7")).unwrap();
        assert_eq!(
            l.try_acquire(ip("::ffff:192.0.2.7")).err(),
            Some(Refusal::PerIp)
        );
    }

    #[test]
    fn trusted_proxies_skip_the_per_ip_cap_but_not_the_total() {
        let l = ConnectionLimits::new(3, 1, vec!["10.0.0.0/8".parse().unwrap()]);
        let _a = l.try_acquire(ip("10.1.2.3")).unwrap();
        let _b = l.try_acquire(ip("10.1.2.3")).unwrap();
        let _c = l.try_acquire(ip("::ffff:10.1.2.3")).unwrap();
        assert_eq!(l.try_acquire(ip("10.1.2.3")).err(), Some(Refusal::Total));
    }

    #[test]
    fn zero_means_uncapped_and_the_map_forgets_closed_clients() {
        let l = ConnectionLimits::new(0, 0, vec![]);
        let permits: Vec<_> = (0..100)
            .map(|_| l.try_acquire(ip("192.0.2.1")).unwrap())
            .collect();
        assert_eq!(l.open(), 100);
        drop(permits);
        assert_eq!(l.open(), 0);
        assert!(l.counts.lock().unwrap().per_client.is_empty());
    }
}
