//! `device-attest-01` (draft-ietf-acme-device-attest): a manufacturing CA and device birth
//! certificates made here with rcgen, a software device key signing a `packed` attestation
//! over the key authorization. A good attestation validates the `permanent-identifier`
//! authorization; forged, replayed, wrong-serial, expired and wrong-root ones are refused with
//! `badAttestationStatement` and leave the challenge and authorization invalid.

use acme_types::sign::{AccountKey, AccountKeyKind};
use acme_types::wire::{AuthorizationStatus, Identifier, IdentifierType, OrderStatus};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::Engine as _;
use ciborium::value::Value;
use fleetca::ra::{NewAccount, Ra};
use fleetca::sa::AccountRecord;
use fleetca::tenant::Tenant;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, Issuer, KeyPair,
    PKCS_ECDSA_P256_SHA256,
};
use std::sync::Arc;

async fn setup(attestation_roots: Vec<Vec<u8>>) -> (Arc<Ra>, Arc<Tenant>) {
    let (ra, _clock, tenant) = fleetca::testing::ra_with_tenant(attestation_roots).await;
    (ra, tenant)
}

/// A manufacturing CA (the vendor's factory root).
fn mfg_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap())
        .unwrap()
}

/// A device: its key (PKCS#8) and birth certificate naming `serial` in subject serialNumber.
struct Device {
    pkcs8: Vec<u8>,
    cert: Vec<u8>,
}

fn device(ca: &Issuer<'_, KeyPair>, serial: &str, expired: bool) -> Device {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "router");
    p.distinguished_name
        .push(DnType::CustomDnType(vec![2, 5, 4, 5]), serial);
    let now = time::OffsetDateTime::now_utc();
    if expired {
        p.not_before = now - time::Duration::days(400);
        p.not_after = now - time::Duration::days(1);
    } else {
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(3650);
    }
    let cert = p.signed_by(&key, ca).unwrap();
    Device {
        pkcs8: key.serialize_der(),
        cert: cert.der().to_vec(),
    }
}

/// A `packed` attestation object: `sig` by the device key over `to_be_signed`.
fn att_obj(dev: &Device, to_be_signed: &[u8]) -> String {
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &dev.pkcs8).unwrap();
    let sig = kp.sign(&SystemRandom::new(), to_be_signed).unwrap();
    let obj = Value::Map(vec![
        (Value::Text("fmt".into()), Value::Text("packed".into())),
        (
            Value::Text("attStmt".into()),
            Value::Map(vec![
                (Value::Text("alg".into()), Value::Integer((-7).into())),
                (
                    Value::Text("sig".into()),
                    Value::Bytes(sig.as_ref().to_vec()),
                ),
                (
                    Value::Text("x5c".into()),
                    Value::Array(vec![Value::Bytes(dev.cert.clone())]),
                ),
            ]),
        ),
    ]);
    let mut buf = Vec::new();
    ciborium::ser::into_writer(&obj, &mut buf).unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

struct Attempt {
    acct: AccountRecord,
    key: AccountKey,
    order_id: String,
    authz_id: String,
    chall_id: String,
    token: String,
}

impl Attempt {
    fn key_authorization(&self) -> String {
        format!("{}.{}", self.token, self.key.jwk().thumbprint())
    }
}

async fn start(ra: &Ra, t: &Tenant, serial: &str) -> Attempt {
    let key = AccountKey::generate(AccountKeyKind::EcdsaP256).unwrap();
    let acct = ra
        .new_account(t, key.jwk(), NewAccount::default())
        .await
        .unwrap()
        .0;
    let order = ra
        .new_order(
            t,
            &acct,
            &[Identifier::new(IdentifierType::PermanentIdentifier, serial)],
        )
        .await
        .unwrap();
    let authz_id = order.order.authz_ids[0].clone();
    let authz = ra.get_authz(t, &acct, &authz_id).await.unwrap();
    assert_eq!(authz.authz.challenges.len(), 1, "only device-attest-01");
    let ch = &authz.authz.challenges[0];
    assert_eq!(ch.kind.as_str(), "device-attest-01");
    Attempt {
        order_id: order.order.id.clone(),
        authz_id,
        chall_id: ch.id.clone(),
        token: ch.token.clone(),
        acct,
        key,
    }
}

async fn assert_refused(ra: &Ra, t: &Tenant, a: &Attempt, obj: &str, why: &str, reason: &str) {
    let (ch, _) = ra
        .respond_attestation(t, &a.acct, &a.chall_id, obj)
        .await
        .unwrap();
    assert_eq!(ch.status.as_str(), "invalid", "{why}");
    let err = ch.error.clone().unwrap_or_default();
    assert!(
        err.contains("urn:ietf:params:acme:error:badAttestationStatement"),
        "{why}: {err}"
    );
    assert!(err.contains(reason), "{why}: expected {reason:?} in {err}");
    assert_eq!(
        ra.get_authz(t, &a.acct, &a.authz_id).await.unwrap().status,
        AuthorizationStatus::Invalid,
        "{why}"
    );
    assert_eq!(
        ra.get_order(t, &a.acct, &a.order_id).await.unwrap().status,
        OrderStatus::Invalid,
        "{why}"
    );
}

#[tokio::test]
async fn permanent_identifier_needs_configured_roots() {
    let (ra, t) = setup(Vec::new()).await;
    let key = AccountKey::generate(AccountKeyKind::EcdsaP256).unwrap();
    let acct = ra
        .new_account(&t, key.jwk(), NewAccount::default())
        .await
        .unwrap()
        .0;
    let err = ra
        .new_order(
            &t,
            &acct,
            &[Identifier::new(IdentifierType::PermanentIdentifier, "SN1")],
        )
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("UnsupportedIdentifier"),
        "{err:?}"
    );
}

#[tokio::test]
async fn packed_attestation_validates_the_device() {
    let mfg = mfg_ca("Acme Routers Manufacturing CA");
    let (ra, t) = setup(vec![mfg.der().to_vec()]).await;
    let dev = device(&mfg, "SN-0001", false);
    let a = start(&ra, &t, "SN-0001").await;

    // An empty response is not enough for device-attest-01.
    assert!(ra
        .respond_challenge(&t, &a.acct, &a.chall_id)
        .await
        .is_err());

    let obj = att_obj(&dev, a.key_authorization().as_bytes());
    let (ch, _) = ra
        .respond_attestation(&t, &a.acct, &a.chall_id, &obj)
        .await
        .unwrap();
    assert_eq!(ch.status.as_str(), "valid", "{:?}", ch.error);
    assert_eq!(
        ra.get_authz(&t, &a.acct, &a.authz_id).await.unwrap().status,
        AuthorizationStatus::Valid
    );
    assert_eq!(
        ra.get_order(&t, &a.acct, &a.order_id).await.unwrap().status,
        OrderStatus::Ready
    );
    // The serial is not put into certificates yet, so an order with nothing else to name is
    // refused at finalization (badCSR), not with an internal error.
    let err = ra
        .finalize(&t, &a.acct, &a.order_id, vec![0x30, 0x00])
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("BadCsr"), "{err:?}");
}

#[tokio::test]
async fn bad_attestations_are_refused() {
    let mfg = mfg_ca("Acme Routers Manufacturing CA");
    let other = mfg_ca("Somebody Else's CA");
    let (ra, t) = setup(vec![mfg.der().to_vec()]).await;
    let dev = device(&mfg, "SN-0002", false);

    // Forged: signed by a key other than the certified device key.
    let a = start(&ra, &t, "SN-0002").await;
    let impostor = Device {
        pkcs8: KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .serialize_der(),
        cert: dev.cert.clone(),
    };
    let obj = att_obj(&impostor, a.key_authorization().as_bytes());
    assert_refused(&ra, &t, &a, &obj, "forged signature", "does not verify").await;
    // A decided challenge is not re-evaluated: a good attestation afterwards changes nothing.
    let good = att_obj(&dev, a.key_authorization().as_bytes());
    let (ch, _) = ra
        .respond_attestation(&t, &a.acct, &a.chall_id, &good)
        .await
        .unwrap();
    assert_eq!(ch.status.as_str(), "invalid");

    // Replayed: a genuine attestation made for another challenge.
    let earlier = start(&ra, &t, "SN-0002").await;
    let replay = att_obj(&dev, earlier.key_authorization().as_bytes());
    let a = start(&ra, &t, "SN-0002").await;
    assert_refused(
        &ra,
        &t,
        &a,
        &replay,
        "replayed attestation",
        "does not verify",
    )
    .await;

    // Wrong serial: the device attests SN-0002 but the order names SN-0003.
    let a = start(&ra, &t, "SN-0003").await;
    let obj = att_obj(&dev, a.key_authorization().as_bytes());
    assert_refused(&ra, &t, &a, &obj, "wrong serial", "does not attest").await;

    // Expired birth certificate.
    let old = device(&mfg, "SN-0004", true);
    let a = start(&ra, &t, "SN-0004").await;
    let obj = att_obj(&old, a.key_authorization().as_bytes());
    assert_refused(
        &ra,
        &t,
        &a,
        &obj,
        "expired device certificate",
        "is not valid now",
    )
    .await;

    // Wrong root: a device certified by a CA the tenant does not trust.
    let stranger = device(&other, "SN-0005", false);
    let a = start(&ra, &t, "SN-0005").await;
    let obj = att_obj(&stranger, a.key_authorization().as_bytes());
    assert_refused(
        &ra,
        &t,
        &a,
        &obj,
        "wrong root",
        "configured manufacturing root",
    )
    .await;

    // Not CBOR at all.
    let a = start(&ra, &t, "SN-0002").await;
    assert_refused(&ra, &t, &a, "AAAA", "garbage attObj", "CBOR").await;
}
