//! Public trust end to end: a real `openssl` CLI root plays the publicly trusted root. Two
//! vendor tenants are made with `fleetca tenant add --trust public` (key and CSR), signed by
//! that root, installed with `fleetca subca import --tenant`, and served beside the private
//! `default` tenant. certbot and lego get certificates from each; every chain verifies with
//! `openssl verify` to the openssl root; a vendor cannot issue inside another vendor's
//! constraints; pkilint lints the issuing CAs, the leaves and the CRLs.

mod support;

use std::process::Command;
use std::time::Duration;

use support::ct_log::{CtLog, Mode};
use support::public_root::{
    add_ct_logs, fetch, first_der, lint, make_root, openssl, root_signs, ROOT_ADDS, VENDORS,
};
use support::{
    certbot_certonly, free_port, lego_run, openssl_text, openssl_verify_strict, run, AcmeEndpoint,
    ChallTestSrv, Challenge, Fleetca, Tool,
};

/// These tests are about the sub-CAs; corroboration by remote perspectives (BR §3.2.2.9) has
/// its own tests (tests/perspectives.rs), so the startup minimum is lifted here.
const NO_PERSPECTIVES: &[&str] = &["--insecure-mpic-minimum", "0"];

const TEST: &str = "two_public_vendor_tenants_under_an_openssl_root";

#[test]
fn two_public_vendor_tenants_under_an_openssl_root() {
    if !support::require(
        TEST,
        &[Tool::Openssl, Tool::ChallTestSrv, Tool::Certbot, Tool::Lego],
    ) {
        return;
    }
    let logs = [
        CtLog::start("Operator A", Mode::Ok),
        CtLog::start("Operator B", Mode::Ok),
    ];
    let cts = ChallTestSrv::start();
    let http01 = free_port();
    let mut ca = Fleetca::init_with(
        &["home.arpa"],
        &["--country", "GB", "--organization", "Fleet Operator Ltd"],
    );
    let w = ca.scratch().join("root");
    let root = make_root(&w);

    // Refused before anything is written: no country (BR §7.1.2.10.2), a lifetime BR §6.3.2
    // does not allow today (200 days plus the notBefore backdate).
    let refused = [
        (
            vec!["--organization", "X Ltd"],
            "--country and --organization",
        ),
        (
            vec![
                "--country",
                "GB",
                "--organization",
                "X Ltd",
                "--lifetime-days",
                "200",
            ],
            "lifetime_days = 199",
        ),
        (
            vec!["--country", "gb", "--organization", "X Ltd"],
            "ISO 3166-1",
        ),
    ];
    for (extra, why) in refused {
        let mut args = vec!["tenant", "add", "vendor-x", "--trust", "public"];
        args.extend(["--permit", "x.example.com"]);
        args.extend(extra);
        let out = ca.cli(&args);
        assert!(
            !out.success() && out.combined().contains(why),
            "{why}\n{out}"
        );
        assert!(!ca.data_dir().join("ca/vendor-x").exists(), "{why}");
    }

    let mut certs = Vec::new();
    for v in &VENDORS {
        let mut args = vec!["tenant", "add", v.name, "--trust", "public"];
        args.extend(["--country", v.country, "--organization", v.organization]);
        args.extend(["--permit", v.permit, "--lifetime-days", "90"]);
        if v.eab {
            args.push("--eab-required");
        }
        let out = ca.cli(&args);
        assert!(out.success(), "{out}");
        let csr = ca.data_dir().join(format!("ca/{}/request.csr", v.name));
        let text = openssl(
            &[
                "req",
                "-in",
                csr.to_str().unwrap(),
                "-noout",
                "-verify",
                "-text",
            ],
            &w,
        );
        assert!(
            text.contains("DirName:"),
            "CSR without directoryName\n{text}"
        );
        let key = ca.data_dir().join(format!("ca/{}/key.pem", v.name));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        certs.push(root_signs(
            &w,
            &csr,
            ROOT_ADDS,
            true,
            &format!("{}.pem", v.name),
        ));
    }

    // What `subca import` must refuse, installing nothing: another vendor's certificate, a
    // certificate without the directoryName constraint, one whose chain is not its issuer.
    let csr_a = ca.data_dir().join("ca/vendor-a/request.csr");
    let no_dirname = format!(
        "{ROOT_ADDS}basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,digitalSignature,keyCertSign,cRLSign\nextendedKeyUsage=serverAuth\nnameConstraints=critical,permitted;DNS:a-devices.example.com,excluded;IP:0.0.0.0/0.0.0.0,excluded;IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0\n"
    );
    let bad = root_signs(&w, &csr_a, &no_dirname, false, "no-dirname.pem");
    for (cert, chain, why) in [
        (&certs[1], &root, "does not certify the issuing CA's key"),
        (&bad, &root, "directoryName"),
        (&certs[0], &certs[1], "not the issuer"),
    ] {
        let out = ca.cli(&[
            "subca",
            "import",
            "--tenant",
            "vendor-a",
            "--cert",
            cert.to_str().unwrap(),
            "--chain",
            chain.to_str().unwrap(),
        ]);
        assert!(!out.success(), "{why}\n{out}");
        assert!(out.combined().contains(why), "{why}\n{out}");
        assert!(!ca.data_dir().join("ca/vendor-a/cert.pem").exists());
    }
    for (v, cert) in VENDORS.iter().zip(&certs) {
        let out = ca.cli(&[
            "subca",
            "import",
            "--tenant",
            v.name,
            "--cert",
            cert.to_str().unwrap(),
            "--chain",
            root.to_str().unwrap(),
        ]);
        assert!(out.success(), "{out}");
        // A public tenant requires CT (docs/ct.md); SCTs are checked in tests/ct.rs and
        // tests/public_trust_e2e.rs.
        add_ct_logs(&ca, v.name, &logs);
    }

    ca.serve_with(cts.dns_port(), http01, free_port(), NO_PERSPECTIVES);
    for (v, issuing) in VENDORS.iter().zip(&certs) {
        let mut ep = AcmeEndpoint {
            directory: ca
                .directory_url()
                .replace("/acme/default/", &format!("/acme/{}/", v.name)),
            tls_ca: ca.root_pem_path().to_path_buf(),
            issuing_root: root.clone(),
            eab: None,
        };
        if v.eab {
            // Without a binding this vendor refuses the account.
            let name = format!("noeab.{}", v.permit);
            let e = lego_run(&ep, &[&name], Challenge::Http01 { port: http01 })
                .err()
                .expect("newAccount without EAB must fail");
            // lego reads `meta.externalAccountRequired` and stops before newAccount.
            assert!(
                e.combined().contains("requires External Account Binding"),
                "{e}"
            );
            let (kid, hmac) = ca.eab_create(v.name, 3);
            ep = ep.with_eab(&kid, &hmac);
        }
        let cb_name = format!("cb.{}", v.permit);
        let cb = certbot_certonly(&ep, &[&cb_name], http01)
            .unwrap_or_else(|e| panic!("certbot ({}) failed\n{e}\n{}", v.name, ca.log()));
        assert!(
            openssl_verify_strict(&root, &cb.chain_path, &cb.cert_path),
            "certbot's chain from {} does not verify to the openssl root",
            v.name
        );
        let lg_name = format!("lg.{}", v.permit);
        let lg = lego_run(&ep, &[&lg_name], Challenge::Http01 { port: http01 })
            .unwrap_or_else(|e| panic!("lego ({}) failed\n{e}\n{}", v.name, ca.log()));
        assert!(
            openssl_verify_strict(&root, &lg.issuer_path, &lg.leaf_path),
            "lego's chain from {} does not verify to the openssl root",
            v.name
        );
        // The served chain's issuing CA is the imported one; the leaf's subject is empty
        // (inside the directoryName subtree) and names the host only in the SAN.
        assert_eq!(first_der(&lg.issuer_path), first_der(issuing));
        let text = openssl_text(&lg.leaf_path);
        assert!(text.contains(&format!("DNS:{lg_name}")), "{text}");
        assert!(
            text.contains("Subject: \n") || text.contains("Subject:\n"),
            "{text}"
        );

        // This vendor cannot get a name of the other vendor's namespace.
        let other = VENDORS.iter().find(|o| o.name != v.name).unwrap();
        let foreign = format!("x.{}", other.permit);
        let e = lego_run(&ep, &[&foreign], Challenge::Http01 { port: http01 })
            .err()
            .unwrap_or_else(|| panic!("{} issued {foreign}", v.name));
        assert!(e.combined().contains("rejectedIdentifier"), "{e}");

        // pkilint: the issuing CA as a BR §7.1.2.5 technically constrained TLS sub-CA run by
        // someone other than the root's operator, the leaves as DV, and the CRL.
        let mut findings = lint(
            TEST,
            "lint_cabf_serverauth_cert",
            &["-t", "EXTERNAL-CONSTRAINED-TLS-CA"],
            issuing,
        );
        for leaf in [&cb.cert_path, &lg.leaf_path] {
            findings.extend(lint(
                TEST,
                "lint_cabf_serverauth_cert",
                &["-t", "DV-FINAL-CERTIFICATE"],
                leaf,
            ));
        }
        let plain = ca.plain_http_url().expect("plain HTTP URL");
        let crl = fetch(&format!("{plain}/crl/{}.crl", v.name));
        let crl_path = ca.scratch().join(format!("{}.crl", v.name));
        std::fs::write(&crl_path, &crl).unwrap();
        findings.extend(lint(
            TEST,
            "lint_crl",
            &["-t", "CRL", "-p", "BR", "--document-format", "DER"],
            &crl_path,
        ));
        assert!(findings.is_empty(), "pkilint findings: {findings:#?}");
    }
}

/// Seconds from now to `2027-03-16T00:00:00Z`, when BR §6.3.2 allows 100 days at most.
fn offset_to_2027_03_16() -> i64 {
    let target = 1_805_155_200; // 2027-03-16T00:00:00Z
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (target - now).max(0)
}

/// A public-trust tenant whose lifetime the BR schedule allowed when it was added stops the
/// server once the schedule shortens (the server clock moved with the debug-build offset),
/// and `tenant add` refuses it at that date. Until its certificate is imported, `serve`
/// serves the other tenants and says what the public one waits for.
#[test]
fn public_lifetime_is_checked_against_the_br_schedule_on_the_server_clock() {
    const TEST: &str = "public_lifetime_is_checked_against_the_br_schedule_on_the_server_clock";
    if !support::require(TEST, &[Tool::ChallTestSrv]) {
        return;
    }
    let cts = ChallTestSrv::start();
    let mut ca = Fleetca::init(&["home.arpa"]);
    let add = |name: &str, offset: i64| {
        let mut cmd = Command::new(Fleetca::bin());
        cmd.args(["tenant", "add", name, "--trust", "public"])
            .args(["--country", "NL", "--organization", "Vendor C B.V."])
            .args([
                "--permit",
                "c-devices.example.org",
                "--lifetime-days",
                "150",
            ])
            .arg("--data-dir")
            .arg(ca.data_dir())
            .env(fleetca::clock::TEST_CLOCK_OFFSET_ENV, offset.to_string());
        ca.with_database(&mut cmd);
        run(cmd, Duration::from_secs(60))
    };
    let out = add("vendor-c", 0);
    assert!(
        out.success(),
        "150 days is allowed before 2027-03-15\n{out}"
    );
    let offset = offset_to_2027_03_16();
    let out = add("vendor-d", offset);
    assert!(
        !out.success() && out.combined().contains("at most 100 days"),
        "{out}"
    );
    assert!(!ca.data_dir().join("ca/vendor-d").exists());

    // Today: serve starts; the tenant without a certificate is not served yet.
    ca.serve_with(cts.dns_port(), free_port(), free_port(), NO_PERSPECTIVES);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !ca.log().contains("not served yet") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ca.log().contains("not served yet"), "{}", ca.log());
    ca.stop();

    // On 2027-03-16 the same configuration is refused at start, with the reason.
    let mut cmd = Command::new(Fleetca::bin());
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(ca.data_dir())
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(NO_PERSPECTIVES)
        .env(fleetca::clock::TEST_CLOCK_OFFSET_ENV, offset.to_string());
    ca.with_database(&mut cmd);
    let out = run(cmd, Duration::from_secs(60));
    assert!(!out.success(), "{out}");
    assert!(
        out.combined().contains("\"vendor-c\"")
            && out.combined().contains("BR §6.3.2 allows at most 100 days")
            && out.combined().contains("lifetime_days = 99"),
        "{out}"
    );
}
