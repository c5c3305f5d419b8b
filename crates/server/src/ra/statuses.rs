//! The boundary between storage's state enums and the ACME statuses of RFC 8555 §7.1.6:
//! storage keeps what it must persist, the registration authority and the front end speak
//! `acme_types::wire` statuses, identifiers and challenge types.

use crate::sa::{
    AccountState, AuthzState, ChallengeState, IdentifierKind, StoredChallengeKind, StoredIdentifier,
};
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
    Identifier::new(identifier_type(stored), stored.value.clone())
}

/// The type of a stored identifier.
pub(crate) fn identifier_type(stored: &StoredIdentifier) -> IdentifierType {
    match stored.kind {
        IdentifierKind::Dns => IdentifierType::Dns,
        IdentifierKind::Ip => IdentifierType::Ip,
        IdentifierKind::PermanentIdentifier => IdentifierType::PermanentIdentifier,
    }
}

/// The stored form of an identifier.
pub(crate) fn stored(kind: IdentifierType, value: impl Into<String>) -> StoredIdentifier {
    StoredIdentifier {
        kind: match kind {
            IdentifierType::Dns => IdentifierKind::Dns,
            IdentifierType::Ip => IdentifierKind::Ip,
            IdentifierType::PermanentIdentifier => IdentifierKind::PermanentIdentifier,
        },
        value: value.into(),
    }
}

/// The stored form of a name the CA certifies.
pub(crate) fn stored_name(name: &pki::identifier::Identifier) -> StoredIdentifier {
    let kind = match name {
        pki::identifier::Identifier::Dns(_) => IdentifierType::Dns,
        pki::identifier::Identifier::Ip(_) => IdentifierType::Ip,
    };
    stored(kind, name.value())
}

/// The challenge type of a stored challenge.
pub(crate) fn challenge_type(kind: StoredChallengeKind) -> ChallengeType {
    match kind {
        StoredChallengeKind::Http01 => ChallengeType::Http01,
        StoredChallengeKind::Dns01 => ChallengeType::Dns01,
        StoredChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
        StoredChallengeKind::DeviceAttest01 => ChallengeType::DeviceAttest01,
    }
}

/// The stored form of a challenge type.
pub(crate) fn stored_challenge(t: ChallengeType) -> StoredChallengeKind {
    match t {
        ChallengeType::Http01 => StoredChallengeKind::Http01,
        ChallengeType::Dns01 => StoredChallengeKind::Dns01,
        ChallengeType::TlsAlpn01 => StoredChallengeKind::TlsAlpn01,
        ChallengeType::DeviceAttest01 => StoredChallengeKind::DeviceAttest01,
    }
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
        // The column text is the wire name, so no migration was needed when these became
        // enums.
        for k in [
            IdentifierKind::Dns,
            IdentifierKind::Ip,
            IdentifierKind::PermanentIdentifier,
        ] {
            let s = StoredIdentifier {
                kind: k,
                value: String::new(),
            };
            assert_eq!(identifier_type(&s).as_str(), k.as_str());
            assert_eq!(stored(identifier_type(&s), "").kind, k);
        }
        for k in [
            StoredChallengeKind::Http01,
            StoredChallengeKind::Dns01,
            StoredChallengeKind::TlsAlpn01,
            StoredChallengeKind::DeviceAttest01,
        ] {
            assert_eq!(challenge_type(k).as_str(), k.as_str());
            assert_eq!(stored_challenge(challenge_type(k)), k);
        }
    }
}
