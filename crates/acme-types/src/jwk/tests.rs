//! Tests for JWK parsing, thumbprints, SPKI conversion and verification.
use super::*;
use serde_json::json;

/// RFC 7638 §3.1 example key.
const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
/// RFC 7515 §A.3 P-256 key.
pub(crate) const RFC7515_EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
pub(crate) const RFC7515_EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
/// RFC 8037 §A.2 Ed25519 public key.
pub(crate) const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

fn ec_json() -> Value {
    json!({"kty": "EC", "crv": "P-256", "x": RFC7515_EC_X, "y": RFC7515_EC_Y})
}

#[test]
fn rfc7638_thumbprint() {
    let jwk = Jwk::from_json(&json!({
        "kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"
    }))
    .unwrap();
    assert_eq!(
        jwk.thumbprint(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    assert_eq!(
        jwk.canonical_json(),
        format!("{{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"{RFC7638_N}\"}}")
    );
}

#[test]
fn rfc8037_thumbprint() {
    // RFC 8037 §A.3.
    let jwk = Jwk::from_json(&json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X})).unwrap();
    assert_eq!(
        jwk.thumbprint(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn to_json_has_only_required_members_sorted() {
    let mut v = ec_json();
    v["kid"] = json!("x");
    v["use"] = json!("sig");
    let jwk = Jwk::from_json(&v).unwrap();
    let out = jwk.to_json();
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["crv", "kty", "x", "y"]);
    assert_eq!(Jwk::from_json(&out).unwrap(), jwk);
    assert_eq!(jwk.alg(), "ES256");
}

#[test]
fn rejects_private_members() {
    for m in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
        let mut v = ec_json();
        v[m] = json!("AAAA");
        assert_eq!(
            Jwk::from_json(&v),
            Err(JwkError::PrivateMember(m.into())),
            "{m}"
        );
    }
    assert!(matches!(
        Jwk::from_json(&json!({"kty": "oct", "k": "AAAA"})),
        Err(JwkError::PrivateMember(_))
    ));
}

#[test]
fn rejects_unsupported_types_and_curves() {
    assert!(matches!(
        Jwk::from_json(&json!({"kty": "oct"})),
        Err(JwkError::UnsupportedKeyType(_))
    ));
    let mut v = ec_json();
    v["crv"] = json!("P-521");
    assert!(matches!(
        Jwk::from_json(&v),
        Err(JwkError::UnsupportedCurve(_))
    ));
    assert!(matches!(
        Jwk::from_json(&json!({"kty": "OKP", "crv": "X25519", "x": RFC8037_X})),
        Err(JwkError::UnsupportedCurve(_))
    ));
    assert_eq!(Jwk::from_json(&json!("EC")), Err(JwkError::NotAnObject));
    assert_eq!(
        Jwk::from_json(&json!({})),
        Err(JwkError::MissingMember("kty"))
    );
}

#[test]
fn rejects_short_coordinates_and_bad_points() {
    let mut v = ec_json();
    v["x"] = json!(b64::encode(&[1u8; 31]));
    assert!(matches!(
        Jwk::from_json(&v),
        Err(JwkError::InvalidLength { member: "x", .. })
    ));
    let mut v = ec_json();
    v["crv"] = json!("P-384");
    assert!(matches!(
        Jwk::from_json(&v),
        Err(JwkError::InvalidLength { .. })
    ));
    // Valid length, not on the curve.
    let mut v = ec_json();
    v["y"] = json!(b64::encode(&[7u8; 32]));
    assert_eq!(Jwk::from_json(&v), Err(JwkError::InvalidPoint));
    let v = json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(&[1u8; 31])});
    assert!(matches!(
        Jwk::from_json(&v),
        Err(JwkError::InvalidLength { .. })
    ));
}

#[test]
fn rejects_bad_base64_in_members() {
    let mut v = ec_json();
    v["x"] = json!(format!("{RFC7515_EC_X}="));
    assert!(matches!(
        Jwk::from_json(&v),
        Err(JwkError::InvalidMember { member: "x", .. })
    ));
    let mut v = ec_json();
    v["y"] = json!(5);
    assert!(matches!(
        Jwk::from_json(&v),
        Err(JwkError::InvalidMember { member: "y", .. })
    ));
}

#[test]
fn rsa_size_and_exponent_rules() {
    let n2048 = b64::decode(RFC7638_N).unwrap();
    let rsa = |n: &[u8], e: &[u8]| {
        Jwk::from_json(&json!({"kty": "RSA", "n": b64::encode(n), "e": b64::encode(e)}))
    };
    assert!(rsa(&n2048, &[1, 0, 1]).is_ok());
    // 1024-bit modulus.
    assert!(matches!(
        rsa(&n2048[..128], &[1, 0, 1]),
        Err(JwkError::RsaModulus(1024))
    ));
    // Over 8192 bits.
    let mut big = vec![0xffu8; 1025];
    big[1024] = 0x01;
    assert!(matches!(
        rsa(&big, &[1, 0, 1]),
        Err(JwkError::RsaModulus(8200))
    ));
    // Even modulus.
    let mut even = n2048.clone();
    if let Some(last) = even.last_mut() {
        *last &= 0xfe;
    }
    assert!(matches!(
        rsa(&even, &[1, 0, 1]),
        Err(JwkError::RsaModulus(_))
    ));
    // Leading zero.
    let mut padded = vec![0u8];
    padded.extend_from_slice(&n2048);
    assert_eq!(
        rsa(&padded, &[1, 0, 1]),
        Err(JwkError::NonMinimalInteger("n"))
    );
    assert_eq!(rsa(&n2048, &[0, 3]), Err(JwkError::NonMinimalInteger("e")));
    for e in [
        &[1u8][..],
        &[2],
        &[1, 0, 0],
        &[2, 0, 0, 0, 1],
        &[1, 0, 0, 0, 0, 1],
    ] {
        assert_eq!(rsa(&n2048, e), Err(JwkError::RsaExponent), "{e:?}");
    }
    assert!(rsa(&n2048, &[3]).is_ok());
}

#[test]
fn equality_ignores_optional_members() {
    let a = Jwk::from_json(&ec_json()).unwrap();
    let mut v = ec_json();
    v["kid"] = json!("k");
    assert_eq!(a, Jwk::from_json(&v).unwrap());
}

#[test]
fn serde_round_trip() {
    let jwk = Jwk::from_json(&ec_json()).unwrap();
    let s = serde_json::to_string(&jwk).unwrap();
    assert_eq!(serde_json::from_str::<Jwk>(&s).unwrap(), jwk);
    assert!(serde_json::from_value::<Jwk>(json!({"kty": "EC", "d": "AA"})).is_err());
}

#[test]
fn spki_round_trip_for_all_kinds() {
    let keys = [
        Jwk::from_json(&ec_json()).unwrap(),
        Jwk::from_json(&json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB"})).unwrap(),
        Jwk::from_json(&json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X})).unwrap(),
    ];
    for jwk in keys {
        let der = jwk.spki_der().unwrap();
        assert_eq!(Jwk::from_spki_der(&der).unwrap(), jwk, "{}", jwk.describe());
    }
}

#[test]
fn spki_ed25519_matches_rfc8410_layout() {
    let jwk = Jwk::from_json(&json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X})).unwrap();
    let der = jwk.spki_der().unwrap();
    // RFC 8410 §4: 30 2a 30 05 06 03 2b 65 70 03 21 00 || key
    assert_eq!(
        &der[..12],
        &[0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]
    );
    assert_eq!(&der[12..], b64::decode(RFC8037_X).unwrap().as_slice());
}

#[test]
fn spki_rejects_garbage_and_unknown_algorithms() {
    assert!(matches!(
        Jwk::from_spki_der(&[0x30, 0x00]),
        Err(JwkError::Spki(_))
    ));
    assert!(Jwk::from_spki_der(b"not der").is_err());
    // Ed448 SPKI (OID 1.3.101.113).
    let mut ed448 = vec![
        0x30, 0x43, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x71, 0x03, 0x3a, 0x00,
    ];
    ed448.extend_from_slice(&[0u8; 57]);
    assert!(matches!(
        Jwk::from_spki_der(&ed448),
        Err(JwkError::UnsupportedKeyType(_))
    ));
    // Trailing data after a valid SPKI.
    let jwk = Jwk::from_json(&json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X})).unwrap();
    let mut der = jwk.spki_der().unwrap();
    der.push(0);
    assert!(Jwk::from_spki_der(&der).is_err());
}

#[test]
fn verify_rejects_mismatched_and_unknown_algorithms() {
    let ec = Jwk::from_json(&ec_json()).unwrap();
    for alg in [
        "RS256", "ES384", "EdDSA", "none", "HS256", "PS256", "es256", "",
    ] {
        assert!(
            matches!(
                ec.verify(alg, b"x", &[0; 64]),
                Err(JwsError::BadSignatureAlgorithm(_))
            ),
            "{alg}"
        );
    }
    assert_eq!(
        ec.verify("ES256", b"x", &[0; 63]),
        Err(JwsError::BadSignature)
    );
    assert_eq!(
        ec.verify("ES256", b"x", &[0; 64]),
        Err(JwsError::BadSignature)
    );
}
