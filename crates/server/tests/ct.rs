//! Certificate Transparency end to end (RFC 6962; issue 16 §1): a real `fleetca serve` whose
//! tenant requires CT submits precertificates to three test logs on loopback
//! (`support::ct_log`), and certbot and lego get certificates carrying SCTs. Every embedded
//! SCT is checked by parties other than the code under test: `openssl x509 -text` lists them
//! and a Python `cryptography` script (`support/ct_verify.py`) rebuilds the RFC 6962 signed
//! data from the final certificate and its issuer and verifies each against its log's key.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use support::ct_check::check_scts;
use support::ct_log::{CtLog, Mode};
use support::{
    certbot_certonly, free_port, lego_revoke, lego_run, run, ChallTestSrv, Challenge, Fleetca, Tool,
};

const PERMITS: &[&str] = &["routers.example.com"];

struct Env {
    // Field order = drop order: the CA before its DNS server and logs.
    ca: Fleetca,
    cts: ChallTestSrv,
    http01: u16,
    logs: Vec<CtLog>,
}

/// Starts three logs (`modes`, one operator each), a CA requiring CT with them, and DNS.
fn start(test: &str, client: Tool, modes: [Mode; 3]) -> Option<Env> {
    if !support::require(test, &[Tool::ChallTestSrv, Tool::Openssl, client])
        || !support::ct_check::python_ready(test)
    {
        return None;
    }
    let logs: Vec<CtLog> = modes
        .iter()
        .zip(["Operator A", "Operator B", "Operator C"])
        .map(|(m, op)| CtLog::start(op, *m))
        .collect();
    let cts = ChallTestSrv::start();
    let http01 = free_port();
    let mut ca = Fleetca::init(PERMITS);
    // A private-trust tenant opting in to CT (a public one requires it by default).
    let cfg = ca.data_dir().join("fleetca.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("[ca]\n"), "{text}");
    let mut text = text.replacen("[ca]\n", "[ca]\nct_required = true\n", 1);
    for l in &logs {
        text.push_str(&l.toml());
    }
    std::fs::write(&cfg, text).unwrap();
    ca.serve_with(
        cts.dns_port(),
        http01,
        free_port(),
        &["--ct-retry-secs", "1"],
    );
    Some(Env {
        ca,
        cts,
        http01,
        logs,
    })
}

/// certbot and lego get certificates with SCTs from two logs of distinct operators while one
/// log is slow (hedged past it); a revoked certificate's precertificate is `revoked` in OCSP.
#[test]
fn certbot_and_lego_get_certificates_with_verified_scts() {
    let Some(env) = start(
        "certbot_and_lego_get_certificates_with_verified_scts",
        Tool::Lego,
        [Mode::Ok, Mode::Slow, Mode::Ok],
    ) else {
        return;
    };
    if !support::require(
        "certbot_and_lego_get_certificates_with_verified_scts",
        &[Tool::Certbot],
    ) {
        return;
    }
    let ep = env.ca.endpoint();

    let cb = certbot_certonly(&ep, &["ct1.routers.example.com"], env.http01)
        .unwrap_or_else(|e| panic!("certbot certonly failed\n{e}\n{}", env.ca.log()));
    let used = check_scts(&env.ca, &env.logs, &cb.cert_path, &cb.chain_path, 2..=2);
    // The slow log was asked but its SCT came too late; the hedge went to the third.
    assert_eq!(used, BTreeSet::from([0, 2]));
    assert!(env.logs[1].submissions() >= 1);

    let lg = lego_run(
        &ep,
        &["ct2.routers.example.com"],
        Challenge::Http01 { port: env.http01 },
    )
    .unwrap_or_else(|e| panic!("lego run failed\n{e}\n{}\n{}", env.ca.log(), env.cts.log()));
    check_scts(&env.ca, &env.logs, &lg.leaf_path, &lg.issuer_path, 2..=2);

    // Revoked: the certificate and its precertificate (same issuer and serial) are revoked
    // in OCSP and on the CRL.
    lego_revoke(&ep, &lg).unwrap_or_else(|e| panic!("lego revoke failed\n{e}\n{}", env.ca.log()));
    support::revocation::assert_revoked(&env.ca, &lg.leaf_path, &lg.issuer_path);
    support::revocation::assert_revoked(
        &env.ca,
        &lg.leaf_path.with_extension("precert.pem"),
        &lg.issuer_path,
    );
}

/// With two of three logs unusable (one down, one returning bad signatures) the order waits
/// in `processing`; when the down log comes back the retry task finishes it. The bad
/// signature is never embedded.
#[test]
fn issuance_waits_for_scts_and_never_embeds_bad_ones() {
    let Some(env) = start(
        "issuance_waits_for_scts_and_never_embeds_bad_ones",
        Tool::Lego,
        [Mode::Ok, Mode::BadSignature, Mode::Down],
    ) else {
        return;
    };
    let ep = env.ca.endpoint();
    let cert = std::thread::scope(|s| {
        let client = s.spawn(|| {
            lego_run(
                &ep,
                &["wait.routers.example.com"],
                Challenge::Http01 { port: env.http01 },
            )
        });
        // The CA has stored the precertificate and deferred the order for want of SCTs.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !env.ca.log().contains("no certificate without SCTs enough") {
            assert!(
                Instant::now() < deadline && !client.is_finished(),
                "the order was never deferred\n{}",
                env.ca.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(env.ca.log().contains("precertificate stored"));
        assert!(!client.is_finished(), "issued without SCTs enough");
        assert!(env.logs[1].submissions() >= 1, "the bad log was asked");
        env.logs[2].set_mode(Mode::Ok);
        client.join().unwrap()
    })
    .unwrap_or_else(|e| panic!("lego run failed\n{e}\n{}", env.ca.log()));
    let used = check_scts(
        &env.ca,
        &env.logs,
        &cert.leaf_path,
        &cert.issuer_path,
        2..=2,
    );
    assert_eq!(
        used,
        BTreeSet::from([0, 2]),
        "the bad-signature log's SCT is never embedded"
    );

    // Per-log metrics say which log failed how.
    let m = support::metrics::scrape(&env.ca);
    let count = |log: usize, result: &str| {
        let l = format!("log=\"{}\"", env.logs[log].url());
        let r = format!("result=\"{result}\"");
        support::metrics::sum(&m, "fleetca_ct_submissions_total", &[&l, &r])
    };
    assert!(count(1, "bad_signature") >= 1.0, "{m}");
    assert!(count(2, "connect") >= 1.0, "{m}");
    assert!(count(0, "ok") >= 1.0 && count(2, "ok") >= 1.0, "{m}");
    assert!(
        support::metrics::sum(&m, "fleetca_ct_shortfalls_total", &["tenant=\"default\""]) >= 1.0,
        "{m}"
    );
    assert!(m.contains("fleetca_ct_submission_duration_seconds"), "{m}");
}

/// `serve` refuses a tenant whose logs cannot meet the CT policy: fewer than 2 logs or one
/// operator, or a profile longer than 180 days with fewer than 3 logs. No order could ever
/// complete under such a configuration.
#[test]
fn serve_refuses_ct_configurations_that_cannot_meet_the_policy() {
    let logs: Vec<CtLog> = ["Operator A", "Operator A", "Operator B"]
        .iter()
        .map(|op| CtLog::start(op, Mode::Ok))
        .collect();
    let ca = Fleetca::init(PERMITS);
    let cfg = ca.data_dir().join("fleetca.toml");
    let original = std::fs::read_to_string(&cfg).unwrap();
    let cases: [(&[usize], u32, &str); 3] = [
        (&[0], 30, "at least 2 logs from at least 2 operators"),
        (&[0, 1], 30, "at least 2 logs from at least 2 operators"),
        (&[0, 2], 190, "need 3 SCTs"),
    ];
    for (which, days, expect) in cases {
        let mut text = original.replacen("[ca]\n", "[ca]\nct_required = true\n", 1);
        let at = text.find("lifetime_days = ").unwrap();
        let end = at + text[at..].find('\n').unwrap();
        text.replace_range(at..end, &format!("lifetime_days = {days}"));
        for &i in which {
            text.push_str(&logs[i].toml());
        }
        std::fs::write(&cfg, text).unwrap();
        let mut cmd = Command::new(Fleetca::bin());
        cmd.args(["serve", "--data-dir"])
            .arg(ca.data_dir())
            .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"]);
        ca.with_database(&mut cmd);
        let out = run(cmd, Duration::from_secs(60));
        assert!(
            !out.success(),
            "serve started with {which:?}, {days} days\n{out}"
        );
        assert!(out.combined().contains(expect), "{expect:?} not in\n{out}");
    }
    // A refused configuration contacts no log.
    for l in &logs {
        assert_eq!(l.submissions(), 0);
    }
}
