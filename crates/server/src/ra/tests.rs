//! Time-dependent rules of the state machine, with a movable clock instead of sleeps.

use super::*;
use crate::clock::OffsetClock;
use acme_types::sign::{AccountKey, AccountKeyKind};
use acme_types::wire::{AccountStatus, AuthorizationStatus, OrderStatus};

async fn setup() -> (Arc<Ra>, Arc<OffsetClock>, Arc<Tenant>) {
    crate::testing::ra_with_tenant(Vec::new()).await
}

async fn account(ra: &Ra, t: &Tenant) -> AccountRecord {
    let key = AccountKey::generate(AccountKeyKind::EcdsaP256).unwrap();
    ra.new_account(t, key.jwk(), NewAccount::default())
        .await
        .unwrap()
        .0
}

fn names(n: &[&str]) -> Vec<acme_types::wire::Identifier> {
    n.iter()
        .map(|v| acme_types::wire::Identifier::dns(*v))
        .collect()
}

#[tokio::test]
async fn orders_and_authorizations_expire_with_the_clock() {
    let (ra, clock, t) = setup().await;
    let acct = account(&ra, &t).await;
    let order = ra
        .new_order(&t, &acct, &names(&["a.routers.example.com"]))
        .await
        .unwrap();
    assert_eq!(order.status, OrderStatus::Pending);
    let authz_id = order.order.authz_ids[0].clone();

    clock.advance(RaConfig::default().order_lifetime.as_secs() as i64 + 1);
    assert_eq!(
        ra.get_order(&t, &acct, &order.order.id)
            .await
            .unwrap()
            .status,
        OrderStatus::Invalid
    );
    assert_eq!(
        ra.get_authz(&t, &acct, &authz_id).await.unwrap().status,
        AuthorizationStatus::Expired
    );
    // An expired authorization is not reused: a new order gets a fresh one.
    let again = ra
        .new_order(&t, &acct, &names(&["a.routers.example.com"]))
        .await
        .unwrap();
    assert_ne!(again.order.authz_ids[0], authz_id);
    assert_eq!(again.status, OrderStatus::Pending);
}

#[tokio::test]
async fn pending_authorizations_are_reused_only_within_the_account() {
    let (ra, _clock, t) = setup().await;
    let a = account(&ra, &t).await;
    let b = account(&ra, &t).await;
    let o1 = ra
        .new_order(&t, &a, &names(&["x.routers.example.com"]))
        .await
        .unwrap();
    let o2 = ra
        .new_order(&t, &a, &names(&["X.ROUTERS.example.com."]))
        .await
        .unwrap();
    assert_eq!(
        o1.order.authz_ids, o2.order.authz_ids,
        "same account, same name: reused"
    );
    let o3 = ra
        .new_order(&t, &b, &names(&["x.routers.example.com"]))
        .await
        .unwrap();
    assert_ne!(
        o1.order.authz_ids, o3.order.authz_ids,
        "never shared across accounts"
    );
    assert!(ra.get_authz(&t, &b, &o1.order.authz_ids[0]).await.is_err());
}

#[tokio::test]
async fn the_issuer_refuses_names_outside_policy_even_if_the_ra_is_bypassed() {
    let (_ra, _clock, t) = setup().await;
    // Defence in depth: ask the CA role directly, as a buggy RA would.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["evil.example.net".to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).unwrap().der().to_vec();
    let ident = pki::identifier::Identifier::parse_dns("evil.example.net").unwrap();
    let err =
        t.ca.issue(&csr, &[ident], time::OffsetDateTime::now_utc())
            .err()
            .expect("refused");
    assert_eq!(
        err.kind(),
        acme_types::problem::ProblemType::RejectedIdentifier
    );
}

#[tokio::test]
async fn a_deactivation_through_the_ra_is_refused_at_once() {
    let (ra, _clock, t) = setup().await;
    let acct = account(&ra, &t).await;
    // Deactivate through the RA: the very next kid lookup is refused.
    ra.account_for_kid(&t, &acct.id).await.unwrap();
    ra.update_account(
        &acct,
        AccountUpdate {
            contact: None,
            status: Some(AccountStatus::Deactivated),
        },
    )
    .await
    .unwrap();
    let e = ra.account_for_kid(&t, &acct.id).await.unwrap_err();
    assert!(e.to_string().contains("deactivated"), "{e}");
}

#[tokio::test]
async fn a_key_change_replaces_the_key_at_once() {
    let (ra, _clock, t) = setup().await;
    let acct = account(&ra, &t).await;
    let before = ra.account_for_kid(&t, &acct.id).await.unwrap();
    let old: acme_types::jwk::Jwk =
        acme_types::jwk::Jwk::from_json(&serde_json::from_str(&before.jwk).unwrap()).unwrap();
    let new_key = AccountKey::generate(AccountKeyKind::EcdsaP256).unwrap();
    ra.change_key(&t, &before, &old, new_key.jwk())
        .await
        .unwrap();
    let after = ra.account_for_kid(&t, &acct.id).await.unwrap();
    assert_eq!(after.jwk_thumbprint, new_key.jwk().thumbprint());
    assert_ne!(after.jwk_thumbprint, before.jwk_thumbprint);
}

#[tokio::test]
async fn a_deactivation_made_elsewhere_stops_the_next_request() {
    let (ra, _clock, t) = setup().await;
    let acct = account(&ra, &t).await;
    ra.account_for_kid(&t, &acct.id).await.unwrap();
    // Another node (or the admin CLI) deactivates the account in the shared database.
    assert!(ra.storage().try_deactivate_account(&acct.id).await.unwrap());
    let e = ra.account_for_kid(&t, &acct.id).await.unwrap_err();
    assert!(e.to_string().contains("deactivated"), "{e}");
}
