//! Tenant domain control (issue 17): the VA side of `fleetca domain validate` and of the RA's
//! dns-persist-01 revalidation. [`Va::check_domain_control`] is the one entry point: it reads
//! the TXT record the method names and then checks CAA for the domain, so a multi-perspective
//! VA can corroborate both by wrapping this single call.
//!
//! * `dns-01` (BR §3.2.2.4.7): the random value the CA generated must be the whole content of
//!   a TXT record at `_acme-challenge.<domain>`.
//! * `dns-persist-01` (draft-ietf-acme-dns-persist §3, BR §3.2.2.4.22): a TXT record at
//!   `_validation-persist.<domain>` in the RFC 8659 §4.2 issue-value syntax,
//!   `issuer-domain-name; accounturi=URI; policy=wildcard[; persistUntil=UNIX]`. The issuer
//!   must be one of the tenant's CAA identities, `accounturi` the tenant's URI (the tenant, not
//!   one device account, holds the domain), and `policy=wildcard` must be present because the
//!   domain grants names below it. A `persistUntil` in the past, a repeated parameter or a
//!   malformed value never matches.
//!
//! As everywhere in the VA, details never repeat what DNS returned.

use hickory_resolver::proto::rr::{RData, RecordType};
use serde::{Deserialize, Serialize};

use super::dns::DnsFailure;
use super::{ChallengeKind, Va, ValidationError};

/// What proves control of the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainProof {
    /// `_acme-challenge.<domain>` must hold exactly `expected`.
    Dns01 {
        /// The random value given to the operator.
        expected: String,
    },
    /// `_validation-persist.<domain>` must hold a record naming one of `issuers` and
    /// `account_uri`, with `policy=wildcard`, unexpired at `now`.
    DnsPersist01 {
        /// The tenant's CAA issuer domain names.
        issuers: Vec<String>,
        /// The tenant's URI the record must bind to.
        account_uri: String,
        /// Current UNIX time, for `persistUntil`.
        now: i64,
    },
}

/// One domain-control check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainCheck {
    /// The domain: lower-case A-labels, no wildcard.
    pub domain: String,
    /// The record to find.
    pub proof: DomainProof,
    /// The tenant's CAA identities (RFC 8659 §4.2).
    pub caa_identities: Vec<String>,
    /// The URI CAA `accounturi` parameters are compared with (RFC 8657 §3).
    pub account_uri: String,
}

/// What a successful check saw, kept as the domain's evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainEvidence {
    /// `dns-01` or `dns-persist-01`.
    pub method: String,
    /// The TXT owner name queried.
    pub txt_name: String,
    /// How many TXT records were there (the matching one included).
    pub txt_records: usize,
    /// CAA was checked for the domain and allows this CA.
    pub caa_checked: bool,
}

/// The TXT owner name a method uses for `domain`.
pub fn txt_name(domain: &str, persist: bool) -> String {
    if persist {
        format!("_validation-persist.{domain}")
    } else {
        format!("_acme-challenge.{domain}")
    }
}

/// The dns-persist-01 record value to publish for a tenant.
pub fn persist_record(issuer: &str, account_uri: &str) -> String {
    format!("{issuer}; accounturi={account_uri}; policy=wildcard")
}

impl Va {
    /// Checks control of a tenant domain: the method's TXT record, then CAA for the domain
    /// with the method as RFC 8657 `validationmethods` label. Fails closed on DNS errors.
    pub async fn check_domain_control(
        &self,
        check: &DomainCheck,
    ) -> Result<DomainEvidence, ValidationError> {
        super::check_dns_name(&check.domain)?;
        let persist = matches!(check.proof, DomainProof::DnsPersist01 { .. });
        let qname = txt_name(&check.domain, persist);
        let budget = self.inner.cfg.timeout;
        let lookup =
            tokio::time::timeout(budget, self.inner.resolver.lookup(&qname, RecordType::TXT))
                .await
                .map_err(|_| {
                    ValidationError::Dns(format!(
                        "TXT lookup for {qname} did not finish within {budget:?}"
                    ))
                })?;
        let values: Vec<Vec<u8>> = match lookup {
            Ok(rdatas) => rdatas
                .iter()
                .filter_map(|d| match d {
                    RData::TXT(t) => {
                        Some(t.txt_data.iter().flat_map(|s| s.iter().copied()).collect())
                    }
                    _ => None,
                })
                .collect(),
            Err(DnsFailure::NxDomain) | Err(DnsFailure::NoData) => Vec::new(),
            Err(DnsFailure::Failed(e)) => {
                return Err(ValidationError::Dns(format!(
                    "TXT lookup for {qname} failed: {e}"
                )))
            }
        };
        if values.is_empty() {
            return Err(ValidationError::Unauthorized(format!(
                "no TXT record found at {qname}"
            )));
        }
        let matched = values.iter().find(|v| match &check.proof {
            DomainProof::Dns01 { expected } => v.as_slice() == expected.as_bytes(),
            DomainProof::DnsPersist01 {
                issuers,
                account_uri,
                now,
            } => std::str::from_utf8(v)
                .is_ok_and(|s| persist_record_matches(s, issuers, account_uri, *now)),
        });
        let Some(matched) = matched else {
            return Err(ValidationError::IncorrectResponse(format!(
                "{} TXT record(s) found at {qname} but none is the expected record",
                values.len()
            )));
        };
        // BR §3.2.2.9: the remote perspectives must see the same record (the exact value found
        // here, which for dns-persist-01 is the one that matched). Without perspectives
        // configured this changes nothing.
        if let Ok(found) = std::str::from_utf8(matched) {
            let remote = super::mpic::Check::DnsTxt {
                name: qname.clone(),
                expected: found.to_string(),
            };
            if let Some(ev) = self.corroborate(&remote).await {
                if !ev.corroborated {
                    return Err(ev.to_error());
                }
            }
        }
        let method = if persist {
            ChallengeKind::DnsPersist01
        } else {
            ChallengeKind::Dns01
        };
        self.check_caa(
            &check.domain,
            false,
            &check.account_uri,
            method,
            &check.caa_identities,
        )
        .await?;
        Ok(DomainEvidence {
            method: method.as_str().to_string(),
            txt_name: qname,
            txt_records: values.len(),
            caa_checked: true,
        })
    }
}

/// Whether one dns-persist-01 TXT value authorizes the tenant (module comment).
fn persist_record_matches(value: &str, issuers: &[String], account_uri: &str, now: i64) -> bool {
    let mut parts = value.split(';');
    let issuer = parts.next().unwrap_or("").trim().trim_end_matches('.');
    if !issuers
        .iter()
        .any(|i| i.trim_end_matches('.').eq_ignore_ascii_case(issuer))
    {
        return false;
    }
    let (mut acct, mut policy, mut until) = (None, None, None);
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let Some((k, v)) = p.split_once('=') else {
            return false;
        };
        let slot = match k.trim().to_ascii_lowercase().as_str() {
            "accounturi" => &mut acct,
            "policy" => &mut policy,
            "persistuntil" => &mut until,
            _ => continue,
        };
        if slot.replace(v.trim()).is_some() {
            return false;
        }
    }
    let until_ok = match until {
        None => true,
        Some(t) => t.parse::<i64>().is_ok_and(|t| t > now),
    };
    acct == Some(account_uri)
        && policy.is_some_and(|p| p.eq_ignore_ascii_case("wildcard"))
        && until_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "https://ca.example/acme/routers/tenant";

    fn ok(v: &str) -> bool {
        persist_record_matches(v, &["ca.example".into()], URI, 1000)
    }

    #[test]
    fn persist_record_round_trips() {
        assert!(ok(&persist_record("ca.example", URI)));
        assert!(ok(&format!(
            "CA.Example. ;accounturi={URI};policy=WILDCARD; persistUntil=1001"
        )));
    }

    #[test]
    fn persist_record_refusals() {
        // Another CA, another tenant, no wildcard policy, expired, repeated or malformed.
        assert!(!ok(&persist_record("other.example", URI)));
        assert!(!ok(
            "ca.example; accounturi=https://ca.example/acme/x/tenant; policy=wildcard"
        ));
        assert!(!ok(&format!("ca.example; accounturi={URI}")));
        assert!(!ok(&format!(
            "ca.example; accounturi={URI}; policy=wildcard; persistUntil=1000"
        )));
        assert!(!ok(&format!(
            "ca.example; accounturi={URI}; policy=wildcard; persistUntil=soon"
        )));
        assert!(!ok(&format!(
            "ca.example; accounturi={URI}; accounturi={URI}; policy=wildcard"
        )));
        assert!(!ok(&format!("ca.example; accounturi={URI}; policy")));
        assert!(!ok(""));
    }
}
