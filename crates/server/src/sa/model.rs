//! Records the storage authority persists. They mirror the ACME objects but hold only state;
//! wire formatting lives in the front end and policy in the registration authority.

use serde::{Deserialize, Serialize};

/// An identifier as stored: `type` is `dns`, `ip` or `permanent-identifier`, `value` is
/// canonical (lower-case A-label without a `*.` prefix for DNS, RFC 8738 canonical text for IP).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StoredIdentifier {
    /// The identifier type.
    #[serde(rename = "type")]
    pub kind: IdentifierKind,
    /// The identifier value as it appears in the order.
    pub value: String,
}

macro_rules! state_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $(#[allow(missing_docs)] $variant),+ }
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            /// The lower-case name stored in the database and sent on the wire.
            pub fn as_str(self) -> &'static str { match self { $(Self::$variant => $s),+ } }
            /// Parses a stored value; unknown values are a corrupt row.
            pub fn parse(s: &str) -> Result<Self, super::SaError> {
                match s { $($s => Ok(Self::$variant),)+ other => Err(super::SaError::Corrupt(format!("unknown {} {other:?}", stringify!($name)))) }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

/// Stores an enum of [`state_enum!`] in JSON columns by the same name as in its own columns.
macro_rules! serde_by_name {
    ($name:ident) => {
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

state_enum!(
    /// Identifier types stored (RFC 8555 §9.7.7 `dns`, RFC 8738 `ip`,
    /// draft-ietf-acme-device-attest `permanent-identifier`).
    #[derive(Hash, PartialOrd, Ord)]
    IdentifierKind { Dns => "dns", Ip => "ip", PermanentIdentifier => "permanent-identifier" }
);
serde_by_name!(IdentifierKind);
state_enum!(
    /// Challenge types stored (RFC 8555 §8.3 `http-01`, §8.4 `dns-01`, RFC 8737
    /// `tls-alpn-01`, draft-ietf-acme-device-attest `device-attest-01`).
    StoredChallengeKind { Http01 => "http-01", Dns01 => "dns-01", TlsAlpn01 => "tls-alpn-01", DeviceAttest01 => "device-attest-01" }
);
state_enum!(
    /// Account states (RFC 8555 §7.1.6).
    AccountState { Valid => "valid", Deactivated => "deactivated", Revoked => "revoked" }
);
state_enum!(
    /// Stored order states. `ready` and expiry are derived from the authorizations and the clock
    /// when the order is read, so no background job has to move orders along (RFC 8555 §7.1.6).
    OrderState { Pending => "pending", Processing => "processing", Valid => "valid", Invalid => "invalid" }
);
state_enum!(
    /// Stored authorization states; `expired` is derived from `expires` (RFC 8555 §7.1.6).
    AuthzState { Pending => "pending", Valid => "valid", Invalid => "invalid", Deactivated => "deactivated", Revoked => "revoked" }
);
state_enum!(
    /// Challenge states (RFC 8555 §7.1.6).
    ChallengeState { Pending => "pending", Processing => "processing", Valid => "valid", Invalid => "invalid" }
);

/// An ACME account (RFC 8555 §7.1.2).
#[derive(Clone, Debug)]
pub struct AccountRecord {
    /// Random opaque id, the last segment of the account URL.
    pub id: String,
    /// The issuing CA (tenant) the account belongs to.
    pub tenant: String,
    /// RFC 7638 thumbprint of the account key; unique per tenant.
    pub jwk_thumbprint: String,
    /// The account public key as JWK JSON.
    pub jwk: String,
    /// Contact URIs.
    pub contact: Vec<String>,
    /// Current state.
    pub status: AccountState,
    /// Whether the client agreed to the terms of service.
    pub tos_agreed: bool,
    /// External account binding key id, when one was used.
    pub eab_kid: Option<String>,
    /// Creation time (UNIX seconds).
    pub created_at: i64,
}

/// An order (RFC 8555 §7.1.3) with the ids of its authorizations, in identifier order.
#[derive(Clone, Debug)]
pub struct OrderRecord {
    /// Random opaque id.
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Owning account.
    pub account_id: String,
    /// Stored state.
    pub status: OrderState,
    /// Expiry (UNIX seconds).
    pub expires: i64,
    /// Identifiers, sorted and de-duplicated.
    pub identifiers: Vec<StoredIdentifier>,
    /// Problem document JSON when the order became invalid.
    pub error: Option<String>,
    /// The issued certificate once valid.
    pub cert_id: Option<String>,
    /// Creation time (UNIX seconds).
    pub created_at: i64,
    /// Authorization ids, one per identifier.
    pub authz_ids: Vec<String>,
    /// Each authorization's stored state, expiry and validation time, in `authz_ids` order, as
    /// read in the same lookup as the order (so its status, RFC 8555 §7.1.6, and the CAA
    /// recheck at finalize need no further reads). Empty in a record that was not read from
    /// storage; ignored when writing.
    pub authz_states: Vec<AuthzSummary>,
    /// The order's lifecycle row (profile, `replaces`), when it was read in the same lookup
    /// (so finalize and order polls need no second read); ignored when writing.
    pub lifecycle: LifecycleLoaded,
}

/// Whether an [`OrderRecord`]'s lifecycle row came with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LifecycleLoaded {
    /// Not read: ask `LifecycleStore::get_order_lifecycle`.
    #[default]
    NotRead,
    /// Read with the order: its row, or `None` when it has none (orders made before
    /// profiles).
    Read(Option<super::lifecycle::OrderLifecycle>),
}

/// What an order's read tells of each of its authorizations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthzSummary {
    /// Stored state.
    pub status: AuthzState,
    /// Expiry (UNIX seconds).
    pub expires: i64,
    /// When a challenge of it was validated (UNIX seconds): the time of its CAA check; for a
    /// name granted by attestation, when the deciding attestation was verified. `None` while
    /// nothing is validated.
    pub validated_at: Option<i64>,
}

/// An authorization (RFC 8555 §7.1.4) with its challenges.
#[derive(Clone, Debug)]
pub struct AuthzRecord {
    /// Random opaque id.
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Owning account.
    pub account_id: String,
    /// The identifier, without `*.` for wildcards.
    pub identifier: StoredIdentifier,
    /// Whether this authorizes a wildcard (RFC 8555 §7.1.4 `wildcard`).
    pub wildcard: bool,
    /// Stored state.
    pub status: AuthzState,
    /// Expiry (UNIX seconds).
    pub expires: i64,
    /// Creation time (UNIX seconds).
    pub created_at: i64,
    /// The challenges offered.
    pub challenges: Vec<ChallengeRecord>,
    /// For a DNS name granted by a tenant name template: the `permanent-identifier`
    /// authorization of the same order whose device attestation decides this one. Such an
    /// authorization has no challenges, changes state with that authorization and is never
    /// reused (draft-ietf-acme-device-attest §6.1.2 lets the server authorize by other means).
    pub attested_by: Option<String>,
    /// For a DNS name at or below a tenant domain (issue 17): the `tenant_domains` id that
    /// granted it. Such an authorization is valid from the start, has no challenges, is never
    /// reused by another order and is deactivated when the domain is removed.
    pub derived_from: Option<String>,
    /// RFC 9444 §4.1: the client asked for (and, once valid, holds) authority over the names
    /// below this DNS identifier too. Such an authorization offers dns-01 only.
    pub subdomain_auth_allowed: bool,
    /// For a DNS name below an account's valid `subdomain_auth_allowed` authorization (RFC 9444
    /// §4.2): that authorization's id. Valid from the start, no challenges, never outlives the
    /// ancestor, never reused by another order, deactivated with the ancestor.
    pub ancestor_authz: Option<String>,
}

/// An account's valid authorization that covers the names below it (RFC 9444).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AncestorAuthz {
    /// The authorization's id.
    pub id: String,
    /// Its DNS name.
    pub name: String,
    /// Its expiry (UNIX seconds).
    pub expires: i64,
}

/// A challenge POST's start, made in the same step as its read (see
/// [`crate::sa::Storage::start_challenge_spending`]).
pub struct ChallengeStart<'a> {
    /// The challenge.
    pub challenge_id: &'a str,
    /// The tenant and account that must own its authorization.
    pub tenant: &'a str,
    /// See `tenant`.
    pub account_id: &'a str,
    /// Now (unix seconds): the authorization must not have expired.
    pub now: i64,
    /// The challenge types this step may start.
    pub kinds: StartableKinds,
    /// The validation's lease.
    pub lease: &'a super::Lease,
    /// Shared buckets the start takes a token from in the same step (the failed-validation
    /// budget kept in the database); nothing starts if one is empty.
    pub budget: Option<&'a super::BucketCharge>,
}

/// The challenge types a [`ChallengeStart`] may start: the client's "ready" POST starts every
/// type but device-attest-01 (whose response must carry an attestation), and a response that
/// carries one starts only device-attest-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartableKinds {
    /// Every type but this one.
    AllBut(StoredChallengeKind),
    /// This type only.
    Only(StoredChallengeKind),
}

impl StartableKinds {
    /// Whether a challenge of type `kind` may be started.
    pub fn admits(self, kind: StoredChallengeKind) -> bool {
        match self {
            Self::AllBut(k) => kind != k,
            Self::Only(k) => kind == k,
        }
    }

    /// The stored names of the types admitted.
    pub fn names(self) -> Vec<&'static str> {
        StoredChallengeKind::ALL
            .iter()
            .filter(|k| self.admits(**k))
            .map(|k| k.as_str())
            .collect()
    }
}

/// What [`crate::sa::Storage::start_challenge_spending`]'s start step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StartStep {
    /// The challenge is now `processing` under the step's lease (and the budget charged).
    Started,
    /// Not started: not startable, or another request started it first. `charged`: the
    /// budget's token was taken all the same (a concurrent start won between the two), and
    /// the caller gives it back.
    NotStarted {
        /// See the variant.
        charged: bool,
    },
    /// Not started: a budget bucket was empty; nothing changed but the nonce's spend.
    Refused(super::Refusal),
}

impl StartStep {
    /// `Started` or `NotStarted { charged }`.
    pub fn of(started: bool, charged: bool) -> Self {
        if started {
            StartStep::Started
        } else {
            StartStep::NotStarted { charged }
        }
    }
}

/// finalize's claim, made in the same step as its read (see
/// [`crate::sa::Storage::claim_order_spending`]): the order is claimed only if it is ready
/// and nothing stands between the read and the claim.
pub struct ClaimAtRead<'a> {
    /// The order.
    pub order_id: &'a str,
    /// The tenant and account that must own it.
    pub tenant: &'a str,
    /// See `tenant`.
    pub account_id: &'a str,
    /// Now (unix seconds): neither the order nor its authorizations may have expired.
    pub now: i64,
    /// When set, every authorization must have been validated at or after this time, so no
    /// CAA recheck (BR §3.2.2.8) stands between the read and the claim.
    pub validated_since: Option<i64>,
    /// The claim.
    pub claim: &'a super::OrderClaim,
}

/// What newOrder looks up before it decides (see
/// [`crate::sa::Storage::new_order_reads_spending`]).
pub struct OrderLookup<'a> {
    /// The tenant and account ordering.
    pub tenant: &'a str,
    /// See `tenant`.
    pub account_id: &'a str,
    /// Now (unix seconds).
    pub now: i64,
    /// A reusable authorization must not expire before this.
    pub min_expires: i64,
    /// The identifiers asked about (identifier, wildcard).
    pub wanted: &'a [(super::StoredIdentifier, bool)],
    /// Shared buckets the lookup takes a token from in the same step, once the nonce is
    /// spent (the per-account and per-name newOrder limits kept in the database).
    pub charge: Option<&'a super::BucketCharge>,
}

/// What newOrder reads before it decides which authorizations to make.
#[derive(Clone, Debug, Default)]
pub struct OrderReads {
    /// The account's valid authorizations that allow subdomains (RFC 9444 §4.2).
    pub ancestors: Vec<AncestorAuthz>,
    /// For each identifier asked about, in order, the authorization it may reuse.
    pub reusable: Vec<Option<String>>,
    /// The lookup's charge was refused (and took nothing); the reads are to be ignored.
    pub refused: Option<super::Refusal>,
}

/// A challenge (RFC 8555 §8).
#[derive(Clone, Debug)]
pub struct ChallengeRecord {
    /// Random opaque id.
    pub id: String,
    /// The authorization it belongs to.
    pub authz_id: String,
    /// The challenge type.
    pub kind: StoredChallengeKind,
    /// The token (RFC 8555 §8.3: at least 128 bits of entropy, base64url).
    pub token: String,
    /// Stored state.
    pub status: ChallengeState,
    /// When validation succeeded (UNIX seconds).
    pub validated_at: Option<i64>,
    /// Problem document JSON when validation failed.
    pub error: Option<String>,
    /// Validation record JSON (what the VA contacted).
    pub record: Option<String>,
}

/// An issued certificate.
#[derive(Clone, Debug)]
pub struct CertRecord {
    /// Random opaque id, the last segment of the certificate URL.
    pub id: String,
    /// Issuing tenant.
    pub tenant: String,
    /// Serial number as lower-case hex.
    pub serial: String,
    /// The account that ordered it.
    pub account_id: String,
    /// The order it finalized.
    pub order_id: String,
    /// The certificate DER.
    pub der: Vec<u8>,
    /// The identifiers it certifies.
    pub names: Vec<StoredIdentifier>,
    /// Validity start (UNIX seconds).
    pub not_before: i64,
    /// Validity end (UNIX seconds).
    pub not_after: i64,
    /// When it was stored.
    pub issued_at: i64,
    /// Revocation time, if revoked.
    pub revoked_at: Option<i64>,
    /// RFC 5280 §5.3.1 reason code, if revoked with one.
    pub revocation_reason: Option<u8>,
    /// Id of the issuing CA that signed it (`fleetca tenant rollover`); `None` for the
    /// tenant's first CA, whose id is the tenant name.
    pub issuer: Option<String>,
}

impl CertRecord {
    /// The id of the issuing CA that signed it: its CRL, OCSP responder and chain.
    pub fn issuer_id(&self) -> &str {
        self.issuer.as_deref().unwrap_or(&self.tenant)
    }
}

/// One entry of a CRL.
#[derive(Clone, Debug)]
pub struct RevokedEntry {
    /// Serial as lower-case hex.
    pub serial: String,
    /// Revocation time (UNIX seconds).
    pub revoked_at: i64,
    /// RFC 5280 §5.3.1 reason code.
    pub reason: Option<u8>,
}

/// The latest CRL published for a tenant.
#[derive(Clone, Debug)]
pub struct CrlRecord {
    /// Monotonic CRL number (RFC 5280 §5.2.3).
    pub number: i64,
    /// The signed CRL DER.
    pub der: Vec<u8>,
    /// thisUpdate (UNIX seconds).
    pub this_update: i64,
    /// nextUpdate (UNIX seconds).
    pub next_update: i64,
}
