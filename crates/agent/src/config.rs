//! Command line and configuration file. Every key of the TOML file is also a
//! flag with the same name (`out-dir` = `--out-dir`); a flag wins over the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::error::{AgentError, Result};

/// What `fleetca-agent --version` prints after the name: the package version,
/// the git commit and the enabled cargo features (the crypto provider), from
/// build.rs.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("FLEETCA_AGENT_GIT_COMMIT"),
    "\nfeatures: ",
    env!("FLEETCA_AGENT_FEATURES")
);

/// fleetca-agent: obtains, installs and renews this device's certificate over ACME.
///
/// Exit codes: 0 nothing to do, 10 issued/renewed, 2 usage, 20 network,
/// 21 server error (also a refusal with Retry-After), 22 challenge failed, 23 local I/O, 24 reload failed,
/// 25 key/state unusable, 26 timeout, 27 health check failed (rolled back).
#[derive(Debug, Parser)]
#[command(name = "fleetca-agent", version, long_version = LONG_VERSION)]
pub struct Cli {
    /// Settings shared by all commands.
    #[command(flatten)]
    pub settings: Settings,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Daemon: obtain, install and renew forever.
    Run,
    /// Obtain a certificate now (even if one is installed).
    Issue,
    /// Renew if the renewal window is open (or always with --force).
    Renew {
        /// Renew even if not due.
        #[arg(long)]
        force: bool,
    },
    /// Revoke the installed certificate.
    Revoke {
        /// RFC 5280 reason.
        #[arg(long, value_enum)]
        reason: Option<RevokeReason>,
    },
    /// Make a new certificate key and get a certificate for it.
    RotateKey,
    /// Show names, expiry, renewal window and next attempt.
    Status,
}

/// RFC 5280 §5.3.1 revocation reasons a device may state.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
#[value(rename_all = "verbatim")]
pub enum RevokeReason {
    /// 0
    #[value(name = "unspecified")]
    Unspecified,
    /// 1
    #[value(name = "keyCompromise")]
    KeyCompromise,
    /// 3
    #[value(name = "affiliationChanged")]
    AffiliationChanged,
    /// 4
    #[value(name = "superseded")]
    Superseded,
    /// 5
    #[value(name = "cessationOfOperation")]
    CessationOfOperation,
}

impl RevokeReason {
    /// The CRLReason code.
    pub fn code(self) -> i64 {
        match self {
            RevokeReason::Unspecified => 0,
            RevokeReason::KeyCompromise => 1,
            RevokeReason::AffiliationChanged => 3,
            RevokeReason::Superseded => 4,
            RevokeReason::CessationOfOperation => 5,
        }
    }
}

/// How identifiers are proven.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Deserialize)]
pub enum ChallengeKind {
    /// RFC 8555 §8.3.
    #[value(name = "http-01")]
    #[serde(rename = "http-01")]
    Http01,
    /// RFC 8737.
    #[value(name = "tls-alpn-01")]
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// RFC 8555 §8.4.
    #[value(name = "dns-01")]
    #[serde(rename = "dns-01")]
    Dns01,
    /// Answer no challenge: every authorization must already be valid (names the server
    /// grants from the vendor's validated domain, docs/devices-behind-nat.md). Nothing
    /// listens and no hook runs; an authorization that needs a challenge fails the order.
    #[value(name = "none")]
    #[serde(rename = "none")]
    None,
}

impl ChallengeKind {
    /// The ACME challenge type string.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
            ChallengeKind::Dns01 => "dns-01",
            ChallengeKind::None => "none",
        }
    }
}

/// Certificate (and account) key types.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// ECDSA P-256 (default).
    #[default]
    P256,
    /// ECDSA P-384.
    P384,
    /// RSA 2048.
    Rsa2048,
    /// RSA 3072.
    Rsa3072,
}

/// Account key types (RFC 7518 §3.3-§3.4, RFC 8037).
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountKeyType {
    /// ECDSA P-256, ES256.
    P256,
    /// ECDSA P-384, ES384.
    P384,
    /// Ed25519, EdDSA.
    Ed25519,
    /// RSA 2048, RS256 (needs the `aws-lc-rs` build).
    Rsa2048,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<ChallengeKind>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(ChallengeKind),
        Many(Vec<ChallengeKind>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(c) => vec![c],
        OneOrMany::Many(v) => v,
    })
}

/// All settings; each is a flag and a TOML key.
#[derive(Debug, Default, Clone, Args, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    /// TOML configuration file.
    #[arg(long, global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// ACME directory URL.
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// Extra trust anchor (PEM) for the server's HTTPS certificate.
    #[arg(long, global = true)]
    pub server_root: Option<PathBuf>,
    /// DNS name to certify (repeatable).
    #[arg(long = "domain", global = true)]
    #[serde(default)]
    pub domain: Vec<String>,
    /// Challenge type; repeat for a preference order (per identifier the
    /// first one the server offers is used). Default http-01.
    #[arg(long = "challenge", value_enum, global = true)]
    #[serde(default, deserialize_with = "one_or_many")]
    pub challenge: Vec<ChallengeKind>,
    /// Port of the built-in http-01 listener (default 80).
    #[arg(long, global = true)]
    pub http_port: Option<u16>,
    /// Port of the built-in tls-alpn-01 listener (default 443).
    #[arg(long, global = true)]
    pub tls_port: Option<u16>,
    /// Serve http-01 by writing files under DIR/.well-known/acme-challenge/.
    #[arg(long, global = true)]
    pub webroot: Option<PathBuf>,
    /// dns-01 hook: run as `CMD add|del <name> <txt-value>`.
    #[arg(long, global = true)]
    pub dns_hook: Option<String>,
    /// Where key.pem, cert.pem, chain.pem and fullchain.pem go.
    #[arg(long, global = true)]
    pub out_dir: Option<PathBuf>,
    /// Where the account key and the state file live.
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    /// External account binding key id.
    #[arg(long, global = true)]
    pub eab_kid: Option<String>,
    /// File holding the EAB HMAC key (base64url).
    #[arg(long, global = true)]
    pub eab_hmac_key_file: Option<PathBuf>,
    /// Command run (via sh -c) after a new certificate is installed.
    #[arg(long, global = true)]
    pub reload_cmd: Option<String>,
    /// Health check run (via sh -c) after the reload; exit 0 = healthy,
    /// else the previous certificate is put back.
    #[arg(long, global = true)]
    pub check_cmd: Option<String>,
    /// Health check: HOST:PORT must serve the new certificate over TLS after
    /// the reload, else the previous certificate is put back.
    #[arg(long, global = true)]
    pub check_tls: Option<String>,
    /// Certificate key type.
    #[arg(long, value_enum, global = true)]
    pub key_type: Option<KeyType>,
    /// Account key type, used when the account key is first made (default:
    /// p384 with --key-type p384, else p256).
    #[arg(long, value_enum, global = true)]
    pub account_key_type: Option<AccountKeyType>,
    /// Contact URL for the account (e.g. mailto:ops@example.com).
    #[arg(long, global = true)]
    pub contact: Option<String>,
    /// Reuse the certificate key on renewal instead of making a fresh one.
    #[arg(long, global = true)]
    #[serde(default)]
    pub reuse_key: bool,
    /// Logs and `status` output as JSON.
    #[arg(long, global = true)]
    #[serde(default)]
    pub json: bool,
    /// Seconds to wait for an order to complete (default 300).
    #[arg(long, global = true)]
    pub order_timeout: Option<u64>,
    /// Device attestation key (PKCS#8 PEM), the key the birth certificate
    /// certifies: the order also names the device's permanent-identifier and
    /// proves it with device-attest-01 (draft-ietf-acme-device-attest).
    #[arg(long, global = true)]
    pub attest_key: Option<PathBuf>,
    /// The device's birth certificate chain (PEM, leaf first) for --attest-key.
    #[arg(long, global = true)]
    pub attest_cert: Option<PathBuf>,
    /// The permanent-identifier to order (default: read from the birth
    /// certificate: its PermanentIdentifier otherName, else subject serialNumber).
    #[arg(long, global = true)]
    pub permanent_id: Option<String>,
    /// Seconds `--reload-cmd`, `--check-cmd` and `--dns-hook` may run before
    /// their process group is killed and the hook counts as failed (default 60).
    #[arg(long, global = true)]
    pub hook_timeout: Option<u64>,
    /// Certificate profile to ask for in newOrder (draft-aaron-acme-profiles),
    /// one the directory lists in `meta.profiles`, e.g. `shortlived`.
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// `run`: the first attempt after start-up is delayed by a per-device
    /// share of this many seconds (default 300; 0 disables).
    #[arg(long, global = true)]
    pub splay: Option<u64>,
    /// `run`: before the first attempt, wait until HOST:PORT accepts a TCP
    /// connection (at most --wait-timeout).
    #[arg(long, global = true)]
    pub wait_for_network: Option<String>,
    /// `run`: before the first attempt, wait until the clock is plausible
    /// (not before the trusted time floor; at most --wait-timeout).
    #[arg(long, global = true)]
    #[serde(default)]
    pub wait_for_time: bool,
    /// Bound in seconds for --wait-for-network and --wait-for-time (default 300).
    #[arg(long, global = true)]
    pub wait_timeout: Option<u64>,
}

impl Settings {
    /// Reads `--config` (if given) and lays the flags over it.
    pub fn load_merged(self) -> Result<Settings> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path).map_err(|e| AgentError::io(&path, e))?;
        let file: Settings = toml::from_str(&text)
            .map_err(|e| AgentError::Config(format!("{}: {e}", path.display())))?;
        Ok(self.over(file))
    }

    fn over(self, file: Settings) -> Settings {
        Settings {
            config: self.config,
            server: self.server.or(file.server),
            server_root: self.server_root.or(file.server_root),
            domain: if self.domain.is_empty() {
                file.domain
            } else {
                self.domain
            },
            challenge: if self.challenge.is_empty() {
                file.challenge
            } else {
                self.challenge
            },
            http_port: self.http_port.or(file.http_port),
            tls_port: self.tls_port.or(file.tls_port),
            webroot: self.webroot.or(file.webroot),
            dns_hook: self.dns_hook.or(file.dns_hook),
            out_dir: self.out_dir.or(file.out_dir),
            state_dir: self.state_dir.or(file.state_dir),
            eab_kid: self.eab_kid.or(file.eab_kid),
            eab_hmac_key_file: self.eab_hmac_key_file.or(file.eab_hmac_key_file),
            reload_cmd: self.reload_cmd.or(file.reload_cmd),
            check_cmd: self.check_cmd.or(file.check_cmd),
            check_tls: self.check_tls.or(file.check_tls),
            key_type: self.key_type.or(file.key_type),
            account_key_type: self.account_key_type.or(file.account_key_type),
            contact: self.contact.or(file.contact),
            reuse_key: self.reuse_key || file.reuse_key,
            json: self.json || file.json,
            order_timeout: self.order_timeout.or(file.order_timeout),
            attest_key: self.attest_key.or(file.attest_key),
            attest_cert: self.attest_cert.or(file.attest_cert),
            permanent_id: self.permanent_id.or(file.permanent_id),
            hook_timeout: self.hook_timeout.or(file.hook_timeout),
            profile: self.profile.or(file.profile),
            splay: self.splay.or(file.splay),
            wait_for_network: self.wait_for_network.or(file.wait_for_network),
            wait_for_time: self.wait_for_time || file.wait_for_time,
            wait_timeout: self.wait_timeout.or(file.wait_timeout),
        }
    }

    /// The directory URL or a usage error.
    pub fn server_url(&self) -> Result<&str> {
        self.server
            .as_deref()
            .ok_or_else(|| AgentError::Config("--server is required".into()))
    }

    /// The out-dir or a usage error.
    pub fn out_dir(&self) -> Result<&Path> {
        self.out_dir
            .as_deref()
            .ok_or_else(|| AgentError::Config("--out-dir is required".into()))
    }

    /// The state dir (default: out-dir/.state).
    pub fn state_dir(&self) -> Result<PathBuf> {
        match &self.state_dir {
            Some(d) => Ok(d.clone()),
            None => Ok(self.out_dir()?.join(".state")),
        }
    }

    /// The challenge types in order of preference (default: http-01).
    pub fn challenges(&self) -> Vec<ChallengeKind> {
        let mut out: Vec<ChallengeKind> = Vec::new();
        for c in &self.challenge {
            if !out.contains(c) {
                out.push(*c);
            }
        }
        if out.is_empty() {
            out.push(ChallengeKind::Http01);
        }
        out
    }

    /// The account key type for a new account key.
    pub fn account_key_type(&self) -> AccountKeyType {
        self.account_key_type
            .unwrap_or(match self.key_type.unwrap_or_default() {
                KeyType::P384 => AccountKeyType::P384,
                _ => AccountKeyType::P256,
            })
    }

    /// Order deadline.
    pub fn order_timeout(&self) -> Duration {
        Duration::from_secs(self.order_timeout.unwrap_or(300))
    }

    /// Deadline of one hook run.
    pub fn hook_timeout(&self) -> Duration {
        Duration::from_secs(self.hook_timeout.unwrap_or(60))
    }

    /// Start-up splay window of `run`, seconds.
    pub fn splay(&self) -> u64 {
        self.splay.unwrap_or(300)
    }

    /// Bound of the boot-time waits.
    pub fn wait_timeout(&self) -> Duration {
        Duration::from_secs(self.wait_timeout.unwrap_or(300))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file() {
        let file: Settings = toml::from_str(
            "server = \"https://a/dir\"\ndomain = [\"x.example\"]\nhttp-port = 81\nkey-type = \"p384\"\nchallenge = \"dns-01\"\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "fleetca-agent",
            "--server",
            "https://b/dir",
            "status",
            "--http-port",
            "82",
        ])
        .unwrap();
        let s = cli.settings.over(file);
        assert_eq!(s.server.as_deref(), Some("https://b/dir"));
        assert_eq!(s.domain, vec!["x.example"]);
        assert_eq!(s.http_port, Some(82));
        assert_eq!(s.key_type, Some(KeyType::P384));
        assert_eq!(s.challenges(), vec![ChallengeKind::Dns01]);
    }

    #[test]
    fn challenge_none_parses() {
        let cli = Cli::try_parse_from(["a", "issue", "--challenge", "none"]).unwrap();
        assert_eq!(cli.settings.challenges(), vec![ChallengeKind::None]);
        assert_eq!(ChallengeKind::None.as_str(), "none");
    }

    #[test]
    fn challenge_preference_list() {
        let file: Settings = toml::from_str("challenge = [\"tls-alpn-01\", \"dns-01\"]\n").unwrap();
        assert_eq!(
            file.challenges(),
            vec![ChallengeKind::TlsAlpn01, ChallengeKind::Dns01]
        );
        let cli = Cli::try_parse_from([
            "a",
            "--challenge",
            "dns-01",
            "--challenge",
            "http-01",
            "--account-key-type",
            "ed25519",
            "issue",
        ])
        .unwrap();
        let s = cli.settings.over(file);
        assert_eq!(
            s.challenges(),
            vec![ChallengeKind::Dns01, ChallengeKind::Http01]
        );
        assert_eq!(s.account_key_type(), AccountKeyType::Ed25519);
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        assert!(toml::from_str::<Settings>("srever = \"x\"").is_err());
    }

    #[test]
    fn revoke_reason_names() {
        let cli = Cli::try_parse_from(["a", "revoke", "--reason", "keyCompromise"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Revoke {
                reason: Some(RevokeReason::KeyCompromise)
            }
        ));
    }
}
