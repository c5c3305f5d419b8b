//! `fleetca bench`: a load generator that drives complete ACME flows (account, order,
//! challenge, finalize, download) with N concurrent clients against a directory URL and reports
//! certificates per second and latency percentiles. Two modes: real http-01 validation (the
//! bench answers challenges itself; point the server's `--http01-port` at `--http01-listen` and
//! its resolver at a DNS that maps the names to this host), or `skip` against a server started
//! with `--insecure-skip-validation` (load tests only). Every client registers its account
//! before the clock starts, so rates, server CPU and `--pg-stats` (database transactions and
//! statements per certificate, `pgstats`) cover issuance only, newAccount excluded.

pub mod client;
pub mod delay_proxy;
mod pgstats;
mod storm;

use client::{http_client, AcmeClient, ClientError};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How challenges are answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The server validates nothing (`serve --insecure-skip-validation`).
    Skip,
    /// Real http-01: the bench serves the key authorizations.
    Http01,
}

/// `fleetca bench` options.
#[derive(Debug, clap::Args, Clone)]
pub struct BenchArgs {
    /// ACME directory URL.
    #[arg(long)]
    pub url: String,
    /// PEM file with the root(s) to trust for the server's HTTPS.
    #[arg(long)]
    pub root: PathBuf,
    /// Concurrent clients (each with its own account).
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Total certificates to obtain.
    #[arg(long, default_value_t = 200)]
    pub count: usize,
    /// DNS suffix the names are made under (must be permitted by the CA).
    #[arg(long, default_value = "home.arpa")]
    pub suffix: String,
    /// Challenge mode.
    #[arg(long, value_enum, default_value = "skip")]
    pub mode: Mode,
    /// Where the http-01 responder listens (mode http01).
    #[arg(long, default_value = "127.0.0.1:5002")]
    pub http01_listen: SocketAddr,
    /// PID of the server, to report its CPU time per issuance (Linux /proc).
    #[arg(long)]
    pub server_pid: Vec<u32>,
    /// Write every certificate obtained to this directory as `<serial>.pem`, so a test can
    /// check afterwards that each one the clients received is in the CA's database.
    #[arg(long)]
    pub save_certs: Option<PathBuf>,
    /// Renewal storm (see `bench::storm`): `--count` devices get certificates, then
    /// `--storm-trigger` runs, then every device fetches renewalInfo and renews in its window.
    #[arg(long)]
    pub storm: bool,
    /// Shell command run between the fleet's issuance and the storm, e.g.
    /// `fleetca renew-early --all --data-dir DIR`.
    #[arg(long)]
    pub storm_trigger: Option<String>,
    /// A device whose renewal window opens later than this skips renewing (reported as
    /// "not due").
    #[arg(long, default_value_t = 60)]
    pub storm_max_wait_secs: u64,
    /// PostgreSQL URL of the database the server under test uses: print transactions and
    /// statements (round trips) per certificate of the measured run, from `pg_stat_database`
    /// and `pg_stat_statements` (see `bench::pgstats`).
    /// (Also from the environment, which keeps the password off the command line.)
    #[arg(long, value_name = "URL", env = "FLEETCA_BENCH_PG_STATS")]
    pub pg_stats: Option<String>,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Report {
    /// Certificates obtained.
    pub ok: usize,
    /// Flows that failed.
    pub failed: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Per-issuance latency, sorted.
    pub latencies: Vec<Duration>,
    /// Server CPU seconds used during the run, if measured.
    pub server_cpu: Option<f64>,
    /// The first few errors.
    pub errors: Vec<String>,
    /// Further lines for the summary (the storm's phases).
    pub extra: Vec<String>,
}

impl Report {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }

    /// Human-readable summary.
    pub fn render(&self) -> String {
        let rate = self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9);
        let mut s = format!(
            "certificates: {} ok, {} failed in {:.2}s\nrate: {:.1} certificates/s\nlatency: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
            self.ok,
            self.failed,
            self.elapsed.as_secs_f64(),
            rate,
            ms(self.percentile(0.5)),
            ms(self.percentile(0.9)),
            ms(self.percentile(0.99)),
            ms(self.latencies.last().copied().unwrap_or_default()),
        );
        if let Some(cpu) = self.server_cpu {
            s.push_str(&format!(
                "server CPU: {:.2}s total, {:.2} ms per certificate\n",
                cpu,
                cpu * 1000.0 / self.ok.max(1) as f64
            ));
        }
        for line in &self.extra {
            s.push_str(line);
            s.push('\n');
        }
        for e in &self.errors {
            s.push_str(&format!("error: {e}\n"));
        }
        s
    }
}

/// Requests per certificate over the measured run, from two [`client::Sent`] snapshots.
fn requests_line(before: client::SentCounts, after: client::SentCounts, certs: usize) -> String {
    let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / certs.max(1) as f64;
    format!(
        "requests per certificate: {:.2} signed POSTs ({:.2} of them polls), {:.2} newNonce",
        per(after.posts, before.posts),
        per(after.polls, before.polls),
        per(after.nonces, before.nonces),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// CPU seconds (user + system) a process has used, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

type Tokens = Arc<Mutex<HashMap<String, String>>>;

/// Runs the benchmark.
pub async fn run(args: &BenchArgs) -> anyhow::Result<Report> {
    let roots = std::fs::read_to_string(&args.root)?;
    let http = http_client(&roots)?;
    let tokens: Tokens = Arc::default();
    // Key authorizations the responder handed out: the evidence that the server validated.
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    if args.mode == Mode::Http01 {
        spawn_http01_responder(args.http01_listen, tokens.clone(), served.clone()).await?;
    }
    let served_line = || {
        let busy = client::BUSY_ANSWERS.load(std::sync::atomic::Ordering::Relaxed);
        let mut lines = vec![format!("503 answers retried: {busy}")];
        if args.mode == Mode::Http01 {
            lines.push(format!(
                "http-01 key authorizations served: {}",
                served.load(std::sync::atomic::Ordering::SeqCst)
            ));
        }
        lines
    };
    let server_cpu = || -> Option<f64> {
        if args.server_pid.is_empty() {
            None
        } else {
            args.server_pid.iter().map(|p| cpu_seconds(*p)).sum()
        }
    };
    let cpu_before = server_cpu();
    if args.storm {
        let mut report = storm::run(args, http, tokens).await?;
        report.server_cpu = cpu_before.zip(server_cpu()).map(|(a, b)| b - a);
        report.extra.extend(served_line());
        return Ok(report);
    }
    // Every client registers first, so the measured run (its time and its database counts)
    // covers issuance only: the whole flow from newOrder to download, newAccount excluded.
    let mut registering = Vec::new();
    for _ in 0..args.clients.max(1) {
        let (http, url) = (http.clone(), args.url.clone());
        registering.push(tokio::spawn(async move {
            let mut client = AcmeClient::new(http, &url).await?;
            client.register().await?;
            Ok::<_, ClientError>(client)
        }));
    }
    let mut clients = Vec::new();
    let mut register_errors = Vec::new();
    for r in registering {
        match r.await? {
            Ok(c) => clients.push(c),
            Err(e) => register_errors.push(e.to_string()),
        }
    }
    let pg = match &args.pg_stats {
        Some(url) => {
            let mut pg = pgstats::PgStats::connect(url).await?;
            let before = pg.snapshot().await?;
            Some((pg, before))
        }
        None => None,
    };
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let run_id = crate::ids::new_id().to_lowercase().replace(['-', '_'], "");
    let start = Instant::now();
    let cpu_before = server_cpu();
    let sent_before = client::SENT.snapshot();
    let mut tasks = Vec::new();
    for (c, client) in clients.into_iter().enumerate() {
        let (args, next, tokens, run_id) =
            (args.clone(), next.clone(), tokens.clone(), run_id.clone());
        tasks.push(tokio::spawn(async move {
            let mut out: Vec<Result<Duration, String>> = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= args.count {
                    break;
                }
                let name = format!(
                    "b{i}-{c}-{}.{}",
                    &run_id[..8.min(run_id.len())],
                    args.suffix
                );
                let t = Instant::now();
                let r = issue_one(&client, &name, args.mode, &tokens).await;
                let r = match (r, &args.save_certs) {
                    (Ok(pem), Some(dir)) => save_cert(dir, &pem).map_err(|e| e.to_string()),
                    (r, _) => r.map(|_| ()).map_err(|e| e.to_string()),
                };
                out.push(r.map(|_| t.elapsed()));
            }
            out
        }));
    }
    let mut report = Report {
        ok: 0,
        // A client that could not register counts as one failed flow, as before.
        failed: register_errors.len(),
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        server_cpu: None,
        errors: register_errors.into_iter().take(5).collect(),
        extra: Vec::new(),
    };
    for t in tasks {
        for r in t.await? {
            match r {
                Ok(d) => {
                    report.ok += 1;
                    report.latencies.push(d);
                }
                Err(e) => {
                    report.failed += 1;
                    if report.errors.len() < 5 {
                        report.errors.push(e);
                    }
                }
            }
        }
    }
    report.elapsed = start.elapsed();
    report.latencies.sort();
    report.extra.push(requests_line(
        sent_before,
        client::SENT.snapshot(),
        report.ok,
    ));
    report.extra.extend(served_line());
    report.server_cpu = cpu_before.zip(server_cpu()).map(|(a, b)| b - a);
    if let Some((mut pg, before)) = pg {
        let after = pg.snapshot().await?;
        report
            .extra
            .extend(pgstats::render(&before, &after, report.ok, pg.note()));
    }
    Ok(report)
}

/// Writes the leaf of a PEM chain as `<serial hex>.pem` (temp file + rename).
fn save_cert(dir: &std::path::Path, pem: &str) -> anyhow::Result<()> {
    let leaf = pki::cert_info::pem_to_ders(pem)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty chain"))?;
    let serial = crate::ca::hex(&pki::cert_info::serial_of(&leaf)?);
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{serial}.tmp"));
    std::fs::write(&tmp, pem)?;
    std::fs::rename(tmp, dir.join(format!("{serial}.pem")))?;
    Ok(())
}

async fn issue_one(
    c: &AcmeClient,
    name: &str,
    mode: Mode,
    tokens: &Tokens,
) -> Result<String, ClientError> {
    issue_with(c, name, mode, tokens, None).await
}

/// One full flow; `replaces` names the certificate this one renews (RFC 9773 §5).
async fn issue_with(
    c: &AcmeClient,
    name: &str,
    mode: Mode,
    tokens: &Tokens,
    replaces: Option<&str>,
) -> Result<String, ClientError> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut new_order = json!({"identifiers": [{"type": "dns", "value": name}]});
    if let Some(r) = replaces {
        new_order["replaces"] = json!(r);
    }
    let order = c.post(&c.url("newOrder")?, Some(&new_order)).await?;
    let order_url = order
        .header("location")
        .ok_or_else(|| ClientError::Other("order without Location".into()))?;
    let order = order.json();
    for authz_url in order["authorizations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
    {
        let authz = c.post(authz_url, None).await?.json();
        let ch = authz["challenges"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "http-01"))
            .ok_or_else(|| ClientError::Other("no http-01 challenge offered".into()))?;
        let token = ch["token"].as_str().unwrap_or_default().to_string();
        if mode == Mode::Http01 {
            let ka = acme_types::keyauth::key_authorization(&token, c.key.jwk());
            tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(token.clone(), ka);
        }
        let answered = c
            .post(ch["url"].as_str().unwrap_or_default(), Some(&json!({})))
            .await?
            .json();
        // The server reports a validation that finished quickly in the challenge response
        // itself; the authorization needs no poll then (lego does the same).
        let done = if answered["status"] == "valid" {
            json!({"status": "valid"})
        } else {
            c.poll(authz_url, deadline, |a| a["status"] != "pending")
                .await?
        };
        tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&token);
        if done["status"] != "valid" {
            return Err(ClientError::Other(format!(
                "authorization for {name} is {}: {}",
                done["status"], done
            )));
        }
    }
    let key = rcgen::KeyPair::generate().map_err(|e| ClientError::Other(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])
        .map_err(|e| ClientError::Other(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|e| ClientError::Other(e.to_string()))?;
    // A node that dies between its finalize claim and its store leaves the order `processing`
    // until the claim's lease runs out; the order is then `ready` again and is finalized anew.
    let mut attempts = 0;
    let fin = loop {
        attempts += 1;
        let fin = match c
            .post(
                order["finalize"].as_str().unwrap_or_default(),
                Some(&json!({"csr": acme_types::b64::encode(csr.der())})),
            )
            .await
        {
            Ok(r) => r.json(),
            // The finalize may have been carried out although its answer was lost (a node
            // killed after its commit, then the request retried elsewhere answers
            // orderNotReady): the order itself says whether a certificate exists.
            Err(e) => {
                let now = c.post(&order_url, None).await?.json();
                let retry = now["status"] == "ready" && attempts < 3;
                if now["status"] == "valid" || now["status"] == "processing" || retry {
                    now
                } else {
                    return Err(e);
                }
            }
        };
        let fin = if fin["status"] == "valid" {
            fin
        } else {
            c.poll(&order_url, deadline, |o| o["status"] != "processing")
                .await?
        };
        if fin["status"] == "ready" && attempts < 3 {
            continue;
        }
        break fin;
    };
    let cert_url = fin["certificate"]
        .as_str()
        .ok_or_else(|| ClientError::Other(format!("order not valid: {fin}")))?;
    let pem = String::from_utf8_lossy(&c.post(cert_url, None).await?.body).to_string();
    if !pem.contains("BEGIN CERTIFICATE") {
        return Err(ClientError::Other(
            "certificate download returned no PEM".into(),
        ));
    }
    Ok(pem)
}

async fn spawn_http01_responder(
    addr: SocketAddr,
    tokens: Tokens,
    served: Arc<std::sync::atomic::AtomicUsize>,
) -> anyhow::Result<()> {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    type Shared = (Tokens, Arc<std::sync::atomic::AtomicUsize>);
    async fn answer(
        State((t, served)): State<Shared>,
        Path(token): Path<String>,
    ) -> Result<String, StatusCode> {
        let ka = t
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&token)
            .cloned()
            .ok_or(StatusCode::NOT_FOUND)?;
        served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(ka)
    }
    let app = axum::Router::new()
        .route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(answer),
        )
        .with_state((tokens, served));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(())
}
