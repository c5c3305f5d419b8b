//! `Pkcs11Signer` against a real SoftHSM2 token (Debian `softhsm2`; `.ci/run` installs it).
//!
//! One SoftHSM configuration serves the whole test binary: the library reads
//! `SOFTHSM2_CONF` once, at C_Initialize. Tests that disturb a token (log it out, take it
//! away) get a token of their own so they cannot break the others running in parallel.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use cryptoki::object::{Attribute, AttributeType, ObjectClass};

use super::*;
use crate::signer_suite::exercise;

const PIN: &str = "1234";

struct Hsm {
    module: PathBuf,
    /// Token label -> its directory under `directories.tokendir`.
    tokens: Vec<(String, PathBuf)>,
    _dir: tempfile::TempDir,
}

impl Hsm {
    fn key_ref(&self, token: &str, key: &str) -> Pkcs11KeyRef {
        Pkcs11KeyRef {
            module: self.module.clone(),
            token_label: token.into(),
            key_label: key.into(),
        }
    }

    fn token_dir(&self, token: &str) -> &Path {
        &self.tokens.iter().find(|(l, _)| l == token).unwrap().1
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The shared SoftHSM2 fixture, or `None` (after a SKIP line) when SoftHSM2 is not installed
/// outside CI; under CI a missing SoftHSM2 is a failure, as for the interop tools.
fn hsm(test: &str) -> Option<&'static Hsm> {
    static HSM: OnceLock<Option<Hsm>> = OnceLock::new();
    let h = HSM.get_or_init(|| {
        let module = std::env::var_os("FLEETCA_SOFTHSM2_MODULE")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/usr/lib/softhsm/libsofthsm2.so".into());
        let util = Command::new("softhsm2-util").arg("--version").output();
        if !module.exists() || util.is_err() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let tokendir = dir.path().join("tokens");
        std::fs::create_dir(&tokendir).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokendir.display()
            ),
        )
        .unwrap();
        // Set once, before any PKCS#11 library is initialised in this process.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let mut tokens = Vec::new();
        for label in ["suite", "reset", "removal", "pin"] {
            let before: Vec<_> = std::fs::read_dir(&tokendir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            let out = Command::new("softhsm2-util")
                .args(["--init-token", "--free", "--label", label])
                .args(["--pin", PIN, "--so-pin", "5678"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let made = std::fs::read_dir(&tokendir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| !before.contains(p))
                .unwrap();
            tokens.push((label.to_string(), made));
        }
        Some(Hsm {
            module,
            tokens,
            _dir: dir,
        })
    });
    if h.is_none() {
        let msg = "SoftHSM2 (softhsm2-util, /usr/lib/softhsm/libsofthsm2.so) is not installed";
        if in_ci() {
            panic!("{test}: {msg}; CI is set, so this is a failure (see .ci/run)");
        }
        eprintln!("SKIP {test}: {msg}");
    }
    h.as_ref()
}

#[test]
fn pkcs11_signer_meets_the_contract() {
    let Some(hsm) = hsm("pkcs11_signer_meets_the_contract") else {
        return;
    };
    for kt in KeyType::ALL {
        let key = hsm.key_ref("suite", &format!("contract-{kt}"));
        let signer = Pkcs11Signer::generate(&key, PIN, kt).unwrap();
        assert_eq!(signer.key_type(), kt);
        let spki = signer.public_key_der().to_vec();
        exercise(Arc::new(signer), kt);
        // Opening by label finds the same key again.
        let again = Pkcs11Signer::open(&key, PIN).unwrap();
        assert_eq!(again.public_key_der(), spki);
        assert_eq!(again.key_type(), kt);
    }
}

#[test]
fn generated_key_is_sensitive_and_never_extractable() {
    let Some(hsm) = hsm("generated_key_is_sensitive_and_never_extractable") else {
        return;
    };
    for (kt, secret) in [
        (KeyType::EcdsaP256, AttributeType::Value),
        (KeyType::Rsa2048, AttributeType::PrivateExponent),
    ] {
        let key = hsm.key_ref("suite", &format!("attrs-{kt}"));
        let signer = Pkcs11Signer::generate(&key, PIN, kt).unwrap();
        let held = signer.acquire().unwrap();
        let attrs = held
            .session
            .get_attributes(
                held.key,
                &[
                    AttributeType::Class,
                    AttributeType::Token,
                    AttributeType::Private,
                    AttributeType::Sensitive,
                    AttributeType::AlwaysSensitive,
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                    secret,
                ],
            )
            .unwrap();
        for want in [
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::AlwaysSensitive(true),
            Attribute::Extractable(false),
            Attribute::NeverExtractable(true),
        ] {
            assert!(attrs.contains(&want), "{kt}: missing {want:?} in {attrs:?}");
        }
        // The token refuses the secret value (CKR_ATTRIBUTE_SENSITIVE; cryptoki leaves it out).
        assert!(
            !attrs.iter().any(|a| a.attribute_type() == secret),
            "{kt}: the private key's secret was readable"
        );
        signer.release(held, true);
    }
}

#[test]
fn generate_never_replaces_a_key_and_errors_name_what_is_missing() {
    let Some(hsm) = hsm("generate_never_replaces_a_key") else {
        return;
    };
    let key = hsm.key_ref("suite", "taken");
    let first = Pkcs11Signer::generate(&key, PIN, KeyType::EcdsaP256).unwrap();
    let e = Pkcs11Signer::generate(&key, PIN, KeyType::EcdsaP256).unwrap_err();
    assert!(matches!(e, Pkcs11Error::KeyExists { .. }), "{e}");
    assert_eq!(
        Pkcs11Signer::open(&key, PIN).unwrap().public_key_der(),
        first.public_key_der()
    );

    let e = Pkcs11Signer::open(&hsm.key_ref("no-such-token", "k"), PIN).unwrap_err();
    assert!(
        e.to_string()
            .contains("no PKCS#11 token labelled \"no-such-token\""),
        "{e}"
    );
    let e = Pkcs11Signer::open(&hsm.key_ref("suite", "no-such-key"), PIN).unwrap_err();
    assert!(e.to_string().contains("no-such-key"), "{e}");
    // A wrong PIN, on a token no other test has logged in to (a login is per process and
    // token, so a second C_Login would only answer CKR_USER_ALREADY_LOGGED_IN).
    let e = Pkcs11Signer::open(&hsm.key_ref("pin", "k"), "0000").unwrap_err();
    assert!(e.to_string().contains("C_Login failed"), "{e}");
    let src = std::error::Error::source(&e).unwrap().to_string();
    assert!(src.contains("PinIncorrect") || src.contains("PIN"), "{src}");
    let e = Pkcs11Signer::open(
        &Pkcs11KeyRef {
            module: "/nonexistent/libpkcs11.so".into(),
            ..key.clone()
        },
        PIN,
    )
    .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/libpkcs11.so"), "{e}");
}

#[test]
fn concurrent_signatures_use_a_bounded_pool() {
    let Some(hsm) = hsm("concurrent_signatures_use_a_bounded_pool") else {
        return;
    };
    let key = hsm.key_ref("suite", "pool");
    let signer = Arc::new(Pkcs11Signer::generate(&key, PIN, KeyType::EcdsaP256).unwrap());
    std::thread::scope(|s| {
        for t in 0..8u8 {
            let signer = signer.clone();
            s.spawn(move || {
                for i in 0..10u8 {
                    let msg = [t, i];
                    let sig = signer.sign(&msg).unwrap();
                    crate::signer_suite::verify_raw(signer.as_ref(), &msg, &sig);
                    assert!(signer.lock().open <= MAX_SESSIONS);
                }
            });
        }
    });
    let pool = signer.lock();
    assert!((1..=MAX_SESSIONS).contains(&pool.open), "{}", pool.open);
    assert_eq!(pool.idle.len(), pool.open);
}

#[test]
fn signing_survives_a_token_logout() {
    let Some(hsm) = hsm("signing_survives_a_token_logout") else {
        return;
    };
    let key = hsm.key_ref("reset", "relogin");
    let signer = Pkcs11Signer::generate(&key, PIN, KeyType::EcdsaP384).unwrap();
    signer.sign(b"before").unwrap();
    // Every session of this process on the token is logged out now (CKR_USER_NOT_LOGGED_IN
    // on the next C_Sign); the signer logs in again and signs.
    signer.logout_for_tests().unwrap();
    let sig = signer.sign(b"after").unwrap();
    crate::signer_suite::verify_raw(&signer, b"after", &sig);
    signer.logout_for_tests().unwrap();
    signer.check_available().unwrap();
}

#[test]
fn a_removed_token_is_a_clear_error() {
    let Some(hsm) = hsm("a_removed_token_is_a_clear_error") else {
        return;
    };
    let key = hsm.key_ref("removal", "k");
    let signer = Pkcs11Signer::generate(&key, PIN, KeyType::EcdsaP256).unwrap();
    signer.sign(b"present").unwrap();
    signer.check_available().unwrap();
    // The token's files vanish under the running library, as when an HSM is unplugged.
    let dir = hsm.token_dir("removal");
    std::fs::rename(dir, dir.with_extension("away")).unwrap();
    let e = signer.sign(b"removed").unwrap_err();
    let chain = format!("{e}: {}", std::error::Error::source(&e).unwrap());
    assert!(
        chain.contains("signing failed") && chain.contains("\"removal\""),
        "the error names the token: {chain}"
    );
    assert!(signer.check_available().is_err());
}
