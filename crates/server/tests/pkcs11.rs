//! The issuing CA key in a PKCS#11 token (SoftHSM2), end to end: `fleetca init
//! --pkcs11-module/--pkcs11-token/--pkcs11-pin-file` generates the key inside the token and
//! writes no key file; `serve` signs certificates (lego, certbot), CRLs and OCSP answers with
//! it; the key object is sensitive and never extractable (read back with `pkcs11-tool`); and
//! while the token is gone, finalize answers `serverInternal` with Retry-After, stores nothing,
//! and `/metrics` shows `fleetca_signer_available 0`.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` when a process initialises it, so one configuration (and
//! token directory) serves this whole test binary; the `fleetca` processes inherit it. Each
//! test has a token of its own. Every SoftHSM2 process scans the whole directory when it
//! starts, and a scan that meets a token directory being moved fails ("Could not get info
//! about the token"), so the test that pulls a token out runs alone ([`TOKENDIR`]).

mod client;
mod support;

use client::{b64url, csr, Client};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use support::{
    certbot_certonly, free_port, lego_run, openssl_verify, run, temp_dir, ChallTestSrv, Challenge,
    Fleetca, Tool,
};

const PERMITS: &[&str] = &["routers.example.com"];
const PIN: &str = "87654321";

/// Held shared by every test for its whole run (its processes scan the token directory), and
/// exclusively by the one that moves a token directory away.
static TOKENDIR: RwLock<()> = RwLock::new(());

fn tokendir_shared() -> RwLockReadGuard<'static, ()> {
    TOKENDIR.read().unwrap_or_else(|p| p.into_inner())
}

fn tokendir_alone() -> RwLockWriteGuard<'static, ()> {
    TOKENDIR.write().unwrap_or_else(|p| p.into_inner())
}

struct SoftHsm {
    module: PathBuf,
    tokendir: PathBuf,
    pin_file: PathBuf,
    _dir: tempfile::TempDir,
}

/// The binary's SoftHSM2 setup; `None` after a SKIP line when SoftHSM2 or pkcs11-tool is
/// missing outside CI (under CI that is a failure, as for every interop tool).
fn softhsm(test: &str) -> Option<&'static SoftHsm> {
    static HSM: OnceLock<Option<SoftHsm>> = OnceLock::new();
    let hsm = HSM.get_or_init(|| {
        let module = PathBuf::from(
            std::env::var("FLEETCA_SOFTHSM2_MODULE")
                .unwrap_or_else(|_| "/usr/lib/softhsm/libsofthsm2.so".into()),
        );
        let have = |bin: &str| Command::new(bin).arg("--help").output().is_ok();
        if !module.exists() || !have("softhsm2-util") || !have("pkcs11-tool") {
            return None;
        }
        let dir = temp_dir("softhsm");
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
        // Once, before any child process starts: the fleetca and pkcs11-tool processes
        // inherit it.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let pin_file = dir.path().join("pin");
        std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
        Some(SoftHsm {
            module,
            tokendir,
            pin_file,
            _dir: dir,
        })
    });
    if !support::gate(
        test,
        hsm.is_some(),
        "SoftHSM2 (softhsm2-util, libsofthsm2.so) or pkcs11-tool is not installed (see .ci/run)",
    ) {
        return None;
    }
    hsm.as_ref()
}

impl SoftHsm {
    /// Initialises a token labelled `label`; returns its directory.
    fn token(&self, label: &str) -> PathBuf {
        // Tokens are told apart by the directory each `--init-token` adds.
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
        let _g = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let list = || -> Vec<PathBuf> {
            std::fs::read_dir(&self.tokendir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect()
        };
        let before = list();
        let mut cmd = Command::new("softhsm2-util");
        cmd.args(["--init-token", "--free", "--label", label])
            .args(["--pin", PIN, "--so-pin", "12345678"]);
        let out = run(cmd, Duration::from_secs(30));
        assert!(out.success(), "softhsm2-util --init-token\n{out}");
        list()
            .into_iter()
            .find(|p| !before.contains(p))
            .expect("a new token directory")
    }

    /// `fleetca init` arguments that put the issuing CA key in token `label`.
    fn init_args<'a>(&'a self, label: &'a str) -> Vec<&'a str> {
        vec![
            "--pkcs11-module",
            self.module.to_str().unwrap(),
            "--pkcs11-token",
            label,
            "--pkcs11-pin-file",
            self.pin_file.to_str().unwrap(),
        ]
    }

    fn pkcs11_tool(&self, token: &str, args: &[&str]) -> String {
        let mut cmd = Command::new("pkcs11-tool");
        cmd.arg("--module")
            .arg(&self.module)
            .args(["--token-label", token, "--login", "--pin", PIN])
            .args(args);
        let out = run(cmd, Duration::from_secs(30));
        assert!(out.success(), "pkcs11-tool {args:?}\n{out}");
        out.stdout
    }
}

/// Every file under `dir` whose content is a PEM private key.
fn private_key_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(private_key_files(&p));
        } else if std::fs::read(&p)
            .map(|b| String::from_utf8_lossy(&b).contains("PRIVATE KEY-----"))
            .unwrap_or(false)
        {
            out.push(p);
        }
    }
    out
}

fn issuing_ca_der(ca: &Fleetca) -> Vec<u8> {
    let pem = std::fs::read_to_string(ca.data_dir().join("ca/default/cert.pem")).unwrap();
    pki::cert_info::pem_to_ders(&pem).unwrap().remove(0)
}

fn openssl(args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new(Tool::Openssl.path());
    cmd.args(args);
    let out = run(cmd, Duration::from_secs(30));
    (out.success(), out.combined())
}

/// Checks the key generated for `init` inside the token and the data directory around it.
fn check_key_in_token(hsm: &SoftHsm, token: &str, ca: &Fleetca) {
    let config = std::fs::read_to_string(ca.data_dir().join("fleetca.toml")).unwrap();
    let cfg: toml::Value = toml::from_str(&config).unwrap();
    let p11 = &cfg["ca"]["pkcs11"];
    assert_eq!(p11["token"].as_str(), Some(token), "{config}");
    assert_eq!(p11["module"].as_str(), hsm.module.to_str(), "{config}");
    let key_label = p11["key"].as_str().expect("key label recorded").to_string();
    assert_eq!(
        p11.as_table().unwrap().len(),
        3,
        "only module, token and key label are recorded: {config}"
    );
    assert!(!config.contains(PIN), "the PIN is not in the configuration");

    // No issuing-CA key file: the only private keys left are the root's and the server
    // TLS CA's and HTTPS keys.
    assert!(!ca.data_dir().join("ca/default/key.pem").exists());
    let mut keys = private_key_files(ca.data_dir());
    keys.sort();
    assert_eq!(
        keys,
        ["root/key.pem", "tls/ca-key.pem", "tls/key.pem"].map(|k| ca.data_dir().join(k))
    );

    // The token's own view (pkcs11-tool, not fleetca): a sensitive, never-extractable private
    // key with that label, whose public half is the one the issuing CA certificate certifies.
    let objects = hsm.pkcs11_tool(token, &["--list-objects", "--type", "privkey"]);
    let entry = objects
        .split("Private Key Object")
        .find(|o| o.contains(&format!("label:      {key_label}")))
        .unwrap_or_else(|| panic!("no private key {key_label} in the token:\n{objects}"));
    for want in [
        "sensitive",
        "always sensitive",
        "never extractable",
        "local",
        "sign",
    ] {
        assert!(entry.contains(want), "{want:?} missing:\n{entry}");
    }
    let pub_der = ca.scratch().join("token-pub.der");
    hsm.pkcs11_tool(
        token,
        &[
            "--read-object",
            "--type",
            "pubkey",
            "--label",
            &key_label,
            "-o",
            pub_der.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read(&pub_der).unwrap(),
        pki::cert_info::spki_der_of(&issuing_ca_der(ca)).unwrap(),
        "the issuing CA certificate certifies the token's key"
    );
}

#[test]
fn token_key_signs_certificates_crls_and_ocsp() {
    const TEST: &str = "token_key_signs_certificates_crls_and_ocsp";
    // Declared first, dropped last: after this test's processes have stopped.
    let _tokendir = tokendir_shared();
    let Some(hsm) = softhsm(TEST) else {
        return;
    };
    if !support::require(
        TEST,
        &[Tool::ChallTestSrv, Tool::Openssl, Tool::Lego, Tool::Certbot],
    ) {
        return;
    }
    hsm.token("interop");
    let mut ca = Fleetca::init_with(PERMITS, &hsm.init_args("interop"));
    check_key_in_token(hsm, "interop", &ca);

    let cts = ChallTestSrv::start();
    let http01 = free_port();
    let pin = hsm.pin_file.to_str().unwrap();
    ca.serve_with(
        cts.dns_port(),
        http01,
        free_port(),
        &["--pkcs11-pin-file", pin],
    );
    let ep = ca.endpoint();
    let issuing_pem = ca.scratch().join("issuing.pem");
    std::fs::write(
        &issuing_pem,
        pki::der_to_pem("CERTIFICATE", &issuing_ca_der(&ca)),
    )
    .unwrap();

    let lego = lego_run(
        &ep,
        &["lego1.routers.example.com"],
        Challenge::Http01 { port: http01 },
    )
    .unwrap_or_else(|e| panic!("lego run failed\n{e}\n{}", ca.log()));
    assert!(
        openssl_verify(ca.root_pem_path(), &lego.issuer_path, &lego.leaf_path),
        "lego's certificate does not chain to the root through the token-held CA"
    );
    let certbot = certbot_certonly(&ep, &["certbot1.routers.example.com"], http01)
        .unwrap_or_else(|e| panic!("certbot certonly failed\n{e}\n{}", ca.log()));
    assert!(
        openssl_verify(ca.root_pem_path(), &issuing_pem, &certbot.cert_path),
        "certbot's certificate does not verify against the token-held CA"
    );

    // The CRL, signed by the token key, verifies against the issuing CA certificate.
    let base = ca.plain_http_url().expect("plain HTTP URL in the log");
    let crl = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async {
            reqwest::get(format!("{base}/crl/default.crl"))
                .await?
                .error_for_status()?
                .bytes()
                .await
        })
        .unwrap_or_else(|e| panic!("fetching the CRL: {e}\n{}", ca.log()));
    let crl_path = ca.scratch().join("default.crl");
    std::fs::write(&crl_path, &crl).unwrap();
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        crl_path.to_str().unwrap(),
        "-CAfile",
        issuing_pem.to_str().unwrap(),
        "-noout",
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");

    // OCSP: a good answer for lego's certificate, signed by the token key.
    let (ok, text) = openssl(&[
        "ocsp",
        "-issuer",
        issuing_pem.to_str().unwrap(),
        "-cert",
        lego.leaf_path.to_str().unwrap(),
        "-url",
        &format!("{base}/ocsp/default"),
        "-CAfile",
        ca.root_pem_path().to_str().unwrap(),
        "-verify_other",
        issuing_pem.to_str().unwrap(),
    ]);
    assert!(ok, "{text}\n{}", ca.log());
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(text.contains(": good"), "{text}");
    drop(cts);
}

#[test]
fn p384_and_rsa_token_keys_issue() {
    const TEST: &str = "p384_and_rsa_token_keys_issue";
    // Declared first, dropped last: after this test's processes have stopped.
    let _tokendir = tokendir_shared();
    let Some(hsm) = softhsm(TEST) else {
        return;
    };
    for (label, key_type) in [("p384", "p384"), ("rsa", "rsa2048")] {
        hsm.token(label);
        let mut args = hsm.init_args(label);
        args.extend(["--issuing-key-type", key_type]);
        let mut ca = Fleetca::init_with(PERMITS, &args);
        assert!(!ca.data_dir().join("ca/default/key.pem").exists());
        ca.serve_with(
            free_port(),
            free_port(),
            free_port(),
            &[
                "--insecure-skip-validation",
                "--pkcs11-pin-file",
                hsm.pin_file.to_str().unwrap(),
            ],
        );
        let rt = tokio::runtime::Runtime::new().unwrap();
        let chain = rt.block_on(async {
            let c = ready_order(&ca, &format!("{label}.routers.example.com")).await;
            c.client
                .finalize_and_download(&c.order_url, &c.order, &[&c.name])
                .await
                .0
        });
        let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
        let (_, issuer) = x509_parser::parse_x509_certificate(&chain[1]).unwrap();
        leaf.verify_signature(Some(issuer.public_key()))
            .unwrap_or_else(|e| panic!("{key_type}: leaf signature: {e:?}"));
        assert_eq!(chain[1], issuing_ca_der(&ca), "{key_type}");
    }
}

struct Ready {
    client: Client,
    name: String,
    order_url: String,
    order: Value,
}

/// An account and a `ready` order for `name` (the server skips validation).
async fn ready_order(ca: &Fleetca, name: &str) -> Ready {
    let mut c = Client::new(&ca.directory_url(), ca.root_pem()).await;
    assert_eq!(c.new_account().await.status, 201);
    let r = c.new_order(&[name]).await;
    assert_eq!(r.status, 201, "{}", r.problem());
    let order_url = r.location();
    let order = r.json();
    for authz in order["authorizations"].as_array().unwrap() {
        let a = c.post(authz.as_str().unwrap(), None).await.json();
        let ch = a["challenges"][0]["url"].as_str().unwrap().to_string();
        c.post(&ch, Some(&json!({}))).await;
    }
    let order = c.poll(&order_url, |o| o["status"] == "ready").await;
    Ready {
        client: c,
        name: name.to_string(),
        order_url,
        order,
    }
}

fn signer_gauge(metrics: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix("fleetca_signer_available{tenant=\"default\"} ")
            .and_then(|v| v.trim().parse().ok())
    })
}

async fn metrics(ca: &Fleetca) -> String {
    // `serve_with` returned after `serve` printed every URL: this reads, it does not wait.
    let admin = ca.admin_url();
    reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[test]
fn a_removed_token_refuses_issuance_with_retry_after_and_stores_nothing() {
    const TEST: &str = "a_removed_token_refuses_issuance_with_retry_after_and_stores_nothing";
    // It moves its token directory away under the running server: no other SoftHSM2
    // process may be scanning the directory then.
    let _tokendir = tokendir_alone();
    let Some(hsm) = softhsm(TEST) else {
        return;
    };
    let token_dir = hsm.token("removable");
    let mut ca = Fleetca::init_with(PERMITS, &hsm.init_args("removable"));
    ca.serve_with(
        free_port(),
        free_port(),
        free_port(),
        &[
            "--insecure-skip-validation",
            "--pkcs11-pin-file",
            hsm.pin_file.to_str().unwrap(),
        ],
    );
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(refused_while_the_token_is_gone(&ca, &token_dir));
}

async fn refused_while_the_token_is_gone(ca: &Fleetca, token_dir: &Path) {
    let first = ready_order(ca, "one.routers.example.com").await;
    let (chain, _) = first
        .client
        .finalize_and_download(&first.order_url, &first.order, &[&first.name])
        .await;
    let issuing_pem = ca.scratch().join("issuing.pem");
    let leaf_pem = ca.scratch().join("leaf.pem");
    std::fs::write(&issuing_pem, pki::der_to_pem("CERTIFICATE", &chain[1])).unwrap();
    std::fs::write(&leaf_pem, pki::der_to_pem("CERTIFICATE", &chain[0])).unwrap();
    let base = ca.plain_http_url().expect("plain HTTP URL");
    let ocsp = || {
        openssl(&[
            "ocsp",
            "-issuer",
            issuing_pem.to_str().unwrap(),
            "-cert",
            leaf_pem.to_str().unwrap(),
            "-url",
            &format!("{base}/ocsp/default"),
            "-CAfile",
            ca.root_pem_path().to_str().unwrap(),
            "-verify_other",
            issuing_pem.to_str().unwrap(),
        ])
    };
    let (ok, text) = ocsp();
    assert!(ok && text.contains(": good"), "{text}");
    assert_eq!(signer_gauge(&metrics(ca).await), Some(1.0));

    let r = ready_order(ca, "two.routers.example.com").await;
    // The token disappears under the running server, as an unplugged HSM would.
    std::fs::rename(token_dir, token_dir.with_extension("away")).unwrap();
    let (csr_der, _key) = csr(&[&r.name], &rcgen::PKCS_ECDSA_P256_SHA256);
    let resp = r
        .client
        .post(
            r.order["finalize"].as_str().unwrap(),
            Some(&json!({"csr": b64url(&csr_der)})),
        )
        .await;
    assert_eq!(resp.status, 500, "{}", resp.problem());
    let problem = resp.json();
    assert_eq!(problem["type"], "urn:ietf:params:acme:error:serverInternal");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("signing key is temporarily unavailable"),
        "{problem}"
    );
    let retry: u64 = resp
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a numeric Retry-After");
    assert!((1..=300).contains(&retry), "{retry}");
    // Nothing half-written: the order is still ready (it can be finalized once the token is
    // back), and the database holds only the first certificate.
    let order = r.client.post(&r.order_url, None).await.json();
    assert_eq!(order["status"], "ready", "{order}");
    assert!(order.get("certificate").is_none(), "{order}");
    let listed = ca.cli(&["cert", "list", "--json"]);
    assert!(listed.success(), "{listed}");
    let certs: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(certs.as_array().map(Vec::len), Some(1), "{certs}");
    assert_eq!(signer_gauge(&metrics(ca).await), Some(0.0));
    // OCSP asks relying parties to come back (RFC 6960 §2.3 tryLater) instead of failing.
    let (_, text) = ocsp();
    assert!(text.to_lowercase().contains("trylater"), "{text}");
    assert!(
        ca.log().contains("CA signer unavailable") && ca.log().contains("\"removable\""),
        "the log names the token:\n{}",
        ca.log()
    );
}

#[test]
fn tenant_add_and_subca_csr_generate_their_keys_in_the_token() {
    const TEST: &str = "tenant_add_and_subca_csr_generate_their_keys_in_the_token";
    // Declared first, dropped last: after this test's processes have stopped.
    let _tokendir = tokendir_shared();
    let Some(hsm) = softhsm(TEST) else {
        return;
    };
    if !support::require(TEST, &[Tool::Openssl]) {
        return;
    }
    hsm.token("tenants");
    // The default tenant keeps a file key; the new tenant's key goes to the token.
    let mut ca = Fleetca::init(PERMITS);
    let mut args = vec!["tenant", "add", "vendor", "--permit", "vendor.example.com"];
    args.extend(hsm.init_args("tenants"));
    let out = ca.cli(&args);
    assert!(out.success(), "{out}");
    let tenant_dir = ca.data_dir().join("ca/vendor");
    assert!(!tenant_dir.join("key.pem").exists());
    let cfg = std::fs::read_to_string(tenant_dir.join("tenant.toml")).unwrap();
    assert!(
        cfg.contains("[ca.pkcs11]") && cfg.contains("token = \"tenants\""),
        "{cfg}"
    );
    assert!(ca.data_dir().join("ca/default/key.pem").exists());
    // Without the PIN, serve refuses clearly; with it, both tenants load.
    let mut cmd = Command::new(Fleetca::bin());
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(ca.data_dir())
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .env_remove("FLEETCA_PKCS11_PIN_FILE");
    let out = run(cmd, Duration::from_secs(30));
    assert!(!out.success());
    assert!(
        out.combined().contains("--pkcs11-pin-file") && out.combined().contains("\"vendor\""),
        "{out}"
    );
    ca.serve_with(
        free_port(),
        free_port(),
        free_port(),
        &["--pkcs11-pin-file", hsm.pin_file.to_str().unwrap()],
    );
    // serve prints its tenants right after its listeners start: wait for the line.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ca.log().contains("Tenant \"vendor\"") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ca.log().contains("Tenant \"vendor\""), "{}", ca.log());

    // Public trust: the CSR for the outside root is signed by the token key.
    let dir = temp_dir("subca");
    let data = dir.path().join("data");
    let mut cmd = Command::new(Fleetca::bin());
    cmd.args(["subca", "csr", "--data-dir"])
        .arg(&data)
        .args(["--permit", "public.example.com", "--key-type", "p384"])
        .args(["--organization", "Example Public Ltd", "--country", "GB"])
        .args(hsm.init_args("tenants"));
    let out = run(cmd, Duration::from_secs(60));
    assert!(out.success(), "{out}");
    assert!(!data.join("ca/default/key.pem").exists());
    let (ok, text) = openssl(&[
        "req",
        "-in",
        data.join("ca/default/request.csr").to_str().unwrap(),
        "-verify",
        "-noout",
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");

    // A public-trust vendor tenant: its key is made in the token too, and its CSR (signed by
    // that key) asks for the vendor's subject and directoryName constraint.
    let mut args = vec!["tenant", "add", "vendor-pub", "--trust", "public"];
    args.extend(["--country", "GB", "--organization", "Vendor Pub Ltd"]);
    args.extend(["--permit", "pub.example.com"]);
    args.extend(hsm.init_args("tenants"));
    let out = ca.cli(&args);
    assert!(out.success(), "{out}");
    let tenant_dir = ca.data_dir().join("ca/vendor-pub");
    assert!(!tenant_dir.join("key.pem").exists());
    let cfg = std::fs::read_to_string(tenant_dir.join("tenant.toml")).unwrap();
    assert!(cfg.contains("[ca.pkcs11]"), "{cfg}");
    let (ok, text) = openssl(&[
        "req",
        "-in",
        tenant_dir.join("request.csr").to_str().unwrap(),
        "-verify",
        "-noout",
        "-text",
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");
    assert!(
        text.contains("DirName:C = GB, O = Vendor Pub Ltd"),
        "{text}"
    );
}
