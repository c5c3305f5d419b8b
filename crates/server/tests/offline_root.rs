//! The offline root: `fleetca init --root-key-out FILE` writes the root key, encrypted, outside
//! the data directory; `serve` starts, issues, publishes CRLs and OCSP, and issues its own
//! HTTPS certificate without it, from the name-constrained server TLS CA; the root key is read
//! only by `fleetca root sign-crl` and `fleetca tenant add --root-key FILE`.

mod client;
mod support;

use client::Client;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::{free_port, run, Fleetca, Tool};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

const PERMITS: &[&str] = &["routers.example.com"];
const PASSPHRASE: &str = "correct horse battery staple";

fn ders(path: &Path) -> Vec<Vec<u8>> {
    pki::cert_info::pem_to_ders(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    x509_parser::parse_x509_certificate(der).unwrap().1
}

/// Every file under `dir` holding a PEM private key, relative to `dir`.
fn private_key_files(dir: &Path, base: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(private_key_files(&p, base));
        } else if std::fs::read(&p)
            .is_ok_and(|b| String::from_utf8_lossy(&b).contains("PRIVATE KEY-----"))
        {
            out.push(p.strip_prefix(base).unwrap().to_path_buf());
        }
    }
    out.sort();
    out
}

fn openssl(args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(Tool::Openssl.path());
    cmd.args(args);
    let out = run(cmd, Duration::from_secs(30));
    (out.success(), out.combined())
}

/// Checks the served chain: leaf for `names` issued by a server TLS CA that the root issued,
/// whose critical Name Constraints permit exactly the server's names; not issued by the root.
fn check_server_chain(chain: &[Vec<u8>], root_der: &[u8], names: &[&str]) {
    assert_eq!(chain.len(), 2, "leaf and server TLS CA");
    let (leaf, ca, root) = (parse(&chain[0]), parse(&chain[1]), parse(root_der));
    assert_ne!(
        leaf.issuer().as_raw(),
        root.subject().as_raw(),
        "the HTTPS certificate is not issued by the unconstrained root"
    );
    assert_eq!(leaf.issuer().as_raw(), ca.subject().as_raw());
    leaf.verify_signature(Some(ca.public_key())).unwrap();
    ca.verify_signature(Some(root.public_key())).unwrap();
    let bc = ca.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca && bc.path_len_constraint == Some(0));
    let nc = ca.name_constraints().unwrap().expect("name constraints");
    assert!(nc.critical);
    let mut permitted: Vec<String> = nc
        .value
        .permitted_subtrees
        .iter()
        .flatten()
        .map(|s| match &s.base {
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::IPAddress(b) if b.len() == 8 => {
                let a: [u8; 4] = b[..4].try_into().unwrap();
                assert_eq!(&b[4..], &[255; 4], "single-address range");
                std::net::IpAddr::from(a).to_string()
            }
            GeneralName::IPAddress(b) => {
                let a: [u8; 16] = b[..16].try_into().unwrap();
                assert_eq!(&b[16..], &[255; 16], "single-address range");
                std::net::IpAddr::from(a).to_string()
            }
            other => panic!("unexpected permitted subtree {other:?}"),
        })
        .collect();
    permitted.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(permitted, want);
    let sans = leaf.subject_alternative_name().unwrap().unwrap();
    assert_eq!(sans.value.general_names.len(), names.len());
}

#[test]
fn serve_runs_issues_and_renews_its_https_certificate_without_the_root_key() {
    const TEST: &str = "serve_runs_issues_and_renews_its_https_certificate_without_the_root_key";
    if !support::require(TEST, &[Tool::Openssl]) {
        return;
    }
    let work = support::temp_dir("offline-root");
    let pass_file = work.path().join("passphrase");
    std::fs::write(&pass_file, format!("{PASSPHRASE}\n")).unwrap();
    let pass = pass_file.to_str().unwrap();
    let root_key = work.path().join("root-key.pem");
    let root_key_s = root_key.to_str().unwrap();

    // Without a passphrase the root key would leave in clear: refused, nothing written.
    let dir = support::temp_dir("offline-root-refused");
    let mut cmd = Command::new(Fleetca::bin());
    cmd.args(["init", "--permit", "routers.example.com", "--root-key-out"])
        .arg(dir.path().join("key.pem"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("FLEETCA_KEY_PASSPHRASE");
    let out = run(cmd, Duration::from_secs(30));
    assert!(
        !out.success() && out.combined().contains("passphrase"),
        "{out}"
    );
    assert!(!dir.path().join("key.pem").exists() && !dir.path().join("data").exists());

    let mut ca = Fleetca::init_with(
        PERMITS,
        &[
            "--root-key-out",
            root_key_s,
            "--key-passphrase-file",
            pass,
            "--tls-name",
            "ca.example.net",
        ],
    );
    let data = ca.data_dir().to_path_buf();
    assert!(std::fs::read_to_string(&root_key)
        .unwrap()
        .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    assert!(!data.join("root/key.pem").exists());
    assert_eq!(
        private_key_files(&data, &data),
        ["ca/default/key.pem", "tls/ca-key.pem", "tls/key.pem"]
            .map(PathBuf::from)
            .to_vec(),
        "no root key in the data directory"
    );
    let root_der = ders(ca.root_pem_path()).remove(0);
    let names = ["localhost", "127.0.0.1", "::1", "ca.example.net"];
    let initial = ders(&data.join("tls/cert.pem"));
    check_server_chain(&initial, &root_der, &names);

    // Force a renewal: serve finds no HTTPS certificate and must make one without the root.
    std::fs::remove_file(data.join("tls/cert.pem")).unwrap();
    std::fs::remove_file(data.join("tls/key.pem")).unwrap();
    ca.serve_with(
        free_port(),
        free_port(),
        free_port(),
        &[
            "--insecure-skip-validation",
            "--key-passphrase-file",
            pass,
            "--tls-renew-check-secs",
            "1",
        ],
    );
    let renewed = ders(&data.join("tls/cert.pem"));
    assert_ne!(renewed[0], initial[0], "a new certificate was issued");
    assert_eq!(renewed[1], initial[1], "by the same server TLS CA");
    check_server_chain(&renewed, &root_der, &names);
    // And it is the one served.
    let port = ca
        .directory_url()
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let served = || {
        let (ok, text) = openssl(&[
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-showcerts",
            "-verify_return_error",
            "-CAfile",
            ca.root_pem_path().to_str().unwrap(),
        ]);
        assert!(ok, "{text}");
        pki::cert_info::pem_to_ders(&text).unwrap()
    };
    assert_eq!(served(), renewed);

    // While serving: the certificate is re-issued when due (here: gone) and served at once.
    std::fs::remove_file(data.join("tls/cert.pem")).unwrap();
    std::fs::remove_file(data.join("tls/key.pem")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let live = loop {
        let now_served = served();
        if now_served[0] != renewed[0] {
            break now_served;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the HTTPS certificate was not re-issued while serving\n{}",
            ca.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(live, ders(&data.join("tls/cert.pem")));
    check_server_chain(&live, &root_der, &names);

    // Issuance, CRL and OCSP work without the root key.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (chain, base) = rt.block_on(async {
        let mut c = Client::new(&ca.directory_url(), ca.root_pem()).await;
        assert_eq!(c.new_account().await.status, 201);
        let name = "dev1.routers.example.com";
        let r = c.new_order(&[name]).await;
        let order_url = r.location();
        let order = r.json();
        for authz in order["authorizations"].as_array().unwrap() {
            let a = c.post(authz.as_str().unwrap(), None).await.json();
            let ch = a["challenges"][0]["url"].as_str().unwrap().to_string();
            c.post(&ch, Some(&serde_json::json!({}))).await;
        }
        let order = c.poll(&order_url, |o| o["status"] == "ready").await;
        let (chain, _) = c.finalize_and_download(&order_url, &order, &[name]).await;
        let base = ca.plain_http_url().expect("plain HTTP URL");
        for crl in ["default.crl", "root.crl"] {
            let r = reqwest::get(format!("{base}/crl/{crl}")).await.unwrap();
            assert_eq!(r.status(), 200, "{crl}");
        }
        (chain, base)
    });
    let leaf = parse(&chain[0]);
    leaf.verify_signature(Some(parse(&chain[1]).public_key()))
        .unwrap();
    let issuing = work.path().join("issuing.pem");
    let leaf_pem = work.path().join("leaf.pem");
    std::fs::write(&issuing, pki::der_to_pem("CERTIFICATE", &chain[1])).unwrap();
    std::fs::write(&leaf_pem, pki::der_to_pem("CERTIFICATE", &chain[0])).unwrap();
    let (ok, text) = openssl(&[
        "ocsp",
        "-issuer",
        issuing.to_str().unwrap(),
        "-cert",
        leaf_pem.to_str().unwrap(),
        "-url",
        &format!("{base}/ocsp/default"),
        "-CAfile",
        ca.root_pem_path().to_str().unwrap(),
        "-verify_other",
        issuing.to_str().unwrap(),
    ]);
    assert!(ok && text.contains(": good"), "{text}");
    ca.stop();

    // The offline commands: a new tenant needs --root-key ...
    let out = ca.cli(&["tenant", "add", "vendor", "--permit", "vendor.example.com"]);
    assert!(
        !out.success() && out.combined().contains("--root-key"),
        "{out}"
    );
    let out = ca.cli(&[
        "tenant",
        "add",
        "vendor",
        "--permit",
        "vendor.example.com",
        "--root-key",
        root_key_s,
        "--key-passphrase-file",
        pass,
    ]);
    assert!(out.success(), "{out}");
    let vendor = ders(&data.join("ca/vendor/cert.pem")).remove(0);
    parse(&vendor)
        .verify_signature(Some(parse(&root_der).public_key()))
        .unwrap();
    assert!(!data.join("root/key.pem").exists());

    // ... and so does the root's CRL, which then lists a revoked issuing CA and verifies.
    let before = std::fs::read(data.join("root/crl.der")).unwrap();
    let out = ca.cli(&[
        "root",
        "sign-crl",
        "--root-key",
        root_key_s,
        "--key-passphrase-file",
        pass,
        "--revoke-tenant",
        "vendor",
    ]);
    assert!(out.success(), "{out}");
    let after = std::fs::read(data.join("root/crl.der")).unwrap();
    assert_ne!(before, after);
    let crl_path = work.path().join("root.crl");
    std::fs::write(&crl_path, &after).unwrap();
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        crl_path.to_str().unwrap(),
        "-CAfile",
        ca.root_pem_path().to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");
    let serial = parse(&vendor).raw_serial_as_string().replace(':', "");
    assert!(
        text.to_uppercase().contains(&serial.to_uppercase()),
        "the vendor CA is listed:\n{text}"
    );
    let (_, prev) = x509_parser::parse_x509_crl(&before).unwrap();
    let (_, next) = x509_parser::parse_x509_crl(&after).unwrap();
    assert!(next.crl_number() > prev.crl_number());
    // A wrong key is refused.
    let out = ca.cli(&[
        "root",
        "sign-crl",
        "--root-key",
        data.join("tls/ca-key.pem").to_str().unwrap(),
    ]);
    assert!(
        !out.success() && out.combined().contains("is not the key of the root"),
        "{out}"
    );
}

#[test]
fn a_data_directory_without_a_server_tls_ca_gets_one_from_its_online_root() {
    // As made before the server TLS CA existed: root key online, no tls/ca-*.pem; the
    // certificate is due (here: gone).
    let mut ca = Fleetca::init(PERMITS);
    let data = ca.data_dir().to_path_buf();
    for f in [
        "tls/ca-key.pem",
        "tls/ca-cert.pem",
        "tls/cert.pem",
        "tls/key.pem",
    ] {
        std::fs::remove_file(data.join(f)).unwrap();
    }
    ca.serve(free_port(), free_port(), free_port());
    assert!(data.join("tls/ca-key.pem").exists());
    let root_der = ders(ca.root_pem_path()).remove(0);
    check_server_chain(
        &ders(&data.join("tls/cert.pem")),
        &root_der,
        &["localhost", "127.0.0.1", "::1"],
    );
}
