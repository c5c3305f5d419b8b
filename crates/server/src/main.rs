//! The `fleetca` binary.
#![forbid(unsafe_code)]

use clap::Parser;

/// mimalloc instead of glibc's malloc: the server allocates and frees small buffers per
/// request on every tokio worker, and glibc's arenas spent ~9 % of the server's CPU on it
/// (`_int_malloc`, `_int_free`, `malloc_consolidate`, `unlink_chunk`; README, "Measured").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = fleetca::commands::Cli::parse();
    match fleetca::commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleetca: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
