//! Issuance cost inside the CA, without HTTP or storage: CSR parse and checks, build, lint
//! and sign. Prints issuances per second and the share of one ECDSA P-256 signature, so a
//! change to the issue path can be compared on a machine whose speed drifts.
//!
//! `cargo bench -p fleetca-pki --bench issue [-- COUNT]`. Under `cargo test` (no `--bench`
//! argument) it issues a few certificates only, as a smoke test.

use std::sync::Arc;
use std::time::Instant;

use pki::{
    create_issuing_ca, create_root, generate, CaProfile, FileSigner, Identifier, IssueRequest,
    Issuer, KeyType, Permitted, Signer,
};
use rcgen::{CertificateParams, DistinguishedName};
use time::{Duration, OffsetDateTime};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let benching = args.iter().any(|a| a == "--bench");
    let count: usize = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(if benching { 5_000 } else { 20 });
    let profile = CaProfile {
        permitted: Permitted::parse(&["routers.example.com".into()]).expect("permitted"),
        client_auth: false,
        crl_base_url: "http://ca.example.net".into(),
        organization: Some("Example Devices".into()),
        common_name: "Example Devices Issuing CA".into(),
        country: Some("US".into()),
        trust: Default::default(),
    };
    let root = FileSigner::new(generate(KeyType::EcdsaP256).expect("root key"));
    let root_der = create_root("Bench Root", &root, None).expect("root");
    let ca = Arc::new(FileSigner::new(
        generate(KeyType::EcdsaP256).expect("CA key"),
    ));
    let ca_der = create_issuing_ca(&root_der, &root, ca.public_key_der(), &profile, None)
        .expect("issuing CA");
    let issuer = Issuer::new(
        "default",
        ca_der.to_vec(),
        vec![root_der.to_vec()],
        ca.clone(),
        profile,
        Vec::new(),
    )
    .expect("issuer");

    // The devices' side is made before the clock starts.
    let requests: Vec<IssueRequest> = (0..count)
        .map(|i| {
            let name = format!("d{i}.routers.example.com");
            let key = generate(KeyType::EcdsaP256).expect("device key");
            let mut params = CertificateParams::new(vec![name.clone()]).expect("params");
            params.distinguished_name = DistinguishedName::new();
            let now = OffsetDateTime::now_utc();
            IssueRequest {
                csr_der: params.serialize_request(&key).expect("csr").der().to_vec(),
                identifiers: vec![Identifier::parse_any(&name).expect("name")],
                not_before: now,
                not_after: now + Duration::days(6),
            }
        })
        .collect();
    let opts = pki::LeafOptions::default();

    let t = Instant::now();
    for _ in 0..count {
        ca.sign(b"one ECDSA P-256 signature, for scale")
            .expect("sign");
    }
    let sign = t.elapsed().as_secs_f64() / count as f64;

    let t = Instant::now();
    for r in &requests {
        issuer.issue_with(r, &opts).expect("issue");
    }
    let issue = t.elapsed().as_secs_f64() / count as f64;

    println!(
        "issue: {count} certificates, {:.0}/s, {:.1} µs each = {:.2} ECDSA P-256 signatures ({:.1} µs each)",
        1.0 / issue,
        issue * 1e6,
        issue / sign,
        sign * 1e6
    );
}
