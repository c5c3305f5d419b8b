//! Independent checks of the SCTs a certificate carries (RFC 6962): `openssl x509 -text`
//! lists them and `ct_verify.py` (Python `cryptography`, no code under test) rebuilds each
//! SCT's signed data and verifies it against the test log's key; and what the CA stored: the
//! precertificate with the certificate's serial and TBS.
#![allow(dead_code)] // each includer uses a different subset

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::ct_log::CtLog;
use super::{openssl_text, run, Fleetca};

const PYTHON: &str = "/opt/fleetca-venv/bin/python";

/// Whether the independent checker can run (Python with `cryptography`); like
/// [`require`](super::require), a missing one skips the test outside CI.
pub(crate) fn python_ready(test: &str) -> bool {
    let python = Path::new(PYTHON).is_file()
        && Command::new(PYTHON)
            .args(["-c", "import cryptography.x509"])
            .status()
            .is_ok_and(|s| s.success());
    super::gate(
        test,
        python,
        "no Python with `cryptography` at /opt/fleetca-venv",
    )
}

/// The first certificate of a PEM file, DER.
fn der_of(pem_path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(pem_path).unwrap();
    pki::cert_info::pem_to_ders(&text).unwrap().remove(0)
}

/// A DER certificate's serial, lower-case hex.
pub(crate) fn serial_hex(der: &[u8]) -> String {
    pki::cert_info::serial_of(der)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks the certificate in `leaf` (issued by `issuer`) independently: openssl lists a
/// number of SCTs in `n`, Python verifies every one against its log's key, they come from
/// distinct logs of at least 2 operators; returns the logs (indexes into `logs`) whose SCTs
/// it carries. Also checks what the CA stored: the precertificate has
/// the certificate's serial and the certificate is its TBS with the poison swapped; the precertificate is written next to
/// `leaf` as `*.precert.pem`.
pub(crate) fn check_scts(
    ca: &Fleetca,
    logs: &[CtLog],
    leaf: &Path,
    issuer: &Path,
    n: RangeInclusive<usize>,
) -> BTreeSet<usize> {
    let text = openssl_text(leaf);
    assert!(text.contains("CT Precertificate SCTs"), "{text}");
    let listed = text.matches("Signed Certificate Timestamp:").count();
    assert!(n.contains(&listed), "{listed} SCTs, not {n:?}\n{text}");
    assert!(!text.contains("CT Precertificate Poison"), "{text}");

    let dir = ca.scratch();
    let mut cmd = Command::new(PYTHON);
    cmd.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/ct_verify.py"))
        .arg(leaf)
        .arg(issuer);
    for (i, l) in logs.iter().enumerate() {
        let p = dir.join(format!("log{i}.pem"));
        std::fs::write(&p, l.public_key_pem()).unwrap();
        cmd.arg(p);
    }
    let out = run(cmd, Duration::from_secs(60));
    assert!(out.success(), "independent SCT check failed\n{out}");
    let ids: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("OK "))
        .collect();
    assert_eq!(ids.len(), listed, "{out}");
    let used: BTreeSet<usize> = ids
        .iter()
        .map(|id| {
            logs.iter()
                .position(|l| l.id_hex() == *id)
                .unwrap_or_else(|| panic!("SCT from an unknown log {id}"))
        })
        .collect();
    assert_eq!(used.len(), listed, "SCTs from distinct logs: {out}");
    let operators: BTreeSet<&str> = used.iter().map(|&i| logs[i].operator.as_str()).collect();
    assert!(
        operators.len() >= 2,
        "SCTs from distinct operators: {operators:?}"
    );

    // The CA's records: the precertificate has the same serial, and the certificate is the
    // precertificate's TBS with the poison swapped for the SCT list.
    let der = der_of(leaf);
    let serial = serial_hex(&der);
    let show = ca.cli(&["cert", "show", &serial, "--json"]);
    assert!(show.success(), "{show}");
    let v: serde_json::Value = serde_json::from_str(show.stdout.trim()).unwrap();
    assert_eq!(v["scts"].as_array().map(Vec::len), Some(listed), "{v}");
    assert_eq!(v["precertificate"]["awaiting_final"], false, "{v}");
    let pre_pem = v["precertificate"]["pem"]
        .as_str()
        .expect("stored precertificate");
    let pre = pki::cert_info::pem_to_ders(pre_pem).unwrap().remove(0);
    assert_eq!(
        serial_hex(&pre),
        serial,
        "the precertificate's serial is the certificate's"
    );
    assert_eq!(
        pki::ct::precert_tbs_without_poison(&pre).unwrap(),
        pki::ct::cert_tbs_without_sct_list(&der).unwrap()
    );
    std::fs::write(leaf.with_extension("precert.pem"), pre_pem).unwrap();
    used
}
