//! Command-line interface. The command and flag names are a contract with operators' scripts.

mod ca;
mod init;
mod load;
mod serve;
mod subca;

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

pub use init::InitArgs;
pub use serve::ServeArgs;

/// fleetca: a technically constrained ACME issuing CA for device fleets.
#[derive(Debug, Parser)]
#[command(name = "fleetca", version, about)]
pub struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "FLEETCA_LOG_JSON")]
    pub log_json: bool,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a private root and a name-constrained issuing CA in a data directory.
    Init(InitArgs),
    /// Run the ACME server (initialising ./fleetca-data with defaults on first run).
    Serve(Box<ServeArgs>),
    /// Inspect the CA.
    Ca {
        /// What to show.
        #[command(subcommand)]
        cmd: CaCommand,
    },
    /// Public-trust issuing CA: make a key and CSR for an outside root, then import its answer.
    Subca {
        /// Step.
        #[command(subcommand)]
        cmd: SubcaCommand,
    },
}

/// `fleetca ca ...`
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print the root certificate (PEM) that anchors issued certificates and, by default, the
    /// server's HTTPS certificate.
    Root {
        /// Data directory.
        #[arg(long, env = "FLEETCA_DATA_DIR", default_value = "./fleetca-data")]
        data_dir: PathBuf,
    },
}

/// `fleetca subca ...`
#[derive(Debug, Subcommand)]
pub enum SubcaCommand {
    /// Create the issuing CA key and a CSR carrying the intended constraints.
    Csr(subca::CsrArgs),
    /// Install the certificate the outside root returned, after checking it.
    Import(subca::ImportArgs),
}

/// Options shared by commands that create CA keys.
#[derive(Debug, Args, Clone, Default)]
pub struct KeyProtection {
    /// Encrypt CA keys with the passphrase in this environment variable.
    #[arg(long)]
    pub key_passphrase_env: Option<String>,
    /// Encrypt CA keys with the passphrase in this file (first line).
    #[arg(long)]
    pub key_passphrase_file: Option<PathBuf>,
}

impl KeyProtection {
    /// The passphrase, if one was configured (also from `FLEETCA_KEY_PASSPHRASE`).
    pub fn passphrase(&self) -> anyhow::Result<Option<Vec<u8>>> {
        if let Some(var) = &self.key_passphrase_env {
            let v = std::env::var(var).map_err(|_| {
                anyhow::anyhow!("environment variable {var} (key passphrase) is not set")
            })?;
            return Ok(Some(v.into_bytes()));
        }
        if let Some(file) = &self.key_passphrase_file {
            let text = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("reading passphrase file {}: {e}", file.display()))?;
            return Ok(Some(text.lines().next().unwrap_or("").as_bytes().to_vec()));
        }
        Ok(std::env::var("FLEETCA_KEY_PASSPHRASE")
            .ok()
            .map(String::into_bytes))
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging(cli.log_json);
    match cli.command {
        Some(Command::Init(a)) => init::run(&a),
        Some(Command::Serve(a)) => serve::run(*a),
        None => serve::run(ServeArgs::parse_from(["fleetca-serve"])),
        Some(Command::Ca {
            cmd: CaCommand::Root { data_dir },
        }) => ca::print_root(&data_dir),
        Some(Command::Subca {
            cmd: SubcaCommand::Csr(a),
        }) => subca::csr(&a),
        Some(Command::Subca {
            cmd: SubcaCommand::Import(a),
        }) => subca::import(&a),
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLEETCA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Parses `ADDR:PORT`.
pub fn parse_socket(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|e| format!("{s:?} is not ADDR:PORT: {e}"))
}
