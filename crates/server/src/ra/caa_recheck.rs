//! CAA checked again at finalization. The VA checks CAA when it validates an authorization,
//! and a valid authorization is reused for up to `valid_authz_lifetime` (30 days); BR §3.2.2.8
//! (§4.2.2.1 after ballot SC-085) says "If the CA issues a certificate after processing a CAA
//! record, it MUST do so within the TTL of the CAA record, or 8 hours, whichever is greater."
//! So before signing, every DNS name whose authorization's check is older than
//! [`CAA_RECHECK_AGE_SECS`] is checked again, with the tenant's CAA identities, the account URL
//! and the method that validated it (RFC 8657), as Boulder's RA does (`checkAuthorizationsCAA`).
//!
//! The lookups run here, before `Storage::finalize_order` opens its transaction: no network
//! I/O inside a storage transaction. A refusal changes nothing: the order stays `ready`
//! (RFC 8555 §7.4 asks the server to leave an order it will not finalize "in the ready state"
//! so the client can try again; Boulder returns the error the same way, before the order moves
//! to processing), so it can be finalized once the domain owner allows this CA again, and
//! nothing is signed.

use super::statuses::{challenge_type, identifier_type, va_kind};
use super::Ra;
use crate::error::{Error, Result, SubError};
use crate::sa::{AccountRecord, AuthzRecord, ChallengeState, OrderRecord};
use crate::tenant::Tenant;
use crate::va::{ChallengeKind, ValidationError};
use acme_types::problem::ProblemType;
use acme_types::wire::IdentifierType;

/// How old an authorization's CAA check may be when its order is finalized. The CAA record's
/// TTL is not kept, so BR §3.2.2.8's 8 hours is the bound; one hour of margin, as Boulder's
/// `caaRecheckDuration` (7 h), keeps the signature that follows the decision inside it.
pub(crate) const CAA_RECHECK_AGE_SECS: i64 = 7 * 3600;

/// The challenge method that validated `authz` when its CAA check is the VA's to repeat, or
/// `None` when CAA does not apply to it: IP addresses have no CAA (RFC 8738 §7), and names
/// granted by a device attestation (`attested_by`, private trust only) were never checked by
/// the VA.
fn caa_method(authz: &AuthzRecord) -> Result<Option<ChallengeKind>> {
    if identifier_type(&authz.identifier) != IdentifierType::Dns || authz.attested_by.is_some() {
        return Ok(None);
    }
    let valid = authz
        .challenges
        .iter()
        .filter(|c| c.status == ChallengeState::Valid)
        .max_by_key(|c| c.validated_at);
    match valid.and_then(|c| va_kind(challenge_type(c.kind))) {
        Some(kind) => Ok(Some(kind)),
        // A valid DNS authorization with no challenge the VA validated: nothing to recheck
        // against, so refuse rather than sign unchecked.
        None => Err(Error::internal(format!(
            "authorization {} is valid without a validated challenge",
            authz.id
        ))),
    }
}

impl Ra {
    /// Checks CAA again for the order's DNS names whose authorization's CAA check is older than
    /// [`CAA_RECHECK_AGE_SECS`]; `caa` (or `dns` when a lookup fails) naming each refused
    /// identifier in a subproblem (RFC 8555 §6.7.1).
    pub(super) async fn recheck_caa(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        order: &OrderRecord,
    ) -> Result<()> {
        // `--insecure-skip-validation` (load tests, never public trust) skipped the first check.
        if self.cfg.skip_validation {
            return Ok(());
        }
        let now = self.clock.unix();
        let states = if order.authz_states.len() == order.authz_ids.len() {
            order.authz_states.clone()
        } else {
            self.authz_states(&order.authz_ids).await?
        };
        let mut checks = tokio::task::JoinSet::new();
        for (id, state) in order.authz_ids.iter().zip(&states) {
            if state
                .validated_at
                .is_some_and(|at| now - at <= CAA_RECHECK_AGE_SECS)
            {
                continue;
            }
            let authz = self
                .sa
                .get_authz(id)
                .await?
                .ok_or_else(|| Error::internal("order references a missing authorization"))?;
            let method = match &authz.derived_from {
                // Granted from a tenant domain: CAA of this very name, for the domain's method.
                Some(domain) => {
                    self.derived_caa_method(domain, &authz.identifier.value)
                        .await?
                }
                // Granted below an ancestor's authorization (RFC 9444), which only dns-01
                // validates (§4.1): CAA of this very name, for dns-01.
                None if authz.ancestor_authz.is_some() => Some(ChallengeKind::Dns01),
                None => caa_method(&authz)?,
            };
            let Some(method) = method else {
                continue;
            };
            let va = self.va.clone();
            let identities = tenant.caa_identities.clone();
            let account_uri = tenant.account_url(&acct.id);
            let budget = self.cfg.validation_timeout;
            checks.spawn(async move {
                let name = &authz.identifier.value;
                let check = va.check_caa(name, authz.wildcard, &account_uri, method, &identities);
                let result = match tokio::time::timeout(budget, check).await {
                    Ok(r) => r,
                    Err(_) => Err(ValidationError::Dns(format!(
                        "CAA lookup for {name} did not finish within {budget:?}; issuance is \
                         not allowed while CAA cannot be checked"
                    ))),
                };
                let shown = if authz.wildcard {
                    format!("*.{name}")
                } else {
                    name.clone()
                };
                (shown, result)
            });
        }
        let mut refused = Vec::new();
        while let Some(joined) = checks.join_next().await {
            let (name, result) =
                joined.map_err(|e| Error::internal(format!("CAA recheck task failed: {e}")))?;
            if let Err(e) = result {
                let kind = format!("urn:ietf:params:acme:error:{}", e.acme_type())
                    .parse()
                    .unwrap_or(ProblemType::Caa);
                refused.push(SubError {
                    kind,
                    detail: e.detail().to_string(),
                    identifier: acme_types::wire::Identifier::dns(name),
                });
            }
        }
        if refused.is_empty() {
            return Ok(());
        }
        refused.sort_by(|a, b| a.identifier.value.cmp(&b.identifier.value));
        let names: Vec<&str> = refused
            .iter()
            .map(|s| s.identifier.value.as_str())
            .collect();
        tracing::info!(order = %order.id, account = %acct.id, identifiers = ?names, "CAA checked again at finalize forbids issuance");
        let detail = match refused.as_slice() {
            [one] => format!(
                "{} was validated more than {} hours ago, so CAA was checked again before \
                 issuance (CA/B Forum BR 3.2.2.8): {}",
                one.identifier.value,
                CAA_RECHECK_AGE_SECS / 3600,
                one.detail
            ),
            _ => format!(
                "CAA, checked again before issuance (CA/B Forum BR 3.2.2.8), does not allow \
                 this CA to issue for {}; see subproblems",
                names.join(", ")
            ),
        };
        let kind = if refused.iter().all(|s| s.kind == refused[0].kind) {
            refused[0].kind
        } else {
            ProblemType::Compound
        };
        Err(Error::with_subproblems(kind, detail, refused))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sa::{
        AuthzState, ChallengeRecord, IdentifierKind, StoredChallengeKind, StoredIdentifier,
    };

    fn authz(kind: &str, challenges: &[(&str, ChallengeState)]) -> AuthzRecord {
        AuthzRecord {
            id: "a1".into(),
            tenant: "default".into(),
            account_id: "acct".into(),
            identifier: StoredIdentifier {
                kind: IdentifierKind::parse(kind).unwrap(),
                value: "x.example.com".into(),
            },
            wildcard: false,
            status: AuthzState::Valid,
            expires: 10_000,
            created_at: 0,
            challenges: challenges
                .iter()
                .map(|(k, s)| ChallengeRecord {
                    id: format!("c-{k}"),
                    authz_id: "a1".into(),
                    kind: StoredChallengeKind::parse(k).unwrap(),
                    token: "t".into(),
                    status: *s,
                    validated_at: (*s == ChallengeState::Valid).then_some(100),
                    error: None,
                    record: None,
                })
                .collect(),
            attested_by: None,
            derived_from: None,
            subdomain_auth_allowed: false,
            ancestor_authz: None,
        }
    }

    #[test]
    fn the_method_is_the_one_that_validated() {
        use ChallengeState::*;
        let a = authz("dns", &[("dns-01", Valid), ("http-01", Pending)]);
        assert_eq!(caa_method(&a).unwrap(), Some(ChallengeKind::Dns01));
        let a = authz("dns", &[("tls-alpn-01", Valid)]);
        assert_eq!(caa_method(&a).unwrap(), Some(ChallengeKind::TlsAlpn01));
        // IP addresses have no CAA; attested names were never checked by the VA.
        assert_eq!(
            caa_method(&authz("ip", &[("http-01", Valid)])).unwrap(),
            None
        );
        let mut a = authz("dns", &[]);
        a.attested_by = Some("dev".into());
        assert_eq!(caa_method(&a).unwrap(), None);
        // Valid without a validated challenge: refused, never signed unchecked.
        assert!(caa_method(&authz("dns", &[("dns-01", Invalid)])).is_err());
    }
}
