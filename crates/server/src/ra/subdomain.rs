//! Pre-authorization (RFC 8555 §7.4.1 newAuthz) and ACME for subdomains (RFC 9444).
//!
//! An account asks, by newAuthz with `subdomainAuthAllowed: true`, for an authorization of a
//! parent domain that also covers the names below it; a newOrder identifier may name that
//! parent as its `ancestorDomain` (§4.2). Without a valid ancestor authorization the name gets
//! ordinary challenges: the ancestor's authorization is not put into the order (§4.2 leaves
//! that to the server), because the finalize CAA recheck works per authorization and must see
//! every name in the certificate (BR §3.2.2.8). Such an authorization offers dns-01 only (RFC 9444 §4.1; the BR
//! let only DNS methods validate an Authorization Domain Name for the names below it,
//! §3.2.2.4.7). Once it is valid, the *same account* gets authorizations for names below it
//! without a challenge: fresh ones, valid at once, naming the ancestor (`ancestor_authz`),
//! expiring no later than it, never reused by another order, and deactivated with it. Another
//! account, even of the same tenant, never profits from it; neither do IP identifiers.

use super::order::{authz_identifier, challenge_types, check_identifier, AuthzView, OrderCharge};
use super::statuses::identifier_type;
use super::Ra;
use crate::error::{Error, Result};
use crate::ids::{new_object_id, new_token};
use crate::sa::{
    AccountRecord, AncestorAuthz, AuthzRecord, AuthzState, ChallengeRecord, ChallengeState, Nonce,
    StoredIdentifier,
};
use crate::tenant::Tenant;
use acme_types::problem::ProblemType;
use acme_types::wire::{self, AuthorizationStatus, ChallengeType, IdentifierType};
use pki::identifier::Identifier;

/// Whether `ancestor` is a proper ancestor of `name` (both lower-case, no trailing dot): a
/// suffix on a label boundary, never the name itself.
pub(crate) fn is_proper_ancestor(name: &str, ancestor: &str) -> bool {
    name.len() > ancestor.len()
        && name.ends_with(ancestor)
        && name.as_bytes()[name.len() - ancestor.len() - 1] == b'.'
}

/// Whether an authorization of `ancestor` that allows subdomains covers `base` (a wildcard's
/// base without `*.`): any name below it, and a wildcard at it (BR §3.2.2.4.7: a validated
/// Authorization Domain Name covers the wildcard under it).
fn covers(ancestor: &str, base: &str, wildcard: bool) -> bool {
    is_proper_ancestor(base, ancestor) || (wildcard && base == ancestor)
}

/// Checks a newOrder identifier's `ancestorDomain` (RFC 9444 §4.2): only for a DNS name, an
/// ancestor of it, itself inside the tenant's permitted names. Returns its canonical form.
pub(crate) fn check_ancestor_domain(
    tenant: &Tenant,
    ident: &Identifier,
    ancestor: &str,
) -> Result<String> {
    let Identifier::Dns(d) = ident else {
        return Err(Error::malformed(format!(
            "ancestorDomain {ancestor:?} is only allowed on a dns identifier (RFC 9444 §4.2)"
        )));
    };
    let parsed = check_identifier(tenant, &wire::Identifier::dns(ancestor))
        .map_err(|s| Error::acme(s.kind, format!("ancestorDomain: {}", s.detail)))?;
    let Identifier::Dns(a) = &parsed else {
        return Err(Error::malformed("ancestorDomain must be a DNS name"));
    };
    if a.is_wildcard() || !covers(a.as_str(), d.base(), d.is_wildcard()) {
        return Err(Error::malformed(format!(
            "ancestorDomain {ancestor:?} is not an ancestor domain of {:?} (RFC 9444 §4.2)",
            d.as_str()
        )));
    }
    Ok(a.as_str().to_string())
}

/// The account's ancestor authorizations, read at most once per request.
pub(crate) type AncestorCache = Option<Vec<AncestorAuthz>>;

impl Ra {
    /// For newOrder and newAuthz: the account's valid authorization allowing subdomains that
    /// covers `ident` (the closest ancestor; `only` restricts it to the client's
    /// `ancestorDomain`), with the expiry of the authorization it grants: never beyond the
    /// ancestor's nor the usual lifetime of a valid authorization.
    pub(crate) async fn ancestor_grant(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        (ident, wildcard): (&StoredIdentifier, bool),
        only: Option<&str>,
        now: i64,
        cache: &mut AncestorCache,
    ) -> Result<Option<(String, i64)>> {
        if identifier_type(ident) != IdentifierType::Dns {
            return Ok(None);
        }
        if cache.is_none() {
            *cache = Some(
                self.sa
                    .subdomain_ancestor_authzs(&tenant.name, &acct.id, now)
                    .await?,
            );
        }
        let best = cache
            .iter()
            .flatten()
            .filter(|a| a.expires > now && covers(&a.name, &ident.value, wildcard))
            .filter(|a| only.is_none_or(|o| o == a.name))
            .max_by_key(|a| a.name.len());
        Ok(best.map(|a| {
            let cap = now + Self::secs(self.cfg.valid_authz_lifetime);
            (a.id.clone(), a.expires.min(cap))
        }))
    }

    /// A pending authorization for `ident` with fresh challenges of the types the tenant
    /// allows: dns-01 only when it is to cover subdomains (RFC 9444 §4.1).
    pub(crate) fn pending_authz(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        ident: StoredIdentifier,
        wildcard: bool,
        subdomains: bool,
        now: i64,
    ) -> Result<AuthzRecord> {
        let id = new_object_id();
        let offered: &[ChallengeType] = if subdomains {
            &[ChallengeType::Dns01]
        } else {
            challenge_types(&ident, wildcard)
        };
        let challenges: Vec<_> = offered
            .iter()
            .filter(|t| tenant.challenge_types.contains(t))
            .map(|t| ChallengeRecord {
                id: new_object_id(),
                authz_id: id.clone(),
                kind: super::statuses::stored_challenge(*t),
                token: new_token(),
                status: ChallengeState::Pending,
                validated_at: None,
                error: None,
                record: None,
            })
            .collect();
        if challenges.is_empty() {
            return Err(Error::acme(
                ProblemType::RejectedIdentifier,
                if subdomains {
                    format!(
                        "authorizing the names below {} needs dns-01, which this CA does not \
                         offer (RFC 9444 §4.1)",
                        ident.value
                    )
                } else {
                    format!(
                        "no challenge type this CA allows can validate {}",
                        ident.value
                    )
                },
            ));
        }
        Ok(AuthzRecord {
            id,
            tenant: tenant.name.clone(),
            account_id: acct.id.clone(),
            identifier: ident,
            wildcard,
            status: AuthzState::Pending,
            expires: now + Self::secs(self.cfg.pending_authz_lifetime),
            created_at: now,
            challenges,
            attested_by: None,
            derived_from: None,
            subdomain_auth_allowed: subdomains,
            ancestor_authz: None,
        })
    }

    /// newAuthz (RFC 8555 §7.4.1): a pending authorization for one DNS or IP identifier, or
    /// one valid at once when a tenant domain or an ancestor authorization of the account
    /// already covers it. `subdomains` (RFC 9444 §4.1) is for DNS names only. Nothing is
    /// stored when the request is refused.
    pub async fn new_authz(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        requested: &wire::Identifier,
        subdomains: bool,
    ) -> Result<AuthzView> {
        self.new_authz_spending(tenant, acct, requested, subdomains, &Nonce::Spent, None)
            .await
    }

    /// [`Self::new_authz`] with the request's `nonce` and the account's newOrder tokens
    /// (`charge`, when the buckets are kept in storage), both taken by the first read: the
    /// lookup newOrder makes, for this one identifier (one statement on PostgreSQL).
    pub(crate) async fn new_authz_spending(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        requested: &wire::Identifier,
        subdomains: bool,
        nonce: &Nonce,
        charge: Option<&OrderCharge>,
    ) -> Result<AuthzView> {
        if subdomains && requested.kind() != Some(IdentifierType::Dns) {
            return Err(Error::malformed(
                "subdomainAuthAllowed applies to dns identifiers only (RFC 9444 §4.1)",
            ));
        }
        let ident =
            check_identifier(tenant, requested).map_err(|s| Error::acme(s.kind, s.detail))?;
        if matches!(&ident, Identifier::Dns(d) if d.is_wildcard()) {
            // §7.4.1: the identifier is the authorization's exact identifier, so
            // pre-authorization cannot authorize a wildcard.
            return Err(Error::malformed(
                "a wildcard cannot be pre-authorized (RFC 8555 §7.4.1); order it instead",
            ));
        }
        let (stored, _) = authz_identifier(&ident);
        let now = self.clock.unix();
        // The account's ancestor authorizations, read first, with the nonce and the tokens.
        let wanted = [(stored.clone(), false)];
        let lookup = crate::sa::OrderLookup {
            tenant: &tenant.name,
            account_id: &acct.id,
            now,
            min_expires: now,
            wanted: &wanted,
            charge: charge.map(|c| &c.charge),
        };
        let reads = self.order_lookup(&lookup, nonce, charge).await?;
        let mut ancestors: AncestorCache = Some(reads.ancestors);
        let derived = |status_from: (Option<String>, Option<String>), expires: i64| AuthzRecord {
            id: new_object_id(),
            tenant: tenant.name.clone(),
            account_id: acct.id.clone(),
            identifier: stored.clone(),
            wildcard: false,
            status: AuthzState::Valid,
            expires,
            created_at: now,
            challenges: Vec::new(),
            attested_by: None,
            derived_from: status_from.0,
            // A tenant domain covers the names below too; say so when asked.
            subdomain_auth_allowed: subdomains && status_from.1.is_none(),
            ancestor_authz: status_from.1,
        };
        let authz = if let Some((domain, expires)) = self
            .domain_grant(tenant, acct, &stored, now, &mut None)
            .await?
        {
            derived((Some(domain), None), expires)
        } else if let Some((ancestor, expires)) = self
            .ancestor_grant(tenant, acct, (&stored, false), None, now, &mut ancestors)
            .await?
            .filter(|_| !subdomains)
        {
            // A subdomain authorization of its own needs its own dns-01 proof (an ancestor
            // allows names below it, it does not hand on that right).
            derived((None, Some(ancestor)), expires)
        } else {
            self.pending_authz(tenant, acct, stored, false, subdomains, now)?
        };
        self.sa.insert_authz(&authz).await?;
        let status = if authz.status == AuthzState::Valid {
            AuthorizationStatus::Valid
        } else {
            AuthorizationStatus::Pending
        };
        Ok(AuthzView { authz, status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_end_on_a_label_boundary_and_exclude_the_name() {
        assert!(is_proper_ancestor(
            "a.b.routers.example.com",
            "routers.example.com"
        ));
        assert!(!is_proper_ancestor(
            "evilrouters.example.com",
            "routers.example.com"
        ));
        assert!(!is_proper_ancestor(
            "routers.example.com",
            "routers.example.com"
        ));
        assert!(covers("routers.example.com", "routers.example.com", true));
        assert!(!covers("routers.example.com", "routers.example.com", false));
        assert!(!covers(
            "a.routers.example.com",
            "routers.example.com",
            true
        ));
    }
}
