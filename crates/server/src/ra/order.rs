//! Orders and authorizations (RFC 8555 §7.4, §7.5). Order readiness and expiry are derived
//! on read from the authorizations and the clock (§7.1.6), so no job has to advance them.

use super::statuses::{self, identifier_type};
use super::Ra;
use crate::error::{Error, Result, SubError};
use crate::ids::{new_object_id, new_token};
use crate::sa::{
    AccountRecord, AuthzRecord, AuthzState, AuthzSummary, ChallengeRecord, ChallengeState,
    LifecycleLoaded, Nonce, OrderLifecycle, OrderRecord, OrderState, StoredIdentifier,
};
use crate::tenant::Tenant;
use acme_types::problem::ProblemType;
use acme_types::wire::{self, AuthorizationStatus, ChallengeType, IdentifierType, OrderStatus};
use pki::identifier::Identifier;

/// An order with its status as the client sees it now.
#[derive(Clone, Debug)]
pub struct OrderView {
    /// The stored order.
    pub order: OrderRecord,
    /// The order's status now (§7.1.6).
    pub status: OrderStatus,
    /// The order's profile and `replaces` link (`None` for an order stored without them).
    pub lifecycle: Option<OrderLifecycle>,
}

/// What a newOrder asks for beyond its identifiers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderOptions {
    /// Certificate profile name (draft-aaron-acme-profiles §4); `default` when absent.
    pub profile: Option<String>,
    /// ARI certID of the certificate the order replaces (RFC 9773 §5).
    pub replaces: Option<String>,
}

/// Rate-limit buckets kept in storage that newOrder's first statement takes a token from
/// (see [`crate::sa::OrderLookup::charge`]), as the front end's limiter hands them over.
pub struct OrderCharge {
    /// The buckets.
    pub charge: crate::sa::BucketCharge,
    /// The `rateLimited` answer when storage refuses the charge.
    pub refused: fn(&crate::sa::BucketCharge, crate::sa::Refusal) -> Error,
    /// Set once storage took the token, so that an order that is not made after all gives it
    /// back, and one refused before the lookup (or by the charge itself) does not.
    taken: std::sync::atomic::AtomicBool,
}

impl OrderCharge {
    /// `charge`, answered with `refused` when storage refuses it.
    pub fn new(
        charge: crate::sa::BucketCharge,
        refused: fn(&crate::sa::BucketCharge, crate::sa::Refusal) -> Error,
    ) -> Self {
        Self {
            charge,
            refused,
            taken: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether storage took the token.
    pub fn taken(&self) -> bool {
        self.taken.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// What the lookup that carried the charge says of it: `refused` (nothing taken) is the
    /// `rateLimited` answer; otherwise the token is recorded as taken.
    pub(super) fn settle(&self, refused: Option<crate::sa::Refusal>) -> Result<()> {
        if let Some(r) = refused {
            return Err((self.refused)(&self.charge, r));
        }
        self.taken.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

/// An authorization with its status as the client sees it now.
#[derive(Clone, Debug)]
pub struct AuthzView {
    /// The stored authorization.
    pub authz: AuthzRecord,
    /// The authorization's status now (§7.1.6).
    pub status: AuthorizationStatus,
}

/// Parses one requested identifier (§7.1.3 `identifiers`, RFC 8738 for `ip`) and applies the
/// tenant's name policy, so a name outside the CA's constraints never gets an authorization.
pub(crate) fn check_identifier(
    tenant: &Tenant,
    requested: &wire::Identifier,
) -> std::result::Result<Identifier, SubError> {
    let value = requested.value.as_str();
    let sub = |k: ProblemType, d: String| SubError {
        kind: k,
        detail: d,
        identifier: wire::Identifier {
            ancestor_domain: None,
            ..requested.clone()
        },
    };
    let ident = match requested.kind() {
        Some(IdentifierType::Dns) => Identifier::parse_dns(value).map_err(|e| {
            sub(
                ProblemType::RejectedIdentifier,
                format!("{value:?} is not a valid DNS name: {e}"),
            )
        })?,
        Some(IdentifierType::Ip) => Identifier::parse_ip(value).map_err(|e| {
            sub(
                ProblemType::RejectedIdentifier,
                format!("{value:?} is not a valid IP address: {e}"),
            )
        })?,
        Some(IdentifierType::PermanentIdentifier) | None => {
            return Err(sub(
                ProblemType::UnsupportedIdentifier,
                format!(
                    "identifier type {:?} is not supported (dns and ip are)",
                    requested.r#type
                ),
            ))
        }
    };
    tenant.ca.permitted().check(&ident).map_err(|e| {
        sub(
            ProblemType::RejectedIdentifier,
            format!("{value:?} is outside what this CA may issue for: {e}"),
        )
    })?;
    Ok(ident)
}

/// Accepts a `permanent-identifier` only where the tenant has manufacturing roots to verify
/// attestations against; otherwise the type is `unsupportedIdentifier`.
fn check_permanent_identifier(
    tenant: &Tenant,
    value: &str,
) -> std::result::Result<StoredIdentifier, SubError> {
    let sub = |k: ProblemType, d: String| SubError {
        kind: k,
        detail: d,
        identifier: wire::Identifier::new(IdentifierType::PermanentIdentifier, value),
    };
    if tenant.attestation_roots.is_empty() {
        return Err(sub(
            ProblemType::UnsupportedIdentifier,
            "this CA has no manufacturing roots configured, so it does not accept \
             permanent-identifier"
                .into(),
        ));
    }
    super::attest::check_permanent_identifier(value).map_err(|e| {
        sub(
            ProblemType::RejectedIdentifier,
            format!("{value:?} is not a valid permanent identifier: {e}"),
        )
    })?;
    Ok(statuses::stored(IdentifierType::PermanentIdentifier, value))
}

/// The DNS names the tenant's name templates grant to the order's device (see
/// `ra::name_template`): only for an order naming exactly one `permanent-identifier` (one
/// device per certificate, so a name cannot be claimed on another device's attestation) whose
/// value, lower-cased, is a DNS label.
fn granted_names(tenant: &Tenant, devices: &[StoredIdentifier]) -> Vec<String> {
    let [device] = devices else {
        return Vec::new();
    };
    let Some(label) = super::name_template::serial_label(&device.value) else {
        return Vec::new();
    };
    tenant
        .attested_names
        .iter()
        .filter_map(|t| t.expand(&label))
        .collect()
}

/// The stored form of a parsed identifier: the authorization's value (no `*.`) and wildcard flag.
pub(crate) fn authz_identifier(ident: &Identifier) -> (StoredIdentifier, bool) {
    match ident {
        Identifier::Dns(d) => (
            statuses::stored(IdentifierType::Dns, d.base()),
            d.is_wildcard(),
        ),
        Identifier::Ip(ip) => (statuses::stored(IdentifierType::Ip, ip.to_string()), false),
    }
}

/// The challenge types offered for an identifier: wildcards only via dns-01 (§7.1.3), IP
/// identifiers never via dns-01 (RFC 8738 §7).
pub(crate) fn challenge_types(
    ident: &StoredIdentifier,
    wildcard: bool,
) -> &'static [ChallengeType] {
    use ChallengeType::{DeviceAttest01, Dns01, Http01, TlsAlpn01};
    match (identifier_type(ident), wildcard) {
        (IdentifierType::PermanentIdentifier, _) => &[DeviceAttest01],
        (IdentifierType::Ip, _) => &[Http01, TlsAlpn01],
        (_, true) => &[Dns01],
        _ => &[Http01, Dns01, TlsAlpn01],
    }
}

impl Ra {
    /// newOrder (§7.4): checks every identifier against policy (all failures reported together
    /// as subproblems, §6.7.1), reuses this account's live authorizations, creates the rest.
    pub async fn new_order(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        requested: &[wire::Identifier],
    ) -> Result<OrderView> {
        self.new_order_with(tenant, acct, requested, &OrderOptions::default())
            .await
    }

    /// newOrder with a profile (draft-aaron-acme-profiles) and `replaces` (RFC 9773 §5). An
    /// unknown profile is refused before anything is stored; the profile's lifetime and
    /// extensions are applied at finalization, whatever the CSR asks. An identifier may name
    /// its `ancestorDomain` (RFC 9444 §4.2).
    pub async fn new_order_with(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        requested: &[wire::Identifier],
        opts: &OrderOptions,
    ) -> Result<OrderView> {
        self.new_order_spending(tenant, acct, requested, opts, &Nonce::Spent, None)
            .await
    }

    /// The lookup newOrder (and newAuthz) decides on, made before any other storage call: on
    /// PostgreSQL one statement that also spends a pending `nonce` and takes `charge`'s
    /// tokens (`lookup.charge` is that charge's buckets). A refused charge is the
    /// `rateLimited` answer.
    pub(super) async fn order_lookup(
        &self,
        lookup: &crate::sa::OrderLookup<'_>,
        nonce: &Nonce,
        charge: Option<&OrderCharge>,
    ) -> Result<crate::sa::OrderReads> {
        let (spend, reads) = self.sa.new_order_reads_spending(lookup, nonce).await?;
        super::settle_nonce(spend)?;
        if let Some(c) = charge {
            c.settle(reads.refused)?;
        }
        Ok(reads)
    }

    /// [`Self::new_order_with`] with the request's `nonce`, spent by the first read, before
    /// anything is written, and the rate limits' `charge`, taken by the same read.
    pub(crate) async fn new_order_spending(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        requested: &[wire::Identifier],
        opts: &OrderOptions,
        nonce: &Nonce,
        charge: Option<&OrderCharge>,
    ) -> Result<OrderView> {
        if requested.is_empty() {
            return Err(Error::malformed(
                "an order must name at least one identifier",
            ));
        }
        if requested.len() > self.cfg.max_identifiers {
            return Err(Error::malformed(format!(
                "an order may name at most {} identifiers",
                self.cfg.max_identifiers
            )));
        }
        let mut idents = Vec::with_capacity(requested.len());
        let mut devices: Vec<StoredIdentifier> = Vec::new();
        let mut failures = Vec::new();
        // (identifier value, its checked `ancestorDomain`), RFC 9444 §4.2.
        let mut ancestors: Vec<(String, String)> = Vec::new();
        for req in requested {
            let kind = req.kind();
            if kind == Some(IdentifierType::PermanentIdentifier) {
                match check_permanent_identifier(tenant, &req.value) {
                    Ok(d) => devices.push(d),
                    Err(sub) => failures.push(sub),
                }
                continue;
            }
            let asked = req.ancestor_domain.as_deref();
            if asked.is_some() && kind != Some(IdentifierType::Dns) {
                return Err(Error::malformed(format!(
                    "ancestorDomain is only allowed on a dns identifier, not on {} \
                     (RFC 9444 §4.2)",
                    req.r#type
                )));
            }
            match check_identifier(tenant, req) {
                Ok(i) => {
                    if let Some(anc) = asked {
                        // Refused as a whole (`malformed`) before anything is stored.
                        let anc = super::subdomain::check_ancestor_domain(tenant, &i, anc)?;
                        ancestors.push((i.value(), anc));
                    }
                    idents.push(i)
                }
                Err(sub) => failures.push(sub),
            }
        }
        if !failures.is_empty() {
            let n = failures.len();
            return Err(Error::with_subproblems(
                ProblemType::Compound,
                format!("{n} identifier(s) refused; see subproblems"),
                failures,
            ));
        }
        idents.sort();
        idents.dedup();
        devices.sort_by(|a, b| a.value.cmp(&b.value));
        devices.dedup();
        let now = self.clock.unix();
        let wanted = idents
            .iter()
            .map(authz_identifier)
            .chain(devices.iter().map(|d| (d.clone(), false)))
            .collect::<Vec<_>>();
        // Everything newOrder reads to decide, read first and at once (one round trip on
        // PostgreSQL, which also spends a pending nonce there, before any other storage
        // call): the account's ancestor authorizations (RFC 9444) and, for every name, the
        // authorization it may reuse. Reuse only authorizations that outlive the order a
        // little, so the order cannot be left with one that expires under it (§7.1.3 lets
        // the server choose).
        let lookup = crate::sa::OrderLookup {
            tenant: &tenant.name,
            account_id: &acct.id,
            now,
            min_expires: now + 3600,
            wanted: &wanted,
            charge: charge.map(|c| &c.charge),
        };
        let reads = self.order_lookup(&lookup, nonce, charge).await?;
        let mut ancestor_authzs: super::subdomain::AncestorCache = Some(reads.ancestors);
        let lifecycle = self
            .order_lifecycle_for(tenant, &acct.id, &idents, opts)
            .await?;

        let order_expires = now + Self::secs(self.cfg.order_lifetime);
        let mut new_authzs = Vec::new();
        let mut authz_ids = Vec::with_capacity(idents.len());
        // Templated names (draft-ietf-acme-device-attest §6.1.2, "other authorization
        // mechanisms"): each gets a fresh authorization without challenges, attested by a
        // fresh authorization of the device made in this same order, so the names are never
        // granted by an attestation made for another order or account.
        let granted = granted_names(tenant, &devices);
        let is_granted = |i: &StoredIdentifier, wildcard: bool| {
            !wildcard && identifier_type(i) == IdentifierType::Dns && granted.contains(&i.value)
        };
        let device_authz = wanted
            .iter()
            .any(|(i, w)| is_granted(i, *w))
            .then(new_object_id);
        // Whether the account inherits its tenant's domains (issue 17), asked at most once.
        let mut inherits: Option<bool> = None;
        for ((stored, wildcard), reusable) in wanted.into_iter().zip(reads.reusable) {
            // A name at or below a validated tenant domain, for an account created with the
            // tenant's EAB: a fresh authorization, valid at once, without challenges, that
            // names the domain it comes from (never reused, see `ra::domains`).
            if let Some((domain_id, expires)) = self
                .domain_grant(tenant, acct, &stored, now, &mut inherits)
                .await?
            {
                let id = new_object_id();
                authz_ids.push(id.clone());
                new_authzs.push(AuthzRecord {
                    id,
                    tenant: tenant.name.clone(),
                    account_id: acct.id.clone(),
                    identifier: stored,
                    wildcard,
                    status: AuthzState::Valid,
                    expires,
                    created_at: now,
                    challenges: Vec::new(),
                    attested_by: None,
                    derived_from: Some(domain_id),
                    subdomain_auth_allowed: false,
                    ancestor_authz: None,
                });
                continue;
            }
            // RFC 9444 §4.2: a name below an ancestor this account validated with
            // subdomainAuthAllowed: a fresh authorization, valid at once, without challenges.
            let shown = if wildcard {
                format!("*.{}", stored.value)
            } else {
                stored.value.clone()
            };
            let asked = ancestors
                .iter()
                .find(|(v, _)| *v == shown)
                .map(|(_, a)| a.clone());
            if let Some((ancestor, expires)) = self
                .ancestor_grant(
                    tenant,
                    acct,
                    (&stored, wildcard),
                    asked.as_deref(),
                    now,
                    &mut ancestor_authzs,
                )
                .await?
            {
                let id = new_object_id();
                authz_ids.push(id.clone());
                new_authzs.push(AuthzRecord {
                    id,
                    tenant: tenant.name.clone(),
                    account_id: acct.id.clone(),
                    identifier: stored,
                    wildcard,
                    status: AuthzState::Valid,
                    expires,
                    created_at: now,
                    challenges: Vec::new(),
                    attested_by: None,
                    derived_from: None,
                    subdomain_auth_allowed: false,
                    ancestor_authz: Some(ancestor),
                });
                continue;
            }
            let attested_by = device_authz
                .clone()
                .filter(|_| is_granted(&stored, wildcard));
            let deciding = identifier_type(&stored) == IdentifierType::PermanentIdentifier
                && device_authz.is_some();
            if attested_by.is_none() && !deciding {
                if let Some(id) = reusable {
                    authz_ids.push(id);
                    continue;
                }
            }
            let authz_id = match (&device_authz, deciding) {
                (Some(id), true) => id.clone(),
                _ => new_object_id(),
            };
            let offered: &[ChallengeType] = if attested_by.is_some() {
                &[]
            } else {
                challenge_types(&stored, wildcard)
            };
            let challenges = offered
                .iter()
                .filter(|t| {
                    **t == ChallengeType::DeviceAttest01 || tenant.challenge_types.contains(t)
                })
                .map(|t| ChallengeRecord {
                    id: new_object_id(),
                    authz_id: authz_id.clone(),
                    kind: statuses::stored_challenge(*t),
                    token: new_token(),
                    status: ChallengeState::Pending,
                    validated_at: None,
                    error: None,
                    record: None,
                })
                .collect::<Vec<_>>();
            if challenges.is_empty() && attested_by.is_none() {
                return Err(Error::acme(
                    ProblemType::RejectedIdentifier,
                    format!(
                        "no challenge type this CA allows can validate {}",
                        stored.value
                    ),
                ));
            }
            authz_ids.push(authz_id.clone());
            new_authzs.push(AuthzRecord {
                id: authz_id,
                tenant: tenant.name.clone(),
                account_id: acct.id.clone(),
                identifier: stored,
                wildcard,
                status: AuthzState::Pending,
                expires: now + Self::secs(self.cfg.pending_authz_lifetime),
                created_at: now,
                challenges,
                attested_by,
                derived_from: None,
                subdomain_auth_allowed: false,
                ancestor_authz: None,
            });
        }
        let order = OrderRecord {
            id: new_object_id(),
            tenant: tenant.name.clone(),
            account_id: acct.id.clone(),
            status: OrderState::Pending,
            expires: order_expires,
            identifiers: idents
                .iter()
                .map(statuses::stored_name)
                .chain(devices.iter().cloned())
                .collect(),
            error: None,
            cert_id: None,
            created_at: now,
            authz_ids,
            authz_states: Vec::new(),
            lifecycle: LifecycleLoaded::Read(Some(lifecycle.clone())),
        };
        // The profile and `replaces` link go into the order's own transaction.
        self.sa
            .insert_order(&order, &new_authzs, Some(&lifecycle))
            .await?;
        if new_authzs.is_empty() || new_authzs.iter().all(|a| a.status == AuthzState::Valid) {
            return self.order_view(order).await;
        }
        // §7.1.6: an authorization made just now is pending, so the order is pending (reused
        // ones are valid or pending and outlive it); its lifecycle is what was just written.
        // Nothing here needs reading back.
        Ok(OrderView {
            order,
            status: OrderStatus::Pending,
            lifecycle: Some(lifecycle),
        })
    }

    /// Resolves a newOrder's profile and `replaces`.
    async fn order_lifecycle_for(
        &self,
        tenant: &Tenant,
        account_id: &str,
        idents: &[Identifier],
        opts: &OrderOptions,
    ) -> Result<OrderLifecycle> {
        let profile = opts
            .profile
            .clone()
            .unwrap_or_else(|| crate::ca::profile::DEFAULT_PROFILE.to_string());
        if tenant.ca.profile(&profile).is_none() {
            // draft-aaron-acme-profiles §4: a profile the directory does not advertise is
            // refused. ACME's registry has no dedicated type in the draft this follows, so
            // the request is `malformed`.
            let offered: Vec<&str> = tenant
                .ca
                .profiles()
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            return Err(Error::malformed(format!(
                "unknown profile {profile:?}; this CA offers: {}",
                offered.join(", ")
            )));
        }
        let replaces_cert_id = match &opts.replaces {
            Some(r) => {
                let stored: Vec<StoredIdentifier> =
                    idents.iter().map(statuses::stored_name).collect();
                Some(self.check_replaces(tenant, account_id, &stored, r).await?)
            }
            None => None,
        };
        Ok(OrderLifecycle {
            profile,
            replaces_cert_id,
        })
    }

    /// Reads an order owned by `acct` (anything else is "not found", §7.4 gives no access to
    /// other accounts' orders).
    pub async fn get_order(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        id: &str,
    ) -> Result<OrderView> {
        self.get_order_spending(tenant, acct, id, &Nonce::Spent)
            .await
    }

    /// [`Self::get_order`], spending a pending `nonce` with the read.
    pub(crate) async fn get_order_spending(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        id: &str,
        nonce: &Nonce,
    ) -> Result<OrderView> {
        let (spend, order) = self.sa.get_order_spending(id, nonce).await?;
        super::settle_nonce(spend)?;
        match order {
            Some(o) if super::owned_by(tenant, acct, &o.tenant, &o.account_id) => {
                self.order_view(o).await
            }
            _ => Err(Error::not_found("order")),
        }
    }

    pub(crate) async fn order_view(&self, order: OrderRecord) -> Result<OrderView> {
        let status = match order.status {
            OrderState::Processing => OrderStatus::Processing,
            OrderState::Valid => OrderStatus::Valid,
            OrderState::Invalid => OrderStatus::Invalid,
            OrderState::Pending => {
                let now = self.clock.unix();
                if now >= order.expires {
                    OrderStatus::Invalid
                } else {
                    let mut all_valid = true;
                    let mut any_dead = false;
                    let read;
                    let states = if order.authz_states.len() == order.authz_ids.len() {
                        &order.authz_states
                    } else {
                        read = self.authz_states(&order.authz_ids).await?;
                        &read
                    };
                    for a in states {
                        match self.authz_status_of(a.status, a.expires) {
                            AuthorizationStatus::Valid => {}
                            AuthorizationStatus::Pending => all_valid = false,
                            _ => any_dead = true,
                        }
                    }
                    if any_dead {
                        OrderStatus::Invalid
                    } else if all_valid {
                        OrderStatus::Ready
                    } else {
                        OrderStatus::Pending
                    }
                }
            }
        };
        let lifecycle = match &order.lifecycle {
            LifecycleLoaded::Read(l) => l.clone(),
            LifecycleLoaded::NotRead => self.lifecycle.get_order_lifecycle(&order.id).await?,
        };
        Ok(OrderView {
            order,
            status,
            lifecycle,
        })
    }

    /// The summary of each authorization, for an order record that was not read with them
    /// (`OrderRecord::authz_states`).
    pub(crate) async fn authz_states(&self, ids: &[String]) -> Result<Vec<AuthzSummary>> {
        let mut states = Vec::with_capacity(ids.len());
        for id in ids {
            let a = self
                .sa
                .get_authz(id)
                .await?
                .ok_or_else(|| Error::internal("order references a missing authorization"))?;
            states.push(AuthzSummary {
                status: a.status,
                expires: a.expires,
                validated_at: a
                    .challenges
                    .iter()
                    .filter(|c| c.status == ChallengeState::Valid)
                    .filter_map(|c| c.validated_at)
                    .max(),
            });
        }
        Ok(states)
    }

    fn authz_status(&self, a: &AuthzRecord) -> AuthorizationStatus {
        self.authz_status_of(a.status, a.expires)
    }

    fn authz_status_of(&self, status: AuthzState, expires: i64) -> AuthorizationStatus {
        match status {
            AuthzState::Pending | AuthzState::Valid if self.clock.unix() >= expires => {
                AuthorizationStatus::Expired
            }
            s => statuses::authz_status(s),
        }
    }

    /// One page of the account's orders (§7.1.2.1) and the cursor of the next page, if any.
    pub async fn list_orders(
        &self,
        acct: &AccountRecord,
        after: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>)> {
        let limit = self.cfg.orders_page_size;
        let mut ids = self.sa.list_order_ids(&acct.id, after, limit + 1).await?;
        let next = if ids.len() > limit as usize {
            ids.truncate(limit as usize);
            ids.last().cloned()
        } else {
            None
        };
        Ok((ids, next))
    }

    /// Reads an authorization owned by `acct`.
    pub async fn get_authz(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        id: &str,
    ) -> Result<AuthzView> {
        self.get_authz_spending(tenant, acct, id, &Nonce::Spent)
            .await
    }

    /// [`Self::get_authz`], spending a pending `nonce` with the read.
    pub async fn get_authz_spending(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        id: &str,
        nonce: &Nonce,
    ) -> Result<AuthzView> {
        let (spend, authz) = self.sa.get_authz_spending(id, nonce).await?;
        super::settle_nonce(spend)?;
        match authz {
            Some(a) if super::owned_by(tenant, acct, &a.tenant, &a.account_id) => {
                let status = self.authz_status(&a);
                Ok(AuthzView { authz: a, status })
            }
            _ => Err(Error::not_found("authorization")),
        }
    }

    /// Deactivates an authorization (§7.5.2); only pending and valid ones can be.
    pub async fn deactivate_authz(
        &self,
        tenant: &Tenant,
        acct: &AccountRecord,
        id: &str,
    ) -> Result<AuthzView> {
        let view = self.get_authz(tenant, acct, id).await?;
        if !matches!(
            view.status,
            AuthorizationStatus::Pending | AuthorizationStatus::Valid
        ) {
            return Err(Error::malformed(format!(
                "an authorization that is {} cannot be deactivated",
                view.status
            )));
        }
        if !self.sa.try_deactivate_authz(id).await? {
            return Err(Error::malformed(
                "the authorization changed state concurrently",
            ));
        }
        self.get_authz(tenant, acct, id).await
    }
}
