//! Public trust end to end, all of issue 16 at once: a real `openssl` CLI root plays the
//! publicly trusted root and signs two vendor tenants (`tenant add --trust public`, `subca
//! import`); each tenant's `[ca] ct_logs` lists three test CT logs of two operators
//! (`support::ct_log`); `[mpic]` lists five `fleetca perspective` processes (BR §3.2.2.9), with
//! no test override of the BR minimum. certbot and lego get certificates from each tenant,
//! and everything a relying party would check is checked by parties other than the code under
//! test: the chain with `openssl verify`, the SCTs with `openssl x509 -text` and
//! `support/ct_verify.py` (Python `cryptography`), revocation through OCSP and the CRL, the
//! precertificate and the final certificate with pkilint.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::ct_check::check_scts;
use support::ct_log::{CtLog, Mode};
use support::perspective::{mpic_toml, Mtls, Perspective, REGIONS};
use support::public_root::{add_ct_logs, add_signed_tenant, first_der, lint, make_root, VENDORS};
use support::{
    certbot_certonly, free_port, lego_revoke, lego_run, openssl_text, openssl_verify_strict,
    AcmeEndpoint, ChallTestSrv, Challenge, Fleetca, Tool,
};

const TEST: &str = "public_tenants_with_ct_and_perspectives_end_to_end";

/// Everything running; field order = drop order: the CA before what it talks to.
struct Lab {
    ca: Fleetca,
    perspectives: Vec<Perspective>,
    _cts: ChallTestSrv,
    /// Operators A, B, B: two operators, so a policy-conforming SCT set needs log 0.
    logs: Vec<CtLog>,
    root: PathBuf,
    /// Each vendor's issuing CA certificate, in [`VENDORS`] order.
    issuing: Vec<PathBuf>,
    http01: u16,
    _tls: Mtls,
}

impl Lab {
    fn start() -> Lab {
        let tls = Mtls::new();
        let http01 = free_port();
        let logs: Vec<CtLog> = ["Operator A", "Operator B", "Operator B"]
            .iter()
            .map(|op| CtLog::start(op, Mode::Ok))
            .collect();
        let perspectives: Vec<Perspective> = REGIONS
            .iter()
            .map(|r| Perspective::start(r, &tls, http01))
            .collect();
        let cts = ChallTestSrv::start();
        let mut ca = Fleetca::init_with(
            &["home.arpa"],
            &["--country", "GB", "--organization", "Fleet Operator Ltd"],
        );
        let dir = ca.scratch().join("root");
        let root = make_root(&dir);
        let issuing = VENDORS
            .iter()
            .map(|v| {
                let cert = add_signed_tenant(&ca, v, &dir, &root);
                add_ct_logs(&ca, v.name, &logs);
                cert
            })
            .collect();
        let cfg = ca.data_dir().join("fleetca.toml");
        let text = std::fs::read_to_string(&cfg).unwrap() + &mpic_toml(&tls, &perspectives);
        std::fs::write(&cfg, text).unwrap();
        // No --insecure-mpic-minimum: the public tenants start only because five
        // perspectives are configured.
        ca.serve_with(
            cts.dns_port(),
            http01,
            free_port(),
            &["--ct-retry-secs", "1"],
        );
        Lab {
            ca,
            perspectives,
            _cts: cts,
            logs,
            root,
            issuing,
            http01,
            _tls: tls,
        }
    }

    /// The ACME endpoint of vendor `i`, with an EAB binding when the vendor requires one.
    fn endpoint(&self, i: usize) -> AcmeEndpoint {
        let v = &VENDORS[i];
        let ep = AcmeEndpoint {
            directory: self
                .ca
                .directory_url()
                .replace("/acme/default/", &format!("/acme/{}/", v.name)),
            tls_ca: self.ca.root_pem_path().to_path_buf(),
            issuing_root: self.root.clone(),
            eab: None,
        };
        if v.eab {
            let (kid, hmac) = self.ca.eab_create(v.name, 5);
            ep.with_eab(&kid, &hmac)
        } else {
            ep
        }
    }

    /// What a relying party checks on a certificate of vendor `i` for `name`: the chain to
    /// the openssl root, the served issuer is the imported one, 2 or 3 valid SCTs from
    /// distinct operators, the stored precertificate (serial, TBS), every perspective asked;
    /// returns the logs whose SCTs it carries and pkilint's findings on the precertificate
    /// and the final certificate.
    fn check(
        &self,
        i: usize,
        name: &str,
        leaf: &Path,
        chain: &Path,
    ) -> (BTreeSet<usize>, Vec<String>) {
        assert!(
            openssl_verify_strict(&self.root, chain, leaf),
            "{name}: the chain does not verify to the openssl root"
        );
        assert_eq!(first_der(chain), first_der(&self.issuing[i]), "{name}");
        assert!(
            openssl_text(leaf).contains(&format!("DNS:{name}")),
            "{name}"
        );
        let used = check_scts(&self.ca, &self.logs, leaf, chain, 2..=3);
        for (n, p) in self.perspectives.iter().enumerate() {
            let log = p.guard.as_ref().map(|g| g.log()).unwrap_or_default();
            assert!(
                log.contains(name),
                "perspective {} was not asked about {name}\n{log}",
                n + 1
            );
        }
        let mut findings = lint(
            TEST,
            "lint_cabf_serverauth_cert",
            &["-t", "DV-PRE-CERTIFICATE"],
            &leaf.with_extension("precert.pem"),
        );
        findings.extend(lint(
            TEST,
            "lint_cabf_serverauth_cert",
            &["-t", "DV-FINAL-CERTIFICATE"],
            leaf,
        ));
        (used, findings)
    }
}

/// certbot and lego get certificates from both public tenants; each carries valid SCTs from
/// two operators and corroborated validation; a revoked certificate's precertificate is
/// `revoked` in OCSP; pkilint is clean on precertificates and certificates.
#[test]
fn public_tenants_with_ct_and_perspectives_end_to_end() {
    if !support::require(
        TEST,
        &[Tool::Openssl, Tool::ChallTestSrv, Tool::Certbot, Tool::Lego],
    ) || !support::ct_check::python_ready(TEST)
    {
        return;
    }
    let lab = Lab::start();
    let mut findings = Vec::new();
    for (i, v) in VENDORS.iter().enumerate() {
        let ep = lab.endpoint(i);
        let cb_name = format!("cb.{}", v.permit);
        let cb = certbot_certonly(&ep, &[&cb_name], lab.http01)
            .unwrap_or_else(|e| panic!("certbot ({}) failed\n{e}\n{}", v.name, lab.ca.log()));
        findings.extend(lab.check(i, &cb_name, &cb.cert_path, &cb.chain_path).1);

        let lg_name = format!("lg.{}", v.permit);
        let lg = lego_run(&ep, &[&lg_name], Challenge::Http01 { port: lab.http01 })
            .unwrap_or_else(|e| panic!("lego ({}) failed\n{e}\n{}", v.name, lab.ca.log()));
        findings.extend(lab.check(i, &lg_name, &lg.leaf_path, &lg.issuer_path).1);

        // Revoked: the certificate and its precertificate (same issuer and serial, BR
        // §7.1.2.9) are `revoked` in OCSP and on the CRL.
        lego_revoke(&ep, &lg)
            .unwrap_or_else(|e| panic!("lego revoke ({}) failed\n{e}\n{}", v.name, lab.ca.log()));
        for pem in [
            lg.leaf_path.clone(),
            lg.leaf_path.with_extension("precert.pem"),
        ] {
            support::revocation::assert_revoked_in(
                &lab.ca,
                v.name,
                &lab.root,
                &pem,
                &lg.issuer_path,
            );
        }
    }
    assert!(findings.is_empty(), "pkilint findings: {findings:#?}");
}

/// How many times the CA has deferred an order for want of SCTs so far.
fn deferrals(ca: &Fleetca) -> usize {
    ca.log()
        .matches("no certificate without SCTs enough")
        .count()
}

/// Waits (with a deadline) until the CA has deferred more than `after` times.
fn wait_deferral(
    ca: &Fleetca,
    after: usize,
    client: &std::thread::ScopedJoinHandle<'_, impl Sized>,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while deferrals(ca) <= after {
        assert!(
            Instant::now() < deadline && !client.is_finished(),
            "the order was not deferred for want of SCTs\n{}",
            ca.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// With two of the three logs down a public tenant's order waits in `processing` (the
/// precertificate is stored, no certificate without SCTs); one log of the operator already
/// heard from coming back is not enough (Chrome: two operators); the other operator's log
/// coming back completes it.
#[test]
fn public_issuance_waits_while_two_logs_are_down() {
    const TEST: &str = "public_issuance_waits_while_two_logs_are_down";
    if !support::require(TEST, &[Tool::Openssl, Tool::ChallTestSrv, Tool::Lego])
        || !support::ct_check::python_ready(TEST)
    {
        return;
    }
    let lab = Lab::start();
    lab.logs[0].set_mode(Mode::Down);
    lab.logs[1].set_mode(Mode::Down);
    let i = 1;
    let ep = lab.endpoint(i);
    let name = format!("wait.{}", VENDORS[i].permit);
    let cert = std::thread::scope(|s| {
        let client = s.spawn(|| lego_run(&ep, &[&name], Challenge::Http01 { port: lab.http01 }));
        wait_deferral(&lab.ca, 0, &client);
        assert!(lab.ca.log().contains("precertificate stored"));
        // Operator B's other log: two SCTs, one operator; still not enough.
        lab.logs[1].set_mode(Mode::Ok);
        // Two more deferrals: at least one retry began after the log came back.
        let seen = deferrals(&lab.ca);
        wait_deferral(&lab.ca, seen + 1, &client);
        assert!(!client.is_finished(), "issued with SCTs of one operator");
        assert!(lab.logs[1].submissions() >= 1, "the returned log was asked");
        lab.logs[0].set_mode(Mode::Ok);
        client.join().unwrap()
    })
    .unwrap_or_else(|e| panic!("lego run failed\n{e}\n{}", lab.ca.log()));
    let (used, findings) = lab.check(i, &name, &cert.leaf_path, &cert.issuer_path);
    assert!(findings.is_empty(), "pkilint findings: {findings:#?}");
    assert!(used.contains(&0), "Operator A's log: {used:?}");
    // The deferrals were this public tenant's: at least the two waited for above.
    let m = support::metrics::scrape(&lab.ca);
    let shortfalls = support::metrics::sum(
        &m,
        "fleetca_ct_shortfalls_total",
        &[&format!("tenant=\"{}\"", VENDORS[i].name)],
    );
    assert!(shortfalls >= 2.0, "{m}");
}

/// Issue 17 under public trust, the router behind NAT: vendor A validates its parent domain
/// once by dns-01 (corroborated by the five perspectives, BR §3.2.2.9), then three agents
/// holding vendor A's EAB credential and running no listener (`--challenge none`) each get
/// `config.<domain>` and their own `<serial>.<domain>`, each with its own key; every
/// certificate chains to the openssl root and carries SCTs of two operators.
#[test]
fn public_tenant_domain_gives_devices_behind_nat_their_names() {
    const TEST: &str = "public_tenant_domain_gives_devices_behind_nat_their_names";
    if !support::require(TEST, &[Tool::Openssl, Tool::ChallTestSrv])
        || !support::ct_check::python_ready(TEST)
    {
        return;
    }
    let Some(agent) = support::agent_bin(TEST) else {
        return;
    };
    let lab = Lab::start();
    let v = &VENDORS[0];
    let domain = v.permit;
    let out = lab.ca.cli(&[
        "domain", "add", "--tenant", v.name, domain, "--method", "dns-01", "--json",
    ]);
    assert!(out.success(), "{out}");
    let added: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let (txt_name, txt_value) = (
        added["txt_name"].as_str().unwrap().to_string(),
        added["txt_value"].as_str().unwrap().to_string(),
    );
    let resolver = lab._cts.dns_addr();
    let validate = || {
        lab.ca.cli(&[
            "domain",
            "validate",
            "--tenant",
            v.name,
            domain,
            "--json",
            "--dns-resolver",
            &resolver,
        ])
    };
    // Published where the CA looks but seen by only three of five perspectives: refused.
    lab._cts.set_txt(&txt_name, &txt_value);
    for p in &lab.perspectives[2..] {
        p.dns_ref().set_txt(&txt_name, &txt_value);
    }
    let out = validate();
    assert!(
        !out.success(),
        "two perspectives do not see the record\n{out}"
    );
    assert!(out.combined().contains("perspective"), "{out}");
    assert!(
        !out.combined().contains(&txt_value),
        "no value echoed\n{out}"
    );
    // Everywhere: valid.
    for p in &lab.perspectives {
        p.dns_ref().set_txt(&txt_name, &txt_value);
    }
    let out = validate();
    assert!(out.success(), "{out}");

    let (kid, hmac) = lab.ca.eab_create(v.name, 10);
    let directory = lab
        .ca
        .directory_url()
        .replace("/acme/default/", &format!("/acme/{}/", v.name));
    let config_name = format!("config.{domain}");
    let mut keys = Vec::new();
    for serial in ["sn-0001", "sn-0002", "sn-0003"] {
        let dir = lab.ca.scratch().join(format!("agent-{serial}"));
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join("eab.key");
        std::fs::write(&key_file, &hmac).unwrap();
        let mut cmd = std::process::Command::new(&agent);
        cmd.arg("issue")
            .args(["--server", &directory])
            .arg("--server-root")
            .arg(lab.ca.root_pem_path())
            .arg("--out-dir")
            .arg(dir.join("out"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(["--eab-kid", &kid])
            .arg("--eab-hmac-key-file")
            .arg(&key_file)
            .args(["--domain", &config_name])
            .args(["--domain", &format!("{serial}.{domain}")])
            .args(["--challenge", "none", "--order-timeout", "90"]);
        let out = support::run(cmd, Duration::from_secs(120));
        assert_eq!(
            out.status.and_then(|s| s.code()),
            Some(10),
            "{out}\n{}",
            lab.ca.log()
        );
        let leaf = dir.join("out/cert.pem");
        let chain = dir.join("out/chain.pem");
        assert!(openssl_verify_strict(&lab.root, &chain, &leaf), "{serial}");
        let text = openssl_text(&leaf);
        assert!(text.contains(&format!("DNS:{config_name}")), "{text}");
        assert!(text.contains(&format!("DNS:{serial}.{domain}")), "{text}");
        check_scts(&lab.ca, &lab.logs, &leaf, &chain, 2..=3);
        keys.push(std::fs::read(dir.join("out/key.pem")).unwrap());
    }
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 3, "each device has its own key");
}
