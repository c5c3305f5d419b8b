//! Proving control of identifiers: http-01 (built-in listener or webroot),
//! dns-01 (hook command) and tls-alpn-01 (built-in listener).

mod dns01;
mod http01;
mod tlsalpn01;

pub use dns01::DnsHook;
pub use http01::{Http01Server, Webroot};
pub use tlsalpn01::TlsAlpnServer;

use crate::error::Result;

/// A challenge responder: publishes a response for a token/name and takes
/// it down again.
pub trait Responder {
    /// Publishes the response for one challenge.
    fn present(&mut self, domain: &str, token: &str, key_authorization: &str) -> Result<()>;
    /// Removes it (errors are logged by the caller, never fatal).
    fn cleanup(&mut self, domain: &str, token: &str, key_authorization: &str) -> Result<()>;
}
