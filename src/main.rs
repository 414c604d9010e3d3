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

/// jemalloc instead of the system allocator: glibc's per-thread arenas kept what 10,000
/// closed connections had used (RSS climbed with every round of connects), and jemalloc
/// answers a connect storm faster (BENCHMARKS.md, "Memory").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings: a background thread gives pages freed for `dirty_decay_ms` back
/// to the system, so that an idle server's RSS falls after a burst of connections instead
/// of waiting for the next allocation. `_RJEM_MALLOC_CONF` in the environment overrides
/// these.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:0\0";
