use rcgen::{CidrSubnet, GeneralSubtree, NameConstraints};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::*;
use crate::keys::{generate, KeyType};
use crate::signer::FileSigner;

fn signer(kt: KeyType) -> FileSigner {
    FileSigner::new(generate(kt).unwrap())
}

fn profile(permits: &[&str]) -> CaProfile {
    CaProfile {
        permitted: Permitted::parse(&permits.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap(),
        client_auth: true,
        crl_base_url: "http://ca.example.net/".into(),
        organization: Some("Example".into()),
        common_name: "Example Issuing CA".into(),
        country: Some("DE".into()),
        trust: CaTrust::Private,
    }
}

fn public_profile(permits: &[&str]) -> CaProfile {
    CaProfile {
        trust: CaTrust::Public,
        ..profile(permits)
    }
}

/// The directoryName subtrees of a certificate's or CSR's Name Constraints, as strings.
fn directory_subtrees(nc: &x509_parser::extensions::NameConstraints<'_>) -> Vec<String> {
    nc.permitted_subtrees
        .iter()
        .flatten()
        .filter_map(|s| match &s.base {
            GeneralName::DirectoryName(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn public_trust_constrains_the_directory_name_and_private_trust_does_not() {
    let (root, root_der, sub, _, _) = hierarchy(&["routers.example.com"]);
    let public = create_issuing_ca(
        &root_der,
        &root,
        sub.public_key_der(),
        &public_profile(&["routers.example.com"]),
        None,
    )
    .unwrap();
    let c = parse(&public);
    let nc = c.name_constraints().unwrap().unwrap();
    assert!(nc.critical);
    assert_eq!(directory_subtrees(nc.value), ["C=DE, O=Example"]);
    // The subtree covers the CA's own subject (its C and O come first).
    assert_eq!(
        c.subject().to_string(),
        "C=DE, O=Example, CN=Example Issuing CA"
    );

    let private = create_issuing_ca(
        &root_der,
        &root,
        sub.public_key_der(),
        &profile(&["routers.example.com"]),
        None,
    )
    .unwrap();
    let c = parse(&private);
    assert!(directory_subtrees(c.name_constraints().unwrap().unwrap().value).is_empty());

    // The CSR asks for the same subtree.
    let pem_text = subca_csr(&sub, &public_profile(&["routers.example.com"])).unwrap();
    let der = crate::cert_info::pem_to_ders(&pem_text).unwrap().remove(0);
    let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
    let dirs: Vec<_> = csr
        .requested_extensions()
        .unwrap()
        .filter_map(|e| match e {
            ParsedExtension::NameConstraints(nc) => Some(directory_subtrees(nc)),
            _ => None,
        })
        .collect();
    assert_eq!(dirs, [vec!["C=DE, O=Example".to_string()]]);
}

#[test]
fn public_trust_requires_country_and_organization() {
    let sub = signer(KeyType::EcdsaP256);
    for p in [
        CaProfile {
            country: None,
            ..public_profile(&["routers.example.com"])
        },
        CaProfile {
            organization: None,
            ..public_profile(&["routers.example.com"])
        },
    ] {
        let e = subca_csr(&sub, &p).unwrap_err();
        assert!(e.to_string().contains("BR §7.1.2.10.2"), "{e}");
    }
}

#[test]
fn imported_public_ca_needs_the_directory_name_subtree() {
    let root = signer(KeyType::EcdsaP256);
    let root_der = create_root("Outside Root", &root, None).unwrap();
    let sub = signer(KeyType::EcdsaP256);
    let p = public_profile(&["routers.example.com", "10.0.0.0/8"]);
    let chain = vec![root_der.clone()];
    let check = |der: &[u8]| check_imported_issuing_ca(der, &chain, &sub, &p);
    let import_err = |r: Result<(), PkiError>| match r {
        Err(PkiError::Import(e)) => e,
        other => panic!("expected an import error, got {other:?}"),
    };
    let permitted = Permitted::parse(&["a.routers.example.com".into()]).unwrap();
    // What the private profile accepts lacks the directoryName for public trust.
    let e = import_err(check(&outside_ca(&root, &root_der, &sub, |_| {})));
    assert!(matches!(e, ImportError::DirectoryNameUnconstrained), "{e}");
    // Another organisation's subtree.
    let other_org = CaSubject {
        common_name: String::new(),
        organization: Some("Someone Else".into()),
        country: Some("DE".into()),
    };
    let e = import_err(check(&outside_ca(&root, &root_der, &sub, |c| {
        c.name_constraints =
            Some(extensions::name_constraints(&permitted, Some(&other_org)).unwrap())
    })));
    assert!(
        matches!(e, ImportError::DirectoryNameOutsideProfile(_)),
        "{e}"
    );
    let ours = p.permitted_directory_name().unwrap().unwrap();
    let good = |c: &mut CertificateParams| {
        c.name_constraints = Some(extensions::name_constraints(&permitted, Some(&ours)).unwrap())
    };
    check(&outside_ca(&root, &root_der, &sub, good)).unwrap();
    // A subject other than the CSR's (here without its organisation).
    let e = import_err(check(&outside_ca(&root, &root_der, &sub, |c| {
        good(c);
        c.distinguished_name = CaSubject {
            organization: None,
            ..p.subject()
        }
        .distinguished_name()
        .unwrap();
    })));
    assert!(matches!(e, ImportError::SubjectMismatch(_)), "{e}");
    // fleetca's own public-profile issuing CA passes.
    let own = create_issuing_ca(&root_der, &root, sub.public_key_der(), &p, None).unwrap();
    check(&own).unwrap();
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).unwrap().1
}

#[test]
fn root_profile() {
    let s = signer(KeyType::EcdsaP256);
    let der = create_root("Example Root", &s, None).unwrap();
    let c = parse(&der);
    let bc = c.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca && bc.value.path_len_constraint.is_none());
    let ku = c.key_usage().unwrap().unwrap();
    assert!(ku.critical && ku.value.key_cert_sign() && ku.value.crl_sign());
    assert_eq!(c.raw_serial().len(), 16);
    let days =
        (c.validity().not_after.to_datetime() - c.validity().not_before.to_datetime()).whole_days();
    assert!((7300..=7310).contains(&days), "{days}");
    c.verify_signature(None).unwrap();
    // Two roots from one key still get different serials (STACK pitfall 1).
    let again = create_root("Example Root", &s, None).unwrap();
    assert_ne!(parse(&again).raw_serial(), c.raw_serial());
}

#[test]
fn root_validity_is_bounded() {
    let s = signer(KeyType::EcdsaP256);
    let too_long = Validity::days_from_now(ROOT_MAX_DAYS + 1);
    assert!(matches!(
        create_root("R", &s, Some(too_long)),
        Err(PkiError::InvalidValidity(_))
    ));
    let inverted = Validity {
        not_before: too_long.not_after,
        not_after: too_long.not_before,
    };
    assert!(create_root("R", &s, Some(inverted)).is_err());
    assert!(create_root("", &s, None).is_err());
}

fn hierarchy(permits: &[&str]) -> (FileSigner, Vec<u8>, FileSigner, Vec<u8>, CaProfile) {
    let root = signer(KeyType::EcdsaP384);
    let root_der = create_root("Root", &root, None).unwrap();
    let sub = signer(KeyType::EcdsaP256);
    let p = profile(permits);
    let der = create_issuing_ca(&root_der, &root, sub.public_key_der(), &p, None).unwrap();
    (root, root_der, sub, der, p)
}

#[test]
fn issuing_ca_profile() {
    let (_, root_der, _, der, _) = hierarchy(&["routers.example.com", "10.0.0.0/8"]);
    let c = parse(&der);
    c.verify_signature(Some(parse(&root_der).public_key()))
        .unwrap();
    let bc = c.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca && bc.value.path_len_constraint == Some(0));
    let eku = c.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let nc = c.name_constraints().unwrap().unwrap();
    assert!(nc.critical);
    let permitted: Vec<_> = nc.value.permitted_subtrees.clone().unwrap();
    assert!(matches!(
        permitted[0].base,
        GeneralName::DNSName("routers.example.com")
    ));
    assert!(matches!(
        permitted[1].base,
        GeneralName::IPAddress(&[10, 0, 0, 0, 255, 0, 0, 0])
    ));
    assert!(nc.value.excluded_subtrees.is_none());
    let mut urls = Vec::new();
    for ext in c.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::CRLDistributionPoints(d) => urls.push(format!("{d:?}")),
            ParsedExtension::AuthorityInfoAccess(a) => urls.push(format!("{a:?}")),
            ParsedExtension::CertificatePolicies(p) => {
                assert_eq!(p[0].policy_id.to_id_string(), "2.23.140.1.2.1")
            }
            _ => {}
        }
    }
    let urls = urls.join(" ");
    assert!(
        urls.contains("http://ca.example.net/crl/root.crl"),
        "{urls}"
    );
    assert!(urls.contains("http://ca.example.net/ca/root.cer"), "{urls}");
}

#[test]
fn issuing_ca_exclusions_when_a_name_type_is_not_permitted() {
    let (_, _, _, der, _) = hierarchy(&["routers.example.com"]);
    let c = parse(&der);
    let nc = c.name_constraints().unwrap().unwrap().value;
    let excluded: Vec<_> = nc.excluded_subtrees.clone().unwrap();
    assert!(matches!(excluded[0].base, GeneralName::IPAddress(b) if b == [0u8; 8]));
    assert!(matches!(excluded[1].base, GeneralName::IPAddress(b) if b == [0u8; 32]));

    let (_, _, _, der, _) = hierarchy(&["fd00::/8"]);
    let c = parse(&der);
    let nc = c.name_constraints().unwrap().unwrap().value;
    let excluded: Vec<_> = nc.excluded_subtrees.clone().unwrap();
    assert!(matches!(excluded[0].base, GeneralName::DNSName("")));
}

#[test]
fn issuing_ca_rejects_mismatched_signer_and_bad_urls() {
    let (_, root_der, sub, _, p) = hierarchy(&["routers.example.com"]);
    let other = signer(KeyType::EcdsaP256);
    assert!(matches!(
        create_issuing_ca(&root_der, &other, sub.public_key_der(), &p, None),
        Err(PkiError::SignerMismatch)
    ));
    let root = signer(KeyType::EcdsaP256);
    let root_der = create_root("Root", &root, None).unwrap();
    let mut https = p.clone();
    https.crl_base_url = "https://ca.example.net".into();
    assert!(matches!(
        create_issuing_ca(&root_der, &root, sub.public_key_der(), &https, None),
        Err(PkiError::InvalidProfile(_))
    ));
    let long = Validity::days_from_now(ROOT_DEFAULT_DAYS + 30);
    assert!(matches!(
        create_issuing_ca(&root_der, &root, sub.public_key_der(), &p, Some(long)),
        Err(PkiError::InvalidValidity(_))
    ));
}

#[test]
fn subca_csr_carries_constraints() {
    let sub = signer(KeyType::EcdsaP256);
    let p = profile(&["routers.example.com"]);
    let pem_text = subca_csr(&sub, &p).unwrap();
    let der = crate::cert_info::pem_to_ders(&pem_text).unwrap().remove(0);
    let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
    csr.verify_signature().unwrap();
    let exts: Vec<_> = csr.requested_extensions().unwrap().collect();
    assert!(exts.iter().any(|e| matches!(e,
        ParsedExtension::BasicConstraints(b) if b.ca && b.path_len_constraint == Some(0))));
    assert!(exts.iter().any(|e| matches!(e,
        ParsedExtension::NameConstraints(nc) if nc.excluded_subtrees.as_ref().is_some_and(|x| x.len() == 2))));
    assert!(exts
        .iter()
        .any(|e| matches!(e, ParsedExtension::ExtendedKeyUsage(u) if u.server_auth)));
}

/// Builds an issuing CA certificate the way an outside root might, with `tweak` applied.
fn outside_ca(
    root: &FileSigner,
    root_der: &[u8],
    sub: &FileSigner,
    tweak: impl FnOnce(&mut CertificateParams),
) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.distinguished_name = profile(&[]).subject().distinguished_name().unwrap();
    params.serial_number = Some(random_serial().unwrap());
    let v = Validity::days_from_now(365);
    params.not_before = v.not_before;
    params.not_after = v.not_after;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = ca_key_usages();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.name_constraints = Some(
        extensions::name_constraints(
            &Permitted::parse(&["a.routers.example.com".into()]).unwrap(),
            None,
        )
        .unwrap(),
    );
    tweak(&mut params);
    let issuer =
        rcgen::Issuer::from_ca_cert_der(&root_der.to_vec().into(), root.key_pair()).unwrap();
    let spki = rcgen::SubjectPublicKeyInfo::from_der(sub.public_key_der()).unwrap();
    params.signed_by(&spki, &issuer).unwrap().der().to_vec()
}

#[test]
fn imported_ca_checks() {
    let root = signer(KeyType::EcdsaP256);
    let root_der = create_root("Outside Root", &root, None).unwrap();
    let sub = signer(KeyType::EcdsaP256);
    let p = profile(&["routers.example.com", "10.0.0.0/8"]);
    let chain = vec![root_der.clone()];
    let check = |der: &[u8]| check_imported_issuing_ca(der, &chain, &sub, &p);

    check(&outside_ca(&root, &root_der, &sub, |_| {})).unwrap();
    // Our own issuing CA passes too.
    let own = create_issuing_ca(&root_der, &root, sub.public_key_der(), &p, None).unwrap();
    check(&own).unwrap();

    let import_err = |r: Result<(), PkiError>| match r {
        Err(PkiError::Import(e)) => e,
        other => panic!("expected an import error, got {other:?}"),
    };
    let other = signer(KeyType::EcdsaP256);
    let e = import_err(check_imported_issuing_ca(
        &outside_ca(&root, &root_der, &sub, |_| {}),
        &chain,
        &other,
        &p,
    ));
    assert!(matches!(e, ImportError::KeyMismatch), "{e}");
    let e = import_err(check(&outside_ca(&root, &root_der, &sub, |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1))
    })));
    assert!(matches!(e, ImportError::PathLen(Some(1))), "{e}");
    let e = import_err(check(&outside_ca(&root, &root_der, &sub, |p| {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)
    })));
    assert!(matches!(e, ImportError::PathLen(None)), "{e}");
    let e = import_err(check(&outside_ca(&root, &root_der, &sub, |p| {
        p.is_ca = IsCa::ExplicitNoCa
    })));
    assert!(matches!(e, ImportError::NotCa), "{e}");
    let e = import_err(check(&outside_ca(&root, &root_der, &sub, |p| {
        p.key_usages = vec![KeyUsagePurpose::CrlSign]
    })));
    assert!(matches!(e, ImportError::MissingKeyCertSign), "{e}");
    let e = import_err(check(&outside_ca(&root, &root_der, &sub, |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth]
    })));
    assert!(matches!(e, ImportError::MissingServerAuth), "{e}");
    let e = import_err(check(&outside_ca(&root, &root_der, &sub, |p| {
        p.name_constraints = None
    })));
    assert!(matches!(e, ImportError::MissingNameConstraints), "{e}");
    let e = import_err(check(&outside_ca(&root, &root_der, &sub, |p| {
        p.name_constraints = Some(
            extensions::name_constraints(&Permitted::parse(&["example.com".into()]).unwrap(), None)
                .unwrap(),
        )
    })));
    assert!(matches!(e, ImportError::DnsSubtreeOutsideProfile(_)), "{e}");
    let e = import_err(check(&outside_ca(&root, &root_der, &sub, |p| {
        p.name_constraints = Some(
            extensions::name_constraints(&Permitted::parse(&["11.0.0.0/8".into()]).unwrap(), None)
                .unwrap(),
        )
    })));
    assert!(matches!(e, ImportError::IpSubtreeOutsideProfile(_)), "{e}");
    let e = import_err(check(&outside_ca(&root, &root_der, &sub, |p| {
        p.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::DnsName("a.routers.example.com".into())],
            excluded_subtrees: vec![GeneralSubtree::IpAddress(CidrSubnet::V4([0; 4], [0; 4]))],
        })
    })));
    assert!(matches!(e, ImportError::IpUnconstrained), "{e}");
    let e = import_err(check(&outside_ca(&root, &root_der, &sub, |p| {
        p.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix(
                [10, 1, 0, 0],
                16,
            ))],
            excluded_subtrees: vec![],
        })
    })));
    assert!(matches!(e, ImportError::DnsUnconstrained), "{e}");

    let good = outside_ca(&root, &root_der, &sub, |_| {});
    let later = OffsetDateTime::now_utc() + Duration::days(400);
    let e = import_err(check_imported_issuing_ca_at(&good, &chain, &sub, &p, later));
    assert!(matches!(e, ImportError::Expired(_)), "{e}");
    let earlier = OffsetDateTime::now_utc() - Duration::days(1);
    let e = import_err(check_imported_issuing_ca_at(
        &good, &chain, &sub, &p, earlier,
    ));
    assert!(matches!(e, ImportError::NotYetValid(_)), "{e}");

    // A different root with the same name did not sign it.
    let impostor = signer(KeyType::EcdsaP256);
    let impostor_der = create_root("Outside Root", &impostor, None).unwrap();
    let e = import_err(check_imported_issuing_ca(&good, &[impostor_der], &sub, &p));
    assert!(
        matches!(e, ImportError::BadChainSignature { index: 0, .. }),
        "{e}"
    );
    let unrelated = create_root("Someone Else", &impostor, None).unwrap();
    let e = import_err(check_imported_issuing_ca(&good, &[unrelated], &sub, &p));
    assert!(
        matches!(e, ImportError::IssuerNameMismatch { index: 0 }),
        "{e}"
    );
}
