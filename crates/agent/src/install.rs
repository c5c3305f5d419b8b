//! Installing a key/certificate set so that a reader, or a power cut at any
//! instant, sees either the old complete set or the new complete set.
//!
//! Layout under the out-dir:
//! ```text
//! .versions/<n>/{key,cert,chain,fullchain}.pem   one directory per version
//! current -> .versions/<n>                       swapped with one rename(2)
//! key.pem -> current/key.pem (and cert, chain, fullchain)
//! ```
//! Renaming four files one by one is not atomic as a set; one symlink swap
//! is. The previous version is kept (so the old key survives until the new
//! certificate is installed, and one step back is possible); older ones are
//! pruned after the swap. A reader that needs a consistent pair resolves
//! `current` once and reads both files from that directory.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{AgentError, Result};
use crate::fsutil;

/// The four PEM files of one installed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSet {
    /// PKCS#8 private key (written 0600).
    pub key_pem: String,
    /// Leaf certificate.
    pub cert_pem: String,
    /// Issuer chain (may be empty).
    pub chain_pem: String,
}

impl CertSet {
    /// The leaf certificate, parsed, if it is there, parses and certifies
    /// the set's key.
    pub fn leaf(&self) -> Result<crate::schedule::CertInfo> {
        let der = crate::keys::pem_certs(&self.cert_pem)
            .into_iter()
            .next()
            .ok_or_else(|| AgentError::Key("cert.pem holds no certificate".into()))?;
        let info = crate::schedule::CertInfo::parse(&der)?;
        let key = crate::keys::parse_cert_key(&self.key_pem)?;
        if info.spki != rcgen::PublicKeyData::subject_public_key_info(&key) {
            return Err(AgentError::Key("key.pem does not match cert.pem".into()));
        }
        Ok(info)
    }

    /// Leaf followed by the chain.
    pub fn fullchain_pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.chain_pem)
    }

    fn files(&self) -> [(&'static str, String, u32); 4] {
        [
            ("key.pem", self.key_pem.clone(), 0o600),
            ("cert.pem", self.cert_pem.clone(), 0o644),
            ("chain.pem", self.chain_pem.clone(), 0o644),
            ("fullchain.pem", self.fullchain_pem(), 0o644),
        ]
    }
}

/// The stable names in the out-dir.
pub const FILES: [&str; 4] = ["key.pem", "cert.pem", "chain.pem", "fullchain.pem"];
const VERSIONS: &str = ".versions";
const CURRENT: &str = "current";

/// Reads the installed set through `current`, if complete.
pub fn read_current(out_dir: &Path) -> Option<CertSet> {
    let dir = fs::canonicalize(out_dir.join(CURRENT)).ok()?;
    let read = |n: &str| fs::read_to_string(dir.join(n)).ok();
    Some(CertSet {
        key_pem: read("key.pem")?,
        cert_pem: read("cert.pem")?,
        chain_pem: read("chain.pem")?,
    })
}

fn version_numbers(versions: &Path) -> Vec<u64> {
    let Ok(rd) = fs::read_dir(versions) else {
        return Vec::new();
    };
    let mut v: Vec<u64> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// The version `current` points at.
pub fn current_version(out_dir: &Path) -> Option<u64> {
    let target = fs::read_link(out_dir.join(CURRENT)).ok()?;
    target.file_name()?.to_str()?.parse().ok()
}

/// Installs `set` into `out_dir`. Returns `false` when the same set is
/// already installed (nothing is written: flash wear).
pub fn install(out_dir: &Path, set: &CertSet) -> Result<bool> {
    install_with_checkpoints(out_dir, set, &mut |step| {
        test_pause(step);
        Ok(())
    })
}

/// Debug builds only: `FLEETCA_AGENT_TEST_PAUSE_AT=<step>` stops the agent
/// before `step` (printing `test: paused at <step>` on stderr) so a test can
/// SIGKILL the real process there. Release builds ignore it.
pub fn test_pause(step: &str) {
    if cfg!(debug_assertions)
        && std::env::var("FLEETCA_AGENT_TEST_PAUSE_AT").is_ok_and(|s| s == step)
    {
        eprintln!("test: paused at {step}");
        std::thread::sleep(std::time::Duration::from_secs(120));
    }
}

/// [`install`] with `checkpoint` called before every durable step, so a test
/// can stop the install at each point (as a power cut would) and check what
/// is left on disk. An error from `checkpoint` aborts the install as-is.
#[doc(hidden)]
pub fn install_with_checkpoints(
    out_dir: &Path,
    set: &CertSet,
    checkpoint: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<bool> {
    if read_current(out_dir).as_ref() == Some(set) {
        ensure_links(out_dir, checkpoint)?;
        return Ok(false);
    }
    let next = stage(out_dir, set, checkpoint)?;
    let previous = current_version(out_dir);
    activate(out_dir, next, previous, checkpoint)?;
    Ok(true)
}

/// Writes `set` as a new version directory, durable but not yet in use
/// (`current` is untouched), and returns its number. On failure (a full
/// disk) the partial directory is removed so that retries do not pile up.
pub fn stage(
    out_dir: &Path,
    set: &CertSet,
    checkpoint: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<u64> {
    let versions = out_dir.join(VERSIONS);
    checkpoint("mkdir")?;
    fs::create_dir_all(&versions).map_err(|e| AgentError::io(&versions, e))?;
    let next = version_numbers(&versions).last().map_or(1, |n| n + 1);
    let dir: PathBuf = versions.join(next.to_string());
    // Numbers only grow, so this directory cannot exist; be strict about it.
    fs::create_dir(&dir).map_err(|e| AgentError::io(&dir, e))?;
    let written = (|| {
        for (name, content, mode) in set.files() {
            checkpoint(name)?;
            // No temp file and rename: nothing refers to this directory until
            // the swap, so each file needs only its own fsync and the
            // directory one fsync below (4 + 1 instead of 4 x 2).
            fsutil::write_new(&dir.join(name), content.as_bytes(), mode)?;
        }
        checkpoint("sync-versions")?;
        fsutil::sync_dir(&dir)?;
        fsutil::sync_dir(&versions)
    })();
    if let Err(e) = written {
        if matches!(e, AgentError::Io { .. }) {
            // Only for a real I/O failure, not a test checkpoint's abort
            // (which simulates a power cut and leaves the disk as it is).
            let _ = fs::remove_dir_all(&dir);
        }
        return Err(e);
    }
    Ok(next)
}

/// Points `current` at version `n` (one atomic symlink swap), makes sure the
/// stable names exist, and prunes every version but `n` and `keep` (the one
/// to go back to, or the staged one after a rollback). A no-op when `current`
/// already points at `n`.
pub fn activate(
    out_dir: &Path,
    n: u64,
    keep: Option<u64>,
    checkpoint: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<()> {
    let versions = out_dir.join(VERSIONS);
    checkpoint("swap")?;
    fsutil::symlink_atomic(
        &Path::new(VERSIONS).join(n.to_string()),
        &out_dir.join(CURRENT),
    )?;
    ensure_links(out_dir, checkpoint)?;
    checkpoint("prune")?;
    // Pruning is not fsynced: a removal lost to a power cut only leaves an
    // old directory behind, removed by the next prune.
    for v in version_numbers(&versions) {
        if v != n && Some(v) != keep {
            let old = versions.join(v.to_string());
            fs::remove_dir_all(&old).map_err(|e| AgentError::io(&old, e))?;
        }
    }
    Ok(())
}

/// Reads version `n` (complete, or `None`).
pub fn read_version(out_dir: &Path, n: u64) -> Option<CertSet> {
    let dir = out_dir.join(VERSIONS).join(n.to_string());
    let read = |f: &str| fs::read_to_string(dir.join(f)).ok();
    Some(CertSet {
        key_pem: read("key.pem")?,
        cert_pem: read("cert.pem")?,
        chain_pem: read("chain.pem")?,
    })
}

fn ensure_links(out_dir: &Path, checkpoint: &mut dyn FnMut(&str) -> Result<()>) -> Result<()> {
    for name in FILES {
        let target = Path::new(CURRENT).join(name);
        if fs::read_link(out_dir.join(name)).is_ok_and(|t| t == target) {
            continue;
        }
        checkpoint(&format!("link-{name}"))?;
        fsutil::symlink_atomic(&target, &out_dir.join(name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(tag: &str) -> CertSet {
        CertSet {
            key_pem: format!("key {tag}\n"),
            cert_pem: format!("cert {tag}\n"),
            chain_pem: format!("chain {tag}\n"),
        }
    }

    #[test]
    fn install_swap_and_prune() {
        let d = tempfile::tempdir().unwrap();
        assert!(install(d.path(), &set("a")).unwrap());
        assert!(!install(d.path(), &set("a")).unwrap());
        assert!(install(d.path(), &set("b")).unwrap());
        assert!(install(d.path(), &set("c")).unwrap());
        assert_eq!(
            fs::read_to_string(d.path().join("key.pem")).unwrap(),
            "key c\n"
        );
        assert_eq!(
            fs::read_to_string(d.path().join("fullchain.pem")).unwrap(),
            "cert c\nchain c\n"
        );
        assert_eq!(version_numbers(&d.path().join(VERSIONS)), vec![2, 3]);
    }
}
