//! Continuous coverage end to end (docs/coverage.md), with lego against `fleetca serve`:
//! certificates move ok → silent (no poll) → ok (a poll) → due → overdue as the server's clock
//! moves, the overdue one is steered by ARI ("renew now" with an `explanationURL`), a lego
//! renewal without `replaces` makes it ok again, a revoked certificate leaves the at-risk
//! counts, and the CLI, the admin API and the `fleetca_certificates` gauges agree each time.
//!
//! Time is moved by restarting the server on the same port and data directory with
//! `FLEETCA_TEST_CLOCK_OFFSET_SECS` (debug builds only, see `clock::server_clock`).

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{ChallTestSrv, ChildGuard, Fleetca, Probe, Tool};

const PERMITS: &[&str] = &["routers.example.com"];
const DAY: i64 = 86_400;

struct Server {
    _guard: ChildGuard,
    log: PathBuf,
    offset: i64,
}

/// `fleetca serve` on `port` with its clock `offset` seconds ahead and a 1 s coverage refresh.
fn serve(f: &Fleetca, port: u16, dns: u16, http01: u16, offset: i64, n: u32) -> Server {
    let log = f.scratch().join(format!("fleetca-{n}.log"));
    let mut cmd = Command::new(Fleetca::bin());
    cmd.args(["serve", "--data-dir"])
        .arg(f.data_dir())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(["--dns-resolver", &format!("127.0.0.1:{dns}")])
        .args(["--http01-port", &http01.to_string()])
        .args(["--tlsalpn01-port", &support::free_port().to_string()])
        .args(support::LOOPBACK_VA_ALLOW)
        .args(["--coverage-refresh", "1s"])
        .env("FLEETCA_TEST_CLOCK_OFFSET_SECS", offset.to_string())
        .env("RUST_LOG", "info");
    f.with_database(&mut cmd);
    let mut guard = ChildGuard::spawn("fleetca", cmd, &log);
    let url = format!("https://127.0.0.1:{port}/acme/default/directory");
    support::wait_for(
        &Probe::Https {
            url: &url,
            ca_pem: f.root_pem_path(),
        },
        support::STARTUP_DEADLINE,
        Some(&mut guard),
    )
    .unwrap_or_else(|e| panic!("fleetca serve did not come up: {e}"));
    Server {
        _guard: guard,
        log,
        offset,
    }
}

impl Server {
    fn admin(&self) -> String {
        support::metrics::admin_url(&self.log)
    }
}

/// `fleetca coverage ARGS --json` on the server's clock.
fn cli(f: &Fleetca, offset: i64, args: &[&str]) -> Value {
    let mut cmd = Command::new(Fleetca::bin());
    cmd.arg("coverage")
        .args(args)
        .arg("--json")
        .arg("--data-dir")
        .arg(f.data_dir())
        .env("FLEETCA_TEST_CLOCK_OFFSET_SECS", offset.to_string());
    f.with_database(&mut cmd);
    let out = support::run(cmd, Duration::from_secs(60));
    assert!(out.success(), "fleetca coverage failed\n{out}");
    serde_json::from_str(out.stdout.trim()).expect("coverage JSON")
}

/// serial → state, as `fleetca coverage --json` reports it.
fn cli_states(f: &Fleetca, offset: i64) -> BTreeMap<String, String> {
    states_of(&cli(f, offset, &[]))
}

fn states_of(v: &Value) -> BTreeMap<String, String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|r| {
            for field in [
                "serial",
                "tenant",
                "names",
                "account_id",
                "state",
                "not_after",
                "window_start",
                "window_end",
                "last_seen",
            ] {
                assert!(r.get(field).is_some(), "{field} missing from {r}");
            }
            (
                r["serial"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// GET on the admin listener with a bearer token.
fn api_get(rt: &tokio::runtime::Runtime, url: &str, token: &str) -> (u16, String) {
    rt.block_on(async {
        let r = reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("admin GET");
        (r.status().as_u16(), r.text().await.expect("body"))
    })
}

/// Waits (the refresher runs every second) until the CLI, `/api/coverage` and the gauges
/// report the same thing, and that it is `want` (serial → state); returns the counts.
fn agree(
    f: &Fleetca,
    srv: &Server,
    rt: &tokio::runtime::Runtime,
    token: &str,
    want: &BTreeMap<String, String>,
) -> BTreeMap<String, i64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let admin = srv.admin();
    loop {
        let cli = cli_states(f, srv.offset);
        let (status, body) = api_get(rt, &format!("{admin}/api/coverage?limit=1000"), token);
        assert_eq!(status, 200, "{body}");
        let api = states_of(&serde_json::from_str(&body).expect("API JSON"));
        let metrics = support::metrics::scrape_log(&srv.log, f.root_pem_path());
        let mut counts = BTreeMap::new();
        for s in cli.values() {
            *counts.entry(s.clone()).or_insert(0i64) += 1;
        }
        let gauges_agree = [
            "ok", "due", "overdue", "expiring", "silent", "revoked", "expired",
        ]
        .iter()
        .all(|s| {
            let g = support::metrics::sum(
                &metrics,
                "fleetca_certificates",
                &["tenant=\"default\"", &format!("state=\"{s}\"")],
            );
            g as i64 == counts.get(*s).copied().unwrap_or(0)
        });
        if cli == *want && api == cli && gauges_agree {
            return counts;
        }
        assert!(
            Instant::now() < deadline,
            "coverage views disagree or differ from {want:?}\nCLI {cli:?}\nAPI {api:?}\n{}",
            metrics
                .lines()
                .filter(|l| l.starts_with("fleetca_certificates"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

struct Leaf {
    serial: String,
    cert_id: String,
    window: (i64, i64),
}

fn leaf(path: &Path) -> Leaf {
    use x509_parser::extensions::ParsedExtension;
    let pem = std::fs::read_to_string(path).expect("leaf");
    let der = pki::cert_info::pem_to_ders(&pem).expect("PEM").remove(0);
    let (_, x) = x509_parser::parse_x509_certificate(&der).expect("parses");
    let serial = fleetca::sa::normalize_serial(&x.raw_serial_as_string().replace(':', ""));
    let aki = x
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("AKI");
    let nb = x.validity().not_before.timestamp();
    let na = x.validity().not_after.timestamp();
    Leaf {
        cert_id: acme_types::ari::CertId::from_unsigned_serial(&aki, x.raw_serial()).to_string(),
        window: fleetca::ra::default_window(nb, na, &serial),
        serial,
    }
}

/// GET renewalInfo (a device's poll): the JSON answer.
fn renewal_info(port: u16, f: &Fleetca, cert_id: &str) -> Value {
    let url = format!("https://127.0.0.1:{port}/acme/default/renewal-info/{cert_id}");
    let (status, body) = support::https_get(&url, f.root_pem_path()).expect("renewalInfo");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("renewalInfo JSON")
}

fn unix(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
        .unix_timestamp()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn want(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// `lego renew` without ARI: a new order for the same names from the same account, no
/// `replaces`.
fn lego_renew(ep: &support::AcmeEndpoint, cert: &support::LegoCert, http01: u16) {
    let mut cmd = Command::new(Tool::Lego.path());
    cmd.env("LEGO_CA_CERTIFICATES", &ep.tls_ca)
        .arg("--path")
        .arg(&cert.lego_path)
        .args(["--accept-tos", "--email", support::EMAIL])
        .args(["--server", &ep.directory]);
    for d in &cert.domains {
        cmd.args(["--domains", d]);
    }
    cmd.args(["--http", "--http.port", &format!("127.0.0.1:{http01}")])
        .args(["renew", "--days", "9999", "--no-random-sleep"]);
    let out = support::run(cmd, support::CLIENT_TIMEOUT);
    assert!(out.success(), "lego renew failed\n{out}");
}

#[test]
fn lego_certificates_move_through_the_coverage_states() {
    let test = "lego_certificates_move_through_the_coverage_states";
    if !support::require(test, &[Tool::Lego, Tool::ChallTestSrv]) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dns = ChallTestSrv::start();
    let f = Fleetca::init(PERMITS);
    let (port, http01) = (support::free_port(), support::free_port());
    let srv = serve(&f, port, dns.dns_port(), http01, 0, 0);
    let token = {
        let out = f.cli(&["admin", "token", "create", "--scopes", "read", "--json"]);
        assert!(out.success(), "{out}");
        let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
        v["token"].as_str().unwrap().to_string()
    };
    let ep = support::AcmeEndpoint {
        directory: format!("https://127.0.0.1:{port}/acme/default/directory"),
        tls_ca: f.root_pem_path().to_path_buf(),
        issuing_root: f.root_pem_path().to_path_buf(),
        eab: None,
    };
    let challenge = support::Challenge::Http01 { port: http01 };
    let a = support::lego_run(&ep, &["cov-a.routers.example.com"], challenge)
        .unwrap_or_else(|o| panic!("lego run failed\n{o}"));
    let b = support::lego_run(&ep, &["cov-b.routers.example.com"], challenge)
        .unwrap_or_else(|o| panic!("lego run failed\n{o}"));
    let (la, lb) = (leaf(&a.leaf_path), leaf(&b.leaf_path));
    let (sa, sb) = (la.serial.as_str(), lb.serial.as_str());
    agree(&f, &srv, &rt, &token, &want(&[(sa, "ok"), (sb, "ok")]));
    // A device that polls renewalInfo; B never does.
    renewal_info(port, &f, &la.cert_id);
    let t0 = now();
    drop(srv);

    // Three days on, before either window: B is silent; A too, until it polls again.
    let srv = serve(&f, port, dns.dns_port(), http01, 3 * DAY, 1);
    agree(
        &f,
        &srv,
        &rt,
        &token,
        &want(&[(sa, "silent"), (sb, "silent")]),
    );
    renewal_info(port, &f, &la.cert_id);
    let counts = agree(&f, &srv, &rt, &token, &want(&[(sa, "ok"), (sb, "silent")]));
    assert_eq!(counts.get("silent"), Some(&1));
    // A revoked certificate leaves the at-risk counts.
    support::lego_revoke(&ep, &b).unwrap_or_else(|o| panic!("lego revoke failed\n{o}"));
    let counts = agree(&f, &srv, &rt, &token, &want(&[(sa, "ok"), (sb, "revoked")]));
    assert_eq!(counts.get("silent"), None);
    let (status, body) = api_get(
        &rt,
        &format!(
            "{}/api/coverage?state=silent,due,overdue,expiring",
            srv.admin()
        ),
        &token,
    );
    assert_eq!((status, body.as_str()), (200, "[]"));
    drop(srv);

    // Inside A's window: due (not silent, though it stopped polling), and ARI still answers
    // with the window itself.
    let into_window = la.window.0 + 3600 - t0;
    let srv = serve(&f, port, dns.dns_port(), http01, into_window, 2);
    agree(
        &f,
        &srv,
        &rt,
        &token,
        &want(&[(sa, "due"), (sb, "revoked")]),
    );
    let ari = renewal_info(port, &f, &la.cert_id);
    assert_eq!(
        unix(ari["suggestedWindow"]["end"].as_str().unwrap()),
        la.window.1
    );
    assert!(ari.get("explanationURL").is_none(), "{ari}");
    drop(srv);

    // After it: overdue, and ARI steers: a window that has ended, with an explanation.
    let after_window = la.window.1 + 3600 - t0;
    let srv = serve(&f, port, dns.dns_port(), http01, after_window, 3);
    agree(
        &f,
        &srv,
        &rt,
        &token,
        &want(&[(sa, "overdue"), (sb, "revoked")]),
    );
    let ari = renewal_info(port, &f, &la.cert_id);
    let end = unix(ari["suggestedWindow"]["end"].as_str().unwrap());
    assert!(end <= now() + after_window, "window not in the past: {ari}");
    let explanation = ari["explanationURL"].as_str().expect("explanationURL");
    let (status, text) = support::https_get(explanation, f.root_pem_path()).unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("renew"), "{text}");
    dashboard_shows(&srv, &token, sa);
    // `renew-early --state overdue` selects exactly A.
    let mut cmd = Command::new(Fleetca::bin());
    cmd.args(["renew-early", "--all", "--state", "overdue", "--data-dir"])
        .arg(f.data_dir())
        .env("FLEETCA_TEST_CLOCK_OFFSET_SECS", after_window.to_string());
    f.with_database(&mut cmd);
    let out = support::run(cmd, Duration::from_secs(60));
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout.trim(), sa, "{out}");

    // lego renews (same account, same names, no `replaces`): A is covered again.
    lego_renew(&ep, &a, http01);
    let a2 = leaf(&a.leaf_path_after_renew());
    assert_ne!(a2.serial, la.serial);
    agree(
        &f,
        &srv,
        &rt,
        &token,
        &want(&[(sa, "ok"), (sb, "revoked"), (a2.serial.as_str(), "ok")]),
    );
    let rows = cli(&f, after_window, &["--state", "ok"]);
    let old = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["serial"] == sa)
        .expect("A listed");
    assert_eq!(old["replaced_by"].as_str(), Some(a2.serial.as_str()));
    // A replaced certificate is no longer steered.
    let ari = renewal_info(port, &f, &la.cert_id);
    assert!(ari.get("explanationURL").is_none(), "{ari}");
}

trait RenewedPath {
    fn leaf_path_after_renew(&self) -> PathBuf;
}

impl RenewedPath for support::LegoCert {
    /// lego rewrites `<domain>.crt` (leaf + issuer) on renewal; the leaf is the first block.
    fn leaf_path_after_renew(&self) -> PathBuf {
        let bundle = std::fs::read_to_string(&self.cert_path).expect("lego cert");
        let leaf = support::pem_blocks(&bundle).remove(0);
        let p = self.cert_path.with_extension("renewed.pem");
        std::fs::write(&p, leaf).unwrap();
        p
    }
}

/// Chromium, if installed (`FLEETCA_CHROMIUM` or on PATH); see tests/dashboard.rs.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FLEETCA_CHROMIUM").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|n| std::env::split_paths(&path).map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

/// The dashboard's coverage panel in headless Chromium shows the overdue certificate among
/// the worst offenders and the same counts as the API.
fn dashboard_shows(srv: &Server, token: &str, overdue_serial: &str) {
    let Some(browser) = chromium() else {
        support::gate(
            "lego_certificates_move_through_the_coverage_states (dashboard)",
            false,
            "chromium is not installed (apt-get install chromium; .ci/run does)",
        );
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(["--dump-dom", &format!("{}/#token={token}", srv.admin())]);
    let out = support::run(cmd, Duration::from_secs(90));
    assert!(out.success(), "chromium failed\n{out}");
    let dom = &out.stdout;
    assert!(
        dom.contains("data-loaded=\"true\""),
        "page did not load\n{dom}"
    );
    assert!(
        dom.contains(&format!(
            "class=\"worst\" data-serial=\"{overdue_serial}\" data-state=\"overdue\""
        )),
        "the overdue certificate is not among the worst offenders\n{dom}"
    );
    assert!(
        dom.contains("data-state=\"overdue\">1</td>"),
        "overdue count cell\n{dom}"
    );
    assert!(
        dom.contains("id=\"coverage-at-risk\">1<"),
        "at-risk total\n{dom}"
    );
    assert!(!dom.contains(token), "the token stayed in the page");
}
