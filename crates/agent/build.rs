//! Embeds the build time (Unix seconds) as FLEETCA_AGENT_BUILD_TIME: the
//! agent's TLS verifier never trusts a device clock earlier than it.
//! `SOURCE_DATE_EPOCH` (reproducible builds) wins over the wall clock.

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
}
