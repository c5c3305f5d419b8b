//! One `add-pre-chain` submission (RFC 6962 §4.1) and the check of its answer (§4.1, §3.2).
//! What a log sends back is never echoed: errors name a kind, not the log's text.

use super::CtLog;
use base64::Engine;
use pki::ct::{LogId, Sct};
use std::time::{Duration, Instant};

/// Largest answer read from a log; an SCT is a few hundred bytes.
const MAX_RESPONSE: usize = 16 * 1024;

/// Why one log gave no usable SCT (the `kind` label of `fleetca_ct_submissions_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// No answer within the per-log timeout.
    #[error("timed out")]
    Timeout,
    /// The connection failed.
    #[error("connection failed")]
    Connect,
    /// The log answered with a non-200 status.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The answer is not an `add-pre-chain` response.
    #[error("malformed response")]
    Malformed,
    /// The SCT is for another log or its signature does not verify.
    #[error("SCT signature does not verify")]
    BadSignature,
}

impl SubmitError {
    /// The metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            SubmitError::Timeout => "timeout",
            SubmitError::Connect => "connect",
            SubmitError::Status(_) => "http_status",
            SubmitError::Malformed => "malformed",
            SubmitError::BadSignature => "bad_signature",
        }
    }
}

/// What every log is sent and checked against.
pub(super) struct Job {
    body: Vec<u8>,
    issuer_spki: Vec<u8>,
    tbs: Vec<u8>,
}

impl Job {
    pub(super) fn new(chain: &[Vec<u8>], issuer_spki: &[u8], tbs: &[u8]) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD;
        let chain: Vec<String> = chain.iter().map(|c| b64.encode(c)).collect();
        let body = serde_json::to_vec(&serde_json::json!({ "chain": chain })).unwrap_or_default();
        Job {
            body,
            issuer_spki: issuer_spki.to_vec(),
            tbs: tbs.to_vec(),
        }
    }
}

/// RFC 6962 §4.1 `add-pre-chain` response.
#[derive(serde::Deserialize)]
struct AddChainResponse {
    sct_version: u8,
    id: String,
    timestamp: u64,
    extensions: String,
    signature: String,
}

/// Submits to one log, verifies the SCT, records the metrics.
pub(super) async fn submit(
    http: &reqwest::Client,
    log: &CtLog,
    job: &Job,
    timeout: Duration,
) -> Result<Sct, SubmitError> {
    let started = Instant::now();
    let r = match tokio::time::timeout(timeout, ask(http, log, job)).await {
        Ok(r) => r,
        Err(_) => Err(SubmitError::Timeout),
    };
    let r = r.and_then(|sct| {
        log.key
            .verify_precert_sct(&sct, &job.issuer_spki, &job.tbs)
            .map_err(|_| SubmitError::BadSignature)?;
        Ok(sct)
    });
    crate::metrics::ct_submission(
        &log.url,
        r.as_ref().err().map(SubmitError::kind),
        started.elapsed(),
    );
    if let Err(e) = &r {
        tracing::warn!(log = %log.url, error = %e, "CT log gave no usable SCT");
    }
    r
}

async fn ask(http: &reqwest::Client, log: &CtLog, job: &Job) -> Result<Sct, SubmitError> {
    let mut resp = http
        .post(&log.endpoint)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(job.body.clone())
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                SubmitError::Timeout
            } else {
                SubmitError::Connect
            }
        })?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(SubmitError::Status(resp.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|_| SubmitError::Malformed)? {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(SubmitError::Malformed);
        }
        body.extend_from_slice(&chunk);
    }
    parse_response(&body)
}

/// The SCT of an `add-pre-chain` response body.
pub(super) fn parse_response(body: &[u8]) -> Result<Sct, SubmitError> {
    let r: AddChainResponse = serde_json::from_slice(body).map_err(|_| SubmitError::Malformed)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let id: [u8; 32] = b64
        .decode(&r.id)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or(SubmitError::Malformed)?;
    let extensions = b64
        .decode(&r.extensions)
        .map_err(|_| SubmitError::Malformed)?;
    // `signature` is a TLS DigitallySigned: hash, signature algorithm, 16-bit length, bytes.
    let ds = b64
        .decode(&r.signature)
        .map_err(|_| SubmitError::Malformed)?;
    if r.sct_version != 0 || ds.len() < 4 {
        return Err(SubmitError::Malformed);
    }
    let len = usize::from(u16::from_be_bytes([ds[2], ds[3]]));
    if ds.len() != 4 + len {
        return Err(SubmitError::Malformed);
    }
    Ok(Sct {
        log_id: LogId(id),
        timestamp_ms: r.timestamp,
        extensions,
        hash_alg: ds[0],
        sig_alg: ds[1],
        signature: ds[4..].to_vec(),
    })
}
