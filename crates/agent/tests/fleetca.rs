//! End-to-end against `fleetca serve` (binary from FLEETCA_BIN or
//! target/debug/fleetca; this test builds nothing itself).

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::*;

fn fleetca_bin() -> PathBuf {
    std::env::var_os("FLEETCA_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/fleetca")
        })
}

#[test]
fn fleetca_http01_issue_revoke_and_ed25519_account() {
    let bin = fleetca_bin();
    if !require("fleetca_http01 (run `cargo build -p fleetca` first)", &bin) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = Command::new(&bin)
        .arg("init")
        .arg("--data-dir")
        .arg(&data)
        .args(["--permit", "routers.example.com"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fleetca init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&bin)
        .args(["ca", "root", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success());
    let root = tmp.path().join("root.pem");
    std::fs::write(&root, &out.stdout).unwrap();

    let cts = ChallTestSrv::start(tmp.path());
    let http_port = free_port();
    let port = free_port();
    let mut cmd = Command::new(&bin);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--http-listen",
            "127.0.0.1:0",
        ])
        .args(["--dns-resolver", &format!("127.0.0.1:{}", cts.dns_port)])
        .args([
            "--http01-port",
            &http_port.to_string(),
            "--tlsalpn01-port",
            &free_port().to_string(),
        ]);
    let _server = ChildGuard::spawn(cmd, &tmp.path().join("fleetca.log"));
    wait_port(port);

    let dir_url = format!("https://127.0.0.1:{port}/acme/default/directory");
    let out_dir = tmp.path().join("out");
    let hp = http_port.to_string();
    let base = [
        "--server",
        dir_url.as_str(),
        "--server-root",
        root.to_str().unwrap(),
        "--out-dir",
        out_dir.to_str().unwrap(),
        "--domain",
        "cpe1.routers.example.com",
        "--challenge",
        "http-01",
        "--http-port",
        hp.as_str(),
    ];
    let mut a = base.to_vec();
    a.push("issue");
    let (code, _, err) = agent(&a);
    assert_eq!(code, 10, "issue against fleetca: {err}\n{}", _server.log());
    let (c, k) = pubkeys(&out_dir.join("cert.pem"), &out_dir.join("key.pem"));
    assert_eq!(c, k);

    let mut a = base.to_vec();
    a.extend(["revoke", "--reason", "superseded"]);
    let (code, _, err) = agent(&a);
    assert_eq!(code, 0, "revoke against fleetca: {err}");

    // An Ed25519 account key (EdDSA JWS, RFC 8037) in a fresh state dir.
    let out2 = tmp.path().join("out-ed25519");
    let mut a = base.to_vec();
    a[5] = out2.to_str().unwrap();
    a.extend(["--account-key-type", "ed25519", "issue"]);
    let (code, _, err) = agent(&a);
    assert_eq!(
        code,
        10,
        "Ed25519 account against fleetca: {err}\n{}",
        _server.log()
    );
    let pem = std::fs::read_to_string(out2.join(".state/account.key")).unwrap();
    let der = fleetca_agent::keys::pem_decode(&pem, "PRIVATE KEY").unwrap();
    let key = acme_types::sign::AccountKey::from_pkcs8_der(&der).unwrap();
    assert_eq!(key.alg(), "EdDSA");
    let (c, k) = pubkeys(&out2.join("cert.pem"), &out2.join("key.pem"));
    assert_eq!(c, k);
}
