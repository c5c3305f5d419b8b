//! Embeds the build time (Unix seconds) as FLEETCA_AGENT_BUILD_TIME: the
//! agent's TLS verifier never trusts a device clock earlier than it.
//! `SOURCE_DATE_EPOCH` (reproducible builds) wins over the wall clock.
//! Also what `fleetca-agent --version` prints: the git commit
//! (`FLEETCA_AGENT_GIT_COMMIT`, "unknown" outside a git checkout) and the
//! enabled features (`ring`, `aws-lc-rs`).

#[path = "../../build-support/git_info.rs"]
mod git_info;

fn main() {
    let t = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=FLEETCA_AGENT_BUILD_TIME={t}");
    git_info::emit("FLEETCA_AGENT");
}
