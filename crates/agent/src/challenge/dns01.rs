//! dns-01 (RFC 8555 §8.4) through a hook: `CMD add|del <name> <txt-value>`,
//! run with `sh -c` so the hook may be a command line.

use std::time::Duration;

use super::Responder;
use crate::error::{AgentError, Result};

/// The configured hook command and its deadline (`--hook-timeout`).
pub struct DnsHook {
    /// The command line, run with `sh -c`.
    pub cmd: String,
    /// How long one call may run before it is killed and counts as failed.
    pub timeout: Duration,
}

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
        let script = format!("{} \"$@\"", self.cmd);
        let args = ["dns-hook", op, &name, &value];
        let r = crate::hooks::run(&script, &args, self.timeout, crate::hooks::Output::Capture)
            .map_err(|e| AgentError::Challenge(format!("dns hook: {e}")))?;
        if r.success() {
            Ok(())
        } else {
            Err(AgentError::Challenge(format!(
                "dns hook `{op} {name}` {}: {}",
                r.describe(),
                r.stderr
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
