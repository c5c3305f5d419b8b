//! ACME identifiers (RFC 8555 §9.7.7 `dns`, RFC 8738 `ip`) in canonical form.
//!
//! Parse, don't validate: a [`DnsName`] is already lower-cased, IDNA-converted to A-labels and
//! length-checked, so every later comparison is a plain string comparison.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::PkiError;

/// RFC 1035 §2.3.4: a name is at most 255 octets on the wire, 253 characters in text.
const MAX_NAME_LEN: usize = 253;
/// RFC 1035 §2.3.4: a label is 1..=63 octets.
const MAX_LABEL_LEN: usize = 63;

/// A DNS name in canonical form: lower-case A-labels (RFC 5890 §2.3.2.1), no trailing dot,
/// at least two labels, and at most one wildcard which is the whole leftmost label
/// (BR §1.6.1 "Wildcard Domain Name").
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DnsName(String);

impl DnsName {
    /// Parses and normalizes a DNS name: lower-cases, strips one trailing dot, converts
    /// U-labels to A-labels with UTS #46 (strict: STD3 rules, DNS lengths) and rejects
    /// invalid `xn--` labels, labels outside LDH (RFC 1123 §2.1), leading or trailing hyphens,
    /// single-label names, all-numeric top-level labels, and wildcards other than a whole
    /// leftmost `*` label.
    pub fn parse(input: &str) -> Result<Self, PkiError> {
        let err = |reason: &str| PkiError::InvalidDnsName {
            name: input.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = input.strip_suffix('.').unwrap_or(input);
        if trimmed.is_empty() {
            return Err(err("empty name"));
        }
        let (wildcard, base) = match trimmed.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if base.contains('*') {
            return Err(err(
                "a wildcard is only allowed as the entire leftmost label (BR §1.6.1)",
            ));
        }
        let ascii = idna::domain_to_ascii_strict(base)
            .map_err(|e| err(&format!("not a valid IDNA domain name ({e})")))?;
        validate_ascii(&ascii).map_err(|reason| err(&reason))?;
        let name = if wildcard {
            format!("*.{ascii}")
        } else {
            ascii
        };
        if name.len() > MAX_NAME_LEN {
            return Err(err("longer than 253 characters (RFC 1035 §2.3.4)"));
        }
        Ok(DnsName(name))
    }

    /// The name in canonical form (`*.` included for a wildcard).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for `*.example.com` (BR §1.6.1 Wildcard Domain Name).
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// The name without its `*.` wildcard label; the name itself when not a wildcard.
    pub fn base(&self) -> &str {
        self.0.strip_prefix("*.").unwrap_or(&self.0)
    }

    /// RFC 5280 §4.2.1.10: true when `self` is `subtree` or ends with `.` + `subtree`
    /// (a label boundary, so `evilrouters.example.com` is not inside `routers.example.com`).
    /// A wildcard is judged by its base name.
    pub fn is_within(&self, subtree: &DnsName) -> bool {
        let name = self.base();
        let tree = subtree.base();
        name == tree
            || (name.len() > tree.len()
                && name.ends_with(tree)
                && name.as_bytes()[name.len() - tree.len() - 1] == b'.')
    }
}

/// Checks an ASCII name (already through UTS #46) label by label.
fn validate_ascii(ascii: &str) -> Result<(), String> {
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err("at least two labels are required".into());
    }
    for label in &labels {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(format!(
                "label {label:?} must be 1 to 63 characters (RFC 1035 §2.3.4)"
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!(
                "label {label:?} has characters outside letters, digits and hyphen (RFC 1123 §2.1)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "label {label:?} starts or ends with a hyphen (RFC 1123 §2.1)"
            ));
        }
        if label.len() >= 4 && &label[2..4] == "--" {
            // RFC 5891 §4.2.3.1: "??--" labels are reserved; only valid punycode A-labels pass.
            if !label.starts_with("xn--") {
                return Err(format!(
                    "label {label:?} has hyphens in positions 3 and 4 (reserved, RFC 5891 §4.2.3.1)"
                ));
            }
            let (unicode, result) = idna::domain_to_unicode(label);
            let round_trip = idna::domain_to_ascii_strict(&unicode);
            if result.is_err() || round_trip.ok().as_deref() != Some(*label) {
                return Err(format!(
                    "label {label:?} is not a valid A-label (RFC 5890 §2.3.2.1)"
                ));
            }
        }
    }
    if let Some(tld) = labels.last() {
        if tld.bytes().all(|b| b.is_ascii_digit()) {
            return Err("the last label is all digits (looks like an IP address)".into());
        }
    }
    Ok(())
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DnsName {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DnsName::parse(s)
    }
}

impl TryFrom<String> for DnsName {
    type Error = PkiError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DnsName::parse(&s)
    }
}

impl From<DnsName> for String {
    fn from(n: DnsName) -> String {
        n.0
    }
}

impl AsRef<str> for DnsName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// An identifier a certificate can certify: RFC 8555 §9.7.7 `dns` or RFC 8738 `ip`.
///
/// Serializes as the ACME wire form `{"type": "dns", "value": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum Identifier {
    /// A DNS name (possibly a wildcard).
    Dns(DnsName),
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
}

impl Identifier {
    /// Parses a `dns` identifier value; see [`DnsName::parse`].
    pub fn parse_dns(value: &str) -> Result<Self, PkiError> {
        DnsName::parse(value).map(Identifier::Dns)
    }

    /// Parses an `ip` identifier value. RFC 8738 §3 wants the RFC 1123 §2.1 / RFC 5952 §4
    /// text form, so the input must equal the canonical form (after lower-casing): leading
    /// zeros, uncompressed IPv6 and other spellings are rejected.
    pub fn parse_ip(value: &str) -> Result<Self, PkiError> {
        let ip: IpAddr = value.parse().map_err(|_| PkiError::InvalidIp {
            value: value.to_string(),
            reason: "not an IP address".into(),
        })?;
        let canonical = ip.to_string();
        if canonical != value.to_ascii_lowercase() {
            return Err(PkiError::InvalidIp {
                value: value.to_string(),
                reason: format!("not in canonical form (expected {canonical}, RFC 8738 §3)"),
            });
        }
        Ok(Identifier::Ip(ip))
    }

    /// Parses `value` as an `ip` identifier when it is an IP address, else as `dns`.
    /// Used for CSR common names, which carry no type.
    pub fn parse_any(value: &str) -> Result<Self, PkiError> {
        if value.parse::<IpAddr>().is_ok() {
            Self::parse_ip(value)
        } else {
            Self::parse_dns(value)
        }
    }

    /// The ACME identifier type: `"dns"` or `"ip"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Identifier::Dns(_) => "dns",
            Identifier::Ip(_) => "ip",
        }
    }

    /// The ACME identifier value in canonical text form.
    pub fn value(&self) -> String {
        match self {
            Identifier::Dns(n) => n.to_string(),
            Identifier::Ip(ip) => ip.to_string(),
        }
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(s: &str) -> Result<String, PkiError> {
        DnsName::parse(s).map(|n| n.to_string())
    }

    #[test]
    fn normalizes_case_trailing_dot_and_idna() {
        assert_eq!(dns("Router.Example.COM.").unwrap(), "router.example.com");
        assert_eq!(dns("bücher.example").unwrap(), "xn--bcher-kva.example");
        assert_eq!(
            dns("XN--BCHER-KVA.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(dns("*.Example.com").unwrap(), "*.example.com");
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            ".",
            "com",
            "a..b.com",
            "a.com..",
            "-a.example.com",
            "a-.example.com",
            "a_b.example.com",
            "a b.example.com",
            "xn--zz.example.com",
            "xn--.example.com",
            "ab--cd.example.com",
            "1.2.3.4",
            "*.*.example.com",
            "a.*.example.com",
            "*",
            "*.com.*",
            "*example.com",
            "f*o.example.com",
            "**.example.com",
            "*.com",
        ] {
            assert!(dns(bad).is_err(), "{bad:?} should be rejected");
        }
        let long_label = format!("{}.example.com", "a".repeat(64));
        assert!(dns(&long_label).is_err());
        let long_name = format!("{}example.com", "abcdefghi.".repeat(25));
        assert!(long_name.len() > 253);
        assert!(dns(&long_name).is_err());
    }

    #[test]
    fn wildcard_base_and_within() {
        let w = DnsName::parse("*.routers.example.com").unwrap();
        assert!(w.is_wildcard());
        assert_eq!(w.base(), "routers.example.com");
        let tree = DnsName::parse("routers.example.com").unwrap();
        assert!(w.is_within(&tree));
        assert!(DnsName::parse("a.routers.example.com")
            .unwrap()
            .is_within(&tree));
        assert!(!DnsName::parse("evilrouters.example.com")
            .unwrap()
            .is_within(&tree));
        assert!(!DnsName::parse("*.example.com").unwrap().is_within(&tree));
    }

    #[test]
    fn ip_must_be_canonical() {
        assert_eq!(
            Identifier::parse_ip("10.0.0.1").unwrap().value(),
            "10.0.0.1"
        );
        assert_eq!(Identifier::parse_ip("FD00::1").unwrap().value(), "fd00::1");
        for bad in [
            "010.0.0.1",
            "10.0.0.01",
            "fd00:0:0:0:0:0:0:1",
            "fd00::0001",
            "10.0.0",
            "10.0.0.1/32",
            " 10.0.0.1",
            "example.com",
        ] {
            assert!(
                Identifier::parse_ip(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn serde_uses_acme_wire_form() {
        let id = Identifier::parse_dns("a.example.com").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, r#"{"type":"dns","value":"a.example.com"}"#);
        assert_eq!(serde_json::from_str::<Identifier>(&json).unwrap(), id);
        let bad = r#"{"type":"dns","value":"a..example.com"}"#;
        assert!(serde_json::from_str::<Identifier>(bad).is_err());
        let ip = Identifier::parse_ip("fd00::1").unwrap();
        assert_eq!(
            serde_json::to_string(&ip).unwrap(),
            r#"{"type":"ip","value":"fd00::1"}"#
        );
        assert_eq!(ip.kind(), "ip");
    }
}
