//! Power-loss safety of the install step: the install is stopped at every
//! durable step (as a power cut or SIGKILL would stop it) and the out-dir
//! must always hold a complete, matching key/certificate set: the old one
//! or the new one, never a mix, and never none once a set was installed.
//! These checkpoints stop the install but keep every write; the unit tests in
//! `src/power_cut.rs` also drop whatever was not synced at the cut.

use fleetca_agent::error::AgentError;
use fleetca_agent::install::{self, install_with_checkpoints, CertSet};
use fleetca_agent::keys;

fn real_set(name: &str) -> CertSet {
    let key = keys::generate_cert_key(fleetca_agent::config::KeyType::P256).unwrap();
    let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    CertSet {
        key_pem: key.serialize_pem(),
        cert_pem: cert.pem(),
        chain_pem: String::new(),
    }
}

/// The installed set is one of `allowed` (none at all only when `allowed` is empty: a first
/// install that has not reached its swap).
fn assert_consistent(out: &std::path::Path, allowed: &[&CertSet]) {
    match install::read_current(out) {
        None => assert!(
            allowed.is_empty(),
            "no set installed, expected one of {} sets",
            allowed.len()
        ),
        Some(set) => {
            assert!(
                allowed.contains(&&set),
                "installed set is neither old nor new"
            );
            // The stable names resolve to the same complete set.
            for (n, want) in [("key.pem", &set.key_pem), ("cert.pem", &set.cert_pem)] {
                if let Ok(got) = std::fs::read_to_string(out.join(n)) {
                    assert_eq!(&got, want, "{n} disagrees with current/");
                }
            }
            let key = keys::parse_cert_key(&set.key_pem).unwrap();
            let der = keys::pem_certs(&set.cert_pem).remove(0);
            let info = fleetca_agent::schedule::CertInfo::parse(&der).unwrap();
            assert_eq!(
                info.spki,
                rcgen::PublicKeyData::subject_public_key_info(&key)
            );
        }
    }
}

#[test]
fn interrupted_install_always_leaves_a_matching_pair() {
    let old = real_set("old.example");
    let new = real_set("new.example");
    let mut steps_seen = 0;
    for stop_at in 0.. {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        install::install(out, &old).unwrap();
        let mut n = 0;
        let r = install_with_checkpoints(out, &new, &mut |step| {
            n += 1;
            if n > stop_at {
                return Err(AgentError::Key(format!("power cut before {step}")));
            }
            Ok(())
        });
        assert_consistent(out, &[&old, &new]);
        if r.is_ok() {
            assert_eq!(install::read_current(out).unwrap(), new);
            steps_seen = stop_at;
            break;
        }
        // The next run completes the install from whatever was left.
        install::install(out, &new).unwrap();
        assert_eq!(install::read_current(out).unwrap(), new);
        assert_consistent(out, &[&new]);
    }
    assert!(steps_seen >= 7, "only {steps_seen} steps checked");
}

#[test]
fn first_install_interrupted_leaves_nothing_or_everything() {
    let new = real_set("first.example");
    for stop_at in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let mut n = 0;
        let r = install_with_checkpoints(dir.path(), &new, &mut |_| {
            n += 1;
            if n > stop_at {
                return Err(AgentError::Key("cut".into()));
            }
            Ok(())
        });
        let cur = install::read_current(dir.path());
        assert!(cur.is_none() || cur.as_ref() == Some(&new));
        if r.is_ok() {
            break;
        }
    }
}
