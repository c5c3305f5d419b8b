//! `fleetca doctor`: checks a deployment before (or while) it serves and says what to fix.
//! Every check only reads: the database is opened read-only and never migrated, keys are
//! opened but sign nothing, listeners are bound and released at once.
//!
//! A finding is `ok`, `warn` (works, but worth a look) or `fail` (must be fixed; the command
//! then exits non-zero, so a deployment script or `ExecStartPre=` can stop on it).

use super::serve::DEFAULT_DATA_DIR;
use super::{parse_socket, KeyProtection};
use crate::datadir::{CaConfig, DataDir};
use clap::Args;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `fleetca doctor` options. The listener, URL and database options read the same
/// environment variables as `serve`, so with the service's environment file loaded it checks
/// what `serve` would use.
#[derive(Debug, Args, Clone)]
pub struct DoctorArgs {
    /// Data directory to check.
    #[arg(long, env = "FLEETCA_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Database (as `serve --database`; default: the data directory's fleetca.db).
    #[arg(long, env = "FLEETCA_DATABASE")]
    pub database: Option<String>,
    /// HTTPS listen address `serve` will bind.
    #[arg(long, env = "FLEETCA_LISTEN", default_value = "127.0.0.1:8443", value_parser = parse_socket)]
    pub listen: SocketAddr,
    /// Plain-HTTP listen address `serve` will bind.
    #[arg(long, env = "FLEETCA_HTTP_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_socket)]
    pub http_listen: SocketAddr,
    /// Admin listen address `serve` will bind.
    #[arg(long, env = "FLEETCA_ADMIN_LISTEN", default_value = "127.0.0.1:9443", value_parser = parse_socket)]
    pub admin_listen: SocketAddr,
    /// External base URL of the ACME server (as `serve --base-url`).
    #[arg(long, env = "FLEETCA_BASE_URL")]
    pub base_url: Option<String>,
    /// Skip the listener check (on a host where `serve` is running and holds them).
    #[arg(long)]
    pub skip_listeners: bool,
    /// Least free space, in MiB, on the data directory's file system.
    #[arg(long, default_value_t = 1024)]
    pub min_free_mb: u64,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
    /// Passphrase and PIN for opening the CA keys (as `serve`).
    #[command(flatten)]
    pub keys: KeyProtection,
}

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// Works, but worth a look.
    Warn,
    /// Must be fixed.
    Fail,
}

/// One finding: which check, its outcome, what was seen, and what to do about it.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// The check's stable name (scripts match on it).
    pub check: &'static str,
    /// Outcome.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do, for `warn` and `fail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, detail: impl Into<String>) -> Self {
        Finding {
            check,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }
    fn warn(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            check,
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            check,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The JSON document `--json` prints.
#[derive(Debug, Serialize)]
struct Report<'a> {
    ok: bool,
    version: &'static str,
    findings: &'a [Finding],
}

/// Runs every check, prints the findings, and fails when one must be fixed.
pub(crate) fn run(args: &DoctorArgs) -> anyhow::Result<()> {
    let findings = check_all(args);
    let failed = findings.iter().filter(|f| f.status == Status::Fail).count();
    if args.json {
        let report = Report {
            ok: failed == 0,
            version: super::LONG_VERSION,
            findings: &findings,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for f in &findings {
            let tag = match f.status {
                Status::Ok => "ok  ",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            println!("{tag} {:<12} {}", f.check, f.detail);
            if let Some(fix) = &f.fix {
                println!("     {:<12} fix: {fix}", "");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} check{} must be fixed",
            if failed == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// Every finding, in a fixed order. Later checks that need the configuration are skipped
/// when the data directory is not usable (that one failure is the thing to fix).
pub(crate) fn check_all(args: &DoctorArgs) -> Vec<Finding> {
    let dd = DataDir::new(&args.data_dir);
    let mut out = Vec::new();
    let cfgs = match data_dir(&dd) {
        Ok((finding, cfgs)) => {
            out.push(finding);
            Some(cfgs)
        }
        Err(f) => {
            out.push(f);
            None
        }
    };
    if let Some(cfgs) = &cfgs {
        out.extend(key_files(&dd));
        out.extend(issuing_cas(&dd, cfgs, &args.keys));
        out.extend(public_urls(cfgs, args));
        out.extend(public_ct(cfgs));
        out.extend(clock(&dd, cfgs));
        out.push(database(&dd, args));
    }
    out.push(disk(&dd, args.min_free_mb));
    if !args.skip_listeners {
        out.extend(listeners(args));
    }
    out
}

fn data_dir(dd: &DataDir) -> Result<(Finding, Vec<CaConfig>), Finding> {
    const CHECK: &str = "data_dir";
    let path = dd.path().display();
    if !dd.is_initialized() {
        return Err(Finding::fail(
            CHECK,
            format!("{path} is not a fleetca data directory (no fleetca.toml)"),
            format!("fleetca init --data-dir {path} --permit SUFFIX_OR_CIDR (as the service user)"),
        ));
    }
    let cfgs = dd.load_tenant_configs().map_err(|e| {
        Finding::fail(
            CHECK,
            format!("the configuration does not load: {e:#}"),
            "correct the file named above (fleetca.toml or ca/NAME/tenant.toml)",
        )
    })?;
    let mode = std::fs::metadata(dd.path())
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0);
    let names: Vec<&str> = cfgs.iter().map(|c| c.ca.name.as_str()).collect();
    let finding = if mode & 0o027 != 0 {
        Finding::warn(
            CHECK,
            format!("{path} has mode {mode:03o}: others can look inside"),
            format!("chmod 700 {path}"),
        )
    } else {
        Finding::ok(CHECK, format!("{path}: tenants {}", names.join(", ")))
    };
    Ok((finding, cfgs))
}

/// Whether a file in the data directory holds a secret: the PKCS#8 keys `init` writes
/// (`key.pem`, `ca-key.pem`, delegated OCSP signer keys) and the EAB sealing key.
fn is_secret(name: &str) -> bool {
    name == "eab.key" || name.ends_with("key.pem")
}

fn secret_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        // symlink_metadata: a link is reported as what it is, never followed out of the dir.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            secret_files(&path, out);
        } else if is_secret(&e.file_name().to_string_lossy()) {
            out.push(path);
        }
    }
}

/// Keys are 0600 and owned by the data directory's owner (the user `serve` runs as): a
/// group- or world-readable key is a leaked CA key waiting to happen, and a key owned by
/// someone else either does not open or can be swapped by that user.
fn key_files(dd: &DataDir) -> Vec<Finding> {
    const CHECK: &str = "key_files";
    let owner = match std::fs::metadata(dd.path()) {
        Ok(m) => m.uid(),
        Err(e) => {
            return vec![Finding::fail(
                CHECK,
                format!("{}: {e}", dd.path().display()),
                "make the data directory readable by the user running doctor",
            )]
        }
    };
    let mut files = Vec::new();
    secret_files(dd.path(), &mut files);
    files.sort();
    let mut out = Vec::new();
    for f in &files {
        let Ok(meta) = std::fs::symlink_metadata(f) else {
            continue;
        };
        let p = f.display();
        if meta.file_type().is_symlink() {
            out.push(Finding::fail(
                CHECK,
                format!("{p} is a symbolic link"),
                format!("replace {p} with the key file itself (mode 0600)"),
            ));
            continue;
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push(Finding::fail(
                CHECK,
                format!("{p} has mode {mode:03o}: other users can read the key"),
                format!("chmod 600 {p}"),
            ));
        }
        if meta.uid() != owner {
            out.push(Finding::fail(
                CHECK,
                format!(
                    "{p} is owned by uid {}, the data directory by uid {owner}",
                    meta.uid()
                ),
                format!("chown {owner} {p} (the user fleetca serve runs as)"),
            ));
        }
    }
    if out.is_empty() {
        out.push(Finding::ok(
            CHECK,
            format!("{} key files, mode 0600, owner uid {owner}", files.len()),
        ));
    }
    out
}

/// Every tenant's issuing CA key opens (from its file, decrypted, or in its PKCS#11 token)
/// and matches its certificate: what `serve` does at start, without signing anything.
fn issuing_cas(dd: &DataDir, cfgs: &[CaConfig], keys: &KeyProtection) -> Vec<Finding> {
    let passphrase = match keys.passphrase() {
        Ok(p) => p,
        Err(e) => {
            return vec![Finding::fail(
                "issuing_key",
                format!("{e:#}"),
                "set the passphrase as for fleetca serve",
            )]
        }
    };
    let pin_file = keys.pkcs11_pin_file.as_deref();
    cfgs.iter()
        .map(|cfg| {
            let name = &cfg.ca.name;
            let check = if cfg.ca.pkcs11.is_some() {
                "pkcs11"
            } else {
                "issuing_key"
            };
            match super::load::load_issuing_ca(dd, cfg, passphrase.as_deref(), pin_file) {
                Ok(_) => Finding::ok(
                    check,
                    match &cfg.ca.pkcs11 {
                        Some(p) => format!(
                            "tenant {name:?}: key {:?} reachable in PKCS#11 token {:?}",
                            p.key, p.token
                        ),
                        None => format!("tenant {name:?}: key opens and matches cert.pem"),
                    },
                ),
                Err(e) => Finding::fail(
                    check,
                    format!("tenant {name:?}: {e:#}"),
                    match &cfg.ca.pkcs11 {
                        Some(p) => format!(
                            "check that module {} loads, token {:?} is present and the PIN file (--pkcs11-pin-file or FLEETCA_PKCS11_PIN_FILE) is right",
                            p.module.display(),
                            p.token
                        ),
                        None => "give the key passphrase (FLEETCA_KEY_PASSPHRASE or --key-passphrase-file) or restore the key from backup".to_string(),
                    },
                ),
            }
        })
        .collect()
}

/// Publicly trusted tenants that issue without Certificate Transparency. CT is not a BR
/// requirement but the browsers' (Chrome and Apple CT policies, RFC 6962 SCTs): a public
/// tenant with `ct_required = false` issues certificates the browsers it exists for reject.
/// Tests set it to isolate a sub-CA from CT; a deployment should not, so it is a `warn`.
fn public_ct(cfgs: &[CaConfig]) -> Vec<Finding> {
    const CHECK: &str = "public_ct";
    cfgs.iter()
        .filter(|c| c.ca.trust == crate::datadir::Trust::Public)
        .map(|c| {
            let name = &c.ca.name;
            if c.ca.ct_required() {
                Finding::ok(CHECK, format!("tenant {name:?}: certificates carry SCTs"))
            } else {
                Finding::warn(
                    CHECK,
                    format!(
                        "tenant {name:?} is publicly trusted but has ct_required = false: its certificates carry no SCTs, so Chrome and Safari reject them"
                    ),
                    "remove `ct_required = false` from the tenant's [ca] section (docs/ct.md)",
                )
            }
        })
        .collect()
}

/// Why a URL cannot be given to devices and relying parties, if it cannot.
pub(crate) fn unreachable_url(url: &str) -> Option<String> {
    let parsed = match url::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return Some(format!("{url:?} is not a URL ({e})")),
    };
    match parsed.host() {
        None => Some(format!("{url} has no host")),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            (d == "localhost" || d.ends_with(".localhost"))
                .then(|| format!("{url} names localhost, which devices resolve to themselves"))
        }
        Some(url::Host::Ipv4(ip)) => loopback_or_unspecified(IpAddr::V4(ip), url),
        Some(url::Host::Ipv6(ip)) => loopback_or_unspecified(IpAddr::V6(ip), url),
    }
}

fn loopback_or_unspecified(ip: IpAddr, url: &str) -> Option<String> {
    if ip.is_loopback() {
        Some(format!(
            "{url} is a loopback address, reachable only from this host"
        ))
    } else if ip.is_unspecified() {
        Some(format!("{url} is the unspecified address {ip}"))
    } else {
        None
    }
}

/// The URLs that leave the host: the ACME base URL devices are told, and each tenant's
/// `public_base_url` baked into every certificate for its CRL and caIssuers (RFC 5280
/// §4.2.1.13), which cannot be changed in certificates already issued.
fn public_urls(cfgs: &[CaConfig], args: &DoctorArgs) -> Vec<Finding> {
    const CHECK: &str = "public_urls";
    let mut out = Vec::new();
    let acme = args
        .base_url
        .clone()
        .unwrap_or_else(|| format!("https://{}", args.listen));
    match unreachable_url(&acme) {
        Some(why) => out.push(Finding::fail(
            CHECK,
            format!("ACME base URL: {why}"),
            "set FLEETCA_BASE_URL (or --base-url) to the https:// URL devices use",
        )),
        None => out.push(Finding::ok(CHECK, format!("ACME base URL {acme}"))),
    }
    for c in cfgs {
        let url = &c.ca.public_base_url;
        let file = if c.ca.name == cfgs[0].ca.name {
            "fleetca.toml".to_string()
        } else {
            format!("ca/{}/tenant.toml", c.ca.name)
        };
        let why = unreachable_url(url).or_else(|| {
            (!url.starts_with("http://")).then(|| {
                format!("{url} is not plain http:// (RFC 5280 §4.2.1.13: relying parties fetch CRLs without TLS)")
            })
        });
        out.push(match why {
            Some(why) => Finding::fail(
                CHECK,
                format!("tenant {:?} public_base_url: {why}", c.ca.name),
                format!("set public_base_url in {file} to the http:// URL of the plain-HTTP listener as relying parties reach it, before issuing"),
            ),
            None => Finding::ok(CHECK, format!("tenant {:?} public_base_url {url}", c.ca.name)),
        });
    }
    out
}

/// The clock is not before this binary's commit (a clock that is cannot be right) and lies
/// inside every issuing CA certificate's validity: a CA signs with notBefore backdated from
/// its own clock, so a wrong clock issues certificates devices reject.
fn clock(dd: &DataDir, cfgs: &[CaConfig]) -> Vec<Finding> {
    const CHECK: &str = "clock";
    let now = crate::clock::server_clock().now();
    let unix = now.unix_timestamp();
    let built: i64 = env!("FLEETCA_BUILD_EPOCH").parse().unwrap_or(0);
    let fix = "synchronise the system clock (NTP: systemd-timesyncd, chrony)";
    let mut out = Vec::new();
    if unix < built {
        out.push(Finding::fail(
            CHECK,
            format!("the clock says {now}, before this fleetca was built (unix {built})"),
            fix,
        ));
    }
    for c in cfgs {
        let path = dd.ca_cert(&c.ca.name);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Some(der) = pki::cert_info::pem_to_ders(&text)
            .ok()
            .and_then(|d| d.into_iter().next())
        else {
            continue;
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
            continue;
        };
        let v = cert.validity();
        let (nb, na) = (v.not_before.timestamp(), v.not_after.timestamp());
        if unix < nb {
            out.push(Finding::fail(
                CHECK,
                format!(
                    "the clock says {now}, before tenant {:?}'s CA certificate begins ({})",
                    c.ca.name, v.not_before
                ),
                fix,
            ));
        } else if unix > na {
            out.push(Finding::fail(
                CHECK,
                format!(
                    "tenant {:?}'s CA certificate expired at {} (clock: {now})",
                    c.ca.name, v.not_after
                ),
                "if the clock is right, the issuing CA must be replaced (fleetca tenant rollover, or a new CA)",
            ));
        } else if na - unix < 30 * 86_400 {
            out.push(Finding::warn(
                CHECK,
                format!(
                    "tenant {:?}'s CA certificate expires at {}",
                    c.ca.name, v.not_after
                ),
                "roll the issuing CA over before it expires",
            ));
        }
    }
    if out.is_empty() {
        out.push(Finding::ok(
            CHECK,
            format!("{now}: after the build, inside every CA certificate's validity"),
        ));
    }
    out
}

/// The database's schema against this binary's migrations.
fn database(dd: &DataDir, args: &DoctorArgs) -> Finding {
    const CHECK: &str = "database";
    let url = args.database.clone().unwrap_or_else(|| dd.database_url());
    // Credentials in a postgres:// URL never reach the output.
    let shown = match url::Url::parse(&url) {
        Ok(mut u) if crate::sa::is_postgres_url(&url) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string()
        }
        _ => url.clone(),
    };
    let status = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| Ok(rt.block_on(crate::sa::schema_status(&url))?));
    let s = match status {
        Ok(s) => s,
        Err(e) => {
            return Finding::fail(
                CHECK,
                format!("{shown}: {e:#}"),
                "make the database reachable and readable by the service user",
            )
        }
    };
    if !s.unknown.is_empty() {
        Finding::fail(
            CHECK,
            format!(
                "{shown} is at schema {} but this fleetca knows only up to {} (unknown: {:?}): a newer fleetca migrated it",
                s.database_latest, s.binary_latest, s.unknown
            ),
            "install the fleetca version that migrated it (or restore the backup taken before that upgrade)",
        )
    } else if !s.mismatched.is_empty() {
        Finding::fail(
            CHECK,
            format!(
                "{shown}: migrations {:?} differ from this fleetca's or did not finish",
                s.mismatched
            ),
            "restore the database from a backup taken with a released fleetca",
        )
    } else if s.missing {
        Finding::warn(
            CHECK,
            format!("{shown} does not exist yet"),
            "nothing, if this is a new CA: fleetca serve creates it",
        )
    } else if !s.pending.is_empty() {
        Finding::warn(
            CHECK,
            format!(
                "{shown} is at schema {}; this fleetca will apply {:?} when it starts",
                s.database_latest, s.pending
            ),
            "back up the database before starting the upgraded fleetca (every node of a cluster must be upgraded)",
        )
    } else {
        Finding::ok(CHECK, format!("{shown} at schema {}", s.database_latest))
    }
}

/// Free space on the data directory's file system: SQLite, its WAL and the CRLs live there,
/// and a full disk stops issuance.
fn disk(dd: &DataDir, min_free_mb: u64) -> Finding {
    const CHECK: &str = "disk";
    // The data directory may not exist yet (then its parent's file system is the one).
    let path = std::iter::successors(Some(dd.path()), |p| p.parent())
        .find(|p| p.exists())
        .unwrap_or(Path::new("."));
    match rustix::fs::statvfs(path) {
        Ok(st) => {
            let free_mb = st.f_bavail.saturating_mul(st.f_frsize) / (1024 * 1024);
            if free_mb < min_free_mb {
                Finding::fail(
                    CHECK,
                    format!(
                        "{} MiB free on the file system of {} (want at least {min_free_mb})",
                        free_mb,
                        path.display()
                    ),
                    "free space there, or move the data directory; `fleetca prune` removes expired orders",
                )
            } else {
                Finding::ok(
                    CHECK,
                    format!(
                        "{free_mb} MiB free on the file system of {}",
                        path.display()
                    ),
                )
            }
        }
        Err(e) => Finding::fail(
            CHECK,
            format!("statvfs {}: {e}", path.display()),
            "check the data directory's path",
        ),
    }
}

/// Each listener address binds now (it is free, and the user may bind it: ports below 1024
/// need CAP_NET_BIND_SERVICE). `serve` refuses to start otherwise.
fn listeners(args: &DoctorArgs) -> Vec<Finding> {
    const CHECK: &str = "listeners";
    [
        ("--listen", "FLEETCA_LISTEN", args.listen),
        ("--http-listen", "FLEETCA_HTTP_LISTEN", args.http_listen),
        ("--admin-listen", "FLEETCA_ADMIN_LISTEN", args.admin_listen),
    ]
    .into_iter()
    .map(|(flag, env, addr)| match std::net::TcpListener::bind(addr) {
        Ok(_) => Finding::ok(CHECK, format!("{flag} {addr} can be bound")),
        Err(e) => {
            let fix = match e.kind() {
                std::io::ErrorKind::PermissionDenied => format!(
                    "ports below 1024 need CAP_NET_BIND_SERVICE (AmbientCapabilities= in a drop-in of fleetca.service), or choose another {env}"
                ),
                std::io::ErrorKind::AddrInUse => format!(
                    "stop what holds {addr} or set {env}; if it is this CA's running serve, use --skip-listeners"
                ),
                _ => format!("set {env} (or {flag}) to an address of this host"),
            };
            Finding::fail(CHECK, format!("{flag} {addr}: {e}"), fix)
        }
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_devices_cannot_reach_are_named() {
        for bad in [
            "http://127.0.0.1:8080",
            "https://[::1]:8443/",
            "http://localhost",
            "http://ca.localhost./",
            "https://0.0.0.0:8443",
            "not a url",
        ] {
            assert!(unreachable_url(bad).is_some(), "{bad}");
        }
        for good in [
            "http://ca.example.net",
            "https://10.1.2.3:8443",
            "http://[2001:db8::1]/",
        ] {
            assert_eq!(unreachable_url(good), None, "{good}");
        }
    }

    #[test]
    fn secrets_are_the_key_files_init_writes() {
        for name in ["key.pem", "ca-key.pem", "ocsp-key.pem", "eab.key"] {
            assert!(is_secret(name), "{name}");
        }
        for name in [
            "cert.pem",
            "chain.pem",
            "fleetca.toml",
            "fleetca.db",
            "crl.der",
        ] {
            assert!(!is_secret(name), "{name}");
        }
    }
}
