//! certbot against the lifecycle features: `--required-profile shortlived`
//! (draft-aaron-acme-profiles) gets a certificate of at most 7 days, and `certbot renew`
//! follows ACME Renewal Information (RFC 9773): nothing to do for a fresh certificate, a
//! renewal after `fleetca renew-early --serial S`.

mod support;

use support::{
    certbot_certonly_with, certbot_renew, free_port, openssl_verify, ChallTestSrv, Fleetca, Tool,
};

const PERMITS: &[&str] = &["routers.example.com"];

struct Env {
    // Field order = drop order: the CA before its DNS server.
    ca: Fleetca,
    _cts: ChallTestSrv,
    http01: u16,
}

fn start(test: &str) -> Option<Env> {
    if !support::require(test, &[Tool::ChallTestSrv, Tool::Openssl, Tool::Certbot]) {
        return None;
    }
    let cts = ChallTestSrv::start();
    let http01 = free_port();
    let mut ca = Fleetca::init(PERMITS);
    ca.serve(cts.dns_port(), http01, free_port());
    Some(Env {
        ca,
        _cts: cts,
        http01,
    })
}

fn leaf(path: &std::path::Path) -> Vec<u8> {
    let pem = std::fs::read_to_string(path).expect("certbot saved a certificate");
    pki::cert_info::pem_to_ders(&pem).unwrap().remove(0)
}

fn lifetime_secs(der: &[u8]) -> i64 {
    let (_, x) = x509_parser::parse_x509_certificate(der).unwrap();
    x.validity().not_after.timestamp() - x.validity().not_before.timestamp()
}

#[test]
fn certbot_required_profile_shortlived() {
    let Some(env) = start("certbot_required_profile_shortlived") else {
        return;
    };
    let ep = env.ca.endpoint();
    let cert = certbot_certonly_with(
        &ep,
        &["short1.routers.example.com"],
        env.http01,
        &["--required-profile", "shortlived"],
    )
    .unwrap_or_else(|e| panic!("certbot certonly failed\n{e}\n{}", env.ca.log()));
    let der = leaf(&cert.cert_path);
    let secs = lifetime_secs(&der);
    assert!(secs <= 7 * 86400, "shortlived lifetime {secs} s");
    assert!(openssl_verify(
        &ep.issuing_root,
        &cert.chain_path,
        &cert.cert_path
    ));
    // An unknown profile is refused, so certbot fails rather than falling back.
    let Err(err) = certbot_certonly_with(
        &ep,
        &["short2.routers.example.com"],
        env.http01,
        &["--required-profile", "no-such-profile"],
    ) else {
        panic!("an unknown profile must be refused");
    };
    assert!(err.combined().contains("profile"), "{err}");
}

#[test]
fn certbot_renew_follows_renewal_info() {
    let Some(env) = start("certbot_renew_follows_renewal_info") else {
        return;
    };
    let ep = env.ca.endpoint();
    let cert = certbot_certonly_with(&ep, &["ari1.routers.example.com"], env.http01, &[])
        .unwrap_or_else(|e| panic!("certbot certonly failed\n{e}\n{}", env.ca.log()));
    let first = leaf(&cert.cert_path);

    // A fresh 30-day certificate: ARI's window is in the middle third, so nothing to do.
    let out = certbot_renew(&ep, &cert);
    assert!(
        out.success(),
        "certbot renew failed\n{out}\n{}",
        env.ca.log()
    );
    assert_eq!(leaf(&cert.cert_path), first, "renewed too early\n{out}");

    // certbot asked renewalInfo (it stored the server's Retry-After in the lineage).
    let conf_path = cert.config_dir.join("renewal").join("interop.conf");
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    assert!(
        conf.contains("ari_retry_after"),
        "no ARI check recorded\n{conf}\n{out}"
    );

    // The operator moves the window to now. certbot honours Retry-After (6 h) before asking
    // again, as RFC 9773 §4.3.3 wants; let that time pass by moving the stored retry time
    // into the past, then the next `certbot renew` sees the new window and replaces it.
    let serial: String = pki::cert_info::serial_of(&first)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let r = env.ca.cli(&["renew-early", "--serial", &serial]);
    assert!(r.success(), "{r}");
    assert!(r.stdout.contains(&serial), "{r}");
    let conf: String = conf
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("ari_retry_after") {
                "ari_retry_after = 2000-01-01T00:00:00".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&conf_path, conf + "\n").unwrap();
    let out = certbot_renew(&ep, &cert);
    assert!(
        out.success(),
        "certbot renew failed\n{out}\n{}",
        env.ca.log()
    );
    let second = leaf(&cert.cert_path);
    assert_ne!(
        second, first,
        "certbot did not renew after renew-early\n{out}"
    );
    assert!(
        out.combined()
            .contains("Congratulations, all renewals succeeded"),
        "{out}"
    );
}
