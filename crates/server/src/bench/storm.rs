//! `fleetca bench --storm`: a renewal storm. `--count` devices (one account each) obtain a
//! certificate; then `--storm-trigger` runs (typically `fleetca renew-early --all`, the
//! fleet-wide "renew now" after an incident); then every device at once does what an ARI
//! client does (RFC 9773 §4.2): fetch renewalInfo, wait for a random moment inside the
//! suggested window if it lies ahead (at most `--storm-max-wait-secs`), and renew with a
//! newOrder naming the old certificate in `replaces` (§5). 503s from the server's overload
//! gate are retried after their `Retry-After`. The report gives the time the whole fleet took
//! and the renewal and renewalInfo latency percentiles meanwhile.

use super::client::{AcmeClient, ClientError};
use super::{issue_with, BenchArgs, Report, Tokens};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// A device: its client, its name and its current certificate's ARI certID.
struct Device {
    client: AcmeClient,
    name: String,
    cert_id: String,
}

/// The ARI certID (RFC 9773 §4.1) of the leaf in `pem`.
fn cert_id(pem: &str) -> Result<String, ClientError> {
    let other = |e: String| ClientError::Other(e);
    let der = pki::cert_info::pem_to_ders(pem)
        .map_err(|e| other(e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| other("empty chain".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| other(e.to_string()))?;
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .ok_or_else(|| other("certificate without an authority key identifier".into()))?;
    let serial = cert.raw_serial();
    Ok(acme_types::ari::CertId::from_unsigned_serial(&aki, serial).to_string())
}

/// Runs the storm and reports it.
pub(super) async fn run(
    args: &BenchArgs,
    http: reqwest::Client,
    tokens: Tokens,
) -> anyhow::Result<Report> {
    let n = args.count.max(1);
    let gate = Arc::new(Semaphore::new(args.clients.max(1)));
    let run_id = crate::ids::new_id().to_lowercase().replace(['-', '_'], "");
    let prefix = format!("s{}", &run_id[..8.min(run_id.len())]);

    // Phase 1: the fleet gets its certificates (not part of the storm's numbers).
    let setup_start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (http, gate, tokens, args) = (http.clone(), gate.clone(), tokens.clone(), args.clone());
        let name = format!("d{i}-{prefix}.{}", args.suffix);
        tasks.push(tokio::spawn(async move {
            let _slot = gate.acquire_owned().await.ok();
            let mut client = AcmeClient::new(http, &args.url).await?;
            client.register().await?;
            let pem = issue_with(&client, &name, args.mode, &tokens, None).await?;
            Ok::<_, ClientError>(Device {
                cert_id: cert_id(&pem)?,
                client,
                name,
            })
        }));
    }
    let mut devices = Vec::with_capacity(n);
    let mut errors = Vec::new();
    for t in tasks {
        match t.await? {
            Ok(d) => devices.push(d),
            Err(e) if errors.len() < 5 => errors.push(format!("setup: {e}")),
            Err(_) => {}
        }
    }
    let setup = setup_start.elapsed();

    // Phase 2: the operator's "renew now".
    let mut extra = vec![format!(
        "storm: {} devices hold certificates (setup {:.2}s)",
        devices.len(),
        setup.as_secs_f64()
    )];
    if let Some(cmd) = &args.storm_trigger {
        let out = tokio::process::Command::new("sh")
            .args(["-c", cmd])
            .output()
            .await?;
        if !out.status.success() {
            anyhow::bail!(
                "--storm-trigger failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        extra.push(format!("storm: trigger `{cmd}` done"));
    }

    // Phase 3: every device polls renewalInfo and renews inside its window.
    let ari_base = devices
        .first()
        .map(|d| d.client.url("renewalInfo"))
        .transpose()?
        .unwrap_or_default();
    let max_wait = Duration::from_secs(args.storm_max_wait_secs);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(devices.len());
    for d in devices {
        let (gate, tokens, mode, ari_base) =
            (gate.clone(), tokens.clone(), args.mode, ari_base.clone());
        tasks.push(tokio::spawn(async move {
            // The renewalInfo poll also takes a client slot: a fleet polls on its own
            // schedules, not 100k requests in the same instant.
            let slot = gate.clone().acquire_owned().await.ok();
            let t = Instant::now();
            let info = d
                .client
                .http
                .get(format!("{ari_base}/{}", d.cert_id))
                .send()
                .await?;
            let ari_latency = t.elapsed();
            let status = info.status();
            let body: serde_json::Value = info.json().await?;
            drop(slot);
            if !status.is_success() {
                return Err(ClientError::Other(format!("renewalInfo: {status} {body}")));
            }
            let window = |k: &str| {
                body["suggestedWindow"][k]
                    .as_str()
                    .and_then(|s| {
                        time::OffsetDateTime::parse(
                            s,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .ok()
                    })
                    .map(|t| t.unix_timestamp())
            };
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let (ws, we) = (window("start").unwrap_or(now), window("end").unwrap_or(now));
            // §4.2: pick a uniformly random moment in the window; renew at once if it has
            // passed (a window wholly in the past), else wait for it.
            let at = if we > ws {
                ws + (rand::random::<u64>() % (we - ws) as u64) as i64
            } else {
                ws
            };
            if at > now {
                let wait = Duration::from_secs((at - now) as u64);
                if wait > max_wait {
                    return Ok((ari_latency, None));
                }
                tokio::time::sleep(wait).await;
            }
            let _slot = gate.acquire_owned().await.ok();
            let t = Instant::now();
            issue_with(&d.client, &d.name, mode, &tokens, Some(&d.cert_id)).await?;
            Ok((ari_latency, Some(t.elapsed())))
        }));
    }
    let (mut ok, mut failed, mut not_due) = (0, 0, 0);
    let mut latencies = Vec::new();
    let mut ari = Vec::new();
    for t in tasks {
        match t.await? {
            Ok((a, Some(l))) => {
                ok += 1;
                ari.push(a);
                latencies.push(l);
            }
            Ok((a, None)) => {
                not_due += 1;
                ari.push(a);
            }
            Err(e) => {
                failed += 1;
                if errors.len() < 5 {
                    errors.push(format!("renewal: {e}"));
                }
            }
        }
    }
    let elapsed = start.elapsed();
    latencies.sort();
    ari.sort();
    let pct = |v: &[Duration], p: f64| {
        v.get(((v.len().saturating_sub(1)) as f64 * p).round() as usize)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    extra.push(format!(
        "storm: whole fleet renewed in {:.2}s ({ok} renewed, {failed} failed, {not_due} not due within --storm-max-wait-secs)",
        elapsed.as_secs_f64()
    ));
    extra.push(format!(
        "storm: renewalInfo latency p50 {:.1} ms, p99 {:.1} ms",
        pct(&ari, 0.5),
        pct(&ari, 0.99)
    ));
    Ok(Report {
        ok,
        failed,
        elapsed,
        latencies,
        server_cpu: None,
        errors,
        extra,
    })
}
