//! A tenant is one issuing CA with its own directory, policy and accounts (plus, after a
//! rollover, the retired CAs that still answer for what they issued).

use crate::ca::IssuingCa;
use std::sync::Arc;

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
    pub challenge_types: Vec<String>,
    /// Manufacturing CA roots (DER) for `device-attest-01`; empty disables
    /// `permanent-identifier` (draft-ietf-acme-device-attest).
    pub attestation_roots: Vec<Vec<u8>>,
    /// DNS name templates granted by a device's attestation (`attested_names`; private trust
    /// only, checked against the permitted names at load). See `ra::name_template`.
    pub attested_names: Vec<crate::ra::NameTemplate>,
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
