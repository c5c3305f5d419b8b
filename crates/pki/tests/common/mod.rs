//! A test hierarchy: root (P-384) -> constrained issuing CA (P-256) -> leaves.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::sync::Arc;

use pki::{
    create_issuing_ca, create_root_with_subject, der_to_pem, generate, CaProfile, CaSubject,
    FileSigner, Identifier, IssueRequest, Issuer, KeyType, Permitted, Signer,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
use time::{Duration, OffsetDateTime};

pub struct Hierarchy {
    pub root: Arc<FileSigner>,
    pub root_der: Vec<u8>,
    pub ca: Arc<FileSigner>,
    pub ca_der: Vec<u8>,
    pub issuer: Issuer,
    pub profile: CaProfile,
}

pub fn profile(permits: &[&str], client_auth: bool) -> CaProfile {
    CaProfile {
        permitted: Permitted::parse(&permits.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap(),
        client_auth,
        crl_base_url: "http://ca.example.net".into(),
        organization: Some("Example Devices Inc".into()),
        common_name: "Example Devices Issuing CA".into(),
        country: Some("US".into()),
        trust: Default::default(),
    }
}

pub fn hierarchy(permits: &[&str], client_auth: bool) -> Hierarchy {
    hierarchy_for(profile(permits, client_auth))
}

pub fn hierarchy_for(profile: CaProfile) -> Hierarchy {
    let root = Arc::new(FileSigner::new(generate(KeyType::EcdsaP384).unwrap()));
    let subject = CaSubject {
        common_name: "Example Devices Root CA".into(),
        organization: Some("Example Devices Inc".into()),
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
        ca_der.clone(),
        vec![root_der.clone()],
        ca.clone(),
        profile.clone(),
        Vec::new(),
    )
    .unwrap();
    Hierarchy {
        root,
        root_der,
        ca,
        ca_der,
        issuer,
        profile,
    }
}

pub fn csr(key: &KeyPair, names: &[&str]) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = names.iter().map(|s| san(s)).collect();
    params.serialize_request(key).unwrap().der().to_vec()
}

pub fn san(s: &str) -> SanType {
    match s.parse::<std::net::IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(s.to_string().try_into().unwrap()),
    }
}

impl Hierarchy {
    /// Issues a leaf through the real issuance path.
    pub fn issue(&self, names: &[&str], key_type: KeyType) -> Vec<u8> {
        let key = generate(key_type).unwrap();
        let now = OffsetDateTime::now_utc();
        self.issuer
            .issue(&IssueRequest {
                csr_der: csr(&key, names),
                identifiers: names
                    .iter()
                    .map(|n| Identifier::parse_any(n).unwrap())
                    .collect(),
                not_before: now - Duration::minutes(1),
                not_after: now + Duration::days(90),
            })
            .unwrap()
            .der
    }

    /// Issues a leaf valid for `lifetime` with the given revocation pointers.
    pub fn issue_with(
        &self,
        names: &[&str],
        key_type: KeyType,
        lifetime: Duration,
        opts: &pki::LeafOptions,
    ) -> Result<Vec<u8>, pki::IssueError> {
        let key = generate(key_type).unwrap();
        let now = OffsetDateTime::now_utc();
        self.issuer
            .issue_with(
                &IssueRequest {
                    csr_der: csr(&key, names),
                    identifiers: names
                        .iter()
                        .map(|n| Identifier::parse_any(n).unwrap())
                        .collect(),
                    not_before: now - Duration::minutes(1),
                    not_after: now + lifetime,
                },
                opts,
            )
            .map(|i| i.der)
    }

    /// Signs a leaf directly with rcgen and the issuing CA key, bypassing the policy checks.
    pub fn issue_bypassing_policy(&self, names: &[&str]) -> Vec<u8> {
        let key = generate(KeyType::EcdsaP256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = names.iter().map(|s| san(s)).collect();
        params.not_before = OffsetDateTime::now_utc() - Duration::minutes(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(90);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x42; 16]));
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let issuer =
            rcgen::Issuer::from_ca_cert_der(&self.ca_der.clone().into(), self.ca.key_pair())
                .unwrap();
        params.signed_by(&key, &issuer).unwrap().der().to_vec()
    }

    /// Writes root.pem, issuing.pem and the given leaves to `dir`.
    pub fn write_pems(&self, dir: &Path, leaves: &[(&str, &[u8])]) {
        std::fs::write(
            dir.join("root.pem"),
            der_to_pem("CERTIFICATE", &self.root_der),
        )
        .unwrap();
        std::fs::write(
            dir.join("issuing.pem"),
            der_to_pem("CERTIFICATE", &self.ca_der),
        )
        .unwrap();
        for (name, der) in leaves {
            std::fs::write(dir.join(name), der_to_pem("CERTIFICATE", der)).unwrap();
        }
    }
}
