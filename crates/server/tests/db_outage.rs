//! The database briefly unavailable under load (issue 6): PostgreSQL is stopped and started
//! while `fleetca bench` and the test client drive ACME flows against `fleetca serve`.
//!
//! While it is down every ACME endpoint that needs the database answers 500 `serverInternal`
//! with `Retry-After` and a detail that names neither the URL nor its password; the directory
//! and newNonce keep working (the nonce key is held in memory); the process stays up. Once it
//! is back (same port), the pool reconnects by itself, an order made ready before the outage
//! finalizes, new flows succeed, and every certificate a client received is in the database,
//! with no order left half-finalized.
//!
//! The test runs its OWN PostgreSQL cluster (`initdb` into a temp dir, as the `postgres`
//! account when run as root, since initdb refuses root), so the shared cluster other tests
//! use (`FLEETCA_TEST_POSTGRES`) is never stopped. The server binaries come from the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql` package) or `FLEETCA_PG_BIN`.
//! Without them the test prints SKIP, unless `CI` is set, in which case it fails.

mod client;
mod support;

use client::{b64url, csr, Client, Resp};
use serde_json::{json, Value};
use sqlx::{Connection, Row};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{free_port, run, temp_dir, wait_for, ChildGuard, Fleetca, Probe};

const SUFFIX: &str = "routers.example.com";
/// The database password: it must never appear in a response or in the server's log.
const PASSWORD: &str = "outage-Pw-5b1e9c";
const DB_USER: &str = "fleetca";
const DB_NAME: &str = "fleetca";
/// Generous bound for anything that is polled (cluster start/stop, recovery, load progress).
const DEADLINE: Duration = Duration::from_secs(120);

/// The directory holding `initdb` and `postgres`: `FLEETCA_PG_BIN`, else the highest version
/// under /usr/lib/postgresql.
fn postgres_bin_dir() -> Option<PathBuf> {
    let usable = |bin: &Path| bin.join("initdb").is_file() && bin.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("FLEETCA_PG_BIN").filter(|v| !v.is_empty()) {
        // An explicit choice is not second-guessed: if it is wrong, say so.
        return Some(PathBuf::from(dir));
    }
    let version =
        |name: &str| -> Option<Vec<u32>> { name.split('.').map(|p| p.parse().ok()).collect() };
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v = version(e.file_name().to_str()?)?;
            let bin = e.path().join("bin");
            usable(&bin).then_some((v, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}

/// Whether this process runs as root (`/proc/self` belongs to the effective user).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// uid and gid of the `postgres` account, from /etc/passwd.
fn postgres_account() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let mut fields = line.split(':').skip(2);
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    Some((uid, gid))
}

/// What the cluster needs, or why the test cannot run here.
fn prerequisites() -> Result<(PathBuf, Option<(u32, u32)>), String> {
    let bin = postgres_bin_dir().ok_or(
        "no PostgreSQL server binaries (initdb, postgres) under /usr/lib/postgresql/<version>/bin \
         and FLEETCA_PG_BIN not set; install the `postgresql` package (.ci/run does)",
    )?;
    if !bin.join("initdb").is_file() || !bin.join("postgres").is_file() {
        return Err(format!(
            "FLEETCA_PG_BIN={} holds no initdb and postgres",
            bin.display()
        ));
    }
    if !is_root() {
        return Ok((bin, None));
    }
    let owner = postgres_account()
        .ok_or("running as root, and initdb refuses root, but there is no `postgres` account")?;
    Ok((bin, Some(owner)))
}

/// A private PostgreSQL cluster in a temp dir, listening on 127.0.0.1 only.
struct Cluster {
    bin: PathBuf,
    owner: Option<(u32, u32)>,
    port: u16,
    postmaster: Option<ChildGuard>,
    starts: usize,
    // Last: removed after the server is gone.
    dir: tempfile::TempDir,
}

impl Cluster {
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.current_dir(self.dir.path()).env("LC_ALL", "C");
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn chown(&self, path: &Path) {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        }
    }

    /// `initdb` with a password-protected superuser `fleetca` (scram-sha-256 on every line).
    fn init(bin: PathBuf, owner: Option<(u32, u32)>) -> Cluster {
        let c = Cluster {
            bin,
            owner,
            port: free_port(),
            postmaster: None,
            starts: 0,
            dir: temp_dir("pg-outage"),
        };
        c.chown(c.dir.path());
        std::fs::create_dir(c.dir.path().join("sock")).expect("socket dir");
        c.chown(&c.dir.path().join("sock"));
        let pwfile = c.dir.path().join("pwfile");
        std::fs::write(&pwfile, PASSWORD).expect("pwfile");
        c.chown(&pwfile);
        let mut cmd = c.command("initdb");
        cmd.arg("-D")
            .arg(c.dir.path().join("data"))
            .args(["-U", DB_USER, "-A", "scram-sha-256", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync", "--no-instructions"])
            .arg(format!("--pwfile={}", pwfile.display()));
        let out = run(cmd, DEADLINE);
        assert!(out.success(), "initdb failed\n{out}");
        c
    }

    fn url(&self, db: &str) -> String {
        format!(
            "postgres://{DB_USER}:{PASSWORD}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    /// Starts the postmaster (always on the same port) and waits until it accepts logins.
    fn start(&mut self, rt: &tokio::runtime::Runtime) {
        assert!(self.postmaster.is_none(), "already running");
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path().join("sock"))
            .args(["-c", "listen_addresses=127.0.0.1"])
            // Containers often have a small /dev/shm.
            .args(["-c", "dynamic_shared_memory_type=mmap"])
            .args(["-c", "shared_buffers=16MB", "-c", "max_connections=60"]);
        let log = self
            .dir
            .path()
            .join(format!("postgres-{}.log", self.starts));
        self.starts += 1;
        let mut guard = ChildGuard::spawn("postgres", cmd, &log);
        let url = self.url("postgres");
        let start = Instant::now();
        loop {
            if let Some(status) = guard.try_wait() {
                panic!("postgres exited with {status} at start\n{}", guard.log());
            }
            let ok = rt.block_on(async {
                match tokio::time::timeout(
                    Duration::from_secs(5),
                    sqlx::PgConnection::connect(&url),
                )
                .await
                {
                    Ok(Ok(c)) => {
                        let _ = c.close().await;
                        true
                    }
                    _ => false,
                }
            });
            if ok {
                break;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "postgres did not accept logins within {DEADLINE:?}\n{}",
                guard.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.postmaster = Some(guard);
    }

    /// Stops the postmaster with `sig` and waits for it to exit: `INT` is a fast shutdown
    /// (sessions are terminated, open transactions roll back, a checkpoint is written), `QUIT`
    /// an immediate one (no checkpoint: the next start runs crash recovery).
    fn stop(&mut self, sig: &str) {
        let mut guard = self.postmaster.take().expect("postgres is running");
        signal(guard.id(), sig);
        let start = Instant::now();
        while guard.try_wait().is_none() {
            assert!(
                start.elapsed() < DEADLINE,
                "postgres did not stop within {DEADLINE:?}\n{}",
                guard.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn create_database(&self, rt: &tokio::runtime::Runtime, name: &str) {
        rt.block_on(async {
            let mut c = sqlx::PgConnection::connect(&self.url("postgres"))
                .await
                .expect("connect to the private cluster");
            // `name` is one of this file's constants.
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut c)
                .await
                .expect("CREATE DATABASE");
            let _ = c.close().await;
        });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Immediate shutdown (SIGQUIT) takes the backends down with the postmaster; the
        // guard's SIGKILL would leave them to notice on their own.
        if let Some(mut guard) = self.postmaster.take() {
            signal(guard.id(), "QUIT");
            let start = Instant::now();
            while guard.try_wait().is_none() && start.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let out = run(
        {
            let mut c = Command::new("kill");
            c.args([&format!("-{sig}"), &pid.to_string()]);
            c
        },
        Duration::from_secs(10),
    );
    assert!(out.success(), "kill -{sig} {pid}\n{out}");
}

fn serve(f: &Fleetca, database: &str, port: u16, http_port: u16) -> ChildGuard {
    let mut cmd = Command::new(Fleetca::bin());
    cmd.args(["serve", "--data-dir"])
        .arg(f.data_dir())
        .args(["--database", database])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--http-listen",
            &format!("127.0.0.1:{http_port}"),
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--insecure-skip-validation")
        // A finalize cut off by the outage between claim and store leaves its order
        // `processing` until the claim's lease ends; a short lease lets the test see the
        // sweeper release it.
        .args(["--finalize-lease-secs", "2"])
        .env("RUST_LOG", "info");
    let mut guard = ChildGuard::spawn("fleetca", cmd, &f.scratch().join("serve.log"));
    let url = format!("https://127.0.0.1:{port}/acme/default/directory");
    wait_for(
        &Probe::Https {
            url: &url,
            ca_pem: f.root_pem_path(),
        },
        support::STARTUP_DEADLINE,
        Some(&mut guard),
    )
    .expect("fleetca serve came up");
    guard
}

/// Background load for the whole test: complete flows, each certificate saved as it arrives.
fn bench(f: &Fleetca, port: u16, certs: &Path) -> ChildGuard {
    let mut cmd = Command::new(Fleetca::bin());
    cmd.args([
        "bench",
        "--mode",
        "skip",
        "--clients",
        "2",
        "--count",
        "1000000",
    ])
    .args([
        "--url",
        &format!("https://127.0.0.1:{port}/acme/default/directory"),
    ])
    .arg("--root")
    .arg(f.root_pem_path())
    .args(["--suffix", SUFFIX])
    .arg("--save-certs")
    .arg(certs);
    ChildGuard::spawn("bench", cmd, &f.scratch().join("bench.log"))
}

fn saved_certs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "pem"))
                .collect()
        })
        .unwrap_or_default()
}

fn wait_for_certs(dir: &Path, at_least: usize, server: &mut ChildGuard, bench: &ChildGuard) {
    let start = Instant::now();
    while saved_certs(dir).len() < at_least {
        assert!(
            server.try_wait().is_none(),
            "fleetca exited\n{}",
            server.log()
        );
        assert!(
            start.elapsed() < DEADLINE,
            "the load did not reach {at_least} certificates within {DEADLINE:?}\n{}\n{}",
            bench.log(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Orders `name` and answers its challenge (the server skips validation); returns the order
/// URL and the order once it is ready.
async fn ready_order(c: &Client, name: &str) -> (String, Value) {
    let r = c.new_order(&[name]).await;
    assert_eq!(r.status, 201, "newOrder {name}: {}", text(&r));
    let url = r.location();
    let authz_url = r.json()["authorizations"][0]
        .as_str()
        .expect("authorization URL")
        .to_string();
    let ch = first_challenge(c, &authz_url).await;
    let r = c.post(&ch, Some(&json!({}))).await;
    assert_eq!(r.status, 200, "challenge {name}: {}", text(&r));
    let order = c.poll(&url, |o| o["status"] != "pending").await;
    assert_eq!(order["status"], "ready", "{order}");
    (url, order)
}

async fn first_challenge(c: &Client, authz_url: &str) -> String {
    let authz = c.post(authz_url, None).await.json();
    authz["challenges"][0]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no challenge in {authz}"))
        .to_string()
}

/// Finalizes a ready order and downloads the chain; returns the leaf (DER) and the order.
async fn finalize(c: &Client, name: &str, order_url: &str, order: &Value) -> (Vec<u8>, Value) {
    let (csr_der, _key) = csr(&[name], &rcgen::PKCS_ECDSA_P256_SHA256);
    let r = c
        .post(
            order["finalize"].as_str().expect("finalize URL"),
            Some(&json!({"csr": b64url(&csr_der)})),
        )
        .await;
    assert_eq!(r.status, 200, "finalize {name}: {}", text(&r));
    let order = c.poll(order_url, |o| o["status"] != "processing").await;
    assert_eq!(order["status"], "valid", "{order}");
    let r = c
        .post(
            order["certificate"].as_str().expect("certificate URL"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "download {name}: {}", text(&r));
    let ders = pki::cert_info::pem_to_ders(&text(&r)).expect("PEM chain");
    (ders[0].clone(), order)
}

/// RFC 9773 §4.1 certID of a certificate.
fn ari_cert_id(der: &[u8]) -> String {
    use x509_parser::extensions::ParsedExtension;
    let (_, x) = x509_parser::parse_x509_certificate(der).expect("certificate parses");
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

/// 500 `serverInternal`, a short numeric `Retry-After`, a detail about the database, and not a
/// trace of the connection URL or its password.
fn assert_retry_later(what: &str, r: &Resp) {
    let body = text(r);
    assert_eq!(r.status, 500, "{what} while the database is down: {body}");
    assert_eq!(r.problem(), "serverInternal", "{what}: {body}");
    let secs: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: no numeric Retry-After: {:?}", r.headers));
    assert!((1..=60).contains(&secs), "{what}: Retry-After {secs}");
    let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("database"), "{what}: detail {detail:?}");
    for secret in [PASSWORD, "postgres://", "127.0.0.1:"] {
        assert!(!body.contains(secret), "{what} leaks {secret:?}: {body}");
    }
}

#[test]
fn postgres_outage_answers_retry_later_and_recovers() {
    let (bin, owner) = match prerequisites() {
        Ok(p) => p,
        Err(why) => {
            support::gate(
                "postgres_outage_answers_retry_later_and_recovers",
                false,
                &why,
            );
            return;
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut pg = Cluster::init(bin, owner);
    pg.start(&rt);
    pg.create_database(&rt, DB_NAME);
    let db_url = pg.url(DB_NAME);

    let f = Fleetca::init(&[SUFFIX]);
    let port = free_port();
    let http_port = free_port();
    let mut server = serve(&f, &db_url, port, http_port);
    let directory = format!("https://127.0.0.1:{port}/acme/default/directory");
    let certs = f.scratch().join("certs");
    let load = bench(&f, port, &certs);

    // Before: a complete flow, plus objects every endpoint can be asked about during the
    // outage (an account, a certificate, a ready order, an unanswered challenge).
    let mut c = rt.block_on(Client::new(&directory, f.root_pem()));
    let r = rt.block_on(c.new_account());
    assert_eq!(r.status, 201, "newAccount: {}", text(&r));
    let account = r.json();
    let kid = c.kid.clone().expect("kid");
    let mut received = Vec::new();
    let before = format!("before.{SUFFIX}");
    let (leaf, issued) = rt.block_on(async {
        let (url, order) = ready_order(&c, &before).await;
        finalize(&c, &before, &url, &order).await
    });
    received.push(leaf.clone());
    let pending_name = format!("across.{SUFFIX}");
    let (ready_url, ready) = rt.block_on(ready_order(&c, &pending_name));
    let later = format!("later.{SUFFIX}");
    let (later_order_url, later_authz, later_challenge) = rt.block_on(async {
        let r = c.new_order(&[&later]).await;
        assert_eq!(r.status, 201, "{}", text(&r));
        let authz = r.json()["authorizations"][0]
            .as_str()
            .expect("authz")
            .to_string();
        let ch = first_challenge(&c, &authz).await;
        (r.location(), authz, ch)
    });
    wait_for_certs(&certs, 3, &mut server, &load);
    // An OCSP request for the certificate issued above (openssl builds it), to ask during the
    // outage.
    let ocsp_url = format!("http://127.0.0.1:{http_port}/ocsp/default");
    let ocsp_req = {
        let dir = f.scratch();
        let (leaf_pem, req) = (dir.join("ocsp-leaf.pem"), dir.join("ocsp-req.der"));
        std::fs::write(&leaf_pem, pki::der_to_pem("CERTIFICATE", &leaf)).unwrap();
        let mut cmd = Command::new("openssl");
        cmd.args(["ocsp", "-no_nonce", "-issuer"])
            .arg(f.data_dir().join("ca/default/cert.pem"))
            .arg("-cert")
            .arg(&leaf_pem)
            .arg("-reqout")
            .arg(&req);
        let out = run(cmd, Duration::from_secs(30));
        assert!(out.success(), "openssl ocsp -reqout: {}", out.combined());
        std::fs::read(&req).unwrap()
    };
    let ask_ocsp = |rt: &tokio::runtime::Runtime| -> Vec<u8> {
        rt.block_on(async {
            let r = reqwest::Client::new()
                .post(&ocsp_url)
                .header("content-type", "application/ocsp-request")
                .body(ocsp_req.clone())
                .send()
                .await
                .expect("OCSP POST");
            r.bytes().await.expect("OCSP body").to_vec()
        })
    };
    let answer = ask_ocsp(&rt);
    // responseStatus successful (ENUMERATED 0) right after the outer SEQUENCE header.
    assert!(
        answer.windows(3).take(6).any(|w| w == [0x0a, 0x01, 0x00]),
        "successful OCSP response before the outage: {answer:02x?}"
    );

    // The outage.
    pg.stop("INT");
    let saved_at_stop = saved_certs(&certs).len();
    eprintln!("postgres stopped; {saved_at_stop} certificates saved by the load so far");
    assert!(
        server.try_wait().is_none(),
        "fleetca exited\n{}",
        server.log()
    );

    rt.block_on(async {
        // Directory and newNonce need no database (the nonce key is cached at start).
        let r = c.http.get(&directory).send().await.expect("directory");
        assert_eq!(r.status(), 200, "directory while the database is down");
        let r = c
            .http
            .head(c.url("newNonce"))
            .send()
            .await
            .expect("newNonce");
        assert_eq!(r.status(), 200, "newNonce while the database is down");
        assert!(r.headers().contains_key("replay-nonce"));

        let mut fresh = Client::new(&directory, f.root_pem()).await;
        let cert_url = issued["certificate"].as_str().expect("certificate URL");
        let ari = format!("{}/{}", c.url("renewalInfo"), ari_cert_id(&leaf));
        let ari = async {
            let r = c.http.get(&ari).send().await.expect("renewalInfo");
            Resp {
                status: r.status().as_u16(),
                headers: r.headers().clone(),
                body: r.bytes().await.expect("body").to_vec(),
            }
        };
        let (csr_der, _key) = csr(&[&pending_name], &rcgen::PKCS_ECDSA_P256_SHA256);
        let finalize_url = ready["finalize"].as_str().expect("finalize URL");
        let orders_url = account["orders"].as_str().unwrap_or(&kid).to_string();
        let new_order_body =
            json!({"identifiers": [{"type": "dns", "value": format!("down.{SUFFIX}")}]});
        let (new_order_url, revoke_url, key_change_url) =
            (c.url("newOrder"), c.url("revokeCert"), c.url("keyChange"));
        let finalize_body = json!({"csr": b64url(&csr_der)});
        let revoke_body = json!({"certificate": b64url(&leaf)});
        let empty = json!({});
        // Concurrently: each waits out the pool's acquire timeout before it is answered.
        let (
            new_account,
            acct,
            orders,
            new_order,
            order,
            authz,
            challenge,
            finalize_r,
            cert,
            revoke,
            key_change,
            ari,
        ) = tokio::join!(
            fresh.new_account(),
            c.post(&kid, None),
            c.post(&orders_url, None),
            c.post(&new_order_url, Some(&new_order_body)),
            c.post(&later_order_url, None),
            c.post(&later_authz, None),
            c.post(&later_challenge, Some(&empty)),
            c.post(finalize_url, Some(&finalize_body)),
            c.post(cert_url, None),
            c.post(&revoke_url, Some(&revoke_body)),
            c.post(&key_change_url, Some(&empty)),
            ari,
        );
        for (what, r) in [
            ("newAccount", &new_account),
            ("account", &acct),
            ("orders", &orders),
            ("newOrder", &new_order),
            ("order", &order),
            ("authorization", &authz),
            ("challenge", &challenge),
            ("finalize", &finalize_r),
            ("certificate", &cert),
            ("revokeCert", &revoke),
            ("keyChange", &key_change),
            ("renewalInfo", &ari),
        ] {
            assert_retry_later(what, r);
        }
        assert!(fresh.kid.is_none());
    });
    // OCSP answers the unsigned status tryLater (RFC 6960 §2.3: 30 03 0a 01 03), which tells
    // a relying party to ask again, not internalError.
    assert_eq!(
        ask_ocsp(&rt),
        vec![0x30, 0x03, 0x0a, 0x01, 0x03],
        "OCSP during the outage"
    );
    assert!(
        server.try_wait().is_none(),
        "fleetca exited during the outage\n{}",
        server.log()
    );

    // Back, on the same port: the pool reconnects without a restart of fleetca.
    pg.start(&rt);
    rt.block_on(async {
        let mut fresh = Client::new(&directory, f.root_pem()).await;
        let start = Instant::now();
        loop {
            let r = fresh.new_account().await;
            if r.status == 201 {
                break;
            }
            // Until the pool has a live connection again, the answer is still "retry later".
            assert_retry_later("newAccount during recovery", &r);
            assert!(
                start.elapsed() < DEADLINE,
                "no recovery within {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The order made ready before the outage, whose finalize was refused, finalizes now.
        let (leaf, _) = finalize(&c, &pending_name, &ready_url, &ready).await;
        received.push(leaf);
        // The challenge refused during the outage is answered now.
        let r = c.post(&later_challenge, Some(&json!({}))).await;
        assert_eq!(r.status, 200, "challenge after recovery: {}", text(&r));
        let order = c.poll(&later_order_url, |o| o["status"] != "pending").await;
        assert_eq!(order["status"], "ready", "{order}");
        let (leaf, _) = finalize(&c, &later, &later_order_url, &order).await;
        received.push(leaf);
        // And a brand-new account gets a certificate.
        let after = format!("after.{SUFFIX}");
        let (url, order) = ready_order(&fresh, &after).await;
        let (leaf, _) = finalize(&fresh, &after, &url, &order).await;
        received.push(leaf);
    });
    // The background load makes progress again.
    wait_for_certs(&certs, saved_at_stop + 3, &mut server, &load);

    // A second outage, mid-load again, this time like a database crash: immediate shutdown,
    // crash recovery at the next start.
    pg.stop("QUIT");
    let saved_at_crash = saved_certs(&certs).len();
    let r = rt.block_on(c.post(&kid, None));
    assert_retry_later("account after a database crash", &r);
    assert!(
        server.try_wait().is_none(),
        "fleetca exited\n{}",
        server.log()
    );
    pg.start(&rt);
    wait_for_certs(&certs, saved_at_crash + 3, &mut server, &load);
    drop(load);
    assert!(
        server.try_wait().is_none(),
        "fleetca exited\n{}",
        server.log()
    );

    // Every certificate any client received is stored, byte for byte, and unrevoked.
    let store = rt
        .block_on(fleetca::sa::open_database(&db_url))
        .expect("open the database");
    let mut all = received;
    for p in saved_certs(&certs) {
        let pem = std::fs::read_to_string(&p).expect("saved certificate");
        all.push(pki::cert_info::pem_to_ders(&pem).expect("PEM")[0].clone());
    }
    for der in &all {
        let serial = fleetca::ca::hex(&pki::cert_info::serial_of(der).expect("serial"));
        let rec = rt
            .block_on(store.get_cert_by_serial("default", &serial))
            .expect("query")
            .unwrap_or_else(|| panic!("certificate {serial} a client received is not stored"));
        assert_eq!(
            &rec.der, der,
            "certificate {serial} differs from the stored one"
        );
        assert!(rec.revoked_at.is_none());
    }
    // No order was left half-finalized by the outage: a claim cut off by it is released by the
    // sweeper once its 2 s lease has ended (the sweeper runs every 5 s).
    rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(&db_url).await.expect("connect");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let stuck: i64 = sqlx::query("SELECT COUNT(*) FROM orders WHERE status = 'processing'")
                .fetch_one(&mut c)
                .await
                .expect("query")
                .get(0);
            if stuck == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{stuck} orders still processing after their claims' leases"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let orphan: i64 = sqlx::query(
            "SELECT COUNT(*) FROM orders o WHERE o.status = 'valid' AND NOT EXISTS
               (SELECT 1 FROM certificates c WHERE c.id = o.cert_id)",
        )
        .fetch_one(&mut c)
        .await
        .expect("query")
        .get(0);
        assert_eq!(orphan, 0, "a valid order without its certificate");
        let _ = c.close().await;
    });
    let log = server.log();
    assert!(
        !log.contains(PASSWORD),
        "the server log contains the database password"
    );
    assert!(
        log.contains("database unavailable"),
        "the outage was not logged as one\n{log}"
    );
    eprintln!(
        "outage survived: {} certificates received by clients, all stored",
        all.len()
    );
}
