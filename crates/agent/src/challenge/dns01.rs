//! dns-01 (RFC 8555 §8.4) through a hook: `CMD add|del <name> <txt-value>`,
//! run with `sh -c` so the hook may be a command line.

use std::process::Command;

use super::Responder;
use crate::error::{AgentError, Result};

/// The configured hook command.
pub struct DnsHook(pub String);

/// `_acme-challenge.<domain>` (a wildcard's `*.` is dropped, §8.4).
pub(super) fn record_name(domain: &str) -> String {
    format!(
        "_acme-challenge.{}",
        domain.strip_prefix("*.").unwrap_or(domain)
    )
}

impl DnsHook {
    fn call(&self, op: &str, domain: &str, ka: &str) -> Result<()> {
        let name = record_name(domain);
        let value = acme_types::keyauth::dns01_txt_value(ka);
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{} \"$@\"", self.0))
            .args(["dns-hook", op, &name, &value])
            .output()
            .map_err(|e| AgentError::Challenge(format!("dns hook: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(AgentError::Challenge(format!(
                "dns hook `{op} {name}` failed ({}): {}",
                out.status,
                err.trim()
            )))
        }
    }
}

impl Responder for DnsHook {
    fn present(&mut self, domain: &str, _token: &str, ka: &str) -> Result<()> {
        self.call("add", domain, ka)
    }

    fn cleanup(&mut self, domain: &str, _token: &str, ka: &str) -> Result<()> {
        self.call("del", domain, ka)
    }
}
