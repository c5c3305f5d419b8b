//! `fleetca-agent --version`: the package version, the git commit it was built from and the
//! enabled features (the crypto provider), for fleet inventories and bug reports.

#[test]
fn version_names_the_commit_and_the_crypto_provider() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fleetca-agent"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("fleetca-agent {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let commit = text
        .lines()
        .find_map(|l| l.strip_prefix("commit: "))
        .unwrap_or_else(|| panic!("no commit line: {text}"));
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
    let features = text
        .lines()
        .find_map(|l| l.strip_prefix("features: "))
        .unwrap_or_else(|| panic!("no features line: {text}"));
    // One of the two providers is always on (the default is ring).
    assert!(
        features
            .split(", ")
            .any(|f| f == "ring" || f == "aws-lc-rs"),
        "{features}"
    );
}
