//! Shared by the `build.rs` of `fleetca` and `fleetca-agent`: the facts `--version` prints.
//! Everything here degrades to "unknown" (or 0) instead of failing the build, because
//! packages are also built from source tarballs without `.git` and on machines without `git`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `git ARGS` in the crate's directory; `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// The files whose change means HEAD moved: HEAD itself, the branch it names, packed-refs.
/// In a linked worktree HEAD lives in the worktree's git dir and refs in the common one;
/// `git rev-parse --git-path` resolves both.
fn head_files(dir: &Path) -> Vec<PathBuf> {
    let mut names = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(r) = git(dir, &["rev-parse", "--symbolic-full-name", "HEAD"]) {
        if r.starts_with("refs/") {
            names.push(r);
        }
    }
    names
        .iter()
        .filter_map(|n| git(dir, &["rev-parse", "--git-path", n]))
        .map(|p| {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                dir.join(p)
            }
        })
        .filter(|p| p.exists())
        .collect()
}

/// Prints the `cargo:` lines: `{PREFIX}_GIT_COMMIT`, `{PREFIX}_BUILD_EPOCH` (commit time,
/// or `SOURCE_DATE_EPOCH`, else 0) and `{PREFIX}_FEATURES` (comma-separated, or "none").
pub(crate) fn emit(prefix: &str) {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let commit_env = format!("{prefix}_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed={commit_env}");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // Naming any rerun-if-changed path replaces cargo's default (rerun when any file of the
    // package changed), so the package's own sources are named too, and the SQL migrations
    // that `sqlx::migrate!` embeds: without them a new migration file is not compiled in
    // until something else changes.
    for p in ["build.rs", "Cargo.toml", "src", "migrations"] {
        if dir.join(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    for p in head_files(&dir) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let commit = std::env::var(&commit_env)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| git(&dir, &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or_else(|| {
            git(&dir, &["log", "-1", "--format=%ct", "HEAD"]).and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| {
            k.strip_prefix("CARGO_FEATURE_")
                .map(|f| f.to_ascii_lowercase().replace('_', "-"))
        })
        .collect();
    features.sort();
    let features = if features.is_empty() {
        "none".to_string()
    } else {
        features.join(", ")
    };
    println!("cargo:rustc-env={commit_env}={commit}");
    println!("cargo:rustc-env={prefix}_BUILD_EPOCH={epoch}");
    println!("cargo:rustc-env={prefix}_FEATURES={features}");
}
