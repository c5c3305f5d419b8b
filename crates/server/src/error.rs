//! The server's one error type. Each domain failure carries exactly one ACME problem type;
//! `wfe::problem` turns it into an RFC 7807 document in one place.

use acme_types::problem::ProblemType;

/// One failed identifier inside a compound error (RFC 8555 §6.7.1).
#[derive(Clone, Debug)]
pub struct SubError {
    /// The problem type for this identifier.
    pub kind: ProblemType,
    /// What went wrong with it.
    pub detail: String,
    /// The identifier as the client sent it.
    pub identifier: acme_types::wire::Identifier,
}

/// A failure the client caused or can act on.
#[derive(Clone, Debug)]
pub struct AcmeError {
    /// The `urn:ietf:params:acme:error:*` type.
    pub kind: ProblemType,
    /// Human-readable detail for the device owner.
    pub detail: String,
    /// Per-identifier failures.
    pub subproblems: Vec<SubError>,
    /// HTTP status override (otherwise the type's default).
    pub status: Option<u16>,
    /// `Location` header, e.g. the existing account on a keyChange conflict (§7.3.5).
    pub location: Option<String>,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

/// Errors from the registration authority and below.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A problem the client is told about.
    #[error("{}: {}", .0.kind.urn(), .0.detail)]
    Acme(Box<AcmeError>),
    /// Anything else: logged with its source, answered as `serverInternal` without detail.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database is unreachable for now (see [`SaError::is_unavailable`]): logged with its
    /// source, answered as `serverInternal` with `Retry-After`, so devices come back once it
    /// returns instead of giving up.
    ///
    /// [`SaError::is_unavailable`]: crate::sa::SaError::is_unavailable
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The CA key could not sign (an HSM token removed, reset or unreachable): logged with its
    /// source, answered as `serverInternal` with `Retry-After`. Nothing was stored: signing
    /// runs before (or inside) the transaction that would store its result.
    #[error("CA signer unavailable: {0}")]
    SignerUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The request's first read found the kept account it was signed as changed (see
    /// [`crate::sa::Nonce::Pending`]): nothing was spent or written, and the front end decides
    /// again on the stored account and retries. Never answered to a client as such.
    #[error("the request's account changed since it was kept")]
    AccountChanged,
}

impl Error {
    /// A problem of `kind` with `detail`.
    pub fn acme(kind: ProblemType, detail: impl Into<String>) -> Self {
        Error::Acme(Box::new(AcmeError {
            kind,
            detail: detail.into(),
            subproblems: Vec::new(),
            status: None,
            location: None,
            retry_after: None,
        }))
    }

    /// `malformed` with `detail`.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::acme(ProblemType::Malformed, detail)
    }

    /// `unauthorized` with `detail`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::acme(ProblemType::Unauthorized, detail)
    }

    /// A 404 for an object that does not exist *for this account*; objects of other accounts
    /// and tenants get the same answer so their existence does not leak.
    pub fn not_found(what: &str) -> Self {
        Self::malformed(format!("{what} not found")).with_status(404)
    }

    /// An internal error with a message.
    pub fn internal(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into().into())
    }

    /// Overrides the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        if let Error::Acme(a) = &mut self {
            a.status = Some(status);
        }
        self
    }

    /// Adds a `Location` header.
    pub fn with_location(mut self, location: String) -> Self {
        if let Error::Acme(a) = &mut self {
            a.location = Some(location);
        }
        self
    }

    /// Adds a `Retry-After` header.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        if let Error::Acme(a) = &mut self {
            a.retry_after = Some(secs);
        }
        self
    }

    /// Builds an error for several failed identifiers: the single subproblem's type when there
    /// is one, else `compound` (RFC 8555 §6.7.1).
    pub fn with_subproblems(
        kind: ProblemType,
        detail: impl Into<String>,
        subs: Vec<SubError>,
    ) -> Self {
        let top = if subs.len() == 1 { subs[0].kind } else { kind };
        let mut e = Self::acme(top, detail);
        if let Error::Acme(a) = &mut e {
            a.subproblems = subs;
        }
        e
    }

    /// `badNonce` (RFC 8555 §6.5): the nonce is not one this CA made, expired, or was spent.
    pub fn bad_nonce() -> Self {
        Error::acme(
            ProblemType::BadNonce,
            "nonce unknown, expired or already used; retry with the fresh Replay-Nonce",
        )
    }

    /// The problem type this error is reported as.
    pub fn kind(&self) -> ProblemType {
        match self {
            Error::Acme(a) => a.kind,
            Error::Internal(_)
            | Error::Unavailable(_)
            | Error::SignerUnavailable(_)
            | Error::AccountChanged => ProblemType::ServerInternal,
        }
    }
}

impl From<crate::sa::SaError> for Error {
    fn from(e: crate::sa::SaError) -> Self {
        if e.is_unavailable() {
            Error::Unavailable(Box::new(e))
        } else {
            Error::Internal(Box::new(e))
        }
    }
}

/// Result alias for the server.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sa::SaError;

    /// An outage is answered "retry later"; any other storage error is internal.
    #[test]
    fn storage_errors_map_to_unavailable_or_internal() {
        assert!(matches!(
            Error::from(SaError::Db(sqlx::Error::PoolTimedOut)),
            Error::Unavailable(_)
        ));
        assert!(matches!(
            Error::from(SaError::Conflict("x".into())),
            Error::Internal(_)
        ));
    }
}
