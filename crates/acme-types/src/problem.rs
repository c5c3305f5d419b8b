//! ACME problem documents (RFC 8555 §6.7, RFC 7807).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::wire::Identifier;

/// The media type of a problem document (RFC 7807 §3, RFC 8555 §6.7).
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The URN prefix of every ACME error type (RFC 8555 §6.7).
pub const ACME_ERROR_PREFIX: &str = "urn:ietf:params:acme:error:";

/// An ACME error type (RFC 8555 §6.7 table, plus RFC 9773's `alreadyReplaced`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemType {
    /// The request specified an account that does not exist.
    AccountDoesNotExist,
    /// The request specified a certificate to be revoked that has already been revoked.
    AlreadyRevoked,
    /// The CSR is unacceptable (e.g., due to a short key).
    BadCsr,
    /// The client sent an unacceptable anti-replay nonce.
    BadNonce,
    /// The attestation statement of a `device-attest-01` challenge is unacceptable
    /// (draft-ietf-acme-device-attest §5).
    BadAttestationStatement,
    /// The JWS was signed by a public key the server does not support.
    BadPublicKey,
    /// The revocation reason provided is not allowed by the server.
    BadRevocationReason,
    /// The JWS was signed with an algorithm the server does not support.
    BadSignatureAlgorithm,
    /// Certification Authority Authorization (CAA) records forbid the CA from issuing.
    Caa,
    /// Specific error conditions are indicated in the `subproblems` array.
    Compound,
    /// The server could not connect to the validation target.
    Connection,
    /// There was a problem with a DNS query during identifier validation.
    Dns,
    /// The request must include a value for the `externalAccountBinding` field.
    ExternalAccountRequired,
    /// Response received didn't match the challenge's requirements.
    IncorrectResponse,
    /// A contact URL for an account was invalid.
    InvalidContact,
    /// The request message was malformed.
    Malformed,
    /// The request attempted to finalize an order that is not ready to be finalized.
    OrderNotReady,
    /// The request exceeds a rate limit.
    RateLimited,
    /// The server will not issue certificates for the identifier.
    RejectedIdentifier,
    /// The server experienced an internal error.
    ServerInternal,
    /// The server received a TLS error during validation.
    Tls,
    /// The client lacks sufficient authorization.
    Unauthorized,
    /// A contact URL for an account used an unsupported protocol scheme.
    UnsupportedContact,
    /// An identifier is of an unsupported type.
    UnsupportedIdentifier,
    /// Visit the `instance` URL and take actions specified there.
    UserActionRequired,
    /// RFC 9773 §5: the certificate named in `replaces` was already replaced.
    AlreadyReplaced,
}

impl ProblemType {
    /// Every error type, for tables and exhaustive tests.
    pub const ALL: [ProblemType; 26] = [
        Self::AccountDoesNotExist,
        Self::AlreadyRevoked,
        Self::BadCsr,
        Self::BadNonce,
        Self::BadPublicKey,
        Self::BadRevocationReason,
        Self::BadSignatureAlgorithm,
        Self::Caa,
        Self::Compound,
        Self::Connection,
        Self::Dns,
        Self::ExternalAccountRequired,
        Self::IncorrectResponse,
        Self::BadAttestationStatement,
        Self::InvalidContact,
        Self::Malformed,
        Self::OrderNotReady,
        Self::RateLimited,
        Self::RejectedIdentifier,
        Self::ServerInternal,
        Self::Tls,
        Self::Unauthorized,
        Self::UnsupportedContact,
        Self::UnsupportedIdentifier,
        Self::UserActionRequired,
        Self::AlreadyReplaced,
    ];

    /// The short name after the URN prefix, e.g. `badNonce` (RFC 8555 §6.7).
    pub fn name(&self) -> &'static str {
        match self {
            Self::AccountDoesNotExist => "accountDoesNotExist",
            Self::AlreadyRevoked => "alreadyRevoked",
            Self::BadCsr => "badCSR",
            Self::BadNonce => "badNonce",
            Self::BadPublicKey => "badPublicKey",
            Self::BadRevocationReason => "badRevocationReason",
            Self::BadSignatureAlgorithm => "badSignatureAlgorithm",
            Self::Caa => "caa",
            Self::Compound => "compound",
            Self::Connection => "connection",
            Self::Dns => "dns",
            Self::ExternalAccountRequired => "externalAccountRequired",
            Self::IncorrectResponse => "incorrectResponse",
            Self::BadAttestationStatement => "badAttestationStatement",
            Self::InvalidContact => "invalidContact",
            Self::Malformed => "malformed",
            Self::OrderNotReady => "orderNotReady",
            Self::RateLimited => "rateLimited",
            Self::RejectedIdentifier => "rejectedIdentifier",
            Self::ServerInternal => "serverInternal",
            Self::Tls => "tls",
            Self::Unauthorized => "unauthorized",
            Self::UnsupportedContact => "unsupportedContact",
            Self::UnsupportedIdentifier => "unsupportedIdentifier",
            Self::UserActionRequired => "userActionRequired",
            Self::AlreadyReplaced => "alreadyReplaced",
        }
    }

    /// The full URN, e.g. `urn:ietf:params:acme:error:badNonce` (RFC 8555 §6.7).
    pub fn urn(&self) -> &'static str {
        match self {
            Self::AccountDoesNotExist => "urn:ietf:params:acme:error:accountDoesNotExist",
            Self::AlreadyRevoked => "urn:ietf:params:acme:error:alreadyRevoked",
            Self::BadCsr => "urn:ietf:params:acme:error:badCSR",
            Self::BadNonce => "urn:ietf:params:acme:error:badNonce",
            Self::BadPublicKey => "urn:ietf:params:acme:error:badPublicKey",
            Self::BadRevocationReason => "urn:ietf:params:acme:error:badRevocationReason",
            Self::BadSignatureAlgorithm => "urn:ietf:params:acme:error:badSignatureAlgorithm",
            Self::Caa => "urn:ietf:params:acme:error:caa",
            Self::Compound => "urn:ietf:params:acme:error:compound",
            Self::Connection => "urn:ietf:params:acme:error:connection",
            Self::Dns => "urn:ietf:params:acme:error:dns",
            Self::ExternalAccountRequired => "urn:ietf:params:acme:error:externalAccountRequired",
            Self::IncorrectResponse => "urn:ietf:params:acme:error:incorrectResponse",
            Self::BadAttestationStatement => "urn:ietf:params:acme:error:badAttestationStatement",
            Self::InvalidContact => "urn:ietf:params:acme:error:invalidContact",
            Self::Malformed => "urn:ietf:params:acme:error:malformed",
            Self::OrderNotReady => "urn:ietf:params:acme:error:orderNotReady",
            Self::RateLimited => "urn:ietf:params:acme:error:rateLimited",
            Self::RejectedIdentifier => "urn:ietf:params:acme:error:rejectedIdentifier",
            Self::ServerInternal => "urn:ietf:params:acme:error:serverInternal",
            Self::Tls => "urn:ietf:params:acme:error:tls",
            Self::Unauthorized => "urn:ietf:params:acme:error:unauthorized",
            Self::UnsupportedContact => "urn:ietf:params:acme:error:unsupportedContact",
            Self::UnsupportedIdentifier => "urn:ietf:params:acme:error:unsupportedIdentifier",
            Self::UserActionRequired => "urn:ietf:params:acme:error:userActionRequired",
            Self::AlreadyReplaced => "urn:ietf:params:acme:error:alreadyReplaced",
        }
    }

    /// The HTTP status a server sends with this error when nothing more specific
    /// applies. RFC 8555 leaves most codes to the server; these follow Boulder
    /// (403 for authorization failures, 429 for rate limits, 409 for RFC 9773's
    /// `alreadyReplaced`, 500 for internal errors, otherwise 400).
    pub fn default_status(&self) -> u16 {
        match self {
            Self::Unauthorized
            | Self::OrderNotReady
            | Self::Caa
            | Self::IncorrectResponse
            | Self::BadAttestationStatement
            | Self::UserActionRequired
            | Self::ExternalAccountRequired => 403,
            Self::RateLimited => 429,
            Self::ServerInternal => 500,
            Self::AlreadyReplaced => 409,
            Self::AccountDoesNotExist
            | Self::AlreadyRevoked
            | Self::BadCsr
            | Self::BadNonce
            | Self::BadPublicKey
            | Self::BadRevocationReason
            | Self::BadSignatureAlgorithm
            | Self::Compound
            | Self::Connection
            | Self::Dns
            | Self::InvalidContact
            | Self::Malformed
            | Self::RejectedIdentifier
            | Self::Tls
            | Self::UnsupportedContact
            | Self::UnsupportedIdentifier => 400,
        }
    }
}

impl fmt::Display for ProblemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.urn())
    }
}

/// A `type` string that is not an ACME error URN this crate knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ACME problem type {0:?}")]
pub struct UnknownProblemType(pub String);

impl FromStr for ProblemType {
    type Err = UnknownProblemType;

    /// Parses the full URN (RFC 8555 §6.7), e.g. `urn:ietf:params:acme:error:badNonce`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s
            .strip_prefix(ACME_ERROR_PREFIX)
            .ok_or_else(|| UnknownProblemType(s.to_owned()))?;
        Self::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| UnknownProblemType(s.to_owned()))
    }
}

/// A problem document (RFC 7807 §3.1 members, RFC 8555 §6.7 extensions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The error type URN (RFC 7807 §3.1 `type`). A String so documents from
    /// other servers with unknown types still parse.
    #[serde(rename = "type")]
    pub r#type: String,
    /// Human-readable explanation (RFC 7807 §3.1 `detail`).
    #[serde(default)]
    pub detail: String,
    /// HTTP status code (RFC 7807 §3.1 `status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// A URL for the occurrence (RFC 7807 §3.1 `instance`); RFC 8555 §7.3.3
    /// uses it with `userActionRequired` to point at new terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Per-identifier errors (RFC 8555 §6.7.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subproblems: Vec<Subproblem>,
    /// The identifier this problem is about (RFC 8555 §6.7.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
    /// Supported JWS algorithms, sent with `badSignatureAlgorithm` (RFC 8555 §6.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<String>>,
}

impl Problem {
    /// A problem of `kind` with its default HTTP status (RFC 8555 §6.7).
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self {
            r#type: kind.urn().to_owned(),
            detail: detail.into(),
            status: Some(kind.default_status()),
            instance: None,
            subproblems: Vec::new(),
            identifier: None,
            algorithms: None,
        }
    }

    /// Adds per-identifier subproblems (RFC 8555 §6.7.1); the top-level type
    /// is usually `compound` or the shared type of the subproblems.
    pub fn with_subproblems(mut self, subproblems: Vec<Subproblem>) -> Self {
        self.subproblems = subproblems;
        self
    }

    /// Sets the identifier this problem is about (RFC 8555 §6.7.1).
    pub fn with_identifier(mut self, identifier: Identifier) -> Self {
        self.identifier = Some(identifier);
        self
    }

    /// Lists the supported JWS algorithms (RFC 8555 §6.2, `badSignatureAlgorithm`).
    pub fn with_algorithms<I, S>(mut self, algorithms: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.algorithms = Some(algorithms.into_iter().map(Into::into).collect());
        self
    }

    /// Overrides the HTTP status (RFC 7807 §3.1).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets the `instance` URL (RFC 7807 §3.1, RFC 8555 §7.3.3).
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// The ACME error type, if `type` is one this crate knows.
    pub fn kind(&self) -> Option<ProblemType> {
        self.r#type.parse().ok()
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.r#type, self.detail)
    }
}

impl std::error::Error for Problem {}

/// One entry of a problem's `subproblems` array (RFC 8555 §6.7.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subproblem {
    /// The error type URN.
    #[serde(rename = "type")]
    pub r#type: String,
    /// Human-readable explanation.
    #[serde(default)]
    pub detail: String,
    /// The identifier that caused this subproblem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
}

impl Subproblem {
    /// A subproblem of `kind` about `identifier` (RFC 8555 §6.7.1).
    pub fn new(kind: ProblemType, detail: impl Into<String>, identifier: Identifier) -> Self {
        Self {
            r#type: kind.urn().to_owned(),
            detail: detail.into(),
            identifier: Some(identifier),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urn_round_trips_for_every_type() {
        for t in ProblemType::ALL {
            assert_eq!(t.urn(), format!("{ACME_ERROR_PREFIX}{}", t.name()));
            assert_eq!(t.urn().parse::<ProblemType>(), Ok(t));
        }
    }

    #[test]
    fn from_str_rejects_short_names_and_case_changes() {
        assert!("badNonce".parse::<ProblemType>().is_err());
        assert!("urn:ietf:params:acme:error:badnonce"
            .parse::<ProblemType>()
            .is_err());
        assert!("urn:ietf:params:acme:error:"
            .parse::<ProblemType>()
            .is_err());
        assert!("urn:ietf:params:acme:error:badCsr"
            .parse::<ProblemType>()
            .is_err());
        assert_eq!(
            "urn:ietf:params:acme:error:badCSR".parse(),
            Ok(ProblemType::BadCsr)
        );
    }

    #[test]
    fn default_statuses() {
        use ProblemType::*;
        for (t, s) in [
            (Malformed, 400),
            (Unauthorized, 403),
            (AccountDoesNotExist, 400),
            (BadNonce, 400),
            (ServerInternal, 500),
            (RateLimited, 429),
            (OrderNotReady, 403),
            (RejectedIdentifier, 400),
            (AlreadyRevoked, 400),
            (AlreadyReplaced, 409),
        ] {
            assert_eq!(t.default_status(), s, "{t}");
        }
    }

    #[test]
    fn serializes_with_rfc7807_names_and_skips_empty() {
        let p = Problem::new(ProblemType::BadNonce, "stale nonce");
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"type": "urn:ietf:params:acme:error:badNonce", "detail": "stale nonce", "status": 400})
        );
    }

    #[test]
    fn compound_with_subproblems() {
        let id = Identifier::dns("example.org");
        let p = Problem::new(ProblemType::Compound, "two problems").with_subproblems(vec![
            Subproblem::new(ProblemType::RejectedIdentifier, "no", id.clone()),
            Subproblem::new(ProblemType::Caa, "caa", id),
        ]);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v["subproblems"][0]["identifier"],
            json!({"type": "dns", "value": "example.org"})
        );
        assert_eq!(
            v["subproblems"][1]["type"],
            "urn:ietf:params:acme:error:caa"
        );
        let back: Problem = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn algorithms_for_bad_signature_algorithm() {
        let p = Problem::new(ProblemType::BadSignatureAlgorithm, "no")
            .with_algorithms(["ES256", "EdDSA"]);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["algorithms"], json!(["ES256", "EdDSA"]));
    }

    #[test]
    fn parses_foreign_problem_with_unknown_type_and_members() {
        let p: Problem = serde_json::from_value(json!({
            "type": "about:blank", "title": "x", "extra": 1
        }))
        .unwrap();
        assert_eq!(p.kind(), None);
        assert_eq!(p.detail, "");
    }
}
