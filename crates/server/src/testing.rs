//! Fixtures for tests of the registration authority without a server process: a fresh root,
//! an issuing CA constrained to `routers.example.com`, its tenant, and an RA over a
//! scratch SQLite database (a file in a private temporary directory). Used by the RA's unit tests and by integration tests
//! (`tests/attestation.rs`); not meant for production code.

use crate::ca::{IssuingCa, IssuingCaParts};
use crate::clock::OffsetClock;
use crate::ra::{Ra, RaConfig, RaParts};
use crate::sa::{Database, SqliteStorage};
use crate::tenant::Tenant;
use crate::va::{Va, VaConfig};
use pki::ca::CaProfile;
use pki::policy::Permitted;
use pki::signer::{FileSigner, Signer};
use std::sync::Arc;
use std::time::Duration;

/// An RA with one tenant, `default`, whose CA may issue for `routers.example.com` and which
/// trusts `attestation_roots` (DER) for `device-attest-01`; the clock can be moved.
///
/// # Panics
/// If key generation or CA creation fails (a broken build, not a test outcome).
pub async fn ra_with_tenant(
    attestation_roots: Vec<Vec<u8>>,
) -> (Arc<Ra>, Arc<OffsetClock>, Arc<Tenant>) {
    let root = FileSigner::new(pki::keys::generate(pki::keys::KeyType::EcdsaP256).expect("key"));
    let root_der = pki::ca::create_root("test root", &root, None).expect("root");
    let signer: Arc<dyn Signer> = Arc::new(FileSigner::new(
        pki::keys::generate(pki::keys::KeyType::EcdsaP256).expect("key"),
    ));
    let profile = CaProfile {
        permitted: Permitted::parse(&["routers.example.com".to_string()]).expect("permitted"),
        crl_base_url: "http://ca.example.com".into(),
        common_name: "test issuing".into(),
        ..Default::default()
    };
    let cert_der =
        pki::ca::create_issuing_ca(&root_der, &root, signer.public_key_der(), &profile, None)
            .expect("issuing CA");
    let issuer = pki::issue::Issuer::new(
        "default",
        cert_der.clone(),
        vec![root_der.clone()],
        signer.clone(),
        profile,
        Vec::new(),
    )
    .expect("issuer");
    let ca = Arc::new(IssuingCa::new(IssuingCaParts {
        name: "default".into(),
        tenant: "default".into(),
        issuer,
        signer,
        cert_der,
        intermediates: Vec::new(),
        root_der: Some(root_der),
        root_crl: None,
        lifetime: Duration::from_secs(30 * 86400),
        backdate: Duration::from_secs(3600),
        crl_shards: 0,
        ocsp_responder: None,
    }));
    let tenant = Arc::new(Tenant {
        disabled: false,
        name: "default".into(),
        base_url: "https://ca.test".into(),
        ca,
        terms_of_service: None,
        website: None,
        caa_identities: vec![],
        external_account_required: false,
        challenge_types: crate::datadir::default_challenges(),
        attestation_roots,
        attested_names: Vec::new(),
        retired: Vec::new(),
        ct: None,
    });
    let clock = Arc::new(OffsetClock::default());
    let db: Arc<dyn Database> = Arc::new(
        SqliteStorage::open_scratch()
            .await
            .expect("scratch SQLite database"),
    );
    let ra = Ra::new(RaParts::new(
        db,
        clock.clone(),
        vec![tenant.clone()],
        Va::new(VaConfig::default()).expect("validation authority"),
        RaConfig::default(),
    ));
    (ra, clock, tenant)
}
