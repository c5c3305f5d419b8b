//! Lints the certificate profiles with pkilint's `lint_cabf_serverauth_cert` (CA/B Forum TLS
//! Baseline Requirements). The binary comes from `FLEETCA_PKILINT` (default
//! /opt/fleetca-venv/bin/lint_cabf_serverauth_cert). Outside CI a missing binary skips the
//! test with a visible SKIP line; with `CI` set it fails. The certificates a running
//! `fleetca serve` hands out are linted by the server's `cli` test.
mod common;
// The server crate's test support: the one tool gate, and the pkilint runner that refuses
// usage errors, empty output and an exit status that disagrees with the findings.
#[path = "../../server/tests/support/gate.rs"]
mod gate;
#[path = "../../server/tests/support/pkilint.rs"]
mod pkilint;

use std::path::Path;

/// Findings accepted on purpose, per certificate type, with the reason.
///
/// `cabf.serverauth.ca.incomplete_name_constraints`: BR §7.1.2.5.2 wants a directoryName in
/// permittedSubtrees, but rustls-webpki rejects every chain whose CA carries a directoryName
/// constraint (rustls/webpki#19), and fleetca's devices use rustls. DNS and IP constraints,
/// which are what limit TLS names, are complete.
const ACCEPTED: &[(&str, &str)] = &[(
    "INTERNAL-CONSTRAINED-TLS-CA",
    "cabf.serverauth.ca.incomplete_name_constraints",
)];

/// Findings accepted for one certificate file (by file-name part), with the reason.
///
/// `msft.end_entity.revocation_information_absent` on the `shortlived` profile: the Microsoft
/// Trusted Root Program wants a CRL or OCSP pointer in every end-entity certificate, but BR
/// §7.1.2.11.2 lets a Short-lived Subscriber Certificate (≤ 7 days) omit them, which is the
/// point of that profile. A CA in Microsoft's program should not offer `shortlived`.
const ACCEPTED_PER_FILE: &[(&str, &str)] = &[(
    "shortlived",
    "msft.end_entity.revocation_information_absent",
)];

/// Runs the linter and returns the ERROR/FATAL findings not in [`ACCEPTED`]; `None` when the
/// linter is missing outside CI (through the shared gate, which fails under CI).
fn lint(cert_type: &str, file: &Path) -> Option<Vec<String>> {
    let found = pkilint::lint(
        "profiles_pass_pkilint",
        "lint_cabf_serverauth_cert",
        &["-t", cert_type],
        file,
    )?;
    Some(
        found
            .into_iter()
            .filter(|f| f.is_serious())
            .filter(|f| {
                !ACCEPTED
                    .iter()
                    .any(|(t, code)| *t == cert_type && f.code == *code)
            })
            .filter(|f| {
                !ACCEPTED_PER_FILE
                    .iter()
                    .any(|(n, code)| file.to_string_lossy().contains(n) && f.code == *code)
            })
            .map(|f| format!("{cert_type} {}: {f}", file.display()))
            .collect(),
    )
}

#[test]
fn profiles_pass_pkilint() {
    let dir = tempfile::tempdir().unwrap();
    let mut findings = Vec::new();
    // A publicly routable range so the IP leaf does not trip the reserved-address rule
    // (private ranges are the point of a device CA, but BR §7.1.2.7.12 forbids them).
    for (sub, permits, client_auth) in [
        ("both", &["routers.example.com", "1.2.3.0/24"][..], true),
        ("dns", &["routers.example.com"][..], false),
        ("ip", &["2001:db8:1234::/48", "1.2.3.0/24"][..], false),
    ] {
        let h = common::hierarchy(permits, client_auth);
        let path = dir.path().join(sub);
        std::fs::create_dir_all(&path).unwrap();
        let mut leaves: Vec<(&str, Vec<u8>)> = Vec::new();
        if sub != "ip" {
            leaves.push((
                "leaf-ec.pem",
                h.issue(&["r1.routers.example.com"], pki::KeyType::EcdsaP256),
            ));
            leaves.push((
                "leaf-rsa.pem",
                h.issue(
                    &["r2.routers.example.com", "*.r2.routers.example.com"],
                    pki::KeyType::Rsa2048,
                ),
            ));
            // The server's `default` profile: OCSP URL in AIA; and `shortlived`: no pointers.
            leaves.push((
                "leaf-ocsp.pem",
                h.issue_with(
                    &["r3.routers.example.com"],
                    pki::KeyType::EcdsaP256,
                    time::Duration::days(30),
                    &pki::LeafOptions {
                        ocsp_url: Some("http://ocsp.example.com/ocsp/default".into()),
                        ..Default::default()
                    },
                )
                .unwrap(),
            ));
            leaves.push((
                "leaf-shortlived.pem",
                h.issue_with(
                    &["r4.routers.example.com"],
                    pki::KeyType::EcdsaP256,
                    time::Duration::hours(160),
                    &pki::LeafOptions {
                        include_crl_dp: false,
                        ..Default::default()
                    },
                )
                .unwrap(),
            ));
        }
        if sub != "dns" {
            leaves.push((
                "leaf-ip.pem",
                h.issue(&["1.2.3.4"], pki::KeyType::EcdsaP384),
            ));
        }
        let refs: Vec<(&str, &[u8])> = leaves.iter().map(|(n, d)| (*n, d.as_slice())).collect();
        h.write_pems(&path, &refs);
        let Some(root) = lint("ROOT-CA", &path.join("root.pem")) else {
            return;
        };
        findings.extend(root);
        findings.extend(
            lint("INTERNAL-CONSTRAINED-TLS-CA", &path.join("issuing.pem")).unwrap_or_default(),
        );
        for (name, _) in &leaves {
            findings.extend(lint("DV-FINAL-CERTIFICATE", &path.join(name)).unwrap_or_default());
        }
    }
    assert!(
        findings.is_empty(),
        "pkilint findings:\n{}",
        findings.join("\n")
    );
}
