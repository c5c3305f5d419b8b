//! Issuing-CA rollover (`fleetca tenant rollover`) and backup/restore (`fleetca backup`,
//! `fleetca restore`), end to end against real `fleetca serve` processes: certificates of the
//! retired CA keep verifying and keep their own CRL, OCSP responder, ARI and chain; new ones
//! chain to the new CA; a restored data directory serves the same certificates, CRLs and
//! accounts.

mod client;
mod support;

use acme_types::sign::{AccountKey, AccountKeyKind};
use client::Client;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{free_port, run, Fleetca, Tool};
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};

const PERMITS: &[&str] = &["routers.example.com"];

fn ders(path: &Path) -> Vec<Vec<u8>> {
    pki::cert_info::pem_to_ders(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn serve(ca: &mut Fleetca) {
    ca.serve_with(
        free_port(),
        free_port(),
        free_port(),
        &["--insecure-skip-validation"],
    );
}

/// Orders `name`, (skipped) validation, finalizes; returns the downloaded chain and order.
async fn issue(c: &Client, name: &str, extra: Value) -> (Vec<Vec<u8>>, Value) {
    let mut body = json!({"identifiers": [{"type": "dns", "value": name}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = c.post(&c.url("newOrder"), Some(&body)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let order_url = r.location();
    let order = r.json();
    for authz in order["authorizations"].as_array().unwrap() {
        let a = c.post(authz.as_str().unwrap(), None).await.json();
        let ch = a["challenges"][0]["url"].as_str().unwrap().to_string();
        c.post(&ch, Some(&json!({}))).await;
    }
    let order = c.poll(&order_url, |o| o["status"] == "ready").await;
    c.finalize_and_download(&order_url, &order, &[name]).await
}

/// RFC 9773 §4.1 certID of a certificate.
fn cert_id(der: &[u8]) -> String {
    let (_, x) = x509_parser::parse_x509_certificate(der).unwrap();
    let aki = x
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("AKI");
    acme_types::ari::CertId::from_unsigned_serial(&aki, x.raw_serial()).to_string()
}

/// The suggested window's end (UNIX seconds) that renewalInfo answers for `leaf`.
async fn ari_window_end(c: &Client, leaf: &[u8]) -> i64 {
    let url = format!("{}/{}", c.url("renewalInfo"), cert_id(leaf));
    let r = c.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    let v: Value = r.json().await.unwrap();
    let end = v["suggestedWindow"]["end"].as_str().unwrap();
    time::OffsetDateTime::parse(end, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
}

/// The CRL distribution point URI of a certificate.
fn crl_dp(der: &[u8]) -> String {
    let (_, x) = x509_parser::parse_x509_certificate(der).unwrap();
    let uri = x
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::CRLDistributionPoints(d) => {
                d.points.iter().find_map(|p| match &p.distribution_point {
                    Some(DistributionPointName::FullName(names)) => {
                        names.iter().find_map(|n| match n {
                            GeneralName::URI(u) => Some(u.to_string()),
                            _ => None,
                        })
                    }
                    _ => None,
                })
            }
            _ => None,
        })
        .expect("CRL distribution point");
    uri
}

/// Fetches `/crl/<file>` and returns the serials it lists after checking its signature
/// against `issuer_der`.
async fn crl_serials(base: &str, file: &str, issuer_der: &[u8]) -> Vec<Vec<u8>> {
    let r = reqwest::get(format!("{base}/crl/{file}")).await.unwrap();
    assert_eq!(r.status(), 200, "{file}");
    let der = r.bytes().await.unwrap().to_vec();
    let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
    let (_, issuer) = x509_parser::parse_x509_certificate(issuer_der).unwrap();
    crl.verify_signature(issuer.public_key())
        .unwrap_or_else(|e| panic!("{file} is not signed by the expected CA: {e:?}"));
    crl.iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect()
}

fn serial(der: &[u8]) -> Vec<u8> {
    x509_parser::parse_x509_certificate(der)
        .unwrap()
        .1
        .raw_serial()
        .to_vec()
}

/// `openssl ocsp` for `leaf` issued by `issuer` at `url`: whether it succeeded, and what it
/// printed.
fn ocsp_query(work: &Path, root: &Path, issuer: &[u8], leaf: &[u8], url: &str) -> (bool, String) {
    let issuer_pem = work.join("ocsp-issuer.pem");
    let leaf_pem = work.join("ocsp-leaf.pem");
    std::fs::write(&issuer_pem, pki::der_to_pem("CERTIFICATE", issuer)).unwrap();
    std::fs::write(&leaf_pem, pki::der_to_pem("CERTIFICATE", leaf)).unwrap();
    let mut cmd = Command::new(Tool::Openssl.path());
    cmd.args(["ocsp", "-issuer"])
        .arg(&issuer_pem)
        .arg("-cert")
        .arg(&leaf_pem)
        .args(["-url", url, "-CAfile"])
        .arg(root)
        .arg("-verify_other")
        .arg(&issuer_pem);
    let out = run(cmd, Duration::from_secs(30));
    (out.success(), out.combined())
}

/// [`ocsp_query`] that must get a verified answer; the status it printed.
fn ocsp_status(work: &Path, root: &Path, issuer: &[u8], leaf: &[u8], url: &str) -> String {
    let (ok, text) = ocsp_query(work, root, issuer, leaf, url);
    assert!(ok, "{text}");
    text
}

fn verifies(work: &Path, root: &Path, issuer: &[u8], leaf: &[u8]) -> bool {
    let chain = work.join("verify-chain.pem");
    let leaf_pem = work.join("verify-leaf.pem");
    std::fs::write(&chain, pki::der_to_pem("CERTIFICATE", issuer)).unwrap();
    std::fs::write(&leaf_pem, pki::der_to_pem("CERTIFICATE", leaf)).unwrap();
    support::openssl_verify(root, &chain, &leaf_pem)
}

#[test]
fn rollover_issues_from_a_new_ca_while_the_old_one_keeps_answering_for_its_certificates() {
    const TEST: &str =
        "rollover_issues_from_a_new_ca_while_the_old_one_keeps_answering_for_its_certificates";
    if !support::require(TEST, &[Tool::Openssl]) {
        return;
    }
    let mut ca = Fleetca::init(PERMITS);
    let data = ca.data_dir().to_path_buf();
    let work = ca.scratch().to_path_buf();
    let root = ca.root_pem_path().to_path_buf();
    let old_ca = ders(&data.join("ca/default/cert.pem")).remove(0);
    serve(&mut ca);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key_der = AccountKey::generate(AccountKeyKind::EcdsaP256)
        .unwrap()
        .to_pkcs8_der()
        .to_vec();
    let account_key = || AccountKey::from_pkcs8_der(&key_der).unwrap();
    // Two certificates from the first CA: one to revoke after the rollover, one to renew.
    let (before_a, before_b) = rt.block_on(async {
        let mut c = Client::with_key(&ca.directory_url(), ca.root_pem(), account_key()).await;
        assert_eq!(c.new_account().await.status, 201);
        let (a, order) = issue(&c, "a.routers.example.com", json!({})).await;
        let (b, _) = issue(&c, "b.routers.example.com", json!({})).await;
        assert_eq!(
            (a[1].clone(), b[1].clone()),
            (old_ca.clone(), old_ca.clone())
        );
        let id = order["certificate"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        ((a, id), b)
    });
    let ((before_a, before_a_id), before_b) = (before_a, before_b);
    // A certificate lego obtained from the old CA, renewed by lego after the rollover.
    let lego = support::lego_run(
        &ca.endpoint(),
        &["lego.routers.example.com"],
        support::Challenge::Http01 { port: free_port() },
    )
    .unwrap_or_else(|o| panic!("lego run: {o}"));
    assert!(ders(&lego.issuer_path)[0] == old_ca);
    ca.stop();

    let out = ca.cli(&["tenant", "rollover", "default", "--renew-all", "--json"]);
    assert!(out.success(), "{out}");
    let summary: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(summary["issuer"], "default_g2", "{summary}");
    assert_eq!(summary["retired"], "default", "{summary}");
    assert_eq!(summary["live_certificates_of_older_cas"], 3, "{summary}");
    let new_ca = ders(&data.join("ca/default/cert.pem")).remove(0);
    assert_ne!(new_ca, old_ca);
    assert_eq!(
        ders(&data.join("ca/default/retired/default/cert.pem")).remove(0),
        old_ca
    );
    for key in ["ca/default/key.pem", "ca/default/retired/default/key.pem"] {
        let mode = std::fs::metadata(data.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let root_der = ders(&root).remove(0);
    let (_, new_x) = x509_parser::parse_x509_certificate(&new_ca).unwrap();
    let (_, old_x) = x509_parser::parse_x509_certificate(&old_ca).unwrap();
    let (_, root_x) = x509_parser::parse_x509_certificate(&root_der).unwrap();
    new_x.verify_signature(Some(root_x.public_key())).unwrap();
    assert_ne!(new_x.subject().as_raw(), old_x.subject().as_raw());
    assert_eq!(
        new_x.name_constraints().unwrap().map(|n| n.value.clone()),
        old_x.name_constraints().unwrap().map(|n| n.value.clone()),
        "same constraints"
    );
    serve(&mut ca);
    let base = ca.plain_http_url().expect("plain HTTP URL");
    let after = rt.block_on(async {
        let mut c = Client::with_key(&ca.directory_url(), ca.root_pem(), account_key()).await;
        assert_eq!(c.new_account().await.status, 200, "the same account");

        // New certificates chain to the new CA and point at its CRL.
        let (after, _) = issue(&c, "c.routers.example.com", json!({})).await;
        assert!(after[1] == new_ca, "issued by the new CA");
        assert!(
            crl_dp(&after[0]).ends_with("/crl/default_g2.crl"),
            "{}",
            crl_dp(&after[0])
        );
        assert!(crl_dp(&before_a[0]).ends_with("/crl/default.crl"));

        // --renew-all: the old CA's certificates are due now; the new one's are not.
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!(ari_window_end(&c, &before_b[0]).await <= now + 1);
        assert!(ari_window_end(&c, &after[0]).await > now + 86400);

        // Downloaded again after the rollover, the old certificate still comes with its own
        // issuer's chain (the retired CA), as the new one comes with the new CA's.
        let url = ca
            .directory_url()
            .replace("directory", &format!("cert/{before_a_id}"));
        let r = c.post(&url, None).await;
        assert_eq!(r.status, 200);
        let got = pki::cert_info::pem_to_ders(&String::from_utf8(r.body).unwrap()).unwrap();
        assert!(
            got == before_a,
            "the old certificate is served with the retired CA"
        );

        // The CA certificates are served by id for AIA caIssuers.
        for (id, want) in [("default", &old_ca), ("default_g2", &new_ca)] {
            let r = reqwest::get(format!("{base}/ca/{id}.cer")).await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(&r.bytes().await.unwrap().to_vec(), want, "{id}");
        }

        // Renewal the way an ARI client does it (`replaces`, RFC 9773 §5) lands on the new CA.
        let (renewed, _) = issue(
            &c,
            "b.routers.example.com",
            json!({"replaces": cert_id(&before_b[0])}),
        )
        .await;
        assert!(renewed[1] == new_ca, "renewed onto the new CA");
        after
    });

    // lego renews its certificate onto the new CA (`--days 45`: a 30-day certificate is due).
    // lego files its account under the server's host and port, which the restart changed:
    // the same account, moved to the new address.
    let accounts = lego.lego_path.join("accounts");
    let old_dir = std::fs::read_dir(&accounts)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let old_port = old_dir.file_name().unwrap().to_str().unwrap()["127.0.0.1_".len()..].to_string();
    let new_port = ca
        .directory_url()
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let new_dir = accounts.join(format!("127.0.0.1_{new_port}"));
    let copy = Command::new("cp")
        .arg("-a")
        .arg(&old_dir)
        .arg(&new_dir)
        .status()
        .unwrap();
    assert!(copy.success());
    let account_json = new_dir.join(support::EMAIL).join("account.json");
    let text = std::fs::read_to_string(&account_json).unwrap();
    std::fs::write(
        &account_json,
        text.replace(
            &format!("127.0.0.1:{old_port}"),
            &format!("127.0.0.1:{new_port}"),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(Tool::Lego.path());
    cmd.env("LEGO_CA_CERTIFICATES", &root)
        .arg("--path")
        .arg(&lego.lego_path)
        .args(["--accept-tos", "--email", support::EMAIL])
        .args(["--server", &ca.directory_url()])
        .args(["--domains", "lego.routers.example.com"])
        .args([
            "--http",
            "--http.port",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .args(["renew", "--days", "45", "--no-random-sleep"]);
    let out = run(cmd, Duration::from_secs(120));
    assert!(out.success(), "{out}");
    assert!(
        ders(&lego.issuer_path)[0] == new_ca,
        "lego's renewed certificate comes from the new CA"
    );

    // Old and new certificates verify against the same root, each through its own CA.
    assert!(verifies(&work, &root, &old_ca, &before_a[0]));
    assert!(verifies(&work, &root, &new_ca, &after[0]));
    assert!(!verifies(&work, &root, &new_ca, &before_a[0]));

    // OCSP: each CA answers for its own certificates, and only for those.
    let old_url = format!("{base}/ocsp/default");
    let new_url = format!("{base}/ocsp/default_g2");
    let status = ocsp_status(&work, &root, &old_ca, &before_a[0], &old_url);
    assert!(status.contains(": good"), "{status}");
    let status = ocsp_status(&work, &root, &new_ca, &after[0], &new_url);
    assert!(status.contains(": good"), "{status}");

    // Revoking an old certificate (operator command, while serving) re-signs the OLD CA's
    // CRL; the new CA's CRL does not list it.
    let serial_hex = fleetca::ca::hex(&pki::cert_info::serial_of(&before_a[0]).unwrap());
    let out = ca.cli(&["cert", "revoke", &serial_hex, "--reason", "superseded"]);
    assert!(out.success(), "{out}");
    rt.block_on(async {
        let old_list = crl_serials(&base, "default.crl", &old_ca).await;
        assert!(
            old_list.contains(&serial(&before_a[0])),
            "listed by the old CA"
        );
        let new_list = crl_serials(&base, "default_g2.crl", &new_ca).await;
        assert!(!new_list.contains(&serial(&before_a[0])));
    });
    let status = ocsp_status(&work, &root, &old_ca, &before_a[0], &old_url);
    assert!(status.contains(": revoked"), "{status}");
    // The new CA's responder does not vouch for the old CA's certificates: a CertID naming
    // the old CA is `unauthorized` (RFC 6960 §2.3) ...
    for issuer in [&old_ca, &new_ca] {
        let (_, text) = ocsp_query(&work, &root, issuer, &before_a[0], &new_url);
        assert!(text.contains("unauthorized"), "{text}");
    }
    // ... and one naming the new CA with the old certificate's serial is `unknown`: the serial
    // is the tenant's, but not this CA's.
    let issuer_pem = work.join("ocsp-new-ca.pem");
    std::fs::write(&issuer_pem, pki::der_to_pem("CERTIFICATE", &new_ca)).unwrap();
    let mut cmd = Command::new(Tool::Openssl.path());
    cmd.args(["ocsp", "-issuer"])
        .arg(&issuer_pem)
        .args([
            "-serial",
            &format!("0x{serial_hex}"),
            "-url",
            &new_url,
            "-CAfile",
        ])
        .arg(&root)
        .arg("-verify_other")
        .arg(&issuer_pem);
    let out = run(cmd, Duration::from_secs(30));
    assert!(
        out.success() && out.combined().contains(": unknown"),
        "{out}"
    );

    // Key compromise of the retired CA: the root revokes it by its certificate file while the
    // new CA stays good. A certificate the root did not issue (a leaf) is refused.
    let root_key = data.join("root/key.pem");
    let retired_pem = data.join("ca/default/retired/default/cert.pem");
    let leaf_pem = work.join("leaf-a.pem");
    std::fs::write(&leaf_pem, pki::der_to_pem("CERTIFICATE", &before_a[0])).unwrap();
    let out = ca.cli(&[
        "root",
        "sign-crl",
        "--root-key",
        root_key.to_str().unwrap(),
        "--revoke-ca-cert",
        leaf_pem.to_str().unwrap(),
    ]);
    assert!(
        !out.success()
            && out
                .combined()
                .contains("not issued by this data directory's root"),
        "{out}"
    );
    let out = ca.cli(&[
        "root",
        "sign-crl",
        "--root-key",
        root_key.to_str().unwrap(),
        "--revoke-ca-cert",
        retired_pem.to_str().unwrap(),
    ]);
    assert!(out.success(), "{out}");
    let crl_der = std::fs::read(data.join("root/crl.der")).unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(&crl_der).unwrap();
    let revoked: Vec<Vec<u8>> = crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect();
    assert_eq!(
        revoked,
        vec![serial(&old_ca)],
        "only the retired CA is revoked"
    );
    assert_ne!(serial(&old_ca), serial(&new_ca));
}

/// Every regular file under `dir` (relative path, mode, content), the database excepted.
fn files(dir: &Path, base: &Path, out: &mut Vec<(String, u32, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let rel = p.strip_prefix(base).unwrap().display().to_string();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            files(&p, base, out);
        } else if !rel.starts_with("fleetca.db") {
            out.push((
                rel,
                meta.permissions().mode() & 0o777,
                std::fs::read(&p).unwrap(),
            ));
        }
    }
    out.sort();
}

#[test]
fn a_backup_taken_while_serving_restores_into_a_fresh_directory_with_the_same_state() {
    const TEST: &str =
        "a_backup_taken_while_serving_restores_into_a_fresh_directory_with_the_same_state";
    if !support::require(TEST, &[Tool::Openssl]) {
        return;
    }
    if std::env::var("FLEETCA_TEST_BACKEND").as_deref() == Ok("postgres") {
        eprintln!("{TEST}: SQLite only (PostgreSQL is backed up with pg_dump)");
        return;
    }
    let mut ca = Fleetca::init(PERMITS);
    let data = ca.data_dir().to_path_buf();
    let work = ca.scratch().to_path_buf();
    let root = ca.root_pem_path().to_path_buf();
    let issuing = ders(&data.join("ca/default/cert.pem")).remove(0);
    serve(&mut ca);
    let key_der = AccountKey::generate(AccountKeyKind::EcdsaP256)
        .unwrap()
        .to_pkcs8_der()
        .to_vec();
    let account_key = || AccountKey::from_pkcs8_der(&key_der).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (kept, revoked, kept_id) = rt.block_on(async {
        let mut c = Client::with_key(&ca.directory_url(), ca.root_pem(), account_key()).await;
        assert_eq!(c.new_account().await.status, 201);
        let (kept, order) = issue(&c, "kept.routers.example.com", json!({})).await;
        let (revoked, _) = issue(&c, "gone.routers.example.com", json!({})).await;
        let id = order["certificate"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        (kept, revoked, id)
    });
    let revoked_serial = fleetca::ca::hex(&pki::cert_info::serial_of(&revoked[0]).unwrap());
    let out = ca.cli(&["cert", "revoke", &revoked_serial, "--reason", "superseded"]);
    assert!(out.success(), "{out}");

    // Backed up while `serve` runs (and holds the database open in WAL mode).
    let backup = work.join("ca.backup");
    let backup_s = backup.to_str().unwrap();
    let out = ca.cli(&["backup", "--to", backup_s]);
    assert!(out.success(), "{out}");
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the backup holds keys");
    // Never overwritten.
    let out = ca.cli(&["backup", "--to", backup_s]);
    assert!(
        !out.success() && out.combined().contains("must not exist"),
        "{out}"
    );
    // A PostgreSQL deployment is pointed at pg_dump, and nothing is written.
    let pg_target = work.join("pg.backup");
    let mut cmd = Command::new(Fleetca::bin());
    cmd.args(["backup", "--to"])
        .arg(&pg_target)
        .arg("--data-dir")
        .arg(&data)
        .env("FLEETCA_DATABASE", "postgres://127.0.0.1:9/fleetca");
    let out = run(cmd, Duration::from_secs(30));
    assert!(
        !out.success() && out.combined().contains("pg_dump"),
        "{out}"
    );
    assert!(!pg_target.exists());

    let restore = |target: &Path| {
        let mut cmd = Command::new(Fleetca::bin());
        cmd.args(["restore", "--from", backup_s, "--data-dir"])
            .arg(target);
        run(cmd, Duration::from_secs(60))
    };
    // A non-empty target is refused and left as it was.
    let busy = work.join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep"), "x").unwrap();
    let out = restore(&busy);
    assert!(
        !out.success() && out.combined().contains("not empty"),
        "{out}"
    );
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);

    let restored = work.join("restored");
    let out = restore(&restored);
    assert!(out.success(), "{out}");
    // The same files with the same modes (keys 0600).
    let (mut a, mut b) = (Vec::new(), Vec::new());
    files(&data, &data, &mut a);
    files(&restored, &restored, &mut b);
    assert_eq!(
        a.iter().map(|(p, m, _)| (p, m)).collect::<Vec<_>>(),
        b.iter().map(|(p, m, _)| (p, m)).collect::<Vec<_>>()
    );
    assert!(a == b, "same contents");
    assert!(b
        .iter()
        .any(|(p, m, _)| p == "ca/default/key.pem" && *m == 0o600));

    // The original goes away, the restored directory takes its place: nothing the restored
    // server serves can come from the original.
    ca.stop();
    std::fs::rename(&data, work.join("original")).unwrap();
    std::fs::rename(&restored, &data).unwrap();
    serve(&mut ca);
    let base = ca.plain_http_url().expect("plain HTTP URL");
    rt.block_on(async {
        // The same account (an old account key still places orders) ...
        let mut c = Client::with_key(&ca.directory_url(), ca.root_pem(), account_key()).await;
        assert_eq!(
            c.new_account().await.status,
            200,
            "the account was restored"
        );
        // ... with its certificate ...
        let url = ca
            .directory_url()
            .replace("directory", &format!("cert/{kept_id}"));
        let r = c.post(&url, None).await;
        assert_eq!(r.status, 200);
        let got = pki::cert_info::pem_to_ders(&String::from_utf8(r.body).unwrap()).unwrap();
        assert!(got == kept, "the same certificate and chain");
        let (new, _) = issue(&c, "new.routers.example.com", json!({})).await;
        assert!(new[1] == issuing, "issued by the restored CA");
        // ... and the same revocations in the CRL.
        let listed = crl_serials(&base, "default.crl", &issuing).await;
        assert!(listed.contains(&serial(&revoked[0])));
        assert!(!listed.contains(&serial(&kept[0])));
    });
    let ocsp = format!("{base}/ocsp/default");
    let status = ocsp_status(&work, &root, &issuing, &revoked[0], &ocsp);
    assert!(status.contains(": revoked"), "{status}");
    let status = ocsp_status(&work, &root, &issuing, &kept[0], &ocsp);
    assert!(status.contains(": good"), "{status}");
}
