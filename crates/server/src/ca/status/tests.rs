//! The status publisher's OCSP cache: a signed answer is served again only while it is still
//! true, whichever node changed the status.

use super::*;
use crate::ca::ocsp::OCSP_VALIDITY;
use crate::sa::{AccountRecord, AccountState, CertRecord, OrderClaim, OrderRecord, OrderState};

const SERIAL: [u8; 6] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab];

/// Stores a certificate with serial [`SERIAL`] of tenant `default`, as finalize would.
async fn store_cert(sa: &dyn Storage) -> CertRecord {
    sa.insert_account(&AccountRecord {
        id: "acct".into(),
        tenant: "default".into(),
        jwk_thumbprint: "tp".into(),
        jwk: "{}".into(),
        contact: Vec::new(),
        status: AccountState::Valid,
        tos_agreed: true,
        eab_kid: None,
        created_at: 0,
    })
    .await
    .unwrap();
    let order = OrderRecord {
        id: "o1".into(),
        tenant: "default".into(),
        account_id: "acct".into(),
        status: OrderState::Pending,
        expires: i64::MAX / 2,
        identifiers: Vec::new(),
        error: None,
        cert_id: None,
        created_at: 0,
        authz_ids: Vec::new(),
        authz_states: Vec::new(),
        lifecycle: Default::default(),
    };
    sa.insert_order(&order, &[], None).await.unwrap();
    let claim = OrderClaim {
        token: "t".into(),
        until: i64::MAX / 2,
    };
    assert!(sa.try_claim_order("o1", &claim).await.unwrap());
    let cert = CertRecord {
        id: "c1".into(),
        tenant: "default".into(),
        serial: crate::ca::hex(&SERIAL),
        account_id: "acct".into(),
        order_id: "o1".into(),
        der: vec![1, 2, 3],
        names: Vec::new(),
        not_before: 0,
        not_after: i64::MAX / 2,
        issued_at: 0,
        revoked_at: None,
        revocation_reason: None,
        issuer: None,
    };
    assert!(sa.store_certificate("o1", "t", &cert, None).await.unwrap());
    cert
}

#[tokio::test]
async fn ocsp_answers_are_reused_until_the_status_changes_or_half_their_validity_passed() {
    let (ra, clock, tenant) = crate::testing::ra_with_tenant(Vec::new()).await;
    let status = StatusHandle::start(
        Arc::clone(ra.tenant_set()),
        Arc::clone(ra.storage()),
        None,
        Arc::clone(ra.clock()),
    );
    let sa = ra.storage();
    let cert = store_cert(sa.as_ref()).await;
    let req = pki::ocsp::build_request(tenant.ca.cert_der(), &SERIAL, None).unwrap();

    let first = status.ocsp("default", &req).await.unwrap();
    assert!(first.cacheable);
    clock.advance(10);
    let again = status.ocsp("default", &req).await.unwrap();
    assert_eq!(
        again.der, first.der,
        "an unchanged status is not signed again"
    );

    // Revoked straight in storage, as another node would: the next answer is signed anew.
    assert!(sa
        .try_revoke_cert(&cert.id, clock.unix(), Some(1))
        .await
        .unwrap());
    let revoked = status.ocsp("default", &req).await.unwrap();
    assert_ne!(revoked.der, first.der);
    assert!(revoked.this_update > first.this_update);
    clock.advance(10);
    assert_eq!(status.ocsp("default", &req).await.unwrap().der, revoked.der);

    // BR §4.9.10: re-signed once half its validity has passed.
    clock.advance(OCSP_VALIDITY.as_secs() as i64 / 2);
    let refreshed = status.ocsp("default", &req).await.unwrap();
    assert!(refreshed.this_update > revoked.this_update);

    // A nonce'd request is answered fresh every time and never kept (RFC 5019 §2.2.1).
    let nonced =
        pki::ocsp::build_request(tenant.ca.cert_der(), &SERIAL, Some(b"0123456789abcdef")).unwrap();
    let n1 = status.ocsp("default", &nonced).await.unwrap();
    clock.advance(1);
    let n2 = status.ocsp("default", &nonced).await.unwrap();
    assert!(!n1.cacheable);
    assert!(n2.this_update > n1.this_update);
}

#[tokio::test]
async fn unknown_cas_are_not_found() {
    let (ra, _clock, _tenant) = crate::testing::ra_with_tenant(Vec::new()).await;
    let status = StatusHandle::start(
        Arc::clone(ra.tenant_set()),
        Arc::clone(ra.storage()),
        None,
        Arc::clone(ra.clock()),
    );
    for e in [
        status.crl("nope").await.err(),
        status.shard_crl("default", 0).await.err(),
        status.ocsp("nope", b"x").await.err(),
    ] {
        let status = match e {
            Some(Error::Acme(a)) => a.status,
            other => panic!("expected not found, got {other:?}"),
        };
        assert_eq!(status, Some(404));
    }
    assert!(status.crl("default").await.is_ok());
}
