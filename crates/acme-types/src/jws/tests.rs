//! Tests for request JWS parsing: every RFC 8555 §6.2 rule gets an input
//! that breaks it.

use serde_json::{json, Value};

use super::*;
use crate::sign::{sign_jws, AccountKey, AccountKeyKind, JwsHeader, JwsKey};

const URL: &str = "https://ca.example/acme/new-order";
const NONCE: &str = "bm9uY2UtMQ";
const KID: &str = "https://ca.example/acme/acct/1";

const ALL_KINDS: [AccountKeyKind; 4] = [
    AccountKeyKind::EcdsaP256,
    AccountKeyKind::EcdsaP384,
    AccountKeyKind::Ed25519,
    AccountKeyKind::Rsa2048,
];

/// Generates a key of `kind`; `None` for RSA on a ring-only build, where
/// generation must fail with a clear error (ring cannot make RSA keys).
fn generate(kind: AccountKeyKind) -> Option<AccountKey> {
    if kind == AccountKeyKind::Rsa2048 && !cfg!(feature = "aws-lc-rs") {
        assert_eq!(
            AccountKey::generate(kind).unwrap_err(),
            crate::sign::SignError::Generate
        );
        return None;
    }
    Some(AccountKey::generate(kind).unwrap())
}

fn p256() -> AccountKey {
    AccountKey::generate(AccountKeyKind::EcdsaP256).unwrap()
}

fn header(key: JwsKey) -> JwsHeader {
    JwsHeader {
        key,
        nonce: Some(NONCE.into()),
        url: URL.into(),
    }
}

fn body(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// Signs an arbitrary protected header (as JSON text) with `key`.
fn sign_raw(key: &AccountKey, protected: &str, payload: &[u8]) -> Value {
    let p = b64::encode(protected.as_bytes());
    let pl = b64::encode(payload);
    let sig = key.sign(format!("{p}.{pl}").as_bytes()).unwrap();
    json!({"protected": p, "payload": pl, "signature": b64::encode(&sig)})
}

/// Signs a header built from `base` after `edit` changed it.
fn sign_edited(key: &AccountKey, edit: impl FnOnce(&mut Value)) -> Value {
    let mut h = json!({"alg": key.alg(), "jwk": key.jwk().to_json(), "nonce": NONCE, "url": URL});
    edit(&mut h);
    sign_raw(key, &h.to_string(), b"{}")
}

fn parse_err(v: &Value) -> JwsError {
    Jws::parse(&body(v)).unwrap_err()
}

#[test]
fn round_trip_all_key_kinds_with_jwk_and_kid() {
    for kind in ALL_KINDS {
        let Some(key) = generate(kind) else { continue };
        for key_ref in [JwsKey::Jwk, JwsKey::Kid(KID.into())] {
            let signed = sign_jws(&key, &header(key_ref.clone()), br#"{"a":1}"#).unwrap();
            let jws = Jws::parse(&body(&signed)).unwrap();
            assert_eq!(jws.header.alg, key.alg());
            assert_eq!(jws.header.url, URL);
            assert_eq!(jws.require_nonce().unwrap(), NONCE);
            assert_eq!(jws.payload, br#"{"a":1}"#);
            assert!(!jws.is_post_as_get());
            jws.verify(key.jwk()).unwrap();
            match key_ref {
                JwsKey::Jwk => {
                    assert_eq!(jws.header.key().unwrap(), KeyRef::Jwk(key.jwk()));
                    assert_eq!(jws.verify_embedded().unwrap(), key.jwk());
                }
                JwsKey::Kid(_) => {
                    assert_eq!(jws.header.key().unwrap(), KeyRef::Kid(KID));
                    assert!(matches!(jws.verify_embedded(), Err(JwsError::Malformed(_))));
                }
            }
        }
    }
}

#[test]
fn post_as_get() {
    let key = p256();
    let signed = sign_jws(&key, &header(JwsKey::Kid(KID.into())), b"").unwrap();
    assert_eq!(signed["payload"], "");
    let jws = Jws::parse(&body(&signed)).unwrap();
    assert!(jws.is_post_as_get());
    assert!(jws.payload.is_empty());
    jws.verify(key.jwk()).unwrap();
    assert!(matches!(
        jws.payload_json::<Value>(),
        Err(JwsError::Malformed(_))
    ));
    // "{}" is not POST-as-GET.
    let signed = sign_jws(&key, &header(JwsKey::Kid(KID.into())), b"{}").unwrap();
    assert!(!Jws::parse(&body(&signed)).unwrap().is_post_as_get());
}

#[test]
fn tampered_payload_and_signature_fail() {
    for kind in ALL_KINDS {
        let Some(key) = generate(kind) else { continue };
        let signed = sign_jws(&key, &header(JwsKey::Jwk), br#"{"a":1}"#).unwrap();

        let mut t = signed.clone();
        t["payload"] = json!(b64::encode(br#"{"a":2}"#));
        let jws = Jws::parse(&body(&t)).unwrap();
        assert_eq!(
            jws.verify(key.jwk()),
            Err(JwsError::BadSignature),
            "{kind:?}"
        );

        let mut t = signed.clone();
        let mut sig = b64::decode(t["signature"].as_str().unwrap()).unwrap();
        sig[10] ^= 0x01;
        t["signature"] = json!(b64::encode(&sig));
        let jws = Jws::parse(&body(&t)).unwrap();
        assert_eq!(
            jws.verify(key.jwk()),
            Err(JwsError::BadSignature),
            "{kind:?}"
        );

        // A truncated signature.
        let mut t = signed.clone();
        t["signature"] = json!(b64::encode(&sig[..sig.len() - 1]));
        let jws = Jws::parse(&body(&t)).unwrap();
        assert_eq!(
            jws.verify(key.jwk()),
            Err(JwsError::BadSignature),
            "{kind:?}"
        );
    }
}

#[test]
fn wrong_key_fails() {
    let (key, other) = (p256(), p256());
    let signed = sign_jws(&key, &header(JwsKey::Kid(KID.into())), b"{}").unwrap();
    let jws = Jws::parse(&body(&signed)).unwrap();
    assert_eq!(jws.verify(other.jwk()), Err(JwsError::BadSignature));
}

#[test]
fn rejects_none_mac_and_unknown_algorithms() {
    let key = p256();
    for alg in [
        "none", "HS256", "HS512", "PS256", "ES512", "es256", "RS384", "",
    ] {
        let v = sign_edited(&key, |h| h["alg"] = json!(alg));
        assert!(
            matches!(parse_err(&v), JwsError::BadSignatureAlgorithm(_)),
            "{alg}"
        );
    }
    let v = sign_edited(&key, |h| {
        h.as_object_mut().unwrap().remove("alg");
    });
    assert!(matches!(parse_err(&v), JwsError::Malformed(_)));
    assert_eq!(
        JwsError::BadSignatureAlgorithm(String::new()).problem_type(),
        ProblemType::BadSignatureAlgorithm
    );
}

#[test]
fn rejects_alg_that_does_not_fit_the_key() {
    let key = p256();
    // RS256 with an embedded EC key: refused at parse time.
    let v = sign_edited(&key, |h| h["alg"] = json!("RS256"));
    assert!(matches!(parse_err(&v), JwsError::BadSignatureAlgorithm(_)));
    let v = sign_edited(&key, |h| h["alg"] = json!("ES384"));
    assert!(matches!(parse_err(&v), JwsError::BadSignatureAlgorithm(_)));
    // RS256 with kid, verified against an EC account key: refused at verify.
    let protected = json!({"alg": "RS256", "kid": KID, "nonce": NONCE, "url": URL}).to_string();
    let v = sign_raw(&key, &protected, b"{}");
    let jws = Jws::parse(&body(&v)).unwrap();
    assert!(matches!(
        jws.verify(key.jwk()),
        Err(JwsError::BadSignatureAlgorithm(_))
    ));
}

#[test]
fn requires_exactly_one_of_jwk_and_kid() {
    let key = p256();
    let v = sign_edited(&key, |h| h["kid"] = json!(KID));
    assert!(matches!(parse_err(&v), JwsError::Malformed(m) if m.contains("both")));
    let v = sign_edited(&key, |h| {
        h.as_object_mut().unwrap().remove("jwk");
    });
    assert!(matches!(parse_err(&v), JwsError::Malformed(_)));
    let v = sign_edited(&key, |h| {
        h.as_object_mut().unwrap().remove("jwk");
        h["kid"] = json!("");
    });
    assert!(matches!(parse_err(&v), JwsError::Malformed(_)));
}

#[test]
fn requires_url() {
    let key = p256();
    let v = sign_edited(&key, |h| {
        h.as_object_mut().unwrap().remove("url");
    });
    assert!(matches!(parse_err(&v), JwsError::Malformed(_)));
    let v = sign_edited(&key, |h| h["url"] = json!(""));
    assert!(matches!(parse_err(&v), JwsError::Malformed(_)));
}

#[test]
fn nonce_rules() {
    let key = p256();
    let v = sign_edited(&key, |h| {
        h.as_object_mut().unwrap().remove("nonce");
    });
    let jws = Jws::parse(&body(&v)).unwrap();
    assert!(matches!(jws.require_nonce(), Err(JwsError::BadNonce(_))));
    assert_eq!(
        jws.require_nonce().unwrap_err().problem_type(),
        ProblemType::BadNonce
    );
    for bad in ["", "a+b", "abc=", "a b"] {
        let v = sign_edited(&key, |h| h["nonce"] = json!(bad));
        assert!(matches!(parse_err(&v), JwsError::Malformed(_)), "{bad:?}");
    }
}

#[test]
fn rejects_compact_and_general_serializations() {
    let key = p256();
    let signed = sign_jws(&key, &header(JwsKey::Jwk), b"{}").unwrap();
    let compact = format!(
        "{}.{}.{}",
        signed["protected"].as_str().unwrap(),
        signed["payload"].as_str().unwrap(),
        signed["signature"].as_str().unwrap()
    );
    assert!(
        matches!(Jws::parse(compact.as_bytes()), Err(JwsError::Malformed(m)) if m.contains("compact"))
    );
    assert!(Jws::parse(format!("\"{compact}\"").as_bytes()).is_err());

    let general = json!({
        "payload": signed["payload"],
        "signatures": [{"protected": signed["protected"], "signature": signed["signature"]}]
    });
    assert!(matches!(parse_err(&general), JwsError::Malformed(m) if m.contains("signatures")));
    let mut with_both = signed.clone();
    with_both["signatures"] = json!([]);
    assert!(matches!(parse_err(&with_both), JwsError::Malformed(_)));
}

#[test]
fn rejects_unprotected_header() {
    let key = p256();
    let mut signed = sign_jws(&key, &header(JwsKey::Jwk), b"{}").unwrap();
    signed["header"] = json!({"kid": KID});
    assert!(matches!(parse_err(&signed), JwsError::Malformed(m) if m.contains("header")));
}

#[test]
fn rejects_missing_members_and_bad_base64() {
    let key = p256();
    let signed = sign_jws(&key, &header(JwsKey::Jwk), b"{}").unwrap();
    for member in ["protected", "payload", "signature"] {
        let mut v = signed.clone();
        v.as_object_mut().unwrap().remove(member);
        assert!(
            matches!(parse_err(&v), JwsError::Malformed(_)),
            "missing {member}"
        );

        let mut v = signed.clone();
        v[member] = json!(format!("{}=", v[member].as_str().unwrap()));
        assert!(
            matches!(parse_err(&v), JwsError::Malformed(_)),
            "padded {member}"
        );

        let mut v = signed.clone();
        v[member] = json!(format!("+{}", v[member].as_str().unwrap()));
        assert!(
            matches!(parse_err(&v), JwsError::Malformed(_)),
            "'+' in {member}"
        );

        let mut v = signed.clone();
        v[member] = json!(7);
        assert!(
            matches!(parse_err(&v), JwsError::Malformed(_)),
            "number {member}"
        );
    }
    let mut v = signed.clone();
    v["signature"] = json!("");
    assert!(matches!(parse_err(&v), JwsError::Malformed(_)));
    let mut v = signed.clone();
    v["protected"] = json!("");
    assert!(matches!(parse_err(&v), JwsError::Malformed(_)));
    let mut v = signed;
    v["protected"] = json!(b64::encode(b"\"x\""));
    assert!(matches!(parse_err(&v), JwsError::Malformed(_)));
    for junk in [&b""[..], b"null", b"[]", b"{", b"not json"] {
        assert!(matches!(Jws::parse(junk), Err(JwsError::Malformed(_))));
    }
}

#[test]
fn rejects_duplicate_header_members() {
    let key = p256();
    let protected =
        format!(r#"{{"alg":"ES256","alg":"ES256","kid":"{KID}","nonce":"{NONCE}","url":"{URL}"}}"#);
    let v = sign_raw(&key, &protected, b"{}");
    assert!(matches!(parse_err(&v), JwsError::Malformed(_)));
}

#[test]
fn rejects_crit_and_b64() {
    let key = p256();
    let v = sign_edited(&key, |h| h["crit"] = json!(["exp"]));
    assert!(matches!(parse_err(&v), JwsError::Malformed(_)));
    let v = sign_edited(&key, |h| {
        h["b64"] = json!(false);
        h["crit"] = json!(["b64"]);
    });
    assert!(matches!(parse_err(&v), JwsError::Malformed(_)));
}

#[test]
fn ignores_unknown_members() {
    let key = p256();
    let mut v = sign_edited(&key, |h| {
        h["typ"] = json!("JOSE+JSON");
        h["x-future"] = json!({"a": [1]});
    });
    v["extra"] = json!("ignored");
    let jws = Jws::parse(&body(&v)).unwrap();
    jws.verify(key.jwk()).unwrap();
}

#[test]
fn bad_embedded_keys() {
    let key = p256();
    let v = sign_edited(&key, |h| h["jwk"]["d"] = json!("AAAA"));
    assert!(matches!(
        parse_err(&v),
        JwsError::BadPublicKey(JwkError::PrivateMember(_))
    ));
    assert_eq!(
        JwsError::BadPublicKey(JwkError::NotAnObject).problem_type(),
        ProblemType::BadPublicKey
    );
    let v = sign_edited(&key, |h| h["jwk"] = json!({"kty": "oct", "k": "AAAA"}));
    assert!(matches!(parse_err(&v), JwsError::BadPublicKey(_)));
    let v = sign_edited(&key, |h| h["jwk"] = json!("string"));
    assert!(matches!(parse_err(&v), JwsError::BadPublicKey(_)));
    // A 1024-bit RSA key.
    let small_n = b64::encode(&[0xc1u8; 128]);
    let v = sign_edited(&key, |h| {
        h["alg"] = json!("RS256");
        h["jwk"] = json!({"kty": "RSA", "n": small_n, "e": "AQAB"});
    });
    assert!(matches!(
        parse_err(&v),
        JwsError::BadPublicKey(JwkError::RsaModulus(1024))
    ));
}

#[test]
fn payload_json_rules() {
    let key = p256();
    let signed = sign_jws(&key, &header(JwsKey::Kid(KID.into())), b"not json").unwrap();
    let jws = Jws::parse(&body(&signed)).unwrap();
    assert!(matches!(
        jws.payload_json::<Value>(),
        Err(JwsError::Malformed(_))
    ));
    let signed = sign_jws(
        &key,
        &header(JwsKey::Kid(KID.into())),
        br#"{"identifiers":[{"type":"dns","value":"a.example"}],"futureField":1}"#,
    )
    .unwrap();
    let jws = Jws::parse(&body(&signed)).unwrap();
    let order: crate::wire::NewOrder = jws.payload_json().unwrap();
    assert_eq!(order.identifiers.len(), 1);
}

// RFC test vectors, verified independently of our signer.

const RFC7515_PAYLOAD: &str =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";

#[test]
fn rfc7515_a3_es256_vector() {
    let jwk = Jwk::from_json(&json!({
        "kty": "EC", "crv": "P-256",
        "x": crate::jwk::tests::RFC7515_EC_X, "y": crate::jwk::tests::RFC7515_EC_Y
    }))
    .unwrap();
    let input = format!("eyJhbGciOiJFUzI1NiJ9.{RFC7515_PAYLOAD}");
    let sig = b64::decode(
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
    )
    .unwrap();
    jwk.verify("ES256", input.as_bytes(), &sig).unwrap();
    assert_eq!(
        jwk.verify("ES256", b"other", &sig),
        Err(JwsError::BadSignature)
    );
}

#[test]
fn rfc7515_a2_rs256_vector() {
    let jwk = Jwk::from_json(&json!({
        "kty": "RSA",
        "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
        "e": "AQAB"
    }))
    .unwrap();
    let input = format!("eyJhbGciOiJSUzI1NiJ9.{RFC7515_PAYLOAD}");
    let sig = b64::decode("cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw").unwrap();
    jwk.verify("RS256", input.as_bytes(), &sig).unwrap();
    assert_eq!(
        jwk.verify("RS256", b"other", &sig),
        Err(JwsError::BadSignature)
    );
}

#[test]
fn rfc8037_a4_eddsa_vector() {
    let jwk = Jwk::from_json(&json!({
        "kty": "OKP", "crv": "Ed25519", "x": crate::jwk::tests::RFC8037_X
    }))
    .unwrap();
    let input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    let sig = b64::decode(
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
    )
    .unwrap();
    jwk.verify("EdDSA", input.as_bytes(), &sig).unwrap();
    assert_eq!(
        jwk.verify("EdDSA", b"other", &sig),
        Err(JwsError::BadSignature)
    );
}

// keyChange (RFC 8555 §7.3.5).

const KEY_CHANGE_URL: &str = "https://ca.example/acme/key-change";

fn key_change_request(
    old: &AccountKey,
    new: &AccountKey,
    inner_edit: impl FnOnce(&mut Value),
    payload: Value,
) -> Jws {
    let mut inner_h = json!({"alg": new.alg(), "jwk": new.jwk().to_json(), "url": KEY_CHANGE_URL});
    inner_edit(&mut inner_h);
    let inner = sign_raw(new, &inner_h.to_string(), payload.to_string().as_bytes());
    let outer = sign_jws(
        old,
        &JwsHeader {
            key: JwsKey::Kid(KID.into()),
            nonce: Some(NONCE.into()),
            url: KEY_CHANGE_URL.into(),
        },
        inner.to_string().as_bytes(),
    )
    .unwrap();
    let jws = Jws::parse(&body(&outer)).unwrap();
    jws.verify(old.jwk()).unwrap();
    jws
}

fn kc_payload(old: &AccountKey) -> Value {
    json!({"account": KID, "oldKey": old.jwk().to_json()})
}

#[test]
fn keychange_valid() {
    let (old, new) = (
        p256(),
        AccountKey::generate(AccountKeyKind::Ed25519).unwrap(),
    );
    let jws = key_change_request(&old, &new, |_| {}, kc_payload(&old));
    let kc = jws.parse_inner_keychange().unwrap();
    assert_eq!(&kc.new_key, new.jwk());
    assert_eq!(&kc.key_change.old_key, old.jwk());
    assert_eq!(kc.key_change.account, KID);
}

#[test]
fn keychange_inner_rules() {
    let (old, new) = (p256(), p256());
    let cases: Vec<(&str, Jws)> = vec![
        (
            "inner nonce",
            key_change_request(&old, &new, |h| h["nonce"] = json!(NONCE), kc_payload(&old)),
        ),
        (
            "inner url differs",
            key_change_request(
                &old,
                &new,
                |h| h["url"] = json!("https://ca.example/other"),
                kc_payload(&old),
            ),
        ),
        (
            "inner kid",
            key_change_request(
                &old,
                &new,
                |h| {
                    h.as_object_mut().unwrap().remove("jwk");
                    h["kid"] = json!(KID);
                },
                kc_payload(&old),
            ),
        ),
        (
            "account mismatch",
            key_change_request(
                &old,
                &new,
                |_| {},
                json!({"account": "https://ca.example/acme/acct/2", "oldKey": old.jwk().to_json()}),
            ),
        ),
        (
            "same key",
            key_change_request(&old, &old, |_| {}, kc_payload(&old)),
        ),
        (
            "payload not a key change",
            key_change_request(&old, &new, |_| {}, json!({"account": KID})),
        ),
    ];
    for (name, jws) in cases {
        assert!(
            matches!(jws.parse_inner_keychange(), Err(JwsError::Malformed(_))),
            "{name}: {:?}",
            jws.parse_inner_keychange()
        );
    }
}

#[test]
fn keychange_inner_signature_must_verify_with_new_key() {
    let (old, new, other) = (p256(), p256(), p256());
    // Inner header names `new` but is signed by `other`.
    let inner_h = json!({"alg": "ES256", "jwk": new.jwk().to_json(), "url": KEY_CHANGE_URL});
    let inner = sign_raw(
        &other,
        &inner_h.to_string(),
        kc_payload(&old).to_string().as_bytes(),
    );
    let outer = sign_jws(
        &old,
        &JwsHeader {
            key: JwsKey::Kid(KID.into()),
            nonce: Some(NONCE.into()),
            url: KEY_CHANGE_URL.into(),
        },
        inner.to_string().as_bytes(),
    )
    .unwrap();
    let jws = Jws::parse(&body(&outer)).unwrap();
    assert_eq!(jws.parse_inner_keychange(), Err(JwsError::BadSignature));
}

#[test]
fn keychange_outer_must_use_kid() {
    let (old, new) = (p256(), p256());
    let inner_h = json!({"alg": "ES256", "jwk": new.jwk().to_json(), "url": KEY_CHANGE_URL});
    let inner = sign_raw(
        &new,
        &inner_h.to_string(),
        kc_payload(&old).to_string().as_bytes(),
    );
    let outer = sign_jws(
        &old,
        &JwsHeader {
            key: JwsKey::Jwk,
            nonce: Some(NONCE.into()),
            url: KEY_CHANGE_URL.into(),
        },
        inner.to_string().as_bytes(),
    )
    .unwrap();
    let jws = Jws::parse(&body(&outer)).unwrap();
    assert!(matches!(
        jws.parse_inner_keychange(),
        Err(JwsError::Malformed(_))
    ));
}
