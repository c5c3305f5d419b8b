//! `fleetca serve` options for the listeners' timeouts and connection caps (see
//! `crate::listener`), and the descriptor budget they are sized against.

use crate::listener::{self, limits::ConnectionLimits, nofile, Serving, ShutdownTrigger};
use clap::Args;
use std::time::Duration;

/// Connections the admin listener may hold, from its own budget: a flood on the public
/// listeners must not lock the operator out of `/metrics` and the admin API.
pub(crate) const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Listener timeouts and caps; each is also an environment variable.
#[derive(Debug, Args, Clone)]
pub struct ListenerArgs {
    /// Seconds a client has to send a complete HTTP/1 request head (request line and headers)
    /// and, on any connection, to begin its first request; also how long an HTTP/1 keep-alive
    /// connection may wait for its next request.
    #[arg(long, env = "FLEETCA_HEADER_READ_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout: u64,
    /// Seconds a TLS handshake (ACME, admin with --admin-tls) may take.
    #[arg(long, env = "FLEETCA_TLS_HANDSHAKE_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub tls_handshake_timeout: u64,
    /// Seconds a connection may stay open with no request in progress (HTTP/2 connections;
    /// HTTP/1 ones are closed by --header-read-timeout first when it is shorter).
    #[arg(long, env = "FLEETCA_IDLE_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,
    /// Seconds a request body has to arrive completely; a client that stops sending gets 408
    /// and the connection is closed.
    #[arg(long, env = "FLEETCA_BODY_READ_TIMEOUT", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_read_timeout: u64,
    /// Most connections open at once on the ACME and plain-HTTP listeners together; more are
    /// closed as they are accepted. Default: what the descriptor limit (RLIMIT_NOFILE, raised
    /// to its hard limit at start) leaves after the database, logs and validations, at most
    /// 10000. 0 = no cap.
    #[arg(long, env = "FLEETCA_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most connections open at once from one client address (an IPv6 /64 counts as one), on
    /// each of the public and admin budgets. The address is the TCP peer; --trusted-proxy
    /// balancers are exempt, behind others set it at least to the balancer's connection count.
    /// 0 = no cap.
    #[arg(long, env = "FLEETCA_MAX_CONNECTIONS_PER_IP", default_value_t = 128)]
    pub max_connections_per_ip: usize,
    /// On SIGTERM: seconds requests in progress, validations and finalizations may take to
    /// finish before the server exits (what is left is handed back to other nodes).
    #[arg(long, env = "FLEETCA_DRAIN_TIMEOUT", default_value_t = 30)]
    pub drain_timeout: u64,
    /// Bind the listeners with SO_REUSEPORT, so that a new `fleetca serve` binds the same
    /// addresses before the old one stops (zero-downtime restart without socket activation).
    /// Every process sharing a port must set it; run them as the same user.
    #[arg(long, env = "FLEETCA_REUSE_PORT")]
    pub reuse_port: bool,
}

impl ListenerArgs {
    /// Raises RLIMIT_NOFILE, settles the caps and logs them: the listeners' shared settings
    /// (for ACME and plain HTTP), the admin listener's, and the shutdown trigger of both.
    /// `trusted_proxies` (`--trusted-proxy`) are exempt from the per-IP cap.
    pub(crate) fn serving(
        &self,
        max_validations: usize,
        trusted_proxies: &[ipnet::IpNet],
    ) -> (Serving, Serving, ShutdownTrigger) {
        let nofile = nofile::raise();
        let fitting = nofile::default_cap(nofile, max_validations, ADMIN_MAX_CONNECTIONS);
        let total = self.max_connections.unwrap_or(fitting);
        if total == 0 || total > fitting {
            tracing::warn!(
                max_connections = total,
                nofile = ?nofile,
                "--max-connections is beyond what the descriptor limit leaves ({fitting}); a flood can exhaust descriptors"
            );
        }
        let timeouts = listener::Timeouts {
            header_read: Duration::from_secs(self.header_read_timeout),
            tls_handshake: Duration::from_secs(self.tls_handshake_timeout),
            idle: Duration::from_secs(self.idle_timeout),
            body_read: Duration::from_secs(self.body_read_timeout),
            drain: Duration::from_secs(self.drain_timeout),
        };
        tracing::info!(
            nofile = ?nofile,
            max_connections = total,
            max_connections_per_ip = self.max_connections_per_ip,
            admin_max_connections = ADMIN_MAX_CONNECTIONS,
            header_read_timeout_s = self.header_read_timeout,
            tls_handshake_timeout_s = self.tls_handshake_timeout,
            idle_timeout_s = self.idle_timeout,
            body_read_timeout_s = self.body_read_timeout,
            "listener limits"
        );
        let (public, trigger) = Serving::new(
            timeouts,
            ConnectionLimits::new(total, self.max_connections_per_ip, trusted_proxies.to_vec()),
        );
        let admin = public.with_limits(ConnectionLimits::new(
            ADMIN_MAX_CONNECTIONS,
            self.max_connections_per_ip,
            Vec::new(),
        ));
        (public, admin, trigger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        l: ListenerArgs,
    }

    #[test]
    fn defaults_and_zero_timeouts_refused() {
        let c = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(c.l.header_read_timeout, 10);
        assert_eq!(c.l.max_connections, None);
        assert_eq!(c.l.max_connections_per_ip, 128);
        assert!(Cli::try_parse_from(["x", "--header-read-timeout", "0"]).is_err());
        let c = Cli::try_parse_from(["x", "--max-connections", "250"]).unwrap();
        assert_eq!(c.l.max_connections, Some(250));
    }
}
