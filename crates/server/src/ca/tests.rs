//! The CA role while its key cannot sign (an HSM token removed or reset): issuance fails with
//! `SignerUnavailable` (serverInternal + Retry-After), and the stored CRL is served until its
//! nextUpdate instead of failing relying parties.

use super::*;
use crate::clock::OffsetClock;
use crate::sa::SqliteStorage;
use pki::ca::CaProfile;
use pki::signer::FileSigner;
use std::sync::atomic::{AtomicBool, Ordering};

/// A file key that can be switched off, like a token being unplugged.
struct Switchable {
    key: FileSigner,
    down: AtomicBool,
}

impl Signer for Switchable {
    fn public_key_der(&self) -> &[u8] {
        self.key.public_key_der()
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.key.algorithm()
    }
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, pki::PkiError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(pki::PkiError::Signing("token removed".into()));
        }
        self.key.sign(msg)
    }
}

fn ca_with(signer: Arc<Switchable>) -> IssuingCa {
    let root = FileSigner::new(pki::keys::generate(pki::keys::KeyType::EcdsaP256).unwrap());
    let root_der = pki::ca::create_root("test root", &root, None).unwrap();
    let profile = CaProfile {
        permitted: Permitted::parse(&["routers.example.com".to_string()]).unwrap(),
        crl_base_url: "http://ca.example.com".into(),
        common_name: "test issuing".into(),
        ..Default::default()
    };
    let cert_der =
        pki::ca::create_issuing_ca(&root_der, &root, signer.public_key_der(), &profile, None)
            .unwrap();
    let signer: Arc<dyn Signer> = signer;
    let issuer = Issuer::new(
        "default",
        cert_der.clone(),
        vec![root_der.clone()],
        signer.clone(),
        profile,
        Vec::new(),
    )
    .unwrap();
    IssuingCa::new(IssuingCaParts {
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
    })
}

#[tokio::test]
async fn an_unavailable_key_refuses_issuance_and_keeps_serving_the_last_crl() {
    let signer = Arc::new(Switchable {
        key: FileSigner::new(pki::keys::generate(pki::keys::KeyType::EcdsaP256).unwrap()),
        down: AtomicBool::new(false),
    });
    let ca = ca_with(signer.clone());
    let sa = SqliteStorage::open_scratch().await.unwrap();
    let clock = OffsetClock::default();
    let first = ca.current_crl(&sa, &clock).await.unwrap();

    signer.down.store(true, Ordering::SeqCst);
    let key = pki::keys::generate(pki::keys::KeyType::EcdsaP256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["dev.routers.example.com".into()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).unwrap().der().to_vec();
    let ids = [Identifier::parse_any("dev.routers.example.com").unwrap()];
    let Err(e) = ca.issue(&csr, &ids, clock.now()) else {
        panic!("issued while the key is down");
    };
    assert!(matches!(e, Error::SignerUnavailable(_)), "{e}");
    assert_eq!(e.kind(), ProblemType::ServerInternal);

    // Past half its validity the CRL is due; the key cannot sign it, the stored one is served.
    clock.advance(CRL_VALIDITY.as_secs() as i64 * 3 / 4);
    let served = ca.current_crl(&sa, &clock).await.unwrap();
    assert_eq!(served.number, first.number);
    // Past its nextUpdate there is nothing valid to serve.
    clock.advance(CRL_VALIDITY.as_secs() as i64 / 2);
    let Err(e) = ca.current_crl(&sa, &clock).await else {
        panic!("a CRL past its nextUpdate was served");
    };
    assert!(matches!(e, Error::SignerUnavailable(_)), "{e}");

    signer.down.store(false, Ordering::SeqCst);
    let fresh = ca.current_crl(&sa, &clock).await.unwrap();
    assert!(fresh.number > first.number);
    ca.issue(&csr, &ids, clock.now()).unwrap();
}

/// Issue 15: a CA is built complete by [`IssuingCa::new`]; nothing configures a live one
/// afterwards (a request could otherwise meet one half set up).
#[test]
fn the_ca_has_no_setters() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ca");
    let mut setters = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("src/ca") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source");
        for (n, line) in text.lines().enumerate() {
            if line.contains("fn set_") {
                setters.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(setters.is_empty(), "setters in ca/: {setters:#?}");
}
