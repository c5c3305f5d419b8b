//! A tenant is one issuing CA with its own directory, policy and accounts (plus, after a
//! rollover, the retired CAs that still answer for what they issued); the routes and storage
//! are keyed by tenant name. The tenants a server serves form a [`TenantSet`], swapped whole
//! when `serve` reloads them (SIGHUP, `POST /api/reload`).

use crate::ca::IssuingCa;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// One issuing CA as the ACME server exposes it.
pub struct Tenant {
    /// Short name, the `<tenant>` in `/acme/<tenant>/...`.
    pub name: String,
    /// External base URL of the ACME server (`https://host:port`).
    pub base_url: String,
    /// The issuing CA that signs for this tenant (the active one).
    pub ca: Arc<IssuingCa>,
    /// Issuing CAs replaced by `fleetca tenant rollover`: they sign nothing new but keep
    /// serving CRLs, OCSP, ARI and chains for the certificates they issued until those expire.
    pub retired: Vec<Arc<IssuingCa>>,
    /// `meta.termsOfService`: if set, newAccount requires `termsOfServiceAgreed`.
    pub terms_of_service: Option<String>,
    /// `meta.website`.
    pub website: Option<String>,
    /// `meta.caaIdentities`: the issuer domain names CAA `issue` records must name (RFC 8659 §4.2).
    pub caa_identities: Vec<String>,
    /// `meta.externalAccountRequired` (RFC 8555 §7.3.4).
    pub external_account_required: bool,
    /// Challenge types this tenant offers.
    pub challenge_types: Vec<acme_types::wire::ChallengeType>,
    /// Manufacturing CA roots (DER) for `device-attest-01`; empty disables
    /// `permanent-identifier` (draft-ietf-acme-device-attest).
    pub attestation_roots: Vec<Vec<u8>>,
    /// DNS name templates granted by a device's attestation (`attested_names`; private trust
    /// only, checked against the permitted names at load). See `ra::name_template`.
    pub attested_names: Vec<crate::ra::NameTemplate>,
    /// `fleetca tenant disable`: the ACME directory answers 404 (no new accounts, orders or
    /// renewals), while the CA keeps publishing its CRL, OCSP and CA certificate for the
    /// certificates it already issued (RFC 5280 §5: status stays available until expiry).
    pub disabled: bool,
    /// The CT logs every certificate is submitted to when the tenant requires SCTs
    /// (`[ca] ct_required`, docs/ct.md); `None`: certificates are issued without CT.
    pub ct: Option<Arc<crate::ct::CtLogs>>,
}

impl Tenant {
    /// Every issuing CA of this tenant, the active one first.
    pub fn issuers(&self) -> impl Iterator<Item = &Arc<IssuingCa>> {
        std::iter::once(&self.ca).chain(self.retired.iter())
    }

    /// The issuing CA with this id, active or retired.
    pub fn issuer(&self, id: &str) -> Option<&Arc<IssuingCa>> {
        self.issuers().find(|ca| ca.id() == id)
    }

    /// The issuing CA that signed `cert` (its CRL, OCSP responder and chain). `None` only when
    /// that CA's files were removed from the data directory.
    pub fn issuer_of(&self, cert: &crate::sa::CertRecord) -> Option<&Arc<IssuingCa>> {
        self.issuer(cert.issuer_id())
    }

    /// The URL of an ACME resource of this tenant (`<base>/acme/<name>/<path>`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/acme/{}/{}", self.base_url, self.name, path)
    }

    /// The account URL for `id` (also the JWS `kid`, RFC 8555 §6.2).
    pub fn account_url(&self, id: &str) -> String {
        self.url(&format!("acct/{id}"))
    }
}

/// One consistent set of tenants. A request looks its tenant up once and keeps that
/// `Arc<Tenant>` to the end, so a reload never changes a tenant under a request in progress.
#[derive(Default)]
pub struct Tenants {
    by_name: HashMap<String, Arc<Tenant>>,
    /// Load order (`fleetca.toml`'s tenant first), for listings and "the first CA with a root".
    order: Vec<Arc<Tenant>>,
}

impl Tenants {
    /// A set of `list`, in that order (a later duplicate name replaces an earlier one).
    pub fn new(list: Vec<Arc<Tenant>>) -> Self {
        let by_name = list.iter().map(|t| (t.name.clone(), t.clone())).collect();
        Self {
            by_name,
            order: list,
        }
    }

    /// The tenant named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Tenant>> {
        self.by_name.get(name)
    }

    /// Every tenant, in load order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.order.iter()
    }
}

/// The one swap point of the served tenants: readers take a snapshot, a reload replaces it
/// whole. (A lock held only to clone an `Arc` — never across an await or a load.)
#[derive(Default)]
pub struct TenantSet {
    current: RwLock<Arc<Tenants>>,
}

impl TenantSet {
    /// A set serving `list`.
    pub fn new(list: Vec<Arc<Tenant>>) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(Arc::new(Tenants::new(list))),
        })
    }

    /// The tenants served now.
    pub fn snapshot(&self) -> Arc<Tenants> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The tenant named `name`, as served now.
    pub fn get(&self, name: &str) -> Option<Arc<Tenant>> {
        self.snapshot().get(name).cloned()
    }

    /// Every tenant served now, in load order.
    pub fn all(&self) -> Vec<Arc<Tenant>> {
        self.snapshot().iter().cloned().collect()
    }

    /// Serves `list` from now on; returns the set it replaced.
    pub fn replace(&self, list: Vec<Arc<Tenant>>) -> Arc<Tenants> {
        let new = Arc::new(Tenants::new(list));
        std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|e| e.into_inner()),
            new,
        )
    }
}
