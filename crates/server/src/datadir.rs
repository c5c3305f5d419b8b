//! The data directory: where `init` puts keys, certificates, the configuration and the
//! database, and where `serve` finds them.
//!
//! ```text
//! DIR/fleetca.toml            CA configuration written by init (editable)
//! DIR/fleetca.db              SQLite database (WAL)
//! DIR/root/{key,cert}.pem     private-trust root (absent in public-trust mode; key.pem is
//!                             absent too after `init --root-key-out FILE`: offline root)
//! DIR/root/crl.der            the root's CRL
//! DIR/ca/default/key.pem      issuing CA key (0600); absent when the key is in a PKCS#11
//!                             token (`[ca.pkcs11]` in the tenant's configuration)
//! DIR/ca/default/cert.pem     issuing CA certificate
//! DIR/ca/default/chain.pem    certificates above it up to the root (public trust)
//! DIR/ca/default/request.csr  the CSR sent to the outside root (public trust)
//! DIR/ca/NAME/tenant.toml     another tenant's configuration (`fleetca tenant add`), same
//!                             `[ca]` schema as fleetca.toml; its key and cert beside it
//! DIR/tls/{key,cert}.pem      the server's own HTTPS certificate (chain: leaf, server TLS CA)
//! DIR/tls/ca-{key,cert}.pem   server TLS CA: under the root, constrained to the server's names
//! DIR/tls/root.pem            anchor of that certificate in public-trust mode
//! DIR/eab.key                 secret sealing the stored EAB HMAC keys (0600, made on first use)
//! ```

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The name of the tenant `init` creates.
pub const DEFAULT_TENANT: &str = "default";

/// Whether fleetca made the root (private) or an outside root signed the issuing CA (public).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    /// fleetca created the root and the issuing CA.
    Private,
    /// An outside root signs the issuing CA (`subca csr` / `subca import`).
    Public,
}

/// `fleetca.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaConfig {
    /// The issuing CA.
    pub ca: CaSection,
}

/// The `[ca]` section.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSection {
    /// Tenant name (directory at `/acme/<name>/directory`).
    pub name: String,
    /// Trust mode.
    pub trust: Trust,
    /// Permitted DNS subtrees and IP ranges (the `--permit` values).
    pub permit: Vec<String>,
    /// Whether issued certificates (and the CA's EKU) also carry clientAuth.
    #[serde(default)]
    pub client_auth: bool,
    /// Plain-HTTP base URL baked into certificates for the CRL and caIssuers (RFC 5280
    /// §4.2.1.13: relying parties fetch them without TLS).
    pub public_base_url: String,
    /// CAA issuer domain names that authorize this CA (RFC 8659 §4.2).
    pub caa_identities: Vec<String>,
    /// End-entity certificate lifetime in days.
    pub lifetime_days: u32,
    /// Organization name in the CA certificates' subjects.
    #[serde(default)]
    pub organization: Option<String>,
    /// Terms of service URL for the directory's `meta`.
    #[serde(default)]
    pub terms_of_service: Option<String>,
    /// Website URL for the directory's `meta`.
    #[serde(default)]
    pub website: Option<String>,
    /// Challenge types offered.
    #[serde(default = "default_challenges")]
    pub challenge_types: Vec<String>,
    /// `meta.externalAccountRequired` (RFC 8555 §7.3.4): newAccount needs a binding made
    /// with `fleetca eab create`.
    #[serde(default)]
    pub eab_required: bool,
    /// `[ca.rate_limits]`: this tenant's token-bucket limits (RFC 8555 §6.6); absent keys
    /// keep their defaults (docs/operations.md).
    #[serde(
        default,
        skip_serializing_if = "crate::wfe::ratelimit::RateLimitConfig::is_default"
    )]
    pub rate_limits: crate::wfe::ratelimit::RateLimitConfig,
    /// Manufacturing CA roots (PEM files; relative paths are under the data directory) that
    /// `device-attest-01` attestations must chain to. Non-empty enables the
    /// `permanent-identifier` identifier type; requires `trust = "private"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestation_roots: Vec<String>,
    /// DNS name templates (`{serial}.routers.example.com`, `config.routers.example.com`) that
    /// an order's device attestation authorizes without a challenge (docs/onboarding.md).
    /// Requires `trust = "private"` and `attestation_roots`; every expansion must stay inside
    /// `permit`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attested_names: Vec<String>,
    /// Private trust only: how many days a tenant domain validation grants authorizations
    /// (issue 17). Public trust always follows the BR reuse schedule (`ra::domains`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_reuse_days: Option<u32>,
    /// `[ca.pkcs11]`: the issuing CA key is in this PKCS#11 token instead of `key.pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<Pkcs11Section>,
}

/// Where a tenant's issuing CA key lives in a PKCS#11 token (HSM). Only these three names are
/// recorded; the PIN comes from `--pkcs11-pin-file` at run time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Section {
    /// The PKCS#11 module (shared library).
    pub module: PathBuf,
    /// The token label.
    pub token: String,
    /// The key pair's label (CKA_LABEL) inside the token.
    pub key: String,
}

impl Pkcs11Section {
    /// The `pki` key reference.
    pub fn key_ref(&self) -> pki::pkcs11::Pkcs11KeyRef {
        pki::pkcs11::Pkcs11KeyRef {
            module: self.module.clone(),
            token_label: self.token.clone(),
            key_label: self.key.clone(),
        }
    }
}

fn default_challenges() -> Vec<String> {
    vec!["http-01".into(), "dns-01".into(), "tls-alpn-01".into()]
}

/// Paths inside one data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Wraps a directory path.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }
    /// `fleetca.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join("fleetca.toml")
    }
    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.root.join("fleetca.db")
    }

    /// The database every command of this data directory uses: `FLEETCA_DATABASE` (a
    /// `postgres://` URL shared by several nodes) when set, else the SQLite file here.
    pub fn database_url(&self) -> String {
        std::env::var("FLEETCA_DATABASE")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| self.database().display().to_string())
    }
    /// Root key.
    pub fn root_key(&self) -> PathBuf {
        self.root.join("root/key.pem")
    }
    /// Root certificate.
    pub fn root_cert(&self) -> PathBuf {
        self.root.join("root/cert.pem")
    }
    /// Root CRL (DER).
    pub fn root_crl(&self) -> PathBuf {
        self.root.join("root/crl.der")
    }
    /// Issuing CA directory.
    pub fn ca_dir(&self, tenant: &str) -> PathBuf {
        self.root.join("ca").join(tenant)
    }
    /// Issuing CA key.
    pub fn ca_key(&self, tenant: &str) -> PathBuf {
        self.ca_dir(tenant).join("key.pem")
    }
    /// Issuing CA certificate.
    pub fn ca_cert(&self, tenant: &str) -> PathBuf {
        self.ca_dir(tenant).join("cert.pem")
    }
    /// Certificates above the issuing CA (public trust).
    pub fn ca_chain(&self, tenant: &str) -> PathBuf {
        self.ca_dir(tenant).join("chain.pem")
    }
    /// CSR for the outside root (public trust).
    pub fn ca_csr(&self, tenant: &str) -> PathBuf {
        self.ca_dir(tenant).join("request.csr")
    }
    /// Server TLS key.
    pub fn tls_key(&self) -> PathBuf {
        self.root.join("tls/key.pem")
    }
    /// Server TLS certificate.
    pub fn tls_cert(&self) -> PathBuf {
        self.root.join("tls/cert.pem")
    }
    /// The server TLS CA's key (0600): name-constrained to the server's own names, it
    /// re-issues the HTTPS certificate without the root key.
    pub fn tls_ca_key(&self) -> PathBuf {
        self.root.join("tls/ca-key.pem")
    }
    /// The server TLS CA's certificate (issued by the root).
    pub fn tls_ca_cert(&self) -> PathBuf {
        self.root.join("tls/ca-cert.pem")
    }
    /// Anchor of the TLS certificate when it is not the CA root (public trust).
    pub fn tls_root(&self) -> PathBuf {
        self.root.join("tls/root.pem")
    }
    /// The secret that seals stored EAB HMAC keys (`ra::EabKeyring`).
    pub fn eab_key(&self) -> PathBuf {
        self.root.join("eab.key")
    }

    /// The configuration of a tenant other than the one in `fleetca.toml`.
    pub fn tenant_config(&self, tenant: &str) -> PathBuf {
        self.ca_dir(tenant).join("tenant.toml")
    }

    /// Every tenant's configuration: `fleetca.toml` first, then each `ca/NAME/tenant.toml`
    /// in name order.
    pub fn load_tenant_configs(&self) -> anyhow::Result<Vec<CaConfig>> {
        let main = self.load_config()?;
        let mut names = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.root.join("ca")) {
            for e in entries {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name != main.ca.name && self.tenant_config(&name).exists() {
                    names.push(name);
                }
            }
        }
        names.sort();
        let mut out = vec![main];
        for name in names {
            let path = self.tenant_config(&name);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            let cfg: CaConfig =
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            if cfg.ca.name != name {
                anyhow::bail!(
                    "{}: name {:?} does not match its directory {name:?}",
                    path.display(),
                    cfg.ca.name
                );
            }
            out.push(cfg);
        }
        Ok(out)
    }

    /// Writes a tenant's `tenant.toml` atomically.
    pub fn save_tenant_config(&self, cfg: &CaConfig) -> anyhow::Result<()> {
        let text = toml::to_string_pretty(cfg)?;
        write_atomic(&self.tenant_config(&cfg.ca.name), text.as_bytes(), 0o644)
    }

    /// Whether `init` (or `subca csr`) has run here.
    pub fn is_initialized(&self) -> bool {
        self.config().exists()
    }

    /// Reads `fleetca.toml`.
    pub fn load_config(&self) -> anyhow::Result<CaConfig> {
        let text = std::fs::read_to_string(self.config())
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", self.config().display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", self.config().display()))
    }

    /// Writes `fleetca.toml` atomically.
    pub fn save_config(&self, cfg: &CaConfig) -> anyhow::Result<()> {
        let text = toml::to_string_pretty(cfg)?;
        write_atomic(&self.config(), text.as_bytes(), 0o644)
    }
}

/// Writes a file atomically: a temporary file in the same directory, fsync, rename, fsync
/// the directory, so a crash leaves either the old or the new content.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{} has no parent directory", path.display()))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}
