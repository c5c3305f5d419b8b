//! Name templates (`attested_names` in a tenant's `[ca]` section): DNS names a private-trust
//! tenant grants to a device because its manufacturer attested it, e.g.
//! `{serial}.routers.example.com`.
//!
//! draft-ietf-acme-device-attest §5 defines `device-attest-01` for `permanent-identifier`
//! only (§9.2 registers it for that type and `hardware-module`, not `dns`), and §6.1.2 lets a
//! server "rely on other authorization mechanisms". fleetca uses that latitude narrowly: a
//! DNS identifier equal to a template expanded with the serial of the one
//! `permanent-identifier` in the same order is authorized by that order's attestation (see
//! `ra::order`). Two rules keep the grant inside the vendor's namespace:
//!
//! - at load, `{serial}` must be a whole label and everything right of it must lie inside the
//!   tenant's permitted subtrees (the issuing CA's name constraints), so no serial can move an
//!   expansion outside them; a template without `{serial}` must itself be permitted;
//! - at order time, the serial must be a valid LDH label once lower-cased, and the expansion is
//!   checked against the permitted subtrees again like any other identifier.

use pki::identifier::{DnsName, Identifier};
use pki::policy::Permitted;

/// The placeholder a template's serial label is written as.
const SERIAL_PLACEHOLDER: &str = "{serial}";

/// One checked `attested_names` entry: a lower-case DNS name, no wildcard, in which
/// `{serial}` appears at most once and only as a whole label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameTemplate {
    text: String,
}

impl NameTemplate {
    /// Parses a template. Refused: wildcards, upper case, a trailing dot, `{serial}` inside a
    /// label or more than once, and anything that is not a DNS name once `{serial}` is
    /// replaced by a label.
    pub fn parse(text: &str) -> Result<NameTemplate, String> {
        let bad = |why: &str| Err(format!("name template {text:?}: {why}"));
        if text.starts_with("*.") || text.contains('*') {
            return bad("wildcards are not allowed");
        }
        let mut placeholders = 0;
        for label in text.split('.') {
            if label == SERIAL_PLACEHOLDER {
                placeholders += 1;
            } else if label.contains('{') || label.contains('}') {
                return bad("{serial} must be a whole label (e.g. {serial}.routers.example.com)");
            }
        }
        if placeholders > 1 {
            return bad("{serial} may appear only once");
        }
        // A probe label stands in for the serial: the result must already be canonical.
        let probe = text.replace(SERIAL_PLACEHOLDER, "x");
        match DnsName::parse(&probe) {
            Ok(n) if n.as_str() == probe => Ok(NameTemplate {
                text: text.to_string(),
            }),
            Ok(_) => bad("write it in lower case, without a trailing dot, IDNs as A-labels"),
            Err(e) => bad(&format!("not a DNS name: {e}")),
        }
    }

    /// The template as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the template contains `{serial}`.
    pub fn has_serial(&self) -> bool {
        self.text.split('.').any(|l| l == SERIAL_PLACEHOLDER)
    }

    /// Refuses a template whose expansions could leave `permitted`: with `{serial}`, the name
    /// right of the placeholder label must lie inside a permitted DNS subtree (every expansion
    /// is below it, whatever the serial); without it, the name itself must be permitted.
    pub fn check_within(&self, permitted: &Permitted) -> Result<(), String> {
        let anchor = if self.has_serial() {
            let (_, right) = self
                .text
                .split_once(&format!("{SERIAL_PLACEHOLDER}."))
                .ok_or_else(|| {
                    format!(
                        "name template {:?}: {{serial}} cannot be the last label",
                        self.text
                    )
                })?;
            right.to_string()
        } else {
            self.text.clone()
        };
        let name = DnsName::parse(&anchor).map_err(|e| {
            format!(
                "name template {:?}: {anchor:?} cannot anchor it ({e})",
                self.text
            )
        })?;
        if !permitted.dns.iter().any(|tree| name.is_within(tree)) {
            return Err(format!(
                "name template {:?}: {anchor:?} is not inside the permitted names, so an \
                 expansion could escape them",
                self.text
            ));
        }
        permitted
            .check(&Identifier::Dns(name))
            .map_err(|e| format!("name template {:?}: {e}", self.text))
    }

    /// The template with `{serial}` replaced by `serial_label` (a serial as `serial_label()`
    /// in this module makes it), in canonical form; `None` if the result is not a DNS name
    /// (e.g. too long).
    pub fn expand(&self, serial_label: &str) -> Option<String> {
        let name = self
            .text
            .split('.')
            .map(|l| {
                if l == SERIAL_PLACEHOLDER {
                    serial_label
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join(".");
        DnsName::parse(&name)
            .ok()
            .filter(|n| n.as_str() == name)
            .map(|n| n.as_str().to_string())
    }
}

/// The DNS label a `permanent-identifier` value stands for in templates: the value lower-cased,
/// if that is an LDH label of 1 to 63 characters (RFC 1123 §2.1) without a leading or trailing
/// hyphen and without `--` in the third and fourth positions (reserved for A-labels, RFC 5891
/// §4.2.3.1). A value with an `/assigner` is never a label, so it matches no template.
pub(crate) fn serial_label(value: &str) -> Option<String> {
    let s = value.to_ascii_lowercase();
    let ok = (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.get(2..4) != Some("--");
    ok.then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permitted(v: &[&str]) -> Permitted {
        Permitted::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn parses_and_expands() {
        let t = NameTemplate::parse("{serial}.routers.example.com").unwrap();
        assert!(t.has_serial());
        assert_eq!(
            t.expand("sn-0001").as_deref(),
            Some("sn-0001.routers.example.com")
        );
        let c = NameTemplate::parse("config.routers.example.com").unwrap();
        assert!(!c.has_serial());
        assert_eq!(
            c.expand("anything").as_deref(),
            Some("config.routers.example.com")
        );
        let mid = NameTemplate::parse("web.{serial}.routers.example.com").unwrap();
        assert_eq!(
            mid.expand("a1").as_deref(),
            Some("web.a1.routers.example.com")
        );
    }

    #[test]
    fn refuses_bad_templates() {
        for bad in [
            "*.routers.example.com",
            "{serial}.*.example.com",
            "x{serial}.routers.example.com",
            "{serial}-r.routers.example.com",
            "{serial}.{serial}.example.com",
            "{Serial}.routers.example.com",
            "{serial}.Routers.example.com",
            "{serial}.routers.example.com.",
            "{serial}",
            "routers..example.com",
            "{serial}.rou_ters.example.com",
        ] {
            assert!(NameTemplate::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn templates_that_could_escape_the_permitted_names_are_refused() {
        let p = permitted(&["routers.example.com"]);
        for ok in [
            "{serial}.routers.example.com",
            "web.{serial}.routers.example.com",
            "{serial}.eu.routers.example.com",
            "config.routers.example.com",
            "routers.example.com",
        ] {
            let t = NameTemplate::parse(ok).unwrap();
            assert!(t.check_within(&p).is_ok(), "{ok}: {:?}", t.check_within(&p));
        }
        for escape in [
            // Everything right of `{serial}` must already be inside a permitted subtree:
            // here the serial chooses the subtree ("routers" or any other).
            "{serial}.example.com",
            "routers.{serial}.example.com",
            "{serial}.com",
            "config.example.com",
            "{serial}.routers.example.org",
        ] {
            let t = NameTemplate::parse(escape).unwrap();
            assert!(t.check_within(&p).is_err(), "{escape} was accepted");
        }
        // A tenant with no DNS subtrees permits no template.
        let ip_only = permitted(&["10.0.0.0/8"]);
        let t = NameTemplate::parse("{serial}.routers.example.com").unwrap();
        assert!(t.check_within(&ip_only).is_err());
    }

    #[test]
    fn serial_labels() {
        assert_eq!(serial_label("SN-0001").as_deref(), Some("sn-0001"));
        assert_eq!(serial_label("abc123").as_deref(), Some("abc123"));
        for bad in [
            "",
            "-a",
            "a-",
            "a.b",
            "a/1.2.3",
            "xn--abc",
            "ab--c",
            "a_b",
            "é",
            "a b",
            &"a".repeat(64),
        ] {
            assert_eq!(serial_label(bad), None, "{bad:?}");
        }
        // Longer than 253 characters once expanded: no name.
        let t2 = NameTemplate::parse(&format!(
            "{{serial}}.{}.{}.{}.com",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(60)
        ))
        .unwrap();
        assert!(t2.expand(&"d".repeat(63)).is_none());
    }
}
