//! The `courier` binary: arguments → settings → logging → the chosen command.

use std::process::ExitCode;

use courier::cli::{self, Outcome};
use courier::config::{LoadOptions, Settings};

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args().skip(1)) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("courier: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    if let Some(outcome) = cli::run_without_settings(&cli.command) {
        return finish(outcome);
    }
    let settings = match Settings::load(&LoadOptions::from_process(cli.config.clone())) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("courier: {e}");
            return ExitCode::from(2);
        }
    };
    // After the settings, so that `log.level` applies (RUST_LOG still wins).
    cli::logger(
        &settings.log.level,
        std::env::var("RUST_LOG").ok().as_deref(),
    )
    .init();

    finish(cli::run(cli.command, settings))
}

/// Prints what a command gave and picks the exit code.
fn finish(outcome: Outcome) -> ExitCode {
    match outcome {
        Outcome::Done(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Outcome::Refused(why) => {
            eprintln!("courier: {why}");
            ExitCode::from(2)
        }
        Outcome::Failed(why) => {
            eprintln!("courier: {why}");
            ExitCode::FAILURE
        }
    }
}
