//! RFC 8555 §7 resource and request objects as serde types.
//!
//! Field names follow the RFC (camelCase). Request types never use
//! `deny_unknown_fields`: RFC 8555 §7.3 and §7.4 tell servers to ignore
//! fields they do not understand. Timestamps are RFC 3339 strings; the server
//! formats them and converts at its edge.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::jwk::Jwk;
use crate::problem::Problem;

/// The directory object (RFC 8555 §7.1.1, RFC 9773 §3 `renewalInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    /// URL of the newNonce resource (§7.2).
    pub new_nonce: String,
    /// URL of the newAccount resource (§7.3).
    pub new_account: String,
    /// URL of the newOrder resource (§7.4).
    pub new_order: String,
    /// URL of the newAuthz resource, if pre-authorization is supported (§7.4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_authz: Option<String>,
    /// URL of the revokeCert resource (§7.6).
    pub revoke_cert: String,
    /// URL of the keyChange resource (§7.3.5).
    pub key_change: String,
    /// Base URL of the renewalInfo resource (RFC 9773 §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_info: Option<String>,
    /// Metadata about the server (§7.1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<DirectoryMeta>,
}

/// The directory's `meta` object (RFC 8555 §7.1.1; `profiles` from the ACME
/// profiles extension, draft-aaron-acme-profiles).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryMeta {
    /// URL of the current terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_of_service: Option<String>,
    /// URL of a website about this CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    /// Hostnames that CAA records may name to authorize this CA (RFC 8659); serialised even
    /// when empty, like `externalAccountRequired`, so a directory always states both.
    #[serde(default)]
    pub caa_identities: Vec<String>,
    /// Whether newAccount requires an external account binding (§7.3.4).
    #[serde(default)]
    pub external_account_required: bool,
    /// Certificate profiles a newOrder may name, with a description each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<BTreeMap<String, String>>,
    /// RFC 9444 §4.1: newAuthz accepts `subdomainAuthAllowed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub subdomain_auth_allowed: bool,
}

/// An identifier (RFC 8555 §9.7.7). `type` is a String so an unknown type
/// still parses and the server can answer `unsupportedIdentifier`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identifier {
    /// The identifier type, e.g. `dns` (RFC 8555 §9.7.7) or `ip` (RFC 8738).
    #[serde(rename = "type")]
    pub r#type: String,
    /// The identifier value, e.g. a domain name.
    pub value: String,
    /// RFC 9444 §4.2: in a newOrder, an ancestor domain of a `dns` identifier the client
    /// holds (or wants) an authorization for that covers its subdomains.
    #[serde(
        default,
        rename = "ancestorDomain",
        skip_serializing_if = "Option::is_none"
    )]
    pub ancestor_domain: Option<String>,
}

impl Identifier {
    /// The `dns` identifier type (RFC 8555 §9.7.7).
    pub const DNS: &'static str = "dns";
    /// The `ip` identifier type (RFC 8738 §3).
    pub const IP: &'static str = "ip";

    /// A `dns` identifier (RFC 8555 §9.7.7).
    pub fn dns(value: impl Into<String>) -> Self {
        Self {
            r#type: Self::DNS.to_owned(),
            value: value.into(),
            ancestor_domain: None,
        }
    }

    /// An `ip` identifier (RFC 8738 §3).
    pub fn ip(value: impl Into<String>) -> Self {
        Self {
            r#type: Self::IP.to_owned(),
            value: value.into(),
            ancestor_domain: None,
        }
    }

    /// An identifier of a known `kind`.
    pub fn new(kind: IdentifierType, value: impl Into<String>) -> Self {
        Self {
            r#type: kind.as_str().to_owned(),
            value: value.into(),
            ancestor_domain: None,
        }
    }

    /// The identifier's type, when it is one this crate knows; `None` for any other, which a
    /// server answers with `unsupportedIdentifier` (RFC 8555 §6.7).
    pub fn kind(&self) -> Option<IdentifierType> {
        IdentifierType::parse(&self.r#type)
    }
}

/// The identifier types this crate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentifierType {
    /// `dns` (RFC 8555 §9.7.7).
    Dns,
    /// `ip` (RFC 8738 §3).
    Ip,
    /// `permanent-identifier`, a device's manufacturer-assigned identity
    /// (draft-ietf-acme-device-attest §3).
    PermanentIdentifier,
}

impl IdentifierType {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dns => Identifier::DNS,
            Self::Ip => Identifier::IP,
            Self::PermanentIdentifier => "permanent-identifier",
        }
    }

    /// The type named `s`, if known.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Dns, Self::Ip, Self::PermanentIdentifier]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

impl fmt::Display for IdentifierType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The challenge types this crate knows ([`Challenge::type`](Challenge) stays a String so a
/// client parses challenges of types it does not know).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengeType {
    /// `http-01` (RFC 8555 §8.3).
    Http01,
    /// `dns-01` (RFC 8555 §8.4).
    Dns01,
    /// `tls-alpn-01` (RFC 8737 §3).
    TlsAlpn01,
    /// `device-attest-01` (draft-ietf-acme-device-attest §5).
    DeviceAttest01,
}

impl ChallengeType {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http01 => Challenge::HTTP_01,
            Self::Dns01 => Challenge::DNS_01,
            Self::TlsAlpn01 => Challenge::TLS_ALPN_01,
            Self::DeviceAttest01 => "device-attest-01",
        }
    }

    /// Every type this crate knows.
    pub const ALL: [Self; 4] = [
        Self::Http01,
        Self::Dns01,
        Self::TlsAlpn01,
        Self::DeviceAttest01,
    ];

    /// The type named `s`, if known.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for ChallengeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// By its wire name, so a configuration file lists `"http-01"` etc.
impl Serialize for ChallengeType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An unknown name is an error that names it and the known ones.
impl<'de> Deserialize<'de> for ChallengeType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
            serde::de::Error::custom(format!(
                "unknown challenge type {s:?} (known: {})",
                known.join(", ")
            ))
        })
    }
}

macro_rules! status_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// The wire value.
            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$variant => $s),+ }
            }

            /// The status named `s` (exact, lower-case), if any.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

status_enum! {
    /// Account status (RFC 8555 §7.1.6, §7.1.2).
    AccountStatus {
        /// Usable.
        Valid => "valid",
        /// Deactivated by the client (§7.3.6).
        Deactivated => "deactivated",
        /// Revoked by the server.
        Revoked => "revoked",
    }
}

status_enum! {
    /// Order status (RFC 8555 §7.1.6, §7.1.3).
    OrderStatus {
        /// Authorizations outstanding.
        Pending => "pending",
        /// All authorizations valid; awaiting finalize.
        Ready => "ready",
        /// Finalize received; certificate being issued.
        Processing => "processing",
        /// Certificate issued.
        Valid => "valid",
        /// Failed, expired or an authorization was invalid.
        Invalid => "invalid",
    }
}

status_enum! {
    /// Authorization status (RFC 8555 §7.1.6, §7.1.4).
    AuthorizationStatus {
        /// Awaiting a challenge.
        Pending => "pending",
        /// A challenge succeeded.
        Valid => "valid",
        /// A challenge failed.
        Invalid => "invalid",
        /// Deactivated by the client (§7.5.2).
        Deactivated => "deactivated",
        /// Past its `expires`.
        Expired => "expired",
        /// Revoked by the server.
        Revoked => "revoked",
    }
}

status_enum! {
    /// Challenge status (RFC 8555 §7.1.6, §8).
    ChallengeStatus {
        /// Not yet attempted.
        Pending => "pending",
        /// Validation in progress.
        Processing => "processing",
        /// Validation succeeded.
        Valid => "valid",
        /// Validation failed.
        Invalid => "invalid",
    }
}

/// An account object as the server returns it (RFC 8555 §7.1.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// Account status.
    pub status: AccountStatus,
    /// Contact URLs, e.g. `mailto:` (§7.3); serialised even when empty, so an account
    /// object always says what contacts it has.
    #[serde(default)]
    pub contact: Vec<String>,
    /// Whether the client agreed to the terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_of_service_agreed: Option<bool>,
    /// The external account binding given at creation (§7.3.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_account_binding: Option<serde_json::Value>,
    /// URL of the account's orders list (§7.1.2.1). Required of servers, but
    /// optional here because some servers omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orders: Option<String>,
}

/// A newAccount request payload (RFC 8555 §7.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAccount {
    /// Contact URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Vec<String>>,
    /// Agreement to the terms of service (§7.3.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_of_service_agreed: Option<bool>,
    /// Only look up an existing account, never create one (§7.3.1).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub only_return_existing: bool,
    /// The inner EAB JWS (§7.3.4); check it with [`crate::eab::verify_eab`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_account_binding: Option<serde_json::Value>,
}

/// An account update request payload (RFC 8555 §7.3.2, deactivation §7.3.6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountUpdate {
    /// New contact URLs; `None` leaves them unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Vec<String>>,
    /// `deactivated` to deactivate the account (§7.3.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AccountStatus>,
    /// Agreement to updated terms of service (§7.3.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_of_service_agreed: Option<bool>,
}

/// An order object (RFC 8555 §7.1.3; `replaces` RFC 9773 §5; `profile` from
/// the ACME profiles extension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// Order status.
    pub status: OrderStatus,
    /// When the order expires (RFC 3339); required for pending and valid orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// The identifiers the order covers.
    pub identifiers: Vec<Identifier>,
    /// Requested notBefore (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// Requested notAfter (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// Why the order is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
    /// Authorization URLs.
    pub authorizations: Vec<String>,
    /// URL to POST the CSR to (§7.4).
    pub finalize: String,
    /// Certificate URL once valid (§7.4.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// ARI certID of the certificate this order replaces (RFC 9773 §5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// Name of the requested certificate profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// A newOrder request payload (RFC 8555 §7.4, RFC 9773 §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewOrder {
    /// Identifiers to certify (required).
    pub identifiers: Vec<Identifier>,
    /// Requested notBefore (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// Requested notAfter (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// ARI certID of a certificate this order replaces (RFC 9773 §5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// Requested certificate profile name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// A newAuthz request (RFC 8555 §7.4.1), with RFC 9444 §4.1 `subdomainAuthAllowed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAuthz {
    /// The identifier to pre-authorize.
    pub identifier: Identifier,
    /// Ask for an authorization that also covers the names below the identifier.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub subdomain_auth_allowed: bool,
}

/// An account's orders list (RFC 8555 §7.1.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrdersList {
    /// Order URLs.
    pub orders: Vec<String>,
}

/// An authorization object (RFC 8555 §7.1.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// The identifier being authorized (without a `*.` wildcard prefix).
    pub identifier: Identifier,
    /// Authorization status.
    pub status: AuthorizationStatus,
    /// When the authorization expires (RFC 3339); required for valid ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Challenges the client may complete.
    pub challenges: Vec<Challenge>,
    /// True if created for a wildcard identifier of a newOrder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wildcard: Option<bool>,
    /// RFC 9444 §4.1: the authorization also covers the names below its identifier.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub subdomain_auth_allowed: bool,
}

/// A challenge object (RFC 8555 §7.1.5, §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// Challenge type, e.g. `http-01`; a String so unknown types parse.
    #[serde(rename = "type")]
    pub r#type: String,
    /// URL to POST to start validation.
    pub url: String,
    /// Challenge status.
    pub status: ChallengeStatus,
    /// The token of http-01, dns-01 and tls-alpn-01 (§8.3, §8.4, RFC 8737).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// When the challenge was validated (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated: Option<String>,
    /// Why validation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

impl Challenge {
    /// The http-01 challenge type (RFC 8555 §8.3).
    pub const HTTP_01: &'static str = "http-01";
    /// The dns-01 challenge type (RFC 8555 §8.4).
    pub const DNS_01: &'static str = "dns-01";
    /// The tls-alpn-01 challenge type (RFC 8737 §3).
    pub const TLS_ALPN_01: &'static str = "tls-alpn-01";
}

/// A finalize request payload (RFC 8555 §7.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finalize {
    /// base64url of the DER CSR (RFC 2986).
    pub csr: String,
}

/// A revokeCert request payload (RFC 8555 §7.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeCert {
    /// base64url of the DER certificate.
    pub certificate: String,
    /// CRLReason code (RFC 5280 §5.3.1). Any integer parses, so the server
    /// can answer `badRevocationReason` rather than `malformed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<i64>,
}

/// The inner payload of a keyChange request (RFC 8555 §7.3.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyChange {
    /// URL of the account whose key changes (must equal the outer `kid`).
    pub account: String,
    /// The current account key (must equal the key on file).
    pub old_key: Jwk,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn directory_round_trip_and_optional_members() {
        let v = json!({
            "newNonce": "https://ca/nonce",
            "newAccount": "https://ca/acct",
            "newOrder": "https://ca/order",
            "revokeCert": "https://ca/revoke",
            "keyChange": "https://ca/key-change",
            "renewalInfo": "https://ca/ari",
            "meta": {
                "termsOfService": "https://ca/tos",
                "caaIdentities": ["ca.example"],
                "externalAccountRequired": true,
                "profiles": {"iot": "device certs"}
            }
        });
        let d: Directory = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(d.new_authz, None);
        let meta = d.meta.as_ref().unwrap();
        assert!(meta.external_account_required);
        assert_eq!(meta.profiles.as_ref().unwrap()["iot"], "device certs");
        assert_eq!(serde_json::to_value(&d).unwrap(), v);
    }

    #[test]
    fn server_objects_state_empty_lists_and_false_flags() {
        // A directory says whether it requires EAB and which CAA identities it has, even
        // when the answer is "no" and "none"; an account lists its contacts even when empty.
        assert_eq!(
            serde_json::to_value(DirectoryMeta::default()).unwrap(),
            json!({"caaIdentities": [], "externalAccountRequired": false})
        );
        let a = Account {
            status: AccountStatus::Valid,
            contact: Vec::new(),
            terms_of_service_agreed: None,
            external_account_binding: None,
            orders: None,
        };
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"status": "valid", "contact": []})
        );
    }

    #[test]
    fn requests_ignore_unknown_fields() {
        let a: NewAccount = serde_json::from_value(json!({
            "termsOfServiceAgreed": true, "contact": ["mailto:a@b"], "futureField": {"x": 1}
        }))
        .unwrap();
        assert_eq!(a.terms_of_service_agreed, Some(true));
        assert!(!a.only_return_existing);
        let o: NewOrder = serde_json::from_value(json!({
            "identifiers": [{"type": "dns", "value": "a.example", "extra": 1}],
            "unknown": []
        }))
        .unwrap();
        assert_eq!(o.identifiers, vec![Identifier::dns("a.example")]);
        let _: Finalize = serde_json::from_value(json!({"csr": "AA", "x": 1})).unwrap();
        let _: AccountUpdate = serde_json::from_value(json!({"y": 1})).unwrap();
        let r: RevokeCert =
            serde_json::from_value(json!({"certificate": "AA", "reason": 99, "z": 1})).unwrap();
        assert_eq!(r.reason, Some(99));
    }

    #[test]
    fn new_order_requires_identifiers() {
        assert!(serde_json::from_value::<NewOrder>(json!({})).is_err());
        assert!(serde_json::from_value::<Finalize>(json!({})).is_err());
    }

    #[test]
    fn known_types_round_trip_and_unknown_ones_are_none() {
        for t in [
            IdentifierType::Dns,
            IdentifierType::Ip,
            IdentifierType::PermanentIdentifier,
        ] {
            assert_eq!(Identifier::new(t, "x").kind(), Some(t));
        }
        assert_eq!(
            Identifier::dns("a.example").kind(),
            Some(IdentifierType::Dns)
        );
        let odd: Identifier = serde_json::from_value(json!({"type": "DNS", "value": "x"})).unwrap();
        assert_eq!(odd.kind(), None);
        for t in [
            ChallengeType::Http01,
            ChallengeType::Dns01,
            ChallengeType::TlsAlpn01,
            ChallengeType::DeviceAttest01,
        ] {
            assert_eq!(ChallengeType::parse(t.as_str()), Some(t));
        }
        assert_eq!(ChallengeType::parse("dns-persist-01"), None);
    }

    #[test]
    fn unknown_identifier_type_parses() {
        let i: Identifier =
            serde_json::from_value(json!({"type": "permanent-identifier", "value": "x"})).unwrap();
        assert_eq!(i.r#type, "permanent-identifier");
    }

    #[test]
    fn statuses_are_lowercase_and_closed() {
        assert_eq!(
            serde_json::to_value(OrderStatus::Processing).unwrap(),
            json!("processing")
        );
        assert_eq!(
            serde_json::to_value(AuthorizationStatus::Deactivated).unwrap(),
            json!("deactivated")
        );
        assert!(serde_json::from_value::<OrderStatus>(json!("Ready")).is_err());
        assert!(serde_json::from_value::<AccountStatus>(json!("paused")).is_err());
        assert_eq!(ChallengeStatus::Invalid.to_string(), "invalid");
        assert_eq!(
            AuthorizationStatus::parse("deactivated"),
            Some(AuthorizationStatus::Deactivated)
        );
        assert_eq!(OrderStatus::parse("Ready"), None);
        let u: AccountUpdate = serde_json::from_value(json!({"status": "deactivated"})).unwrap();
        assert_eq!(u.status, Some(AccountStatus::Deactivated));
    }

    #[test]
    fn order_serialization_skips_absent() {
        let o = Order {
            status: OrderStatus::Pending,
            expires: Some("2026-01-01T00:00:00Z".into()),
            identifiers: vec![Identifier::dns("a.example")],
            not_before: None,
            not_after: None,
            error: None,
            authorizations: vec!["https://ca/authz/1".into()],
            finalize: "https://ca/order/1/finalize".into(),
            certificate: None,
            replaces: None,
            profile: None,
        };
        assert_eq!(
            serde_json::to_value(&o).unwrap(),
            json!({
                "status": "pending",
                "expires": "2026-01-01T00:00:00Z",
                "identifiers": [{"type": "dns", "value": "a.example"}],
                "authorizations": ["https://ca/authz/1"],
                "finalize": "https://ca/order/1/finalize"
            })
        );
    }

    #[test]
    fn authorization_and_challenge() {
        let v = json!({
            "identifier": {"type": "dns", "value": "a.example"},
            "status": "valid",
            "expires": "2026-01-01T00:00:00Z",
            "wildcard": true,
            "challenges": [{
                "type": "dns-01", "url": "https://ca/chall/1", "status": "valid",
                "token": "tok", "validated": "2025-12-01T00:00:00Z"
            }]
        });
        let a: Authorization = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(a.challenges[0].r#type, Challenge::DNS_01);
        assert_eq!(serde_json::to_value(&a).unwrap(), v);
    }

    #[test]
    fn account_round_trip() {
        let v = json!({
            "status": "valid",
            "contact": ["mailto:ops@example.org"],
            "termsOfServiceAgreed": true,
            "orders": "https://ca/acct/1/orders"
        });
        let a: Account = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&a).unwrap(), v);
    }
}
