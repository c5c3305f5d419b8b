//! When to renew: ARI's suggested window (RFC 9773 §4.2) when the server
//! offers it, else two thirds of the lifetime with jitter; and which clock to
//! trust when the device's clock is obviously wrong.

use x509_parser::prelude::*;

use crate::error::{AgentError, Result};
use crate::jitter::Jitter;

/// What the agent needs to know about an installed certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// DNS names in subjectAltName.
    pub names: Vec<String>,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// Serial as unsigned big-endian bytes.
    pub serial: Vec<u8>,
    /// Authority Key Identifier keyIdentifier, if present.
    pub aki: Option<Vec<u8>>,
    /// SubjectPublicKeyInfo DER.
    pub spki: Vec<u8>,
}

impl CertInfo {
    /// Parses a DER certificate.
    pub fn parse(der: &[u8]) -> Result<CertInfo> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| AgentError::Key(format!("unparsable certificate: {e}")))?;
        let mut names = Vec::new();
        let mut aki = None;
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for n in &san.general_names {
                        match n {
                            GeneralName::DNSName(d) => names.push(d.to_string()),
                            GeneralName::IPAddress(ip) => {
                                // RFC 5280 §4.2.1.6: 4 or 16 octets; recorded in the
                                // textual form an RFC 8738 `ip` identifier uses.
                                if let Some(ip) = ip_from_octets(ip) {
                                    names.push(ip.to_string());
                                }
                            }
                            _ => {}
                        }
                    }
                }
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    aki = a.key_identifier.as_ref().map(|k| k.0.to_vec());
                }
                _ => {}
            }
        }
        Ok(CertInfo {
            names,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            serial: cert.raw_serial().to_vec(),
            aki,
            spki: cert.public_key().raw.to_vec(),
        })
    }

    /// The ARI certID (RFC 9773 §4.1), if the certificate has an AKI.
    pub fn ari_cert_id(&self) -> Option<String> {
        let aki = self.aki.as_ref()?;
        Some(acme_types::ari::CertId::from_unsigned_serial(aki, &self.serial).to_string())
    }

    /// A stable value in [0, 1) for this device and this certificate, so
    /// `status` and `renew` agree on the jittered time and identical devices
    /// holding certificates from one batch still spread out.
    fn unit_jitter(&self, jitter: &Jitter) -> f64 {
        jitter.unit("renewal", &self.serial)
    }

    /// Renewal time without ARI: two thirds into the lifetime, jittered by
    /// up to ±1/30 of the lifetime (about ±1 day for 30-day certificates).
    pub fn default_renewal_time(&self, jitter: &Jitter) -> i64 {
        let life = (self.not_after - self.not_before).max(1) as f64;
        let base = self.not_before as f64 + life * 2.0 / 3.0;
        (base + (self.unit_jitter(jitter) * 2.0 - 1.0) * life / 30.0) as i64
    }

    /// A time uniformly spread in the ARI window `[start, end)` (RFC 9773
    /// §4.2: "select a uniform random time within the suggested window").
    pub fn ari_renewal_time(&self, start: i64, end: i64, jitter: &Jitter) -> i64 {
        if end <= start {
            return start;
        }
        start + ((end - start) as f64 * self.unit_jitter(jitter)) as i64
    }
}

/// An iPAddress SAN's octets as an address (other lengths: none).
fn ip_from_octets(octets: &[u8]) -> Option<std::net::IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(octets) {
        return Some(v4.into());
    }
    <[u8; 16]>::try_from(octets).ok().map(Into::into)
}

/// Which clock a schedule was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The local clock looked sane.
    Local,
    /// The local clock was more than a day off the server's `Date` (the
    /// offset in seconds); the server's time was used.
    Server(i64),
    /// The local clock was before the certificate's notBefore and no server
    /// time was known; notBefore was used.
    NotBefore,
}

impl Clock {
    /// Short name for logs and `status`.
    pub fn label(self) -> &'static str {
        match self {
            Clock::Local => "local clock",
            Clock::Server(_) => "server time",
            Clock::NotBefore => "certificate notBefore",
        }
    }

    /// The log line explaining an overridden clock.
    pub fn note(self) -> Option<String> {
        match self {
            Clock::Local => None,
            Clock::Server(skew) => Some(format!(
                "local clock is off by {skew}s from the server's Date; scheduling by server time"
            )),
            Clock::NotBefore => Some(
                "local clock is before the certificate's notBefore; not treating it as expired"
                    .into(),
            ),
        }
    }
}

/// The time to schedule with. Devices often boot at 1970 or 2000 before NTP:
/// if the local clock is more than a day off the server's `Date`, use the
/// server's time; else if it is before the certificate's notBefore, use
/// notBefore, rather than acting on a wrong clock.
pub fn effective_now(
    local: i64,
    server_skew: Option<i64>,
    cert: Option<&CertInfo>,
) -> (i64, Clock) {
    if let Some(skew) = server_skew {
        if skew.abs() > 86_400 {
            return (local + skew, Clock::Server(skew));
        }
    }
    if let Some(c) = cert {
        if local < c.not_before {
            return (c.not_before, Clock::NotBefore);
        }
    }
    (local, Clock::Local)
}

pub use crate::timefmt::parse_rfc3339;

/// Formats Unix seconds as RFC 3339.
pub fn fmt_time(t: i64) -> String {
    crate::timefmt::rfc3339(t, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(nb: i64, na: i64) -> CertInfo {
        CertInfo {
            names: vec![],
            not_before: nb,
            not_after: na,
            serial: vec![1, 2, 3],
            aki: None,
            spki: vec![],
        }
    }

    #[test]
    fn two_thirds_with_bounded_jitter() {
        let c = info(0, 90 * 86400);
        let j = Jitter::from_seed("device");
        let t = c.default_renewal_time(&j);
        assert!((57 * 86400..=63 * 86400).contains(&t), "{t}");
        assert_eq!(t, c.default_renewal_time(&j));
    }

    #[test]
    fn ari_time_inside_window_and_spread_across_devices() {
        let c = info(0, 100);
        let times: std::collections::BTreeSet<i64> = (0..50)
            .map(|i| c.ari_renewal_time(1000, 2000, &Jitter::from_seed(format!("d{i}"))))
            .collect();
        assert!(times.iter().all(|t| (1000..2000).contains(t)));
        assert!(times.len() > 40, "{times:?}");
    }

    #[test]
    fn ip_addresses_in_text_form() {
        assert_eq!(
            ip_from_octets(&[127, 0, 0, 1]).unwrap().to_string(),
            "127.0.0.1"
        );
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        assert_eq!(ip_from_octets(&v6).unwrap().to_string(), "::1");
        assert!(ip_from_octets(&[1, 2, 3]).is_none());
    }

    #[test]
    fn clock_in_the_past_does_not_look_expired() {
        let c = info(1_700_000_000, 1_700_000_000 + 90 * 86400);
        // Device booted at 1970 with no server contact.
        let (now, clock) = effective_now(0, None, Some(&c));
        assert_eq!(now, c.not_before);
        assert_eq!(clock, Clock::NotBefore);
        assert!(now < c.default_renewal_time(&Jitter::from_seed("d")));
        // With a server Date, the server's time wins.
        let (now, clock) = effective_now(0, Some(1_700_000_100), Some(&c));
        assert_eq!(now, 1_700_000_100);
        assert_eq!(clock.label(), "server time");
    }
}
