//! tls-alpn-01 (RFC 8737): a rustls listener that answers the `acme-tls/1`
//! protocol with a self-signed certificate for the name carrying the
//! critical acmeIdentifier extension (1.3.6.1.5.5.7.1.31). A cert resolver
//! is used because `with_single_cert` rejects that critical extension.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::Responder;
use crate::error::{AgentError, Result};

type Certs = Arc<Mutex<HashMap<String, Arc<CertifiedKey>>>>;

#[derive(Debug)]
struct Resolver(Certs);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if !hello.alpn()?.any(|p| p == b"acme-tls/1") {
            return None;
        }
        let name = hello.server_name()?.to_ascii_lowercase();
        self.0.lock().ok()?.get(&name).cloned()
    }
}

/// The built-in tls-alpn-01 listener; stops when dropped.
pub struct TlsAlpnServer {
    certs: Certs,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl TlsAlpnServer {
    /// Binds `0.0.0.0:port` and answers handshakes on a background thread.
    pub fn start(port: u16) -> Result<TlsAlpnServer> {
        let listener = TcpListener::bind(("0.0.0.0", port)).map_err(|e| {
            AgentError::Challenge(format!("tls-alpn-01 listener on port {port}: {e}"))
        })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        let certs: Certs = Arc::default();
        let mut config =
            rustls::ServerConfig::builder_with_provider(crate::http::crypto_provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| AgentError::Challenge(format!("tls config: {e}")))?
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(Resolver(certs.clone())));
        config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
        let config = Arc::new(config);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(conn) = conn {
                    let config = config.clone();
                    std::thread::spawn(move || handshake(conn, config));
                }
            }
        });
        Ok(TlsAlpnServer { certs, stop, port })
    }
}

fn handshake(mut sock: TcpStream, config: Arc<rustls::ServerConfig>) {
    let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(mut conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    while conn.is_handshaking() {
        if conn.complete_io(&mut sock).is_err() {
            return;
        }
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
}

impl Drop for TlsAlpnServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The validation certificate for `domain` (RFC 8737 §3).
pub(super) fn validation_cert(domain: &str, ka: &str) -> Result<CertifiedKey> {
    let digest = acme_types::keyauth::tls_alpn01_digest(ka);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| AgentError::Key(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])
        .map_err(|e| AgentError::Challenge(format!("{domain}: {e}")))?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(&digest));
    let cert = params
        .self_signed(&key)
        .map_err(|e| AgentError::Key(e.to_string()))?;
    let key_der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = crate::http::crypto_provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| AgentError::Key(e.to_string()))?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
}

impl Responder for TlsAlpnServer {
    fn present(&mut self, domain: &str, _token: &str, ka: &str) -> Result<()> {
        let ck = validation_cert(domain, ka)?;
        if let Ok(mut c) = self.certs.lock() {
            c.insert(domain.to_ascii_lowercase(), Arc::new(ck));
        }
        Ok(())
    }

    fn cleanup(&mut self, domain: &str, _token: &str, _ka: &str) -> Result<()> {
        if let Ok(mut c) = self.certs.lock() {
            c.remove(&domain.to_ascii_lowercase());
        }
        Ok(())
    }
}
