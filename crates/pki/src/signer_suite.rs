//! The contract every [`Signer`] meets, written once and run for each implementation
//! ([`FileSigner`] here, `Pkcs11Signer` in `pkcs11_tests.rs` against a SoftHSM2 token).
//!
//! A signer passes when what it signs verifies against the public key it reports, in every
//! role a CA key plays: a self-signed root, an issuing CA certificate signed by it (the root
//! role), end-entity certificates issued through [`Issuer`] (the issuing-CA role), CRLs, and
//! a raw message checked with aws-lc-rs directly.

use std::sync::Arc;

use rcgen::{CertificateParams, SanType};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::ca::{create_issuing_ca, create_root_with_subject, CaProfile, CaSubject};
use crate::identifier::Identifier;
use crate::issue::{IssueRequest, Issuer};
use crate::keys::{generate, KeyType};
use crate::policy::Permitted;
use crate::signer::{FileSigner, Signer};

fn profile() -> CaProfile {
    CaProfile {
        permitted: Permitted::parse(&["routers.example.com".into()]).unwrap(),
        client_auth: false,
        crl_base_url: "http://ca.example.net".into(),
        organization: Some("Example Devices".into()),
        common_name: "Example Devices Issuing CA".into(),
        country: None,
        trust: Default::default(),
    }
}

fn cert(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).unwrap().1
}

/// Checks a raw signature with aws-lc-rs, the way a relying party's library would.
pub(crate) fn verify_raw(signer: &dyn Signer, msg: &[u8], sig: &[u8]) {
    use aws_lc_rs::signature;
    let alg: &dyn signature::VerificationAlgorithm = match signer.algorithm() {
        a if a == &rcgen::PKCS_ECDSA_P256_SHA256 => &signature::ECDSA_P256_SHA256_ASN1,
        a if a == &rcgen::PKCS_ECDSA_P384_SHA384 => &signature::ECDSA_P384_SHA384_ASN1,
        a if a == &rcgen::PKCS_RSA_SHA256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        other => panic!("unexpected algorithm {other:?}"),
    };
    let (_, spki) =
        x509_parser::x509::SubjectPublicKeyInfo::from_der(signer.public_key_der()).unwrap();
    signature::UnparsedPublicKey::new(alg, &spki.subject_public_key.data)
        .verify(msg, sig)
        .expect("the signature verifies against the signer's public key");
}

/// Runs the whole contract against `signer` of type `key_type`.
pub(crate) fn exercise(signer: Arc<dyn Signer>, key_type: KeyType) {
    let expected_alg = match key_type {
        KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        _ => &rcgen::PKCS_RSA_SHA256,
    };
    assert_eq!(signer.algorithm(), expected_alg, "{key_type}");
    signer.check_available().unwrap();

    // Raw messages, including an empty one and one longer than a hash block.
    for msg in [&b""[..], b"fleetca", &[0xa5; 1000]] {
        let sig = signer.sign(msg).unwrap();
        verify_raw(signer.as_ref(), msg, &sig);
    }

    // Root role: a self-signed root, an issuing CA under it, and the root's CRL.
    let subject = CaSubject {
        common_name: format!("suite root {key_type}"),
        organization: None,
        country: None,
    };
    let root_der = create_root_with_subject(&subject, signer.as_ref(), None).unwrap();
    let root = cert(&root_der);
    root.verify_signature(None).expect("self-signed root");
    assert_eq!(root.public_key().raw, signer.public_key_der());
    let sub = FileSigner::new(generate(KeyType::EcdsaP256).unwrap());
    let sub_der = create_issuing_ca(
        &root_der,
        signer.as_ref(),
        sub.public_key_der(),
        &profile(),
        None,
    )
    .unwrap();
    cert(&sub_der)
        .verify_signature(Some(root.public_key()))
        .expect("issuing CA signed by the root");
    let now = OffsetDateTime::now_utc();
    let crl_der = crate::crl::build_crl(
        &root_der,
        signer.as_ref(),
        &[],
        now,
        now + Duration::days(1),
        7,
        None,
    )
    .unwrap();
    let (_, crl) = CertificateRevocationList::from_der(&crl_der).unwrap();
    x509_parser::verify::verify_signature(
        root.public_key(),
        &crl.signature_algorithm,
        &crl.signature_value,
        crl.tbs_cert_list.as_ref(),
    )
    .expect("CRL signed by the root");

    // Issuing-CA role: the signer's key certified by a software root, then leaves.
    let file_root = FileSigner::new(generate(KeyType::EcdsaP384).unwrap());
    let file_root_der = create_root_with_subject(&subject, &file_root, None).unwrap();
    let ca_der = create_issuing_ca(
        &file_root_der,
        &file_root,
        signer.public_key_der(),
        &profile(),
        None,
    )
    .unwrap();
    let issuer = Issuer::new(
        "suite",
        ca_der.clone(),
        vec![file_root_der],
        signer.clone(),
        profile(),
        Vec::new(),
    )
    .unwrap();
    let leaf_key = generate(KeyType::EcdsaP256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = vec![SanType::DnsName(
        "dev1.routers.example.com".try_into().unwrap(),
    )];
    let csr = params.serialize_request(&leaf_key).unwrap().der().to_vec();
    let issued = issuer
        .issue(&IssueRequest {
            csr_der: csr,
            identifiers: vec![Identifier::parse_any("dev1.routers.example.com").unwrap()],
            not_before: now,
            not_after: now + Duration::days(30),
        })
        .unwrap();
    cert(&issued.der)
        .verify_signature(Some(cert(&ca_der).public_key()))
        .expect("leaf signed by the issuing CA");
}

#[test]
fn file_signer_meets_the_contract() {
    for kt in [
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::Rsa2048,
        KeyType::Rsa3072,
    ] {
        exercise(Arc::new(FileSigner::new(generate(kt).unwrap())), kt);
    }
}
