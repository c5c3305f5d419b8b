//! http-01 (RFC 8555 §8.3): a tiny built-in HTTP listener, or files in a
//! webroot served by the device's own web server.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Responder;
use crate::error::{AgentError, Result};

const PREFIX: &str = "/.well-known/acme-challenge/";

type Tokens = Arc<Mutex<HashMap<String, String>>>;

/// The built-in listener; stops when dropped.
pub struct Http01Server {
    tokens: Tokens,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl Http01Server {
    /// Binds `0.0.0.0:port` and serves tokens on a background thread.
    pub fn start(port: u16) -> Result<Http01Server> {
        let listener = TcpListener::bind(("0.0.0.0", port))
            .map_err(|e| AgentError::Challenge(format!("http-01 listener on port {port}: {e}")))?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        let tokens: Tokens = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (tokens.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(conn) = conn {
                    let t = t.clone();
                    std::thread::spawn(move || serve(conn, &t));
                }
            }
        });
        Ok(Http01Server { tokens, stop, port })
    }
}

fn serve(mut conn: TcpStream, tokens: &Tokens) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let req = String::from_utf8_lossy(&buf);
    let path = req.split_whitespace().nth(1).unwrap_or("");
    let body = path
        .strip_prefix(PREFIX)
        .and_then(|tok| tokens.lock().ok()?.get(tok).cloned());
    let resp = match body {
        Some(b) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
            b.len()
        ),
        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
    };
    let _ = conn.write_all(resp.as_bytes());
}

impl Drop for Http01Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl Responder for Http01Server {
    fn present(&mut self, _domain: &str, token: &str, ka: &str) -> Result<()> {
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(token.to_owned(), ka.to_owned());
        }
        Ok(())
    }

    fn cleanup(&mut self, _domain: &str, token: &str, _ka: &str) -> Result<()> {
        if let Ok(mut t) = self.tokens.lock() {
            t.remove(token);
        }
        Ok(())
    }
}

/// Files under `<webroot>/.well-known/acme-challenge/`.
pub struct Webroot(pub PathBuf);

impl Responder for Webroot {
    fn present(&mut self, _domain: &str, token: &str, ka: &str) -> Result<()> {
        let dir = self.0.join(PREFIX.trim_matches('/'));
        std::fs::create_dir_all(&dir).map_err(|e| AgentError::io(&dir, e))?;
        let path = dir.join(token);
        std::fs::write(&path, ka).map_err(|e| AgentError::io(&path, e))
    }

    fn cleanup(&mut self, _domain: &str, token: &str, _ka: &str) -> Result<()> {
        let path = self.0.join(PREFIX.trim_matches('/')).join(token);
        std::fs::remove_file(&path).map_err(|e| AgentError::io(&path, e))
    }
}
