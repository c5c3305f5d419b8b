//! The ACME objects the front end sends, member for member: they are serialised from
//! `acme_types::wire` structs, and certbot, lego and the agent depend on every member being
//! there (an empty `contact`, `wildcard` only when true, a valid authorization listing only
//! its validated challenge, §7.1.4).

use super::account::account_object;
use super::authz::authz_object;
use super::order::order_object;
use crate::ra::OrderView;
use crate::sa::{
    AccountRecord, AccountState, AuthzRecord, AuthzState, ChallengeRecord, ChallengeState,
    OrderLifecycle, OrderRecord, OrderState, StoredIdentifier,
};
use crate::sa::{IdentifierKind, StoredChallengeKind};
use acme_types::problem::{Problem, ProblemType};
use acme_types::wire::{AuthorizationStatus, OrderStatus};
use serde_json::json;

fn dns(v: &str) -> StoredIdentifier {
    StoredIdentifier {
        kind: IdentifierKind::Dns,
        value: v.into(),
    }
}

fn challenge(id: &str, kind: &str, status: ChallengeState) -> ChallengeRecord {
    ChallengeRecord {
        id: id.into(),
        authz_id: "a1".into(),
        kind: StoredChallengeKind::parse(kind).unwrap(),
        token: format!("tok-{id}"),
        status,
        validated_at: (status == ChallengeState::Valid).then_some(0),
        error: (status == ChallengeState::Invalid).then(|| {
            serde_json::to_string(&Problem::new(ProblemType::Connection, "refused"))
                .expect("problem")
        }),
        record: None,
    }
}

fn authz(wildcard: bool, challenges: Vec<ChallengeRecord>) -> AuthzRecord {
    AuthzRecord {
        id: "a1".into(),
        tenant: "default".into(),
        account_id: "acc".into(),
        identifier: dns("routers.example.com"),
        wildcard,
        status: AuthzState::Pending,
        expires: 86400,
        created_at: 0,
        challenges,
        attested_by: None,
        derived_from: None,
        subdomain_auth_allowed: false,
        ancestor_authz: None,
    }
}

#[tokio::test]
async fn order_object_members() {
    let (_ra, _clock, t) = crate::testing::ra_with_tenant(Vec::new()).await;
    let order = OrderRecord {
        id: "o1".into(),
        tenant: "default".into(),
        account_id: "acc".into(),
        status: OrderState::Valid,
        expires: 86400,
        identifiers: vec![dns("a.routers.example.com")],
        error: None,
        cert_id: Some("c1".into()),
        created_at: 0,
        authz_ids: vec!["a1".into()],
        authz_states: Vec::new(),
        lifecycle: Default::default(),
    };
    let view = OrderView {
        order,
        status: OrderStatus::Valid,
        lifecycle: Some(OrderLifecycle {
            profile: "default".into(),
            replaces_cert_id: None,
        }),
    };
    assert_eq!(
        serde_json::to_value(order_object(&t, &view)).expect("json"),
        json!({
            "status": "valid",
            "expires": "1970-01-02T00:00:00Z",
            "identifiers": [{"type": "dns", "value": "a.routers.example.com"}],
            "authorizations": ["https://ca.test/acme/default/authz/a1"],
            "finalize": "https://ca.test/acme/default/order/o1/finalize",
            "certificate": "https://ca.test/acme/default/cert/c1",
            "profile": "default",
        })
    );
}

#[tokio::test]
async fn authorization_and_challenge_members() {
    let (_ra, _clock, t) = crate::testing::ra_with_tenant(Vec::new()).await;
    let a = authz(
        true,
        vec![
            challenge("c1", "dns-01", ChallengeState::Invalid),
            challenge("c2", "dns-01", ChallengeState::Valid),
        ],
    );
    let pending =
        serde_json::to_value(authz_object(&t, &a, AuthorizationStatus::Pending)).expect("json");
    assert_eq!(
        pending,
        json!({
            "identifier": {"type": "dns", "value": "routers.example.com"},
            "status": "pending",
            "expires": "1970-01-02T00:00:00Z",
            "wildcard": true,
            "challenges": [
                {
                    "type": "dns-01",
                    "url": "https://ca.test/acme/default/chall/c1",
                    "status": "invalid",
                    "token": "tok-c1",
                    "error": {
                        "type": "urn:ietf:params:acme:error:connection",
                        "detail": "refused",
                        "status": 400
                    }
                },
                {
                    "type": "dns-01",
                    "url": "https://ca.test/acme/default/chall/c2",
                    "status": "valid",
                    "token": "tok-c2",
                    "validated": "1970-01-01T00:00:00Z"
                }
            ]
        })
    );
    // §7.1.4: a valid authorization lists only the challenge that validated it; RFC 9444
    // §4.1 `subdomainAuthAllowed` only when granted; no `wildcard` member when false.
    let mut b = authz(false, a.challenges.clone());
    b.subdomain_auth_allowed = true;
    let valid =
        serde_json::to_value(authz_object(&t, &b, AuthorizationStatus::Valid)).expect("json");
    assert_eq!(valid["challenges"].as_array().map(Vec::len), Some(1));
    assert_eq!(valid["challenges"][0]["status"], "valid");
    assert_eq!(valid["subdomainAuthAllowed"], true);
    assert!(valid.get("wildcard").is_none(), "{valid}");
}

#[tokio::test]
async fn account_object_members() {
    let (_ra, _clock, t) = crate::testing::ra_with_tenant(Vec::new()).await;
    let acct = AccountRecord {
        id: "acc".into(),
        tenant: "default".into(),
        jwk_thumbprint: "tp".into(),
        jwk: "{}".into(),
        contact: Vec::new(),
        status: AccountState::Deactivated,
        tos_agreed: false,
        eab_kid: None,
        created_at: 0,
    };
    assert_eq!(
        serde_json::to_value(account_object(&t, &acct)).expect("json"),
        json!({
            "status": "deactivated",
            "contact": [],
            "termsOfServiceAgreed": false,
            "orders": "https://ca.test/acme/default/acct/acc/orders",
        })
    );
}
