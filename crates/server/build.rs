//! Embeds what `fleetca --version` prints besides the package version: the git commit the
//! binary was built from (`FLEETCA_GIT_COMMIT`, "unknown" outside a git checkout, e.g. from a
//! source tarball; a packager may set it in the environment), the commit's time as a lower
//! bound for a sane clock (`FLEETCA_BUILD_EPOCH`, used by `fleetca doctor`), and the enabled
//! cargo features. Never fails the build.

#[path = "../../build-support/git_info.rs"]
mod git_info;

fn main() {
    git_info::emit("FLEETCA");
}
