use super::*;

/// `TestPreCertProof` of google/certificate-transparency-go `testdata/certs.go`: the SCT the
/// log with `testdata/log-key.pem` returned for `testdata/precert.pem` (see testdata/README.md).
const KAT_SCT: &str = "00df1c2ec11500945247a96168325ddc5c7959e8f7c6d388fc002e0bbd3f74d7\
640000013ddb27df9300000403004730450220482f6751af35dba65436be1fd6\
640f3dbf9a41429495924530288fa3e5e23e06022100e4edc0db3ac572b1e2f5\
e8ab6a680653987dcf41027dfeffa105519d89edbf08";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn pem_der(text: &str) -> Vec<u8> {
    pem::parse(text).unwrap().into_contents()
}

struct Kat {
    issuer_spki: Vec<u8>,
    precert: Vec<u8>,
    log: LogKey,
    sct: Sct,
}

fn kat() -> Kat {
    let ca = pem_der(include_str!("testdata/ca-cert.pem"));
    Kat {
        issuer_spki: crate::cert_info::spki_der_of(&ca).unwrap(),
        precert: pem_der(include_str!("testdata/precert.pem")),
        log: LogKey::from_spki_der(&pem_der(include_str!("testdata/log-key.pem"))).unwrap(),
        sct: Sct::from_tls(&unhex(KAT_SCT)).unwrap(),
    }
}

#[test]
fn known_answer_precert_sct_verifies() {
    let k = kat();
    // RFC 6962 §3.2: the log id is SHA-256 of the log's SubjectPublicKeyInfo.
    assert_eq!(k.log.id(), k.sct.log_id);
    assert_eq!(
        k.log.id().to_string(),
        "df1c2ec11500945247a96168325ddc5c7959e8f7c6d388fc002e0bbd3f74d764"
    );
    assert_eq!(k.sct.timestamp_ms, 0x13ddb27df93);
    assert_eq!(k.sct.to_tls().unwrap(), unhex(KAT_SCT));
    let tbs = precert_tbs_without_poison(&k.precert).unwrap();
    k.log
        .verify_precert_sct(&k.sct, &k.issuer_spki, &tbs)
        .unwrap();
}

#[test]
fn known_answer_refuses_any_change() {
    let k = kat();
    let tbs = precert_tbs_without_poison(&k.precert).unwrap();
    // The poisoned TBSCertificate is not what the log signed.
    let (poisoned, _) = split_certificate(&k.precert).unwrap();
    assert_eq!(
        k.log.verify_precert_sct(&k.sct, &k.issuer_spki, poisoned),
        Err(CtError::BadSignature)
    );
    let mut later = k.sct.clone();
    later.timestamp_ms += 1;
    assert_eq!(
        k.log.verify_precert_sct(&later, &k.issuer_spki, &tbs),
        Err(CtError::BadSignature)
    );
    let mut other_issuer = k.issuer_spki.clone();
    let last = other_issuer.len() - 5;
    other_issuer[last] ^= 1;
    assert_eq!(
        k.log.verify_precert_sct(&k.sct, &other_issuer, &tbs),
        Err(CtError::BadSignature)
    );
    let mut sig = k.sct.clone();
    let n = sig.signature.len();
    sig.signature[n - 1] ^= 1;
    assert_eq!(
        k.log.verify_precert_sct(&sig, &k.issuer_spki, &tbs),
        Err(CtError::BadSignature)
    );
    let mut other_log = k.sct.clone();
    other_log.log_id.0[0] ^= 1;
    assert_eq!(
        k.log.verify_precert_sct(&other_log, &k.issuer_spki, &tbs),
        Err(CtError::WrongLog)
    );
    let mut sha1 = k.sct.clone();
    sha1.hash_alg = 2;
    assert!(matches!(
        k.log.verify_precert_sct(&sha1, &k.issuer_spki, &tbs),
        Err(CtError::UnsupportedAlgorithm { .. })
    ));
}

#[test]
fn poison_is_swapped_in_place_for_the_sct_list() {
    let k = kat();
    let (final_tbs, _) = final_tbs(&k.precert, std::slice::from_ref(&k.sct)).unwrap();
    // A certificate around that TBSCertificate (signature irrelevant here).
    let (_, alg) = split_certificate(&k.precert).unwrap();
    let mut body = final_tbs.clone();
    body.extend_from_slice(alg);
    body.extend_from_slice(&[0x03, 0x01, 0x00]);
    let cert = wrap(Tag::Sequence, &body).unwrap();
    assert_eq!(
        cert_tbs_without_sct_list(&cert).unwrap(),
        precert_tbs_without_poison(&k.precert).unwrap()
    );
    assert_eq!(scts_of_cert(&cert).unwrap(), vec![k.sct.clone()]);
    // x509-parser, an independent parser, sees the SCT in the extension.
    use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};
    let (_, parsed) = X509Certificate::from_der(&cert).unwrap();
    let ext = parsed
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.3.6.1.4.1.11129.2.4.2")
        .unwrap();
    assert!(!ext.critical);
    match ext.parsed_extension() {
        ParsedExtension::SCT(list) => {
            assert_eq!(list.len(), 1);
            assert_eq!(list[0].id.key_id, &k.sct.log_id.0);
            assert_eq!(list[0].timestamp, k.sct.timestamp_ms);
        }
        other => panic!("{other:?}"),
    }
    // No poison left, and the poison position now holds the SCT list.
    assert!(precert_tbs_without_poison(&cert).is_err());
}

#[test]
fn refuses_certificates_without_the_expected_extension() {
    let ca = pem_der(include_str!("testdata/ca-cert.pem"));
    assert!(matches!(
        precert_tbs_without_poison(&ca),
        Err(CtError::Certificate(_))
    ));
    assert_eq!(scts_of_cert(&ca).unwrap(), Vec::new());
    assert!(precert_tbs_without_poison(b"\x30\x00").is_err());
    assert!(precert_tbs_without_poison(b"").is_err());
}

#[test]
fn malformed_scts_and_lists_are_refused_without_panic() {
    let good = unhex(KAT_SCT);
    for n in 0..good.len() {
        assert!(Sct::from_tls(&good[..n]).is_err(), "truncated at {n}");
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(Sct::from_tls(&trailing).is_err());
    let mut v2 = good.clone();
    v2[0] = 1;
    assert!(Sct::from_tls(&v2).is_err());

    let sct = Sct::from_tls(&good).unwrap();
    let list = encode_sct_list(&[sct.clone(), sct.clone()]).unwrap();
    assert_eq!(decode_sct_list(&list).unwrap(), vec![sct.clone(), sct]);
    assert!(decode_sct_list(&[0, 0]).is_err());
    assert!(decode_sct_list(&list[..list.len() - 1]).is_err());
    assert!(encode_sct_list(&[]).is_err());
}

#[test]
fn log_keys_other_than_p256_or_rsa_are_refused() {
    let p384 = crate::keys::generate(crate::keys::KeyType::EcdsaP384).unwrap();
    let spki = rcgen::PublicKeyData::subject_public_key_info(&p384);
    assert!(LogKey::from_spki_der(&spki).is_err());
    assert!(LogKey::from_spki_der(b"\x30\x00").is_err());
    let rsa = crate::keys::generate(crate::keys::KeyType::Rsa2048).unwrap();
    let spki = rcgen::PublicKeyData::subject_public_key_info(&rsa);
    assert!(LogKey::from_spki_der(&spki).is_ok());
}
