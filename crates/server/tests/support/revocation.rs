//! Checks that a revocation a client reported really reached the relying parties: the serial
//! is on the CRL at the certificate's CRL distribution point, and the OCSP responder answers
//! `revoked` for it (a client's exit status only says what the client believed).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};

use super::{run, Fleetca, Tool};

/// The CRL distribution point URLs of a DER certificate.
fn crl_urls(der: &[u8]) -> Vec<String> {
    let (_, x) = x509_parser::parse_x509_certificate(der).expect("leaf parses");
    let mut out = Vec::new();
    for e in x.extensions() {
        if let ParsedExtension::CRLDistributionPoints(d) = e.parsed_extension() {
            for p in d.iter() {
                if let Some(DistributionPointName::FullName(names)) = &p.distribution_point {
                    for n in names {
                        if let GeneralName::URI(u) = n {
                            out.push(u.to_string());
                        }
                    }
                }
            }
        }
    }
    out
}

/// GET over plain HTTP: (status, body).
fn http_get(url: &str) -> (u16, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let r = reqwest::get(url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = r.status().as_u16();
        (status, r.bytes().await.expect("body").to_vec())
    })
}

/// Asserts the leaf in `leaf_pem` (issued by the certificate in `issuer_pem`) is listed on its
/// CRL and reported `revoked` by OCSP, both fetched from the running `ca` (`default` tenant).
pub(crate) fn assert_revoked(ca: &Fleetca, leaf_pem: &Path, issuer_pem: &Path) {
    assert_revoked_in(ca, "default", ca.root_pem_path(), leaf_pem, issuer_pem);
}

/// [`assert_revoked`] for a leaf of `tenant`, whose OCSP responses chain to `anchor` (a public
/// tenant's: the outside root that signed it).
pub(crate) fn assert_revoked_in(
    ca: &Fleetca,
    tenant: &str,
    anchor: &Path,
    leaf_pem: &Path,
    issuer_pem: &Path,
) {
    let text = std::fs::read_to_string(leaf_pem).expect("read leaf");
    let leaf = pki::cert_info::pem_to_ders(&text).expect("leaf PEM")[0].clone();
    let serial = pki::cert_info::serial_of(&leaf).expect("serial");
    let base = ca.plain_http_url().expect("plain HTTP URL in the log");

    // The certificate's URL names the configured public host; the test reaches the same path
    // on the listener's ephemeral port.
    let urls = crl_urls(&leaf);
    assert!(!urls.is_empty(), "no CRL distribution point in the leaf");
    for url in urls {
        let path = url
            .splitn(4, '/')
            .nth(3)
            .map(|p| format!("/{p}"))
            .unwrap_or_else(|| panic!("CRL URL {url} has no path"));
        let (status, der) = http_get(&format!("{base}{path}"));
        assert_eq!(status, 200, "CRL at {base}{path}");
        let (_, crl) = x509_parser::parse_x509_crl(&der).expect("CRL parses");
        assert!(
            crl.iter_revoked_certificates()
                .any(|r| r.raw_serial() == serial.as_slice()),
            "serial {serial:02x?} is not on the CRL at {path}\n{}",
            ca.log()
        );
    }

    let mut cmd = Command::new(Tool::Openssl.path());
    cmd.arg("ocsp")
        .arg("-issuer")
        .arg(issuer_pem)
        .arg("-cert")
        .arg(leaf_pem)
        .args(["-url", &format!("{base}/ocsp/{tenant}"), "-resp_text"])
        .arg("-CAfile")
        .arg(anchor)
        .arg("-verify_other")
        .arg(issuer_pem);
    let out = run(cmd, Duration::from_secs(30));
    let text = out.combined();
    assert!(out.success(), "openssl ocsp\n{out}");
    assert!(
        text.contains(": revoked"),
        "OCSP does not say revoked\n{out}"
    );
    assert!(text.contains("Response verify OK"), "{out}");
}
