//! The boundary between storage's state enums and the ACME statuses of RFC 8555 §7.1.6:
//! storage keeps what it must persist, the registration authority and the front end speak
//! `acme_types::wire` statuses, identifiers and challenge types.

use crate::sa::{AccountState, AuthzState, ChallengeState, StoredIdentifier};
use crate::va::ChallengeKind;
use acme_types::wire::{
    AccountStatus, AuthorizationStatus, ChallengeStatus, ChallengeType, Identifier, IdentifierType,
};

/// An account's status from its stored state.
pub fn account_status(state: AccountState) -> AccountStatus {
    match state {
        AccountState::Valid => AccountStatus::Valid,
        AccountState::Deactivated => AccountStatus::Deactivated,
        AccountState::Revoked => AccountStatus::Revoked,
    }
}

/// An authorization's status from its stored state, before expiry is applied (storage
/// never stores `expired`, §7.1.6 derives it from `expires`).
pub(crate) fn authz_status(state: AuthzState) -> AuthorizationStatus {
    match state {
        AuthzState::Pending => AuthorizationStatus::Pending,
        AuthzState::Valid => AuthorizationStatus::Valid,
        AuthzState::Invalid => AuthorizationStatus::Invalid,
        AuthzState::Deactivated => AuthorizationStatus::Deactivated,
        AuthzState::Revoked => AuthorizationStatus::Revoked,
    }
}

/// A challenge's status from its stored state.
pub fn challenge_status(state: ChallengeState) -> ChallengeStatus {
    match state {
        ChallengeState::Pending => ChallengeStatus::Pending,
        ChallengeState::Processing => ChallengeStatus::Processing,
        ChallengeState::Valid => ChallengeStatus::Valid,
        ChallengeState::Invalid => ChallengeStatus::Invalid,
    }
}

/// The wire identifier of a stored one.
pub fn identifier(stored: &StoredIdentifier) -> Identifier {
    Identifier {
        r#type: stored.kind.clone(),
        value: stored.value.clone(),
        ancestor_domain: None,
    }
}

/// The type of a stored identifier; `None` for a type this server never stores.
pub(crate) fn identifier_type(stored: &StoredIdentifier) -> Option<IdentifierType> {
    IdentifierType::parse(&stored.kind)
}

/// The stored form of a known identifier type.
pub(crate) fn stored(kind: IdentifierType, value: impl Into<String>) -> StoredIdentifier {
    StoredIdentifier {
        kind: kind.as_str().into(),
        value: value.into(),
    }
}

/// The challenge type of a stored challenge's kind; `None` for a kind this server does not
/// offer (a corrupt or future row).
pub(crate) fn challenge_type(kind: &str) -> Option<ChallengeType> {
    ChallengeType::parse(kind)
}

/// The validation the VA runs for a challenge type; `None` for device-attest-01, which the RA
/// verifies itself (`ra::attest`).
pub(crate) fn va_kind(t: ChallengeType) -> Option<ChallengeKind> {
    match t {
        ChallengeType::Http01 => Some(ChallengeKind::Http01),
        ChallengeType::Dns01 => Some(ChallengeKind::Dns01),
        ChallengeType::TlsAlpn01 => Some(ChallengeKind::TlsAlpn01),
        ChallengeType::DeviceAttest01 => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_states_keep_their_wire_names() {
        for s in [
            AuthzState::Pending,
            AuthzState::Valid,
            AuthzState::Invalid,
            AuthzState::Deactivated,
            AuthzState::Revoked,
        ] {
            assert_eq!(authz_status(s).as_str(), s.as_str());
        }
        for s in [
            AccountState::Valid,
            AccountState::Deactivated,
            AccountState::Revoked,
        ] {
            assert_eq!(account_status(s).as_str(), s.as_str());
        }
        for s in [
            ChallengeState::Pending,
            ChallengeState::Processing,
            ChallengeState::Valid,
            ChallengeState::Invalid,
        ] {
            assert_eq!(challenge_status(s).as_str(), s.as_str());
        }
    }
}
