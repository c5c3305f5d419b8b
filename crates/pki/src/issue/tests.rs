use std::process::Command;
use std::sync::Arc;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;
use crate::ca::{create_issuing_ca, create_root_with_subject, CaSubject};
use crate::keys::generate;
use crate::policy::Permitted;
use crate::signer::FileSigner;

struct Fixture {
    root: Arc<FileSigner>,
    ca: Arc<FileSigner>,
    issuer: Issuer,
}

fn profile() -> CaProfile {
    CaProfile {
        permitted: Permitted::parse(&["routers.example.com".into(), "10.0.0.0/8".into()]).unwrap(),
        client_auth: false,
        crl_base_url: "http://ca.example.net".into(),
        organization: Some("Example Devices".into()),
        common_name: "Example Devices Issuing CA".into(),
        country: Some("US".into()),
        trust: Default::default(),
    }
}

fn fixture_with(allowed: Vec<KeyType>) -> Fixture {
    fixture_for(profile(), allowed)
}

fn public_fixture() -> Fixture {
    fixture_for(
        CaProfile {
            trust: crate::ca::CaTrust::Public,
            ..profile()
        },
        Vec::new(),
    )
}

fn fixture_for(profile: CaProfile, allowed: Vec<KeyType>) -> Fixture {
    let root = Arc::new(FileSigner::new(generate(KeyType::EcdsaP384).unwrap()));
    let subject = CaSubject {
        common_name: "Example Root".into(),
        organization: Some("Example Devices".into()),
        country: Some("US".into()),
    };
    let root_der = create_root_with_subject(&subject, root.as_ref(), None).unwrap();
    let ca = Arc::new(FileSigner::new(generate(KeyType::EcdsaP256).unwrap()));
    let ca_der = create_issuing_ca(
        &root_der,
        root.as_ref(),
        ca.public_key_der(),
        &profile,
        None,
    )
    .unwrap();
    let issuer = Issuer::new(
        "default",
        ca_der,
        vec![root_der],
        ca.clone(),
        profile,
        allowed,
    )
    .unwrap();
    Fixture { root, ca, issuer }
}

fn fixture() -> Fixture {
    fixture_with(Vec::new())
}

fn csr(key: &KeyPair, sans: &[&str], cn: Option<&str>) -> Vec<u8> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(cn) = cn {
        dn.push(DnType::CommonName, cn);
    }
    params.distinguished_name = dn;
    params.subject_alt_names = sans
        .iter()
        .map(|s| match s.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(s.to_string().try_into().unwrap()),
        })
        .collect();
    params.serialize_request(key).unwrap().der().to_vec()
}

fn ids(values: &[&str]) -> Vec<Identifier> {
    values
        .iter()
        .map(|v| Identifier::parse_any(v).unwrap())
        .collect()
}

fn request(csr_der: Vec<u8>, identifiers: Vec<Identifier>) -> IssueRequest {
    let now = OffsetDateTime::now_utc();
    IssueRequest {
        csr_der,
        identifiers,
        not_before: now,
        not_after: now + Duration::days(90),
    }
}

fn leaf_key() -> KeyPair {
    generate(KeyType::EcdsaP256).unwrap()
}

#[test]
fn issues_dns_ip_and_wildcard_with_empty_subject() {
    let f = fixture();
    let names = [
        "r1.routers.example.com",
        "*.routers.example.com",
        "10.1.2.3",
    ];
    let key = leaf_key();
    let cert = f
        .issuer
        .issue(&request(csr(&key, &names, None), ids(&names)))
        .unwrap();
    assert_eq!(cert.serial.len(), 16);
    let (_, x) = X509Certificate::from_der(&cert.der).unwrap();
    assert_eq!(x.subject().iter_attributes().count(), 0);
    let san = x.subject_alternative_name().unwrap().unwrap();
    assert!(san.critical);
    assert_eq!(san.value.general_names.len(), 3);
    assert_eq!(x.raw_serial(), cert.serial.as_slice());
    assert!(!x.is_ca());
    let (_, ca) = X509Certificate::from_der(f.issuer.cert_der()).unwrap();
    x.verify_signature(Some(ca.public_key())).unwrap();
    assert_eq!(x.validity().not_after.to_datetime(), cert.not_after);
}

#[test]
fn public_trust_leaves_have_an_empty_subject_even_when_the_csr_names_a_common_name() {
    let f = public_fixture();
    let names = ["r1.routers.example.com"];
    let cert = f
        .issuer
        .issue(&request(
            csr(&leaf_key(), &names, Some("r1.routers.example.com")),
            ids(&names),
        ))
        .unwrap();
    let (_, x) = X509Certificate::from_der(&cert.der).unwrap();
    // BR §7.1.2.7.2 forbids O in a DV subject, so nothing but the empty subject lies inside
    // the CA's directoryName subtree (C and O).
    assert_eq!(x.subject().iter_attributes().count(), 0);
    assert!(x.subject_alternative_name().unwrap().unwrap().critical);
}

#[test]
fn br_lifetime_schedule_by_date() {
    use time::macros::datetime;
    for (at, days) in [
        (datetime!(2026-03-14 23:59:59 UTC), 398),
        (datetime!(2026-03-15 00:00 UTC), 200),
        (datetime!(2027-03-14 23:59:59 UTC), 200),
        (datetime!(2027-03-15 00:00 UTC), 100),
        (datetime!(2029-03-15 00:00 UTC), 47),
        (datetime!(2040-01-01 00:00 UTC), 47),
    ] {
        assert_eq!(max_leaf_lifetime(at), Duration::days(days), "{at}");
    }
}

#[test]
fn public_trust_issuance_follows_the_schedule_by_not_before() {
    let f = public_fixture();
    let names = ["r1.routers.example.com"];
    // 150 days is fine for private trust whenever, and for public trust only before
    // 2027-03-15; the CA certificate here is valid for 5 years from now.
    let at = |nb: OffsetDateTime, days: i64| IssueRequest {
        csr_der: csr(&leaf_key(), &names, None),
        identifiers: ids(&names),
        not_before: nb,
        not_after: nb + Duration::days(days) - Duration::SECOND,
    };
    let next_year = time::macros::datetime!(2027-03-16 00:00 UTC).max(OffsetDateTime::now_utc());
    let e = f.issuer.issue(&at(next_year, 150)).unwrap_err();
    assert!(
        matches!(&e, IssueError::Validity(m) if m.contains("100 days")),
        "{e}"
    );
    f.issuer.issue(&at(next_year, 100)).unwrap();
    fixture().issuer.issue(&at(next_year, 150)).unwrap();
}

#[test]
fn common_name_and_case_are_normalized() {
    let f = fixture();
    let key = leaf_key();
    let der = csr(
        &key,
        &["R1.Routers.Example.COM"],
        Some("R1.Routers.Example.COM"),
    );
    let cert = f
        .issuer
        .issue(&request(der, ids(&["r1.routers.example.com"])))
        .unwrap();
    let (_, x) = X509Certificate::from_der(&cert.der).unwrap();
    let cn: Vec<_> = x
        .subject()
        .iter_common_name()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["r1.routers.example.com"]);
    assert!(!x.subject_alternative_name().unwrap().unwrap().critical);
}

#[test]
fn rsa_leaf_gets_key_encipherment() {
    let f = fixture();
    let key = generate(KeyType::Rsa2048).unwrap();
    let cert = f
        .issuer
        .issue(&request(
            csr(&key, &["a.routers.example.com"], None),
            ids(&["a.routers.example.com"]),
        ))
        .unwrap();
    let (_, x) = X509Certificate::from_der(&cert.der).unwrap();
    let ku = x.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && ku.key_encipherment());
}

#[test]
fn rejects_names_outside_policy() {
    let f = fixture();
    for name in [
        "evilrouters.example.com",
        "example.com",
        "*.example.com",
        "11.0.0.1",
    ] {
        let key = leaf_key();
        let err = f
            .issuer
            .issue(&request(csr(&key, &[name], None), ids(&[name])))
            .unwrap_err();
        assert!(matches!(err, IssueError::Policy(_)), "{name}: {err:?}");
    }
}

#[test]
fn rejects_csr_name_mismatches() {
    let f = fixture();
    let key = leaf_key();
    // Extra SAN in the CSR.
    let der = csr(
        &key,
        &["a.routers.example.com", "b.routers.example.com"],
        None,
    );
    let err = f
        .issuer
        .issue(&request(der, ids(&["a.routers.example.com"])))
        .unwrap_err();
    assert!(matches!(err, IssueError::BadCsr(_)), "{err:?}");
    // Missing SAN.
    let der = csr(&key, &["a.routers.example.com"], None);
    let err = f
        .issuer
        .issue(&request(
            der,
            ids(&["a.routers.example.com", "b.routers.example.com"]),
        ))
        .unwrap_err();
    assert!(matches!(err, IssueError::BadCsr(_)), "{err:?}");
    // CN that is not an identifier of the order.
    let der = csr(
        &key,
        &["a.routers.example.com"],
        Some("b.routers.example.com"),
    );
    let err = f
        .issuer
        .issue(&request(der, ids(&["a.routers.example.com"])))
        .unwrap_err();
    assert!(matches!(err, IssueError::BadCsr(_)), "{err:?}");
    // A CN that is not a name at all.
    let der = csr(&key, &["a.routers.example.com"], Some("My Router"));
    let err = f
        .issuer
        .issue(&request(der, ids(&["a.routers.example.com"])))
        .unwrap_err();
    assert!(matches!(err, IssueError::BadCsr(_)), "{err:?}");
}

#[test]
fn rejects_bad_csr_signature_and_garbage() {
    let f = fixture();
    let key = leaf_key();
    let mut der = csr(&key, &["a.routers.example.com"], None);
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let err = f
        .issuer
        .issue(&request(der, ids(&["a.routers.example.com"])))
        .unwrap_err();
    assert!(matches!(err, IssueError::BadCsr(_)), "{err:?}");
    let err = f
        .issuer
        .issue(&request(
            vec![0x30, 0x03, 0x02, 0x01, 0x00],
            ids(&["a.routers.example.com"]),
        ))
        .unwrap_err();
    assert!(matches!(err, IssueError::BadCsr(_)), "{err:?}");
}

#[test]
fn rejects_ca_keys_and_disallowed_key_types() {
    let f = fixture();
    let name = ["a.routers.example.com"];
    let der = csr(f.ca.key_pair(), &name, None);
    let err = f.issuer.issue(&request(der, ids(&name))).unwrap_err();
    assert!(matches!(err, IssueError::BadPublicKey(_)), "{err:?}");
    let der = csr(f.root.key_pair(), &name, None);
    let err = f.issuer.issue(&request(der, ids(&name))).unwrap_err();
    assert!(matches!(err, IssueError::BadPublicKey(_)), "{err:?}");
    let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let err = f
        .issuer
        .issue(&request(csr(&ed, &name, None), ids(&name)))
        .unwrap_err();
    assert!(matches!(err, IssueError::BadPublicKey(_)), "{err:?}");

    let only_p256 = fixture_with(vec![KeyType::EcdsaP256]);
    let p384 = generate(KeyType::EcdsaP384).unwrap();
    let err = only_p256
        .issuer
        .issue(&request(csr(&p384, &name, None), ids(&name)))
        .unwrap_err();
    assert!(matches!(err, IssueError::BadPublicKey(_)), "{err:?}");
}

#[test]
fn rejects_rsa_1024_csr_made_by_openssl() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let out = dir.path().join("r.der");
    let ok = Command::new("openssl")
        .args(["req", "-new", "-newkey", "rsa:1024", "-nodes", "-keyout"])
        .arg(&key)
        .args([
            "-subj",
            "/",
            "-addext",
            "subjectAltName=DNS:a.routers.example.com",
            "-outform",
            "DER",
            "-out",
        ])
        .arg(&out)
        .output()
        .expect("openssl is installed");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let der = std::fs::read(&out).unwrap();
    let err = f
        .issuer
        .issue(&request(der, ids(&["a.routers.example.com"])))
        .unwrap_err();
    assert!(matches!(err, IssueError::BadPublicKey(_)), "{err:?}");
}

#[test]
fn rejects_long_or_inverted_lifetimes() {
    let f = fixture();
    let name = ["a.routers.example.com"];
    let key = leaf_key();
    let mut req = request(csr(&key, &name, None), ids(&name));
    req.not_after = req.not_before + Duration::days(399);
    assert!(matches!(f.issuer.issue(&req), Err(IssueError::Validity(_))));
    req.not_after = req.not_before + MAX_LEAF_LIFETIME;
    assert!(matches!(f.issuer.issue(&req), Err(IssueError::Validity(_))));
    req.not_after = req.not_before + MAX_LEAF_LIFETIME - Duration::SECOND;
    assert!(f.issuer.issue(&req).is_ok());
    req.not_after = req.not_before - Duration::SECOND;
    assert!(matches!(f.issuer.issue(&req), Err(IssueError::Validity(_))));
}

#[test]
fn parse_csr_accepts_unknown_extensions() {
    // A must-staple (RFC 7633 TLS feature) CSR, which rcgen's own parser refuses.
    let key = leaf_key();
    let mut params = CertificateParams::new(vec!["a.routers.example.com".to_string()]).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 5, 5, 7, 1, 24],
        vec![0x30, 0x03, 0x02, 0x01, 0x05],
    )];
    let der = params.serialize_request(&key).unwrap().der().to_vec();
    let info = parse_csr(&der).unwrap();
    assert_eq!(info.identifiers, ids(&["a.routers.example.com"]));
    assert_eq!(info.common_name, None);
}

#[test]
fn rejects_certificates_outliving_the_ca() {
    let f = fixture();
    let name = ["a.routers.example.com"];
    let key = leaf_key();
    let mut req = request(csr(&key, &name, None), ids(&name));
    req.not_before = OffsetDateTime::now_utc() + Duration::days(5 * 365);
    req.not_after = req.not_before + Duration::days(30);
    assert!(matches!(f.issuer.issue(&req), Err(IssueError::Validity(_))));
}

#[test]
fn lint_catches_profile_drift() {
    let f = fixture();
    let names = ["a.routers.example.com"];
    let key = leaf_key();
    let req = request(csr(&key, &names, None), ids(&names));
    let cert = f.issuer.issue(&req).unwrap();
    let csr_info = parse_csr(&req.csr_der).unwrap();
    let (_, ca) = X509Certificate::from_der(f.issuer.cert_der()).unwrap();
    let ski = lint::subject_key_id(&ca);
    let identifiers = ids(&names);
    let permitted = f.issuer.profile().permitted.clone();
    let good = lint::Expected {
        identifiers: &identifiers,
        common_name: None,
        spki_der: &csr_info.spki_der,
        serial: cert.serial.clone(),
        not_before: cert.not_before,
        not_after: cert.not_after,
        is_rsa: false,
        client_auth: false,
        issuer_subject_raw: ca.subject().as_raw(),
        issuer_ski: ski.as_deref(),
        permitted: &permitted,
        crl_dp: true,
        ocsp_url: None,
        precert: false,
    };
    lint::lint_leaf(&cert.der, &good).unwrap();
    let other_ids = ids(&["b.routers.example.com"]);
    let cases: Vec<lint::Expected<'_>> = vec![
        lint::Expected {
            identifiers: &other_ids,
            ..clone_expected(&good)
        },
        lint::Expected {
            client_auth: true,
            ..clone_expected(&good)
        },
        lint::Expected {
            is_rsa: true,
            ..clone_expected(&good)
        },
        lint::Expected {
            serial: vec![1; 16],
            ..clone_expected(&good)
        },
        lint::Expected {
            not_after: cert.not_after + Duration::SECOND,
            ..clone_expected(&good)
        },
        lint::Expected {
            issuer_ski: Some(&[1, 2, 3]),
            ..clone_expected(&good)
        },
        lint::Expected {
            precert: true,
            ..clone_expected(&good)
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        assert!(lint::lint_leaf(&cert.der, case).is_err(), "case {i}");
    }
    let narrow = Permitted::parse(&["b.routers.example.com".into()]).unwrap();
    let e = lint::Expected {
        permitted: &narrow,
        ..clone_expected(&good)
    };
    assert!(lint::lint_leaf(&cert.der, &e).is_err());
}

fn clone_expected<'a>(e: &lint::Expected<'a>) -> lint::Expected<'a> {
    lint::Expected {
        identifiers: e.identifiers,
        common_name: e.common_name,
        spki_der: e.spki_der,
        serial: e.serial.clone(),
        not_before: e.not_before,
        not_after: e.not_after,
        is_rsa: e.is_rsa,
        client_auth: e.client_auth,
        issuer_subject_raw: e.issuer_subject_raw,
        issuer_ski: e.issuer_ski,
        permitted: e.permitted,
        crl_dp: e.crl_dp,
        ocsp_url: e.ocsp_url,
        precert: e.precert,
    }
}

#[test]
fn shared_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Issuer>();
    check::<FileSigner>();
    check::<CaProfile>();
    check::<IssueError>();
    check::<PkiError>();
}

#[test]
fn leaf_options_choose_revocation_pointers() {
    let f = fixture();
    let names = ["r1.routers.example.com"];
    let now = OffsetDateTime::now_utc();
    let req = |days: i64| IssueRequest {
        csr_der: csr(&leaf_key(), &names, None),
        identifiers: ids(&names),
        not_before: now,
        not_after: now + Duration::days(days),
    };
    // OCSP pointer first in AIA, CRL DP kept.
    let opts = LeafOptions {
        ocsp_url: Some("http://ocsp.example.com/ocsp/default".into()),
        ..LeafOptions::default()
    };
    let cert = f.issuer.issue_with(&req(30), &opts).unwrap();
    let (_, x) = X509Certificate::from_der(&cert.der).unwrap();
    let text = format!("{:?}", x.extensions());
    assert!(text.contains("ocsp.example.com"), "{text}");
    assert!(x
        .extensions()
        .iter()
        .any(|e| e.oid.to_id_string() == "2.5.29.31"));

    // Short-lived: no CRL DP, no OCSP; refused if longer than 7 days.
    let short = LeafOptions {
        include_crl_dp: false,
        ..LeafOptions::default()
    };
    let cert = f.issuer.issue_with(&req(6), &short).unwrap();
    let (_, x) = X509Certificate::from_der(&cert.der).unwrap();
    assert!(!x
        .extensions()
        .iter()
        .any(|e| e.oid.to_id_string() == "2.5.29.31"));
    assert!(matches!(
        f.issuer.issue_with(&req(8), &short),
        Err(IssueError::Validity(_))
    ));
}

/// A test CT log: signs precertificate entries with its own P-256 key (RFC 6962 §3.2).
fn log_sct(log: &KeyPair, issuer_spki: &[u8], precert: &[u8], timestamp_ms: u64) -> crate::ct::Sct {
    use crate::ct::{self, LogId, Sct};
    let spki = rcgen::PublicKeyData::subject_public_key_info(log);
    let mut sct = Sct {
        log_id: LogId::of_spki(&spki),
        timestamp_ms,
        extensions: Vec::new(),
        hash_alg: 4,
        sig_alg: 3,
        signature: Vec::new(),
    };
    let tbs = ct::precert_tbs_without_poison(precert).unwrap();
    let data = ct::precert_signed_data(&sct, &ct::issuer_key_hash(issuer_spki), &tbs).unwrap();
    sct.signature = rcgen::SigningKey::sign(log, &data).unwrap();
    sct
}

#[test]
fn precert_then_final_certificate_with_verified_scts() {
    use crate::ct;
    let f = fixture();
    let names = ["a.routers.example.com", "10.1.2.3"];
    let key = leaf_key();
    let req = request(csr(&key, &names, None), ids(&names));
    let pre = f
        .issuer
        .issue_precert(&req, &LeafOptions::default())
        .unwrap();
    let (_, parsed) = X509Certificate::from_der(&pre.der).unwrap();
    let poison = parsed
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.3.6.1.4.1.11129.2.4.3")
        .expect("poison");
    assert!(poison.critical && poison.value == [0x05, 0x00]);

    let logs: Vec<KeyPair> = (0..2)
        .map(|_| generate(KeyType::EcdsaP256).unwrap())
        .collect();
    let scts: Vec<ct::Sct> = logs
        .iter()
        .enumerate()
        .map(|(i, l)| {
            log_sct(
                l,
                f.issuer.spki_der(),
                &pre.der,
                1_700_000_000_000 + i as u64,
            )
        })
        .collect();
    let fin = f.issuer.finish_precert(&pre.der, &scts).unwrap();
    assert_eq!(fin.serial, pre.serial);
    assert_eq!(
        (fin.not_before, fin.not_after),
        (pre.not_before, pre.not_after)
    );

    // From the final certificate alone: its SCTs verify against each log's key.
    let (_, c) = X509Certificate::from_der(&fin.der).unwrap();
    let (_, ca) = X509Certificate::from_der(f.issuer.cert_der()).unwrap();
    c.verify_signature(Some(ca.public_key())).unwrap();
    assert!(c
        .extensions()
        .iter()
        .all(|e| e.oid.to_id_string() != "1.3.6.1.4.1.11129.2.4.3"));
    let embedded = ct::scts_of_cert(&fin.der).unwrap();
    assert_eq!(embedded, scts);
    let tbs = ct::cert_tbs_without_sct_list(&fin.der).unwrap();
    assert_eq!(tbs, ct::precert_tbs_without_poison(&pre.der).unwrap());
    for (log, sct) in logs.iter().zip(&embedded) {
        let key =
            ct::LogKey::from_spki_der(&rcgen::PublicKeyData::subject_public_key_info(log)).unwrap();
        key.verify_precert_sct(sct, f.issuer.spki_der(), &tbs)
            .unwrap();
    }

    // openssl, independently, lists both SCTs.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("final.der");
    std::fs::write(&path, &fin.der).unwrap();
    let out = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("CT Precertificate SCTs"), "{text}");
    assert_eq!(
        text.matches("Signed Certificate Timestamp:").count(),
        2,
        "{text}"
    );
}

#[test]
fn finishing_refuses_what_is_not_this_cas_precert() {
    let f = fixture();
    let other = fixture();
    let names = ["a.routers.example.com"];
    let key = leaf_key();
    let req = request(csr(&key, &names, None), ids(&names));
    let log = generate(KeyType::EcdsaP256).unwrap();
    // An ordinary certificate has no poison to replace.
    let plain = f.issuer.issue(&req).unwrap();
    let sct = log_sct(
        &log,
        f.issuer.spki_der(),
        &f.issuer
            .issue_precert(&req, &LeafOptions::default())
            .unwrap()
            .der,
        1,
    );
    assert!(matches!(
        f.issuer
            .finish_precert(&plain.der, std::slice::from_ref(&sct)),
        Err(IssueError::Lint(_))
    ));
    // Another CA's precertificate (same subject name, other key) is refused.
    let foreign = other
        .issuer
        .issue_precert(&req, &LeafOptions::default())
        .unwrap();
    assert!(matches!(
        f.issuer
            .finish_precert(&foreign.der, std::slice::from_ref(&sct)),
        Err(IssueError::Lint(_))
    ));
    assert!(f.issuer.finish_precert(&foreign.der[..20], &[sct]).is_err());
}
