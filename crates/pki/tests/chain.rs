//! Path validation of issued certificates by independent verifiers: rustls-webpki and
//! `openssl verify`. Name constraints must hold even when issuance policy is bypassed.
mod common;

use std::process::Command;

use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use webpki::{anchor_from_trusted_cert, EndEntityCert, KeyUsage, ALL_VERIFICATION_ALGS};

fn webpki_verify(h: &common::Hierarchy, leaf: &[u8], name: &str) -> Result<(), webpki::Error> {
    let root = CertificateDer::from(h.root_der.as_slice());
    let anchors = [anchor_from_trusted_cert(&root).unwrap()];
    let intermediates = [CertificateDer::from(h.ca_der.clone())];
    let leaf = CertificateDer::from(leaf);
    let ee = EndEntityCert::try_from(&leaf)?;
    ee.verify_for_usage(
        ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        UnixTime::now(),
        KeyUsage::server_auth(),
        None,
        None,
    )?;
    ee.verify_is_valid_for_subject_name(&ServerName::try_from(name.to_string()).unwrap())
}

#[test]
fn webpki_accepts_permitted_leaves() {
    let h = common::hierarchy(&["routers.example.com", "10.0.0.0/8"], false);
    let leaf = h.issue(&["r1.routers.example.com"], pki::KeyType::EcdsaP256);
    webpki_verify(&h, &leaf, "r1.routers.example.com").unwrap();
    let ip_leaf = h.issue(&["10.1.2.3"], pki::KeyType::Rsa2048);
    webpki_verify(&h, &ip_leaf, "10.1.2.3").unwrap();
}

#[test]
fn webpki_rejects_leaves_outside_name_constraints() {
    let h = common::hierarchy(&["routers.example.com"], false);
    for name in ["evilrouters.example.com", "www.example.org"] {
        let leaf = h.issue_bypassing_policy(&[name]);
        let err = webpki_verify(&h, &leaf, name).unwrap_err();
        assert!(
            matches!(err, webpki::Error::NameConstraintViolation),
            "{name}: {err:?}"
        );
    }
    // No IP range permitted: every IP is excluded (BR §7.1.2.5.2).
    let leaf = h.issue_bypassing_policy(&["10.1.2.3"]);
    let err = webpki_verify(&h, &leaf, "10.1.2.3").unwrap_err();
    assert!(
        matches!(err, webpki::Error::NameConstraintViolation),
        "{err:?}"
    );
}

fn openssl_verify(dir: &std::path::Path, leaf: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args([
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            leaf,
        ])
        .output()
        .expect("the openssl command is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn openssl_verifies_chain_and_enforces_constraints() {
    let h = common::hierarchy(&["routers.example.com", "10.0.0.0/8"], true);
    let good = h.issue(
        &["r1.routers.example.com", "10.9.8.7"],
        pki::KeyType::EcdsaP256,
    );
    let evil = h.issue_bypassing_policy(&["evilrouters.example.com"]);
    let evil_ip = h.issue_bypassing_policy(&["192.168.1.1"]);
    let dir = tempfile::tempdir().unwrap();
    h.write_pems(
        dir.path(),
        &[
            ("good.pem", &good),
            ("evil.pem", &evil),
            ("evil-ip.pem", &evil_ip),
        ],
    );
    let (ok, text) = openssl_verify(dir.path(), "good.pem");
    assert!(ok && text.contains("OK"), "{text}");
    for leaf in ["evil.pem", "evil-ip.pem"] {
        let (ok, text) = openssl_verify(dir.path(), leaf);
        assert!(!ok, "{leaf} should fail: {text}");
        assert!(
            text.contains("name constraint") || text.contains("permitted subtree"),
            "{text}"
        );
    }
}

#[test]
fn crls_parse_and_verify_with_openssl() {
    let h = common::hierarchy(&["routers.example.com"], false);
    let leaf = h.issue(&["r1.routers.example.com"], pki::KeyType::EcdsaP256);
    let serial = pki::serial_of(&leaf).unwrap();
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let entries = [pki::RevokedEntry {
        serial: serial.clone(),
        revoked_at: now,
        reason: Some(1),
    }];
    let crl = pki::build_crl(
        &h.ca_der,
        h.ca.as_ref(),
        &entries,
        now,
        now + time::Duration::days(7),
        42,
        Some(&h.issuer.crl_url().unwrap()),
    )
    .unwrap();
    let root_crl = pki::build_crl(
        &h.root_der,
        h.root.as_ref(),
        &[],
        now,
        now + time::Duration::days(7),
        1,
        None,
    )
    .unwrap();
    // webpki parses it and finds the serial.
    let parsed = webpki::OwnedCertRevocationList::from_der(&crl).unwrap();
    assert!(webpki::CertRevocationList::from(parsed)
        .find_serial(&serial)
        .unwrap()
        .is_some());
    // Bad reason codes are refused.
    let bad = [pki::RevokedEntry {
        serial,
        revoked_at: now,
        reason: Some(7),
    }];
    assert!(pki::build_crl(
        &h.ca_der,
        h.ca.as_ref(),
        &bad,
        now,
        now + time::Duration::days(1),
        1,
        None
    )
    .is_err());

    let dir = tempfile::tempdir().unwrap();
    h.write_pems(dir.path(), &[("leaf.pem", &leaf)]);
    let crls = format!(
        "{}{}",
        pki::der_to_pem("X509 CRL", &crl),
        pki::der_to_pem("X509 CRL", &root_crl)
    );
    std::fs::write(dir.path().join("crls.pem"), crls).unwrap();
    let out = Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "verify",
            "-crl_check_all",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "-CRLfile",
            "crls.pem",
            "leaf.pem",
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("certificate revoked"), "{text}");
}

/// Public trust adds a directoryName permitted subtree (BR §7.1.2.5.2). OpenSSL enforces it
/// and accepts the empty leaf subject inside it; rustls-webpki does not implement
/// directoryName constraints and refuses every chain below one, which is why private-trust
/// tenants (rustls devices) keep none.
#[test]
fn directory_name_constraint_openssl_accepts_and_webpki_refuses() {
    let h = common::hierarchy_for(pki::CaProfile {
        trust: pki::CaTrust::Public,
        ..common::profile(&["routers.example.com"], false)
    });
    let leaf = h.issue(&["r1.routers.example.com"], pki::KeyType::EcdsaP256);
    let dir = tempfile::tempdir().unwrap();
    h.write_pems(dir.path(), &[("leaf.pem", &leaf)]);
    let (ok, text) = openssl_verify(dir.path(), "leaf.pem");
    assert!(ok && text.contains("OK"), "{text}");
    let err = webpki_verify(&h, &leaf, "r1.routers.example.com").unwrap_err();
    assert!(
        matches!(err, webpki::Error::NameConstraintViolation),
        "{err:?}"
    );
}
