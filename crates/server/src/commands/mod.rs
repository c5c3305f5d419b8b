//! Command-line interface. The command and flag names are a contract with operators' scripts.

mod account;
mod admin;
mod backup;
mod ca;
mod ca_key;
mod cert;
mod coverage;
mod doctor;
mod domain;
mod eab;
mod fleet;
mod housekeeping;
mod init;
mod listen;
mod load;
mod migrate;
mod perspective;
mod reload;
mod renew;
mod rollover;
mod root;
mod seed;
mod select;
mod serve;
mod subca;
mod tenant;
mod token;

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

pub use account::AccountCommand;
pub(crate) use admin::parse_duration;
pub use ca_key::Pkcs11Args;
pub(crate) use cert::parse_reason;
pub use cert::CertCommand;
pub use coverage::{CoverageArgs, CoveragePolicyArgs, CoverageServeArgs};
pub use doctor::{DoctorArgs, Finding, Status};
pub use domain::DomainCommand;
pub use eab::EabCommand;
pub use init::InitArgs;
pub(crate) use reload::Reloader;
pub use root::RootCommand;
pub use select::CertSelection;
pub use serve::ServeArgs;
pub use tenant::TenantCommand;
pub(crate) use tenant::{create as create_tenant, NewTenant};
pub use token::{AdminCommand, TokenCommand};

/// What `fleetca --version` prints after the name: the package version, the git commit and
/// the enabled cargo features (from build.rs), and the storage and key backends every build
/// has.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("FLEETCA_GIT_COMMIT"),
    "\nfeatures: ",
    env!("FLEETCA_FEATURES"),
    "\nbuilt in: sqlite, postgres, pkcs11"
);

/// fleetca: a technically constrained ACME issuing CA for device fleets.
#[derive(Debug, Parser)]
#[command(name = "fleetca", version, long_version = LONG_VERSION, about)]
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
    /// The offline root (`init --root-key-out`): sign the root's CRL with the root key.
    Root {
        /// What to do.
        #[command(subcommand)]
        cmd: RootCommand,
    },
    /// Public-trust issuing CA: make a key and CSR for an outside root, then import its answer.
    Subca {
        /// Step.
        #[command(subcommand)]
        cmd: SubcaCommand,
    },
    /// Load generator: full ACME flows with N concurrent clients; prints rates and latencies.
    Bench(Box<crate::bench::BenchArgs>),
    /// ACME accounts: list, deactivate.
    Account {
        /// What to do.
        #[command(subcommand)]
        cmd: AccountCommand,
    },
    /// Issued certificates: list (search), show, revoke.
    Cert {
        /// What to do.
        #[command(subcommand)]
        cmd: CertCommand,
    },
    /// Issuing CAs (tenants): add, update, disable, enable, list, rollover.
    Tenant {
        /// What to do.
        #[command(subcommand)]
        cmd: TenantCommand,
    },
    /// Copy a single-node CA's SQLite database into an empty PostgreSQL database, verified by
    /// row counts and a digest of every certificate.
    Migrate(migrate::MigrateArgs),
    /// Add synthetic issuance history to the database (benchmarks with 100k or 1M
    /// certificates already stored; never for a production CA).
    BenchSeed(seed::SeedArgs),
    /// Continuous coverage: certificates by state (ok, due, overdue, expiring, silent,
    /// revoked, expired), to find devices about to lose their certificate.
    Coverage(coverage::CoverageArgs),
    /// Move the ACME Renewal Information window (RFC 9773) of selected certificates to now.
    RenewEarly(renew::RenewEarlyArgs),
    /// Delete expired orders, authorizations and challenges (and old certificates, if asked)
    /// once, as `serve` does on a schedule.
    Prune(housekeeping::PruneArgs),
    /// External Account Binding credentials (RFC 8555 §7.3.4): create, list, revoke.
    Eab {
        /// What to do.
        #[command(subcommand)]
        cmd: EabCommand,
    },
    /// Run a remote network perspective (mutual TLS) that corroborates the CA's validations
    /// and CAA checks from its own network (CA/B Forum BR 3.2.2.9; docs/perspectives.md).
    Perspective(Box<perspective::PerspectiveArgs>),
    /// Back up a data directory (configuration, keys, a consistent copy of the SQLite
    /// database) into one file, while `serve` runs.
    Backup(backup::BackupArgs),
    /// Restore a `fleetca backup` file into a new, empty data directory.
    Restore(backup::RestoreArgs),
    /// Tenant domains (vendor-validated parent domains): add, validate, list, remove.
    Domain {
        /// What to do.
        #[command(subcommand)]
        cmd: DomainCommand,
    },
    /// The admin API: bearer tokens (`fleetca admin token create --scopes read,write`).
    Admin {
        /// What to do.
        #[command(subcommand)]
        cmd: AdminCommand,
    },
    /// Check a deployment (key files, HSM token, public URLs, clock, database schema, disk,
    /// listeners) and print what to fix; exits non-zero when something must be fixed.
    Doctor(doctor::DoctorArgs),
    /// Benchmark tooling: a TCP proxy adding a fixed round-trip time (`bench::delay_proxy`).
    #[command(hide = true)]
    DelayProxy(crate::bench::delay_proxy::DelayProxyArgs),
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
    /// PIN of the PKCS#11 token holding an issuing CA key (first line of this file).
    #[arg(long, env = "FLEETCA_PKCS11_PIN_FILE")]
    pub pkcs11_pin_file: Option<PathBuf>,
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
        Some(Command::Root { cmd }) => root::run(&cmd),
        Some(Command::Eab { cmd }) => eab::run(&cmd),
        Some(Command::Domain { cmd }) => domain::run(&cmd),
        Some(Command::Admin { cmd }) => token::run(&cmd),
        Some(Command::Perspective(a)) => perspective::run(&a),
        Some(Command::Backup(a)) => backup::backup(&a),
        Some(Command::Restore(a)) => backup::restore(&a),
        Some(Command::RenewEarly(a)) => renew::run(&a),
        Some(Command::Coverage(a)) => coverage::run(&a),
        Some(Command::Migrate(a)) => migrate::run(&a),
        Some(Command::BenchSeed(a)) => seed::run(&a),
        Some(Command::Prune(a)) => housekeeping::run_prune(&a),
        Some(Command::Tenant { cmd }) => tenant::run(&cmd),
        Some(Command::Account { cmd }) => account::run(&cmd),
        Some(Command::Cert { cmd }) => cert::run(&cmd),
        Some(Command::Doctor(a)) => doctor::run(&a),
        Some(Command::DelayProxy(a)) => crate::bench::delay_proxy::run(&a),
        Some(Command::Bench(a)) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = rt.block_on(crate::bench::run(&a))?;
            print!("{}", report.render());
            if report.ok == 0 {
                anyhow::bail!("no certificate was issued");
            }
            Ok(())
        }
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

/// Parses an IP address or CIDR range (a bare address is a /32 or /128).
pub fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))
}

/// Parses `ADDR:PORT`.
pub fn parse_socket(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|e| format!("{s:?} is not ADDR:PORT: {e}"))
}
