//! The command-line contract: `fleetca` with no arguments, `init` with encrypted keys, the
//! public-trust path (`subca csr` / `subca import` with openssl playing the outside root), and
//! revocation reaching the CRL served over plain HTTP.

mod client;
mod support;

use client::{b64url, csr, Client};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{run, temp_dir, ChallTestSrv, ChildGuard, Tool};

fn fleetca() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetca"));
    // `serve` binds every listener before anything else and exits if one is taken: keep the
    // admin listener off its fixed default port (tests run in parallel).
    cmd.env("FLEETCA_ADMIN_LISTEN", "127.0.0.1:0");
    cmd
}

/// A running `fleetca serve` whose URLs were read from what it printed.
struct Served {
    guard: ChildGuard,
    directory: String,
    plain_http: String,
}

/// Spawns `cmd` (a serve invocation) and waits for the lines that announce its URLs.
/// Listeners default to ephemeral ports unless the caller set them.
fn serve(name: &str, mut cmd: Command, cwd: &Path) -> Served {
    cmd.current_dir(cwd);
    // Every listener on an ephemeral port: serve exits when one cannot bind, and parallel
    // tests would fight over the defaults.
    for var in [
        "FLEETCA_LISTEN",
        "FLEETCA_HTTP_LISTEN",
        "FLEETCA_ADMIN_LISTEN",
    ] {
        if !cmd.get_envs().any(|(k, _)| k == var) {
            cmd.env(var, "127.0.0.1:0");
        }
    }
    // The test responders are on loopback, which the VA refuses unless told otherwise.
    cmd.env("FLEETCA_VA_ALLOW_ADDRESSES", "127.0.0.0/8,::1/128");
    let log = cwd.join(format!("{name}.log"));
    let mut guard = ChildGuard::spawn(name, cmd, &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let find = |prefix: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix(prefix)
                    .map(|r| r.split_whitespace().next().unwrap_or("").to_string())
            })
        };
        if let (Some(directory), Some(plain_http)) = (
            find("ACME directory: "),
            find("Plain HTTP (CRLs, CA certificates) on "),
        ) {
            return Served {
                guard,
                directory,
                plain_http,
            };
        }
        if let Some(status) = guard.try_wait() {
            panic!("fleetca serve exited with {status}\n{}", guard.log());
        }
        assert!(
            Instant::now() < deadline,
            "fleetca serve did not announce its URLs\n{}",
            guard.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn root_pem(data_dir: &Path) -> String {
    let mut cmd = fleetca();
    cmd.args(["ca", "root", "--data-dir"]).arg(data_dir);
    let out = run(cmd, Duration::from_secs(30));
    assert!(out.success(), "{out}");
    out.stdout
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn serve_without_arguments_initialises_a_home_arpa_ca() {
    let dir = temp_dir("noargs");
    let s = serve("fleetca", fleetca(), dir.path());
    let data = dir.path().join("fleetca-data");
    let config = std::fs::read_to_string(data.join("fleetca.toml")).expect("fleetca.toml");
    assert!(config.contains("home.arpa"), "{config}");
    assert!(
        s.directory.ends_with("/acme/default/directory"),
        "{}",
        s.directory
    );
    let root = root_pem(&data);
    block_on(async {
        let c = Client::new(&s.directory, &root).await;
        assert!(c.url("newOrder").starts_with("https://127.0.0.1:"));
    });
    // Keys are private to the CA's user (0600).
    use std::os::unix::fs::PermissionsExt;
    for key in ["root/key.pem", "ca/default/key.pem", "tls/key.pem"] {
        let mode = std::fs::metadata(data.join(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    drop(s.guard);
    // A second run reuses the CA instead of making a new one.
    let before = std::fs::read(data.join("root/cert.pem")).unwrap();
    let s2 = serve("fleetca2", fleetca(), dir.path());
    assert_eq!(std::fs::read(data.join("root/cert.pem")).unwrap(), before);
    drop(s2.guard);
}

#[test]
fn init_refuses_to_overwrite_and_bad_permits() {
    let dir = temp_dir("init");
    let data = dir.path().join("ca");
    let mut cmd = fleetca();
    cmd.args(["init", "--data-dir"])
        .arg(&data)
        .args(["--permit", "10.1.2.3/8"]);
    let out = run(cmd, Duration::from_secs(30));
    assert!(!out.success() && out.stderr.contains("host bits"), "{out}");
    let mut cmd = fleetca();
    cmd.args(["init", "--data-dir"])
        .arg(&data)
        .args(["--permit", "routers.example.com"]);
    assert!(run(cmd, Duration::from_secs(30)).success());
    let root = std::fs::read(data.join("root/cert.pem")).unwrap();
    let mut cmd = fleetca();
    cmd.args(["init", "--data-dir"])
        .arg(&data)
        .args(["--permit", "other.example.com"]);
    let out = run(cmd, Duration::from_secs(30));
    assert!(
        !out.success() && out.stderr.contains("refusing to overwrite"),
        "{out}"
    );
    assert_eq!(std::fs::read(data.join("root/cert.pem")).unwrap(), root);
}

#[test]
fn encrypted_ca_keys_need_the_passphrase() {
    let dir = temp_dir("passphrase");
    let data = dir.path().join("ca");
    let mut cmd = fleetca();
    cmd.args(["init", "--data-dir"])
        .arg(&data)
        .args(["--permit", "routers.example.com"])
        .env("FLEETCA_KEY_PASSPHRASE", "correct horse");
    let out = run(cmd, Duration::from_secs(60));
    assert!(out.success(), "{out}");
    let key = std::fs::read_to_string(data.join("ca/default/key.pem")).unwrap();
    assert!(key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    assert!(std::fs::read_to_string(data.join("root/key.pem"))
        .unwrap()
        .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));

    let mut cmd = fleetca();
    cmd.args(["serve", "--data-dir"])
        .arg(&data)
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .env_remove("FLEETCA_KEY_PASSPHRASE");
    let out = run(cmd, Duration::from_secs(60));
    assert!(
        !out.success() && out.stderr.contains("encrypted"),
        "serve must refuse without the passphrase\n{out}"
    );

    let mut cmd = fleetca();
    cmd.args(["serve", "--data-dir"])
        .arg(&data)
        .env("FLEETCA_KEY_PASSPHRASE", "wrong");
    cmd.env("FLEETCA_LISTEN", "127.0.0.1:0")
        .env("FLEETCA_HTTP_LISTEN", "127.0.0.1:0");
    let out = run(cmd, Duration::from_secs(60));
    assert!(
        !out.success() && out.stderr.to_lowercase().contains("passphrase"),
        "{out}"
    );

    let mut cmd = fleetca();
    cmd.args(["serve", "--data-dir"])
        .arg(&data)
        .env("FLEETCA_KEY_PASSPHRASE", "correct horse");
    let s = serve("fleetca", cmd, dir.path());
    drop(s.guard);
}

/// openssl plays the outside root: it signs the CSR with only the extensions in `ext`.
fn outside_root_signs(dir: &Path, csr: &Path, ext: &str, out: &str) -> PathBuf {
    support::public_root::root_signs(dir, csr, &format!("[v3]\n{ext}\n"), false, out)
}

#[test]
fn public_trust_subca_csr_import_and_issue() {
    if !support::require(
        "public_trust_subca_csr_import_and_issue",
        &[Tool::Openssl, Tool::ChallTestSrv],
    ) {
        return;
    }
    let dir = temp_dir("subca");
    let w = dir.path();
    let data = w.join("ca");
    let mut cmd = fleetca();
    cmd.args(["subca", "csr", "--data-dir"]).arg(&data).args([
        "--permit",
        "routers.example.com",
        "--organization",
        "Example Routers Ltd",
        "--country",
        "GB",
    ]);
    let out = run(cmd, Duration::from_secs(60));
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("BEGIN CERTIFICATE REQUEST"));
    let csr_path = data.join("ca/default/request.csr");
    // Before import, serve explains what is missing instead of starting.
    // This test is about the sub-CA: CT and remote perspectives, which a public tenant needs
    // too, have their own tests (tests/ct.rs, tests/perspectives.rs, tests/public_trust_e2e.rs).
    let toml = data.join("fleetca.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        text.replacen("[ca]\n", "[ca]\nct_required = false\n", 1),
    )
    .unwrap();
    let mut cmd = fleetca();
    cmd.args(["serve", "--data-dir"]).arg(&data).args([
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--insecure-mpic-minimum",
        "0",
    ]);
    let o = run(cmd, Duration::from_secs(30));
    assert!(!o.success() && o.stderr.contains("subca import"), "{o}");

    support::public_root::make_root(w);
    // Public trust: the directoryName subtree (the CA's C and O) is required next to the DNS
    // and IP ones (BR §7.1.2.5.2).
    let constrained = "basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nextendedKeyUsage=serverAuth\nnameConstraints=critical,permitted;DNS:routers.example.com,permitted;dirName:nc_dir,excluded;IP:0.0.0.0/0.0.0.0,excluded;IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n[nc_dir]\nC=GB\nO=Example Routers Ltd";

    // Certificates the importer must refuse: no name constraints, a wider namespace, not a CA.
    let refusals = [
        ("basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nextendedKeyUsage=serverAuth", "bad1.pem"),
        ("basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nextendedKeyUsage=serverAuth\nnameConstraints=critical,permitted;DNS:example.com,excluded;IP:0.0.0.0/0.0.0.0,excluded;IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0", "bad2.pem"),
        ("basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth", "bad3.pem"),
    ];
    for (ext, name) in refusals {
        let cert = outside_root_signs(w, &csr_path, ext, name);
        let mut cmd = fleetca();
        cmd.args(["subca", "import", "--data-dir"])
            .arg(&data)
            .arg(&cert)
            .arg(w.join("root.pem"));
        let o = run(cmd, Duration::from_secs(30));
        assert!(!o.success(), "import of {name} must fail\n{o}");
        assert!(
            !data.join("ca/default/cert.pem").exists(),
            "a refused import must not install anything"
        );
    }

    let cert = outside_root_signs(w, &csr_path, constrained, "subca.pem");
    let mut cmd = fleetca();
    cmd.args(["subca", "import", "--data-dir"])
        .arg(&data)
        .arg(&cert)
        .arg(w.join("root.pem"));
    let o = run(cmd, Duration::from_secs(30));
    assert!(o.success(), "{o}");

    // Serve and issue: the leaf chains to the outside root.
    let dns = ChallTestSrv::start();
    let mut cmd = fleetca();
    cmd.args(["serve", "--data-dir"])
        .arg(&data)
        .args(["--dns-resolver", &dns.dns_addr()])
        .args(["--insecure-mpic-minimum", "0"]);
    let s = serve("fleetca", cmd, w);
    let tls_root = std::fs::read_to_string(data.join("tls/root.pem")).unwrap();
    let pem = block_on(async {
        let mut c = Client::new(&s.directory, &tls_root).await;
        assert_eq!(c.new_account().await.status, 201);
        let order = c.new_order(&["gw1.routers.example.com"]).await.json();
        let authz = c
            .post(order["authorizations"][0].as_str().unwrap(), None)
            .await
            .json();
        let ch = authz["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "dns-01")
            .unwrap()
            .clone();
        dns.set_txt(
            "_acme-challenge.gw1.routers.example.com",
            &acme_types::keyauth::dns01_txt_value(
                &c.key_authorization(ch["token"].as_str().unwrap()),
            ),
        );
        c.post(ch["url"].as_str().unwrap(), Some(&json!({}))).await;
        c.poll(order["authorizations"][0].as_str().unwrap(), |a| {
            a["status"] != "pending"
        })
        .await;
        let (der, _) = csr(&["gw1.routers.example.com"], &rcgen::PKCS_ECDSA_P256_SHA256);
        let order = c
            .post(
                order["finalize"].as_str().unwrap(),
                Some(&json!({"csr": b64url(&der)})),
            )
            .await
            .json();
        String::from_utf8(
            c.post(order["certificate"].as_str().expect("certificate"), None)
                .await
                .body,
        )
        .unwrap()
    });
    let ders = pki::cert_info::pem_to_ders(&pem).unwrap();
    std::fs::write(
        w.join("leaf.pem"),
        pki::cert_info::der_to_pem("CERTIFICATE", &ders[0]),
    )
    .unwrap();
    std::fs::write(
        w.join("chain.pem"),
        pki::cert_info::der_to_pem("CERTIFICATE", &ders[1]),
    )
    .unwrap();
    assert!(support::openssl_verify(
        &w.join("root.pem"),
        &w.join("chain.pem"),
        &w.join("leaf.pem")
    ));
    drop(s.guard);
}

#[test]
fn revocation_reaches_the_crl_over_plain_http() {
    if !support::require(
        "revocation_reaches_the_crl_over_plain_http",
        &[Tool::Openssl, Tool::ChallTestSrv],
    ) {
        return;
    }
    let dir = temp_dir("crl");
    let w = dir.path();
    let data = w.join("ca");
    let dns = ChallTestSrv::start();
    // The CRL URL baked into certificates must be the plain listener's, so pick the port first.
    let http_port = support::free_port();
    let mut cmd = fleetca();
    cmd.args(["init", "--data-dir"]).arg(&data).args([
        "--permit",
        "routers.example.com",
        "--organization",
        "Example Routers Ltd",
        "--country",
        "GB",
        "--public-base-url",
        &format!("http://127.0.0.1:{http_port}"),
    ]);
    assert!(run(cmd, Duration::from_secs(60)).success());
    let mut cmd = fleetca();
    cmd.args(["serve", "--data-dir"])
        .arg(&data)
        .args(["--dns-resolver", &dns.dns_addr()])
        .env("FLEETCA_HTTP_LISTEN", format!("127.0.0.1:{http_port}"));
    let s = serve("fleetca", cmd, w);
    let root = root_pem(&data);
    std::fs::write(w.join("root.pem"), &root).unwrap();
    let (chain, serial) = block_on(async {
        let mut c = Client::new(&s.directory, &root).await;
        c.new_account().await;
        let order = c.new_order(&["cam3.routers.example.com"]).await.json();
        let authz = c
            .post(order["authorizations"][0].as_str().unwrap(), None)
            .await
            .json();
        let ch = authz["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "dns-01")
            .unwrap()
            .clone();
        dns.set_txt(
            "_acme-challenge.cam3.routers.example.com",
            &acme_types::keyauth::dns01_txt_value(
                &c.key_authorization(ch["token"].as_str().unwrap()),
            ),
        );
        c.post(ch["url"].as_str().unwrap(), Some(&json!({}))).await;
        c.poll(order["authorizations"][0].as_str().unwrap(), |a| {
            a["status"] != "pending"
        })
        .await;
        let (der, _) = csr(
            &["cam3.routers.example.com"],
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        let order = c
            .post(
                order["finalize"].as_str().unwrap(),
                Some(&json!({"csr": b64url(&der)})),
            )
            .await
            .json();
        let pem = String::from_utf8(
            c.post(order["certificate"].as_str().unwrap(), None)
                .await
                .body,
        )
        .unwrap();
        let chain = pki::cert_info::pem_to_ders(&pem).unwrap();
        let leaf = chain[0].clone();
        let r = c
            .post(
                &c.url("revokeCert"),
                Some(&json!({"certificate": b64url(&leaf), "reason": 1})),
            )
            .await;
        assert_eq!(r.status, 200);
        let serial = pki::cert_info::serial_of(&leaf).unwrap();
        (chain, serial)
    });
    let leaf = chain[0].clone();
    // Fetch the CRL from the URL in the certificate's CRL distribution point.
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    let cdp = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::CRLDistributionPoints(p) => {
                p.points.first().and_then(|p| match &p.distribution_point {
                    Some(x509_parser::extensions::DistributionPointName::FullName(names)) => {
                        names.iter().find_map(|n| match n {
                            x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
                            _ => None,
                        })
                    }
                    _ => None,
                })
            }
            _ => None,
        })
        .expect("CRL distribution point");
    assert!(
        cdp.starts_with(&format!("http://127.0.0.1:{http_port}/crl/")),
        "{cdp} vs {}",
        s.plain_http
    );
    let http = client::http_client(&root);
    let crl = block_on(async {
        http.get(&cdp)
            .send()
            .await
            .expect("GET CRL")
            .bytes()
            .await
            .unwrap()
            .to_vec()
    });
    let (_, parsed) = x509_parser::parse_x509_crl(&crl).expect("CRL parses");
    let entry = parsed
        .iter_revoked_certificates()
        .find(|r| r.raw_serial() == serial.as_slice())
        .expect("revoked serial is listed");
    assert_eq!(
        entry.reason_code().map(|(_, r)| r.0),
        Some(1),
        "keyCompromise"
    );
    std::fs::write(w.join("crl.der"), &crl).unwrap();
    std::fs::write(
        w.join("issuing.pem"),
        pki::cert_info::der_to_pem(
            "CERTIFICATE",
            &std::fs::read(data.join("ca/default/cert.pem"))
                .map(|p| {
                    pki::cert_info::pem_to_ders(std::str::from_utf8(&p).unwrap())
                        .unwrap()
                        .remove(0)
                })
                .unwrap(),
        ),
    )
    .unwrap();
    support::public_root::openssl(
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "crl.der",
            "-CAfile",
            "issuing.pem",
            "-noout",
            "-verify",
        ],
        w,
    );
    drop(s.guard);

    // What the running server handed out (the leaf and the issuing CA of the chain at the
    // order's certificate URL) and the root it chains to pass pkilint's BR lint (the pki crate
    // lints its profiles directly; this checks what the server's configuration really
    // produces). Excused, and nothing else:
    // - the test's CRL/caIssuers/OCSP URLs point at 127.0.0.1, which pkilint rightly calls an
    //   internal name; a deployment sets --public-base-url to a public host;
    // - the issuing CA's name constraints omit a directoryName on purpose (see the pki
    //   crate's pkilint test).
    assert_eq!(chain.len(), 2, "leaf and issuing CA");
    let excused = |cert_type: &str, f: &support::pkilint::Finding| match f.code.as_str() {
        "cabf.internal_domain_name" => f.message.contains("\"127.0.0.1\""),
        "cabf.serverauth.ca.incomplete_name_constraints" => {
            cert_type == "INTERNAL-CONSTRAINED-TLS-CA"
        }
        _ => false,
    };
    let mut findings = Vec::new();
    for (name, der, cert_type) in [
        ("leaf.pem", &chain[0], "DV-FINAL-CERTIFICATE"),
        (
            "served-issuing.pem",
            &chain[1],
            "INTERNAL-CONSTRAINED-TLS-CA",
        ),
        (
            "served-root.pem",
            &pki::cert_info::pem_to_ders(&root).unwrap()[0],
            "ROOT-CA",
        ),
    ] {
        std::fs::write(w.join(name), pki::cert_info::der_to_pem("CERTIFICATE", der)).unwrap();
        let Some(found) = support::pkilint::lint(
            "revocation_reaches_the_crl_over_plain_http",
            "lint_cabf_serverauth_cert",
            &["-t", cert_type],
            &w.join(name),
        ) else {
            return;
        };
        findings.extend(
            found
                .into_iter()
                .filter(|f| f.is_serious() && !excused(cert_type, f))
                .map(|f| format!("{cert_type} {name}: {f}")),
        );
    }
    assert!(
        findings.is_empty(),
        "pkilint ERROR/FATAL findings: {findings:#?}"
    );
}
