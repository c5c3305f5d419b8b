//! Proving control of identifiers: http-01 (built-in listener or webroot),
//! dns-01 (hook command), tls-alpn-01 (built-in listener) and device-attest-01
//! (the device's attestation key, for its `permanent-identifier`).

mod deviceattest01;
mod dns01;
mod http01;
mod tlsalpn01;

pub use deviceattest01::{
    attested_identifiers, DeviceAttestation, DEVICE_ATTEST_01, PERMANENT_IDENTIFIER,
};
pub use dns01::DnsHook;
pub use http01::{Http01Server, Webroot};
pub use tlsalpn01::TlsAlpnServer;

use crate::config::{ChallengeKind, Settings};
use crate::error::{AgentError, Result};

/// A challenge responder: publishes a response for a token/name and takes
/// it down again.
pub trait Responder {
    /// Publishes the response for one challenge.
    fn present(&mut self, domain: &str, token: &str, key_authorization: &str) -> Result<()>;
    /// Removes it (errors are logged by the caller, never fatal).
    fn cleanup(&mut self, domain: &str, token: &str, key_authorization: &str) -> Result<()>;
}

/// The responders for a preference list of challenge types, each started on
/// first use, so a listener binds its port only if an identifier needs it.
pub struct Responders<'a> {
    settings: &'a Settings,
    prefs: Vec<ChallengeKind>,
    started: Vec<(ChallengeKind, Box<dyn Responder>)>,
    device: Option<DeviceAttestation>,
}

impl<'a> Responders<'a> {
    /// The preference list of `settings`, checked for missing settings
    /// (dns-01 without `--dns-hook`) before any order is placed, and the
    /// device attestation key when `--attest-key`/`--attest-cert` are set.
    pub fn new(settings: &'a Settings) -> Result<Responders<'a>> {
        let prefs = settings.challenges();
        if prefs.contains(&ChallengeKind::Dns01) && settings.dns_hook.is_none() {
            return Err(AgentError::Config("dns-01 needs --dns-hook".into()));
        }
        let device = match (&settings.attest_key, &settings.attest_cert) {
            (Some(k), Some(c)) => Some(DeviceAttestation::load(
                k,
                c,
                settings.permanent_id.as_deref(),
            )?),
            (None, None) if settings.permanent_id.is_some() => {
                return Err(AgentError::Config(
                    "--permanent-id needs --attest-key and --attest-cert".into(),
                ))
            }
            (None, None) => None,
            _ => {
                return Err(AgentError::Config(
                    "--attest-key and --attest-cert go together".into(),
                ))
            }
        };
        Ok(Responders {
            settings,
            prefs,
            started: Vec::new(),
            device,
        })
    }

    /// The device attestation, when configured: the order then also names the
    /// device's `permanent-identifier` and answers its device-attest-01.
    pub fn device(&self) -> Option<&DeviceAttestation> {
        self.device.as_ref()
    }

    /// The challenge types in order of preference.
    pub fn preferences(&self) -> &[ChallengeKind] {
        &self.prefs
    }

    /// The responder for `kind`, started now if it is not running yet.
    pub fn get(&mut self, kind: ChallengeKind) -> Result<&mut dyn Responder> {
        let i = match self.started.iter().position(|(k, _)| *k == kind) {
            Some(i) => i,
            None => {
                let s = self.settings;
                let r: Box<dyn Responder> = match kind {
                    ChallengeKind::Http01 => match &s.webroot {
                        Some(dir) => Box::new(Webroot(dir.clone())),
                        None => Box::new(Http01Server::start(s.http_port.unwrap_or(80))?),
                    },
                    ChallengeKind::TlsAlpn01 => {
                        Box::new(TlsAlpnServer::start(s.tls_port.unwrap_or(443))?)
                    }
                    ChallengeKind::None => {
                        return Err(AgentError::Challenge(
                            "--challenge none answers no challenge".into(),
                        ))
                    }
                    ChallengeKind::Dns01 => Box::new(DnsHook {
                        cmd: s
                            .dns_hook
                            .clone()
                            .ok_or_else(|| AgentError::Config("dns-01 needs --dns-hook".into()))?,
                        timeout: s.hook_timeout(),
                    }),
                };
                self.started.push((kind, r));
                self.started.len() - 1
            }
        };
        Ok(self.started[i].1.as_mut())
    }
}
