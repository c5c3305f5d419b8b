//! fleetca-agent command line entry point.

use clap::Parser;
use fleetca_agent::commands;
use fleetca_agent::config::{Cli, Command};
use fleetca_agent::log;
use fleetca_agent::outcome;

fn main() {
    let cli = Cli::parse();
    let code = match cli.settings.load_merged() {
        Err(e) => {
            log::error(e.to_string());
            e.exit_code()
        }
        Ok(settings) => {
            log::set_json(settings.json);
            let r = match cli.command {
                Command::Run => commands::run(&settings),
                Command::Issue | Command::RotateKey => {
                    outcome::record(&settings, commands::issue(&settings))
                }
                Command::Renew { force } => {
                    outcome::record(&settings, commands::renew(&settings, force))
                }
                Command::Revoke { reason } => commands::revoke(&settings, reason.map(|r| r.code())),
                Command::Status => commands::status(&settings),
            };
            match r {
                Ok(c) => c,
                Err(e) => {
                    log::error(e.to_string());
                    e.exit_code()
                }
            }
        }
    };
    std::process::exit(code);
}
