//! A test Certificate Transparency log: a real HTTP server on 127.0.0.1:0 with its own P-256
//! key, answering RFC 6962 §4.1 `add-pre-chain` with an SCT it signs over the precertificate
//! entry (§3.2). Its [`Mode`] can be changed while it runs:
//! `Ok`, `Down` (connections are closed unanswered), `Slow` (answers after 30 s, past any
//! per-log timeout), `BadSignature` (a well-formed SCT whose signature does not verify).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;

/// How the log answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Ok = 0,
    Down = 1,
    Slow = 2,
    BadSignature = 3,
}

struct Shared {
    key: rcgen::KeyPair,
    spki: Vec<u8>,
    mode: AtomicU8,
    submissions: AtomicU64,
    stop: AtomicBool,
}

/// A running test log; stops when dropped.
pub(crate) struct CtLog {
    shared: Arc<Shared>,
    port: u16,
    pub(crate) operator: String,
}

impl CtLog {
    /// Starts a log run by `operator` in `mode`.
    pub(crate) fn start(operator: &str, mode: Mode) -> CtLog {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("log key");
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let shared = Arc::new(Shared {
            key,
            spki,
            mode: AtomicU8::new(mode as u8),
            submissions: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test CT log");
        let port = listener.local_addr().expect("addr").port();
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(&s, conn));
            }
        });
        CtLog {
            shared,
            port,
            operator: operator.to_string(),
        }
    }

    /// Changes how it answers from now on.
    pub(crate) fn set_mode(&self, mode: Mode) {
        self.shared.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Its base URL, as configured in `[[ca.ct_logs]]`.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Its DER SubjectPublicKeyInfo.
    pub(crate) fn spki(&self) -> &[u8] {
        &self.shared.spki
    }

    /// Its public key as PEM (for the independent Python checker).
    pub(crate) fn public_key_pem(&self) -> String {
        pki::cert_info::der_to_pem("PUBLIC KEY", &self.shared.spki)
    }

    /// Its log id (lower-case hex of SHA-256 of the SPKI), as `cert show --json` prints it.
    pub(crate) fn id_hex(&self) -> String {
        pki::ct::LogId::of_spki(&self.shared.spki).to_string()
    }

    /// Requests answered with an SCT so far (any mode but `Down`).
    pub(crate) fn submissions(&self) -> u64 {
        self.shared.submissions.load(Ordering::SeqCst)
    }

    /// The `[[ca.ct_logs]]` TOML entry.
    pub(crate) fn toml(&self) -> String {
        format!(
            "\n[[ca.ct_logs]]\nurl = \"{}\"\npublic_key = \"{}\"\noperator = \"{}\"\n",
            self.url(),
            base64::engine::general_purpose::STANDARD.encode(self.spki()),
            self.operator
        )
    }
}

impl Drop for CtLog {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(s: &Shared, mut conn: TcpStream) {
    let mode = s.mode.load(Ordering::SeqCst);
    if mode == Mode::Down as u8 {
        return; // closed unanswered
    }
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    if !request_line.starts_with("POST /ct/v1/add-pre-chain ") {
        let _ = conn
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    let answer = match sct_for(s, &body, mode == Mode::BadSignature as u8) {
        Some(a) => a,
        None => {
            let _ = conn.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
    };
    s.submissions.fetch_add(1, Ordering::SeqCst);
    if mode == Mode::Slow as u8 {
        std::thread::sleep(Duration::from_secs(30));
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(answer.as_bytes());
}

/// The JSON `add-pre-chain` answer for `body`, signed as RFC 6962 §3.2 says (or not).
fn sct_for(s: &Shared, body: &[u8], bad_signature: bool) -> Option<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let chain: Vec<Vec<u8>> = v["chain"]
        .as_array()?
        .iter()
        .map(|c| b64.decode(c.as_str()?).ok())
        .collect::<Option<_>>()?;
    let precert = chain.first()?;
    let issuer = chain.get(1)?;
    let tbs = pki::ct::precert_tbs_without_poison(precert).ok()?;
    let issuer_spki = pki::cert_info::spki_der_of(issuer).ok()?;
    let timestamp_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    let mut sct = pki::ct::Sct {
        log_id: pki::ct::LogId::of_spki(&s.spki),
        timestamp_ms,
        extensions: Vec::new(),
        hash_alg: 4,
        sig_alg: 3,
        signature: Vec::new(),
    };
    let data =
        pki::ct::precert_signed_data(&sct, &pki::ct::issuer_key_hash(&issuer_spki), &tbs).ok()?;
    sct.signature = rcgen::SigningKey::sign(&s.key, &data).ok()?;
    if bad_signature {
        // Well-formed, but over other data: a log key mix-up or a lying log.
        let mut other = data.clone();
        other.push(0);
        sct.signature = rcgen::SigningKey::sign(&s.key, &other).ok()?;
    }
    let mut ds = vec![4u8, 3];
    ds.extend_from_slice(&(sct.signature.len() as u16).to_be_bytes());
    ds.extend_from_slice(&sct.signature);
    Some(
        serde_json::json!({
            "sct_version": 0,
            "id": b64.encode(sct.log_id.0),
            "timestamp": sct.timestamp_ms,
            "extensions": "",
            "signature": b64.encode(ds),
        })
        .to_string(),
    )
}
