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
//! DIR/ca/NAME/retired/ID/     an issuing CA replaced by `fleetca tenant rollover`:
//!                             issuer.toml, cert.pem, key.pem (unless in a PKCS#11 token)
//! DIR/tls/{key,cert}.pem      the server's own HTTPS certificate (chain: leaf, server TLS CA)
//! DIR/tls/ca-{key,cert}.pem   server TLS CA: under the root, constrained to the server's names
//! DIR/tls/root.pem            anchor of that certificate in public-trust mode
//! DIR/eab.key                 secret sealing the stored EAB HMAC keys (0600, made on first use)
//! ```

use acme_types::wire::ChallengeType;
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
    /// `[mpic]` (main `fleetca.toml` only; every tenant's validations use it): the remote
    /// network perspectives that corroborate validations and CAA checks (BR §3.2.2.9,
    /// docs/perspectives.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpic: Option<crate::va::mpic::MpicSection>,
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
    /// countryName (two upper-case letters, ISO 3166-1) in the CA certificates' subjects;
    /// required with `organization` for public trust (BR §7.1.2.10.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// commonName of the issuing CA (default `fleetca NAME issuing CA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    /// Terms of service URL for the directory's `meta`.
    #[serde(default)]
    pub terms_of_service: Option<String>,
    /// Website URL for the directory's `meta`.
    #[serde(default)]
    pub website: Option<String>,
    /// Challenge types offered.
    #[serde(default = "default_challenges")]
    pub challenge_types: Vec<ChallengeType>,
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
    /// `fleetca tenant disable`: no ACME service (the directory answers 404), while the CA
    /// keeps publishing its CRL, OCSP and certificate for what it issued. Not for the tenant
    /// of `fleetca.toml`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Private trust only: how many days a tenant domain validation grants authorizations
    /// (issue 17). Public trust always follows the BR reuse schedule (`ra::domains`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_reuse_days: Option<u32>,
    /// `[ca.pkcs11]`: the issuing CA key is in this PKCS#11 token instead of `key.pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<Pkcs11Section>,
    /// The id of the active issuing CA (`ca/NAME/{key,cert}.pem`) after `fleetca tenant
    /// rollover` (`NAME_g2`, ...); absent: the tenant's first CA, whose id is its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Certificate Transparency logs this tenant submits precertificates to (RFC 6962 §4.1;
    /// docs/ct.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ct_logs: Vec<CtLogSection>,
    /// Whether every certificate must carry SCTs; absent: [`CaSection::ct_required`]'s
    /// default for the tenant's trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ct_required: Option<bool>,
}

impl CaSection {
    /// The id of the active issuing CA (names its CRL, OCSP and caIssuers URLs).
    pub fn issuer_id(&self) -> &str {
        self.issuer.as_deref().unwrap_or(&self.name)
    }

    /// Whether this tenant's certificates must carry SCTs. The default follows trust: browsers
    /// require SCTs on publicly trusted certificates (Chrome and Apple CT policies), private
    /// trust has no such relying party, so it opts in with `ct_required = true`.
    pub fn ct_required(&self) -> bool {
        self.ct_required.unwrap_or(match self.trust {
            Trust::Public => true,
            Trust::Private => false,
        })
    }
}

/// One `[[ca.ct_logs]]` entry: `{ url, public_key, operator }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtLogSection {
    /// The log's base URL (`https://log.example/2026h1/`); `ct/v1/add-pre-chain` is appended.
    pub url: String,
    /// The log's key: base64 of its DER SubjectPublicKeyInfo (the log id is its SHA-256).
    pub public_key: String,
    /// Who runs the log; CT policies count distinct operators.
    pub operator: String,
}

/// `ca/NAME/retired/ID/issuer.toml`: a retired issuing CA (see `commands::rollover`). Its
/// certificate and, for a file key, its key sit beside this file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredIssuer {
    /// The CA's id, as its certificates record it.
    pub id: String,
    /// Where its key is, when it is in a PKCS#11 token.
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

/// The challenge types a tenant offers unless its configuration says otherwise.
pub(crate) fn default_challenges() -> Vec<ChallengeType> {
    vec![
        ChallengeType::Http01,
        ChallengeType::Dns01,
        ChallengeType::TlsAlpn01,
    ]
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
    /// Where a tenant's retired issuing CAs are kept, one directory per CA id.
    pub fn retired_dir(&self, tenant: &str) -> PathBuf {
        self.ca_dir(tenant).join("retired")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn section(trust: &str, extra: &str) -> CaSection {
        let text = format!(
            "[ca]\nname = \"default\"\ntrust = \"{trust}\"\npermit = [\"routers.example.com\"]\n\
             public_base_url = \"http://ca.example.com\"\ncaa_identities = []\n\
             lifetime_days = 30\n{extra}"
        );
        toml::from_str::<CaConfig>(&text).unwrap().ca
    }

    /// The CT default is keyed on trust alone: public tenants require SCTs unless they say
    /// otherwise, private ones only when they opt in.
    #[test]
    fn ct_required_defaults_to_the_trust() {
        assert!(section("public", "").ct_required());
        assert!(!section("private", "").ct_required());
        assert!(section("private", "ct_required = true").ct_required());
        assert!(!section("public", "ct_required = false").ct_required());
        let logs = section(
            "public",
            "[[ca.ct_logs]]\nurl = \"https://log.example/\"\npublic_key = \"AAAA\"\noperator = \"A\"\n",
        );
        assert_eq!(logs.ct_logs.len(), 1);
        assert_eq!(logs.ct_logs[0].operator, "A");
        // A misspelt key is an error, not a silently ignored log.
        let bad = "[ca]\nname = \"d\"\ntrust = \"public\"\npermit = []\npublic_base_url = \"x\"\n\
                   caa_identities = []\nlifetime_days = 1\n[[ca.ct_logs]]\nurl = \"u\"\n\
                   public_key = \"k\"\noperator = \"o\"\nkey = \"k\"\n";
        assert!(toml::from_str::<CaConfig>(bad).is_err());
    }

    /// An unknown challenge type is a configuration error naming it and the known ones, not
    /// a type silently never offered.
    #[test]
    fn unknown_challenge_types_are_refused() {
        let text =
            "[ca]\nname = \"default\"\ntrust = \"private\"\npermit = [\"routers.example.com\"]\n\
                    public_base_url = \"http://ca.example.com\"\ncaa_identities = []\n\
                    lifetime_days = 30\nchallenge_types = [\"http-01\", \"http-02\"]\n";
        let Err(e) = toml::from_str::<CaConfig>(text) else {
            panic!("challenge type http-02 accepted");
        };
        let e = e.to_string();
        assert!(e.contains("http-02") && e.contains("dns-01"), "{e}");
        let ok = section(
            "private",
            "challenge_types = [\"dns-01\", \"device-attest-01\"]",
        );
        assert_eq!(ok.challenge_types.len(), 2);
    }
}
