//! `fleetca perspective`: runs a remote network perspective for Multi-Perspective Issuance
//! Corroboration (CA/B Forum BR §3.2.2.9); see `crate::va::mpic::server` and
//! docs/perspectives.md.

use super::{parse_net, parse_socket};
use crate::va::mpic::{server, Rir};
use crate::va::{Va, VaConfig};
use anyhow::Context;
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `fleetca perspective` options.
#[derive(Debug, Args, Clone)]
pub struct PerspectiveArgs {
    /// HTTPS (mutual TLS) listen address.
    #[arg(long, env = "FLEETCA_PERSPECTIVE_LISTEN", value_parser = parse_socket)]
    pub listen: SocketAddr,
    /// The Regional Internet Registry service region this perspective and its DNS resolver are
    /// in: AFRINIC, APNIC, ARIN, LACNIC or RIPE.
    #[arg(long, env = "FLEETCA_PERSPECTIVE_REGION")]
    pub region: Rir,
    /// Server certificate chain (PEM); its names must match the URL the CA nodes use.
    #[arg(long, env = "FLEETCA_PERSPECTIVE_TLS_CERT")]
    pub tls_cert: PathBuf,
    /// Key (PEM, mode 0600) for --tls-cert.
    #[arg(long, env = "FLEETCA_PERSPECTIVE_TLS_KEY")]
    pub tls_key: PathBuf,
    /// CA certificate(s) (PEM) the CA nodes' client certificates must chain to; nothing else
    /// completes a TLS handshake.
    #[arg(long, env = "FLEETCA_PERSPECTIVE_CLIENT_CA")]
    pub client_ca: PathBuf,
    /// DNS server for lookups (default: the system resolver). BR 3.2.2.9: it must be in the same
    /// RIR region as the perspective.
    #[arg(long, env = "FLEETCA_DNS_RESOLVER", value_parser = parse_socket)]
    pub dns_resolver: Option<SocketAddr>,
    /// Port the http-01 validator connects to (default 80). Tests and labs only.
    #[arg(long, env = "FLEETCA_HTTP01_PORT", default_value_t = 80)]
    pub http01_port: u16,
    /// Port the tls-alpn-01 validator connects to (default 443). Tests and labs only.
    #[arg(long, env = "FLEETCA_TLSALPN01_PORT", default_value_t = 443)]
    pub tlsalpn01_port: u16,
    /// Let validations contact this normally refused range (as `serve --va-allow-address`).
    #[arg(long = "va-allow-address", env = "FLEETCA_VA_ALLOW_ADDRESSES", value_delimiter = ',', value_parser = parse_net)]
    pub va_allow_addresses: Vec<ipnet::IpNet>,
    /// Never let validations contact this range (wins over --va-allow-address).
    #[arg(long = "va-deny-address", env = "FLEETCA_VA_DENY_ADDRESSES", value_delimiter = ',', value_parser = parse_net)]
    pub va_deny_addresses: Vec<ipnet::IpNet>,
    /// Listener timeouts and connection caps (as for `serve`).
    #[command(flatten)]
    pub listeners: super::listen::ListenerArgs,
}

/// Runs the perspective until SIGINT/SIGTERM.
pub(crate) fn run(args: &PerspectiveArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(perspective(args))
}

async fn perspective(args: &PerspectiveArgs) -> anyhow::Result<()> {
    check_key_mode(&args.tls_key)?;
    let tls = server::tls_config(&args.tls_cert, &args.tls_key, &args.client_ca)?;
    // No perspectives of its own: a perspective decides alone.
    let va = Va::new(VaConfig {
        dns_resolver: args.dns_resolver,
        http01_port: args.http01_port,
        tlsalpn01_port: args.tlsalpn01_port,
        timeout: Duration::from_secs(10),
        max_http_redirects: 10,
        addresses: crate::va::AddressPolicy::new(
            args.va_allow_addresses.clone(),
            args.va_deny_addresses.clone(),
        ),
    })?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding --listen {}", args.listen))?;
    let bound = listener.local_addr()?;
    let (public, _admin, trigger) = args.listeners.serving(0, &[]);
    let task = public.spawn(
        "perspective",
        listener,
        server::router(va, args.region),
        Some(tls),
    );
    tracing::info!(region = %args.region, listen = %bound, "perspective ready");
    println!("Perspective ({}) on https://{bound}", args.region);
    super::serve::shutdown_signal().await;
    tracing::info!("shutting down");
    trigger.shutdown();
    let _ = task.await;
    Ok(())
}

/// A private key readable by group or others is refused: it is the perspective's identity.
pub(crate) fn check_key_mode(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{} is readable by others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
    Ok(())
}
