//! A tenant is one issuing CA with its own directory, policy and accounts. This issue ships
//! the `default` tenant; the routes and storage are already keyed by tenant name.

use crate::ca::IssuingCa;
use std::sync::Arc;

/// One issuing CA as the ACME server exposes it.
pub struct Tenant {
    /// Short name, the `<tenant>` in `/acme/<tenant>/...`.
    pub name: String,
    /// External base URL of the ACME server (`https://host:port`).
    pub base_url: String,
    /// The issuing CA that signs for this tenant.
    pub ca: Arc<IssuingCa>,
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
    /// The CT logs every certificate is submitted to when the tenant requires SCTs
    /// (`[ca] ct_required`, docs/ct.md); `None`: certificates are issued without CT.
    pub ct: Option<Arc<crate::ct::CtLogs>>,
}

impl Tenant {
    /// The URL of an ACME resource of this tenant (`<base>/acme/<name>/<path>`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/acme/{}/{}", self.base_url, self.name, path)
    }

    /// The account URL for `id` (also the JWS `kid`, RFC 8555 §6.2).
    pub fn account_url(&self, id: &str) -> String {
        self.url(&format!("acct/{id}"))
    }
}
