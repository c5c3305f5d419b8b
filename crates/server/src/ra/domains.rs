//! Tenant domains (issue 17): a vendor proves control of a parent domain once per reuse
//! period, and every account created with one of its EAB credentials gets authorizations for
//! names at or below it without a challenge.
//!
//! Only methods that validate an Authorization Domain Name may cover the names below it (BR
//! §3.2.2.4: the HTTP and TLS-ALPN methods validate one FQDN only), and of those the DNS ones
//! fit here: `dns-01` (§3.2.2.4.7 DNS Change) and `dns-persist-01` (§3.2.2.4.22 where
//! adopted). `trusted` (no proof, audited) exists for private-trust tenants only, where no DCV
//! is required at all.
//!
//! Reuse period (BR §4.2.1 as amended by ballot SC-081): 398 days before 2026-03-15, then 200
//! days, 100 days from 2027-03-15 and 10 days from 2029-03-15, for public trust; a
//! private-trust tenant may set its own (`domain_reuse_days` in its config).
//!
//! This module owns the operator actions (shared by the CLI and the admin API), the grant
//! made at newOrder ([`Ra::domain_grant`]) and the dns-persist-01 revalidation task.

use super::Ra;
use crate::datadir::{CaSection, Trust};
use crate::error::{Error, Result as AcmeResult};
use crate::ids::{new_object_id, new_token};
use crate::sa::{
    AccountRecord, AuditEntry, Database, DomainCheckOutcome, DomainMethod, DomainState,
    DomainStore, SaError, StoredIdentifier, TenantDomainRecord,
};
use crate::tenant::Tenant;
use crate::va::{DomainCheck, DomainProof, Va, ValidationError};
use std::sync::Arc;
use std::time::Duration;

/// BR §3.2.2.4.7: a Random Value may be used in a confirming response for 30 days.
pub(crate) const DNS01_VALUE_LIFETIME_SECS: i64 = 30 * 86400;

const DAY: i64 = 86400;
/// 2026-03-15T00:00:00Z, 2027-03-15T00:00:00Z, 2029-03-15T00:00:00Z.
const SC081_STEPS: [(i64, i64); 3] = [
    (1_773_532_800, 200),
    (1_805_068_800, 100),
    (1_868_227_200, 10),
];

/// The BR data-reuse period for a validation made at `at` (UNIX seconds), in days.
pub fn br_reuse_days(at: i64) -> i64 {
    SC081_STEPS
        .iter()
        .rev()
        .find(|(from, _)| at >= *from)
        .map(|(_, days)| *days)
        .unwrap_or(398)
}

/// What the domain rules need to know of a tenant, from its configuration (the CLI has no
/// running server, so not from [`Tenant`]).
#[derive(Clone, Debug)]
pub struct DomainPolicy {
    /// The tenant's name.
    pub tenant: String,
    /// Private or public trust.
    pub trust: Trust,
    /// Its CAA issuer domain names (the dns-persist-01 issuer, RFC 8659 §4.2).
    pub caa_identities: Vec<String>,
    /// The URI a dns-persist-01 record binds to: `<public_base_url>/acme/<tenant>`.
    pub tenant_uri: String,
    /// Its permitted names (a domain outside them could never be issued for).
    pub permit: Vec<String>,
    /// Private trust only: the reuse period in days instead of the BR schedule.
    pub reuse_days: Option<u32>,
}

impl DomainPolicy {
    /// The policy of the tenant configured by `ca`.
    pub fn from_config(ca: &CaSection) -> Self {
        DomainPolicy {
            tenant: ca.name.clone(),
            trust: ca.trust,
            caa_identities: ca.caa_identities.clone(),
            tenant_uri: format!(
                "{}/acme/{}",
                ca.public_base_url.trim_end_matches('/'),
                ca.name
            ),
            permit: ca.permit.clone(),
            reuse_days: ca.domain_reuse_days,
        }
    }

    /// When a validation made at `at` stops granting.
    pub fn expiry(&self, at: i64) -> i64 {
        let days = match (self.trust, self.reuse_days) {
            (Trust::Private, Some(d)) => i64::from(d),
            _ => br_reuse_days(at),
        };
        at.saturating_add(days.saturating_mul(DAY))
    }
}

/// Why an operator action on a domain was refused.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The request is not acceptable (bad name, method not allowed for this tenant, ...).
    #[error("{0}")]
    Refused(String),
    /// No such domain.
    #[error("tenant {tenant:?} has no domain {name}")]
    NotFound {
        /// The tenant.
        tenant: String,
        /// The domain.
        name: String,
    },
    /// The DNS check failed; the domain grants nothing (the failure is recorded).
    #[error("validation of {name} failed ({}): {}", .error.acme_type(), .error.detail())]
    Validation {
        /// The domain.
        name: String,
        /// What the VA found.
        error: ValidationError,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] SaError),
}

/// The canonical form of a domain an operator named: lower-case A-labels, no trailing dot,
/// no wildcard, inside the tenant's permitted names.
pub(crate) fn canonical_domain(p: &DomainPolicy, name: &str) -> Result<String, DomainError> {
    let ident = pki::identifier::Identifier::parse_dns(name)
        .map_err(|e| DomainError::Refused(format!("{name:?} is not a valid DNS name: {e}")))?;
    let pki::identifier::Identifier::Dns(d) = &ident else {
        return Err(DomainError::Refused(format!("{name:?} is not a DNS name")));
    };
    if d.is_wildcard() {
        return Err(DomainError::Refused(
            "name the parent domain itself: a tenant domain always covers the names below it"
                .into(),
        ));
    }
    let permitted = pki::Permitted::parse(&p.permit)
        .map_err(|e| DomainError::Refused(format!("the tenant's permitted names: {e}")))?;
    permitted.check(&ident).map_err(|e| {
        DomainError::Refused(format!(
            "{name} is outside what tenant {:?} may issue for: {e}",
            p.tenant
        ))
    })?;
    Ok(d.as_str().to_string())
}

fn audit(p: &DomainPolicy, actor: &str, action: &str, name: &str, at: i64) -> AuditEntry {
    AuditEntry {
        at,
        actor: actor.to_string(),
        action: action.to_string(),
        tenant: Some(p.tenant.clone()),
        object: Some(name.to_string()),
        before: None,
        after: None,
    }
}

/// `domain add`: stores the domain and returns it with the TXT record to publish. `trusted`
/// (no DNS proof) is refused for public trust and is valid at once, audited.
pub async fn add_domain(
    db: &dyn Database,
    p: &DomainPolicy,
    name: &str,
    method: DomainMethod,
    actor: &str,
    now: i64,
) -> Result<TenantDomainRecord, DomainError> {
    let name = canonical_domain(p, name)?;
    let (txt_name, txt_value, value_expires) = match method {
        DomainMethod::Dns01 => (
            Some(crate::va::txt_name(&name, false)),
            // BR §3.2.2.4.7 Random Value: at least 112 bits of entropy (new_token has 128).
            Some(new_token()),
            Some(now + DNS01_VALUE_LIFETIME_SECS),
        ),
        DomainMethod::DnsPersist01 => {
            let Some(issuer) = p.caa_identities.first() else {
                return Err(DomainError::Refused(format!(
                    "tenant {:?} has no CAA identity (caa_identities) to name in a \
                     dns-persist-01 record",
                    p.tenant
                )));
            };
            (
                Some(crate::va::txt_name(&name, true)),
                Some(crate::va::persist_record(issuer, &p.tenant_uri)),
                None,
            )
        }
        DomainMethod::Trusted => {
            if p.trust != Trust::Private {
                return Err(DomainError::Refused(format!(
                    "tenant {:?} is public trust: its domains must be validated by dns-01 or \
                     dns-persist-01 (BR §3.2.2.4); --trusted is for private-trust tenants only",
                    p.tenant
                )));
            }
            (None, None, None)
        }
    };
    let trusted = method == DomainMethod::Trusted;
    let rec = TenantDomainRecord {
        id: new_object_id(),
        tenant: p.tenant.clone(),
        name: name.clone(),
        method,
        txt_name,
        txt_value,
        value_expires,
        status: if trusted {
            DomainState::Valid
        } else {
            DomainState::Pending
        },
        validated_at: trusted.then_some(now),
        expires_at: trusted.then(|| p.expiry(now)),
        evidence: trusted
            .then(|| serde_json::json!({ "method": "trusted", "declared_by": actor }).to_string()),
        last_checked_at: None,
        last_error: None,
        created_at: now,
    };
    let mut entry = audit(p, actor, "domain.add", &name, now);
    entry.after = Some(rec.summary_json(now).to_string());
    db.insert_domain(&rec, &entry).await?;
    Ok(rec)
}

/// `domain remove`: forgets the domain; authorizations granted from it are deactivated in the
/// same transaction, so no new or pending order is served from it any more.
pub async fn remove_domain(
    db: &dyn Database,
    p: &DomainPolicy,
    name: &str,
    actor: &str,
    now: i64,
) -> Result<(), DomainError> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let before = db.get_domain(&p.tenant, &name).await?;
    let mut entry = audit(p, actor, "domain.remove", &name, now);
    entry.before = before.map(|b| b.summary_json(now).to_string());
    if db.remove_domain(&p.tenant, &name, &entry).await? {
        Ok(())
    } else {
        Err(DomainError::NotFound {
            tenant: p.tenant.clone(),
            name,
        })
    }
}

/// Checks a domain's DNS proof now through the VA (TXT record, then CAA) and records the
/// outcome: valid until the reuse period ends, or invalid with the problem. `actor` is the
/// operator, or `server` for the revalidation task.
pub async fn validate_domain(
    store: &dyn DomainStore,
    va: &Va,
    p: &DomainPolicy,
    name: &str,
    actor: &str,
    now: i64,
) -> Result<TenantDomainRecord, DomainError> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let Some(rec) = store.get_domain(&p.tenant, &name).await? else {
        return Err(DomainError::NotFound {
            tenant: p.tenant.clone(),
            name,
        });
    };
    let proof = match rec.method {
        DomainMethod::Trusted => {
            return Err(DomainError::Refused(format!(
                "{name} is trusted by the operator; it has no DNS record to check"
            )))
        }
        DomainMethod::Dns01 => {
            if rec.value_expires.is_some_and(|e| e <= now) {
                return Err(DomainError::Refused(format!(
                    "the random value of {name} is older than 30 days (BR §3.2.2.4.7); remove \
                     the domain and add it again for a new value"
                )));
            }
            DomainProof::Dns01 {
                expected: rec.txt_value.clone().unwrap_or_default(),
            }
        }
        DomainMethod::DnsPersist01 => DomainProof::DnsPersist01 {
            issuers: p.caa_identities.clone(),
            account_uri: p.tenant_uri.clone(),
            now,
        },
    };
    let check = DomainCheck {
        domain: name.clone(),
        proof,
        caa_identities: p.caa_identities.clone(),
        account_uri: p.tenant_uri.clone(),
    };
    let result = va.check_domain_control(&check).await;
    crate::metrics::domain_check(&p.tenant, rec.method.as_str(), result.is_ok());
    let mut entry = audit(p, actor, "domain.validate", &name, now);
    let outcome = match &result {
        Ok(evidence) => {
            let ev = serde_json::to_string(evidence).unwrap_or_else(|_| "{}".into());
            entry.after = Some(format!("{{\"valid\":true,\"evidence\":{ev}}}"));
            DomainCheckOutcome {
                at: now,
                valid: Some((ev, p.expiry(now))),
                error: None,
            }
        }
        Err(e) => {
            let problem = serde_json::json!({
                "type": format!("urn:ietf:params:acme:error:{}", e.acme_type()),
                "detail": e.detail(),
            });
            entry.after = Some(problem.to_string());
            DomainCheckOutcome {
                at: now,
                valid: None,
                error: Some(problem.to_string()),
            }
        }
    };
    if !store
        .record_domain_check(&rec.id, &outcome, Some(&entry))
        .await?
    {
        return Err(DomainError::NotFound {
            tenant: p.tenant.clone(),
            name,
        });
    }
    match result {
        Ok(_) => Ok(store.get_domain(&p.tenant, &name).await?.unwrap_or(rec)),
        Err(error) => Err(DomainError::Validation { name, error }),
    }
}

/// The dns-persist-01 revalidation (the record stays in DNS, so the server checks it again on
/// its own, draft-ietf-acme-dns-persist §5): every `every`, each dns-persist-01 domain that was
/// validated once and not checked for `every` is checked again. Success extends its reuse
/// period; a record gone or changed makes it invalid at once (it grants nothing more, and
/// pending finalizations of names under it are refused), logged as a warning and counted in
/// `fleetca_tenant_domain_checks_total{result="invalid"}`, with
/// `fleetca_tenant_domain_valid` set to 0.
pub fn spawn_domain_revalidator(
    db: Arc<dyn Database>,
    va: Va,
    policies: Vec<DomainPolicy>,
    every: Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = revalidate_due(db.as_ref(), &va, &policies, every).await {
                tracing::warn!(error = %e, "tenant domain revalidation could not run");
            }
        }
    });
}

/// One pass of the revalidation task; returns how many domains were checked.
pub async fn revalidate_due(
    db: &dyn Database,
    va: &Va,
    policies: &[DomainPolicy],
    every: Duration,
) -> Result<usize, SaError> {
    let every = i64::try_from(every.as_secs()).unwrap_or(i64::MAX);
    let mut checked = 0;
    for p in policies {
        for d in db.list_domains(Some(&p.tenant)).await? {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            crate::metrics::domain_valid(&p.tenant, &d.name, d.grants_at(now));
            let due = d.method == DomainMethod::DnsPersist01
                && d.validated_at.is_some()
                && d.last_checked_at.is_none_or(|t| now - t >= every);
            if !due {
                continue;
            }
            checked += 1;
            match validate_domain(db, va, p, &d.name, "server:revalidation", now).await {
                Ok(r) => crate::metrics::domain_valid(&p.tenant, &d.name, r.grants_at(now)),
                Err(DomainError::Storage(e)) => return Err(e),
                Err(e) => {
                    crate::metrics::domain_valid(&p.tenant, &d.name, false);
                    tracing::warn!(tenant = %p.tenant, domain = %d.name, error = %e,
                        "dns-persist-01 revalidation failed: the domain no longer grants \
                         authorizations");
                }
            }
        }
    }
    Ok(checked)
}

impl Ra {
    /// For newOrder: the tenant domain that grants `ident` (a DNS name, `wildcard` for `*.`)
    /// to `acct` now, with the expiry of the authorization it grants. Only accounts created
    /// with one of the tenant's unrevoked EAB credentials inherit its domains; only valid,
    /// unexpired domains grant, and never beyond their own expiry nor the usual lifetime of a
    /// valid authorization.
    pub(crate) async fn domain_grant(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        ident: &StoredIdentifier,
        now: i64,
        eligible: &mut Option<bool>,
    ) -> AcmeResult<Option<(String, i64)>> {
        let store = &self.domains;
        if super::statuses::identifier_type(ident) != acme_types::wire::IdentifierType::Dns
            || acct.eab_kid.is_none()
        {
            return Ok(None);
        }
        let ok = match *eligible {
            Some(ok) => ok,
            None => {
                let ok = store.account_has_tenant_eab(&tenant.name, &acct.id).await?;
                *eligible = Some(ok);
                ok
            }
        };
        if !ok {
            return Ok(None);
        }
        let domains = store.list_domains(Some(&tenant.name)).await?;
        let best = domains
            .into_iter()
            .filter(|d| d.grants_at(now) && d.covers(&ident.value))
            .max_by_key(|d| d.expires_at);
        Ok(best.map(|d| {
            let cap = now + Self::secs(self.cfg.valid_authz_lifetime);
            let expires = d.expires_at.map_or(cap, |e| e.min(cap));
            (d.id, expires)
        }))
    }

    /// For the CAA recheck at finalize: the method of the domain that granted an authorization
    /// (`None`: trusted, no CAA applies). A domain removed, invalidated or expired since is
    /// `unauthorized`: it grants nothing from that moment on.
    pub(crate) async fn derived_caa_method(
        &self,
        domain_id: &str,
        name: &str,
    ) -> AcmeResult<Option<crate::va::ChallengeKind>> {
        let gone = || {
            Error::unauthorized(format!(
                "the tenant domain that authorized {name} was removed or is no longer valid"
            ))
        };
        let Some(d) = self.domains.get_domain_by_id(domain_id).await? else {
            return Err(gone());
        };
        if !d.grants_at(self.clock.unix()) {
            return Err(gone());
        }
        Ok(match d.method {
            DomainMethod::Dns01 => Some(crate::va::ChallengeKind::Dns01),
            DomainMethod::DnsPersist01 => Some(crate::va::ChallengeKind::DnsPersist01),
            DomainMethod::Trusted => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn br_schedule_by_date() {
        assert_eq!(br_reuse_days(1_773_532_799), 398);
        assert_eq!(br_reuse_days(1_773_532_800), 200);
        assert_eq!(br_reuse_days(1_805_068_799), 200);
        assert_eq!(br_reuse_days(1_805_068_800), 100);
        assert_eq!(br_reuse_days(1_868_227_200), 10);
    }

    fn policy(trust: Trust, reuse_days: Option<u32>) -> DomainPolicy {
        DomainPolicy {
            tenant: "routers".into(),
            trust,
            caa_identities: vec!["ca.example".into()],
            tenant_uri: "http://ca.example/acme/routers".into(),
            permit: vec!["routers.example.com".into()],
            reuse_days,
        }
    }

    #[test]
    fn private_trust_may_set_its_reuse_period_public_may_not() {
        let at = 1_805_068_800;
        assert_eq!(policy(Trust::Private, Some(7)).expiry(at), at + 7 * DAY);
        assert_eq!(policy(Trust::Public, Some(700)).expiry(at), at + 100 * DAY);
        assert_eq!(policy(Trust::Private, None).expiry(at), at + 100 * DAY);
    }

    #[test]
    fn domains_are_canonical_and_inside_the_permitted_names() {
        let p = policy(Trust::Public, None);
        assert_eq!(
            canonical_domain(&p, "Routers.Example.COM.").unwrap(),
            "routers.example.com"
        );
        assert!(canonical_domain(&p, "*.routers.example.com").is_err());
        assert!(canonical_domain(&p, "example.com").is_err());
        assert!(canonical_domain(&p, "evilrouters.example.com").is_err());
    }
}
