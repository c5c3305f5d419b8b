//! The `fleetca` binary.
#![forbid(unsafe_code)]

use clap::Parser;

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
