//! CAA (RFC 8659) with the RFC 8657 `accounturi` and `validationmethods` parameters.
//!
//! The relevant RRset is the first non-empty CAA RRset found at the name, then at each parent
//! up to (excluding) the root (RFC 8659 §3). None anywhere: issuance is allowed. Otherwise:
//! * a property with the Issuer Critical flag whose tag is not `issue`, `issuewild` or `iodef`
//!   forbids issuance (§4.1);
//! * for a wildcard, the `issuewild` properties are used if any exist, else `issue` (§4.3);
//!   for other names only `issue` (§4.2);
//! * no such property: allowed; otherwise one must name one of the tenant's `caaIdentities`
//!   (each tenant is its own CA to domain owners, not the server's default tenant) and satisfy
//!   its parameters: `accounturi` equal to the account URL, `validationmethods` listing the
//!   method used (RFC 8657 §3, §4). Unknown parameters are ignored; a malformed value or a
//!   repeated parameter never grants issuance.
//!
//! A lookup that fails (SERVFAIL, timeout) forbids issuance: the error is `dns`.

use hickory_resolver::proto::rr::rdata::CAA;
use hickory_resolver::proto::rr::{RData, RecordType};

use super::dns::DnsFailure;
use super::{truncate, ChallengeKind, Inner, ValidationError};

pub(crate) async fn check(
    inner: &Inner,
    name: &str,
    wildcard: bool,
    account_uri: &str,
    method: ChallengeKind,
    identities: &[String],
) -> Result<(), ValidationError> {
    let labels: Vec<&str> = name.split('.').collect();
    for i in 0..labels.len() {
        let at = labels[i..].join(".");
        match inner.resolver.lookup(&at, RecordType::CAA).await {
            Ok(rdatas) => {
                let rrset: Vec<CAA> = rdatas
                    .into_iter()
                    .filter_map(|d| match d {
                        RData::CAA(c) => Some(c),
                        _ => None,
                    })
                    .collect();
                if rrset.is_empty() {
                    continue;
                }
                return evaluate(&rrset, &at, name, wildcard, identities, account_uri, method);
            }
            Err(DnsFailure::NxDomain) | Err(DnsFailure::NoData) => continue,
            Err(DnsFailure::Failed(e)) => {
                return Err(ValidationError::Dns(format!(
                    "CAA lookup for {at} failed ({e}); issuance for {name} is not allowed while \
                     CAA cannot be checked"
                )))
            }
        }
    }
    Ok(())
}

/// A property as seen in DNS: (critical, tag, value).
pub(crate) struct Property<'a> {
    pub(crate) critical: bool,
    pub(crate) tag: &'a str,
    pub(crate) value: &'a [u8],
}

fn evaluate(
    rrset: &[CAA],
    at: &str,
    name: &str,
    wildcard: bool,
    identities: &[String],
    account_uri: &str,
    method: ChallengeKind,
) -> Result<(), ValidationError> {
    let props: Vec<Property<'_>> = rrset
        .iter()
        .map(|c| Property {
            critical: c.issuer_critical,
            tag: &c.tag,
            value: &c.value,
        })
        .collect();
    evaluate_properties(&props, at, name, wildcard, identities, account_uri, method)
}

pub(crate) fn evaluate_properties(
    props: &[Property<'_>],
    at: &str,
    name: &str,
    wildcard: bool,
    identities: &[String],
    account_uri: &str,
    method: ChallengeKind,
) -> Result<(), ValidationError> {
    let shown_name = if wildcard {
        format!("*.{name}")
    } else {
        name.to_string()
    };
    for p in props {
        let known = ["issue", "issuewild", "iodef"]
            .iter()
            .any(|k| p.tag.eq_ignore_ascii_case(k));
        if p.critical && !known {
            return Err(ValidationError::Caa(format!(
                "the CAA record set at {at} has the critical property {:?}, which this CA does \
                 not understand, so it may not issue for {shown_name}",
                truncate(p.tag, 40)
            )));
        }
    }
    let has_issuewild = props
        .iter()
        .any(|p| p.tag.eq_ignore_ascii_case("issuewild"));
    let tag = if wildcard && has_issuewild {
        "issuewild"
    } else {
        "issue"
    };
    let relevant: Vec<&Property<'_>> = props
        .iter()
        .filter(|p| p.tag.eq_ignore_ascii_case(tag))
        .collect();
    if relevant.is_empty() {
        return Ok(());
    }
    let mut reasons = Vec::new();
    for p in &relevant {
        let shown = truncate(&String::from_utf8_lossy(p.value), 80);
        let Some(v) = parse_issue_value(p.value) else {
            reasons.push(format!("{tag} {shown:?} is malformed"));
            continue;
        };
        let Some(domain) = v.domain else {
            reasons.push(format!("{tag} {shown:?} allows no CA"));
            continue;
        };
        if !identities
            .iter()
            .any(|id| id.trim_end_matches('.').eq_ignore_ascii_case(domain))
        {
            reasons.push(format!("{tag} {shown:?} names another CA"));
            continue;
        }
        match check_parameters(&v.params, account_uri, method) {
            Ok(()) => return Ok(()),
            Err(why) => reasons.push(format!("{tag} {shown:?} {why}")),
        }
    }
    Err(ValidationError::Caa(format!(
        "the CAA record set at {at} does not allow this CA ({}) to issue for {shown_name} with \
         {method} for account {}: {}",
        if identities.is_empty() {
            "no CAA identity configured".to_string()
        } else {
            identities.join(", ")
        },
        truncate(account_uri, 100),
        truncate(&reasons.join("; "), 300)
    )))
}

fn check_parameters(
    params: &[(&str, &str)],
    account_uri: &str,
    method: ChallengeKind,
) -> Result<(), String> {
    let mut seen_account = false;
    let mut seen_methods = false;
    for (tag, value) in params {
        if tag.eq_ignore_ascii_case("accounturi") {
            if seen_account {
                return Err("repeats accounturi".into());
            }
            seen_account = true;
            if *value != account_uri {
                return Err(format!("is limited to account {:?}", truncate(value, 100)));
            }
        } else if tag.eq_ignore_ascii_case("validationmethods") {
            if seen_methods {
                return Err("repeats validationmethods".into());
            }
            seen_methods = true;
            if !value.split(',').any(|m| m == method.as_str()) {
                return Err(format!(
                    "is limited to validation methods {:?}",
                    truncate(value, 100)
                ));
            }
        }
        // Other parameters: not understood, ignored (RFC 8659 §4.2).
    }
    Ok(())
}

/// An `issue` / `issuewild` value (RFC 8659 §4.2).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct IssueValue<'a> {
    /// None: `;` alone, "no CA may issue".
    pub(crate) domain: Option<&'a str>,
    pub(crate) params: Vec<(&'a str, &'a str)>,
}

fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `label = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT))`, also the parameter tag syntax.
fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// ```text
/// issue-value = *WSP [issuer-domain-name *WSP] [";" *WSP [parameters *WSP]]
/// issuer-domain-name = label *("." label)
/// parameters = (parameter *WSP ";" *WSP parameters) / parameter
/// parameter = tag *WSP "=" *WSP value
/// value = *(%x21-3A / %x3C-7E)
/// ```
/// None when the value does not follow the grammar.
pub(crate) fn parse_issue_value(raw: &[u8]) -> Option<IssueValue<'_>> {
    let s = std::str::from_utf8(raw).ok()?;
    if !s.is_ascii() {
        return None;
    }
    let (domain_part, params_part) = match s.split_once(';') {
        Some((d, p)) => (d, Some(p)),
        None => (s, None),
    };
    let domain_part = domain_part.trim_matches(is_wsp);
    let domain = if domain_part.is_empty() {
        None
    } else {
        if !domain_part.split('.').all(is_label) {
            return None;
        }
        Some(domain_part)
    };
    let mut params = Vec::new();
    if let Some(p) = params_part {
        let p = p.trim_matches(is_wsp);
        if !p.is_empty() {
            for param in p.split(';') {
                let param = param.trim_matches(is_wsp);
                let (tag, value) = param.split_once('=')?;
                let tag = tag.trim_end_matches(is_wsp);
                let value = value.trim_start_matches(is_wsp);
                if !is_label(tag) {
                    return None;
                }
                if !value
                    .bytes()
                    .all(|c| (0x21..=0x3a).contains(&c) || (0x3c..=0x7e).contains(&c))
                {
                    return None;
                }
                params.push((tag, value));
            }
        }
    }
    Some(IssueValue { domain, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop<'a>(critical: bool, tag: &'a str, value: &'a str) -> Property<'a> {
        Property {
            critical,
            tag,
            value: value.as_bytes(),
        }
    }

    fn eval(
        props: &[Property<'_>],
        wildcard: bool,
        method: ChallengeKind,
    ) -> Result<(), ValidationError> {
        evaluate_properties(
            props,
            "example.com",
            "example.com",
            wildcard,
            &["fleetca.local".to_string()],
            "https://ca/acct/1",
            method,
        )
    }

    #[test]
    fn parse_values() {
        assert_eq!(
            parse_issue_value(b"fleetca.local"),
            Some(IssueValue {
                domain: Some("fleetca.local"),
                params: vec![]
            })
        );
        assert_eq!(
            parse_issue_value(b" ;"),
            Some(IssueValue {
                domain: None,
                params: vec![]
            })
        );
        assert_eq!(
            parse_issue_value(
                b"ca.example; accounturi = https://ca/acct/1 ; validationmethods=dns-01,http-01"
            ),
            Some(IssueValue {
                domain: Some("ca.example"),
                params: vec![
                    ("accounturi", "https://ca/acct/1"),
                    ("validationmethods", "dns-01,http-01")
                ]
            })
        );
        assert_eq!(parse_issue_value(b"bad_domain"), None);
        assert_eq!(parse_issue_value(b"ca.example; novalue"), None);
    }

    #[test]
    fn rules() {
        use ChallengeKind::*;
        assert!(eval(&[prop(false, "issue", "fleetca.local")], false, Http01).is_ok());
        assert!(eval(&[prop(false, "issue", "FleetCA.Local")], false, Http01).is_ok());
        assert!(eval(&[prop(false, "issue", "other.ca")], false, Http01).is_err());
        assert!(eval(&[prop(false, "issue", ";")], false, Http01).is_err());
        assert!(eval(&[prop(false, "iodef", "mailto:x@y")], false, Http01).is_ok());
        assert!(eval(&[prop(true, "iodef", "mailto:x@y")], false, Http01).is_ok());
        assert!(eval(
            &[
                prop(true, "tbs", "x"),
                prop(false, "issue", "fleetca.local")
            ],
            false,
            Http01
        )
        .is_err());
        assert!(eval(
            &[
                prop(false, "tbs", "x"),
                prop(false, "issue", "fleetca.local")
            ],
            false,
            Http01
        )
        .is_ok());
        // issuewild only matters for wildcards
        let p = [
            prop(false, "issue", "other.ca"),
            prop(false, "issuewild", "fleetca.local"),
        ];
        assert!(eval(&p, true, Dns01).is_ok());
        assert!(eval(&p, false, Dns01).is_err());
        let p = [
            prop(false, "issue", "fleetca.local"),
            prop(false, "issuewild", ";"),
        ];
        assert!(eval(&p, true, Dns01).is_err());
        assert!(eval(&p, false, Dns01).is_ok());
        // wildcard falls back to issue
        assert!(eval(&[prop(false, "issue", "fleetca.local")], true, Dns01).is_ok());
        // RFC 8657
        let p = [prop(
            false,
            "issue",
            "fleetca.local; accounturi=https://ca/acct/1",
        )];
        assert!(eval(&p, false, Http01).is_ok());
        let p = [prop(
            false,
            "issue",
            "fleetca.local; accounturi=https://ca/acct/2",
        )];
        assert!(eval(&p, false, Http01).is_err());
        let p = [prop(
            false,
            "issue",
            "fleetca.local; validationmethods=dns-01,tls-alpn-01",
        )];
        assert!(eval(&p, false, Http01).is_err());
        assert!(eval(&p, false, TlsAlpn01).is_ok());
        let p = [prop(
            false,
            "issue",
            "fleetca.local; accounturi=https://ca/acct/1; accounturi=https://ca/acct/1",
        )];
        assert!(eval(&p, false, Http01).is_err());
        // one matching record among several is enough
        let p = [
            prop(false, "issue", "other.ca"),
            prop(false, "issue", "fleetca.local"),
        ];
        assert!(eval(&p, false, Http01).is_ok());
    }
}
