//! Runs a pkilint linter (`lint_cabf_serverauth_cert`, `lint_crl`, `lint_ocsp_response`, ...)
//! and returns its findings, refusing every way a run can look clean without having linted:
//! a usage error, a crash, a document it could not load, empty or unparsable output, or an
//! exit status that disagrees with the findings printed. pkilint exits with the number of
//! findings it reported (at most 255), so with JSON output the two can be checked against each
//! other. A missing linter goes through [`gate`](super::gate::gate).
//!
//! The linters live next to `FLEETCA_PKILINT` (default `/opt/fleetca-venv/bin`).
#![allow(dead_code)] // each includer uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;

/// One pkilint finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Finding {
    /// FATAL, ERROR, WARNING, NOTICE, INFO or DEBUG.
    pub(crate) severity: String,
    /// The validation's code, e.g. `cabf.internal_domain_name`.
    pub(crate) code: String,
    /// Where in the document.
    pub(crate) node: String,
    /// pkilint's message, empty when it gives none.
    pub(crate) message: String,
}

impl Finding {
    /// ERROR or FATAL: what a profile must not produce.
    pub(crate) fn is_serious(&self) -> bool {
        self.severity == "ERROR" || self.severity == "FATAL"
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} at {}: {}",
            self.severity, self.code, self.node, self.message
        )
    }
}

/// The directory holding the linters.
fn bin_dir() -> PathBuf {
    std::env::var_os("FLEETCA_PKILINT")
        .filter(|v| !v.is_empty())
        .and_then(|p| PathBuf::from(p).parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("/opt/fleetca-venv/bin"))
}

/// Lints `file` with `tool lint ARGS -f JSON file`. `None` when the linter is missing outside
/// CI (the test returns); panics when it is missing under CI or when the run is not a lint.
pub(crate) fn lint(test: &str, tool: &str, args: &[&str], file: &Path) -> Option<Vec<Finding>> {
    let bin = bin_dir().join(tool);
    if !super::gate::gate(
        test,
        bin.is_file(),
        &format!(
            "pkilint not found at {} (set FLEETCA_PKILINT)",
            bin.display()
        ),
    ) {
        return None;
    }
    let out = Command::new(&bin)
        .arg("lint")
        .args(args)
        .args(["-f", "JSON"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let context = || {
        format!(
            "{tool} {args:?} {}: status {:?}\nstdout: {stdout}\nstderr: {stderr}",
            file.display(),
            out.status.code()
        )
    };
    for bad in ["usage:", "Traceback", "Failed to load", "error:"] {
        assert!(
            !stderr.contains(bad),
            "not a lint run ({bad}): {}",
            context()
        );
    }
    assert!(!stdout.trim().is_empty(), "no output: {}", context());
    let doc: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("output is not JSON ({e}): {}", context()));
    let results = doc["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no `results` array: {}", context()));
    let mut findings = Vec::new();
    for r in results {
        let node = r["node_path"].as_str().unwrap_or_default();
        for d in r["finding_descriptions"].as_array().into_iter().flatten() {
            findings.push(Finding {
                severity: d["severity"].as_str().unwrap_or_default().to_string(),
                code: d["code"].as_str().unwrap_or_default().to_string(),
                node: node.to_string(),
                message: d["message"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    assert!(
        findings
            .iter()
            .all(|f| !f.severity.is_empty() && !f.code.is_empty()),
        "a finding without severity or code: {}",
        context()
    );
    assert_eq!(
        out.status.code(),
        Some(findings.len().min(255) as i32),
        "the exit status is not the number of findings: {}",
        context()
    );
    Some(findings)
}

/// The ERROR and FATAL findings of [`lint`], formatted; empty after a visible `SKIP` of this
/// lint when the linter is missing outside CI (the rest of the test still runs).
pub(crate) fn serious(test: &str, tool: &str, args: &[&str], file: &Path) -> Vec<String> {
    lint(test, tool, args, file)
        .unwrap_or_default()
        .iter()
        .filter(|f| f.is_serious())
        .map(ToString::to_string)
        .collect()
}
