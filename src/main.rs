//! The `courier` binary: arguments → settings → logging → the chosen command.

use std::process::ExitCode;
use std::time::Duration;

use courier::app::Application;
use courier::auth::Authenticator;
use courier::cli::{self, Command};
use courier::config::{LoadOptions, Settings};

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args().skip(1)) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("courier: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::load(&LoadOptions::from_process(cli.config.clone())) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("courier: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or(settings.log.level.clone()),
    )
    .init();

    match cli.command {
        Command::Help => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::Token { user, ttl } => {
            if settings.is_production() {
                eprintln!("courier: `token` is refused with COURIER_ENV=production");
                return ExitCode::from(2);
            }
            let auth = Authenticator::new(&settings.auth.secret, settings.auth.leeway);
            match auth.issue(&user, Duration::from_secs(ttl)) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("courier: cannot sign a token: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::SeedDemo => {
            if settings.is_production() {
                eprintln!("courier: `seed-demo` is refused with COURIER_ENV=production");
                return ExitCode::from(2);
            }
            let result = actix_web::rt::System::new().block_on(seed_demo(&settings));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("courier: seed-demo failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve => {
            let result = actix_web::rt::System::new().block_on(async move {
                let app = Application::build(settings).await?;
                app.handle_signals();
                app.run_until_stopped()
                    .await
                    .map_err(courier::app::AppError::Bind)
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("server failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn seed_demo(settings: &Settings) -> Result<(), Box<dyn std::error::Error>> {
    let db = courier::db::connect(&settings.database).await?;
    courier::db::migrate(&db, settings.database.migrate).await?;
    let demo = courier::db::seed::seed_demo(&db).await?;
    let auth = Authenticator::new(&settings.auth.secret, settings.auth.leeway);
    let hour = Duration::from_secs(3600);
    println!("connectionId: {}", demo.connection);
    println!("alice:        {}", demo.alice);
    println!("alice token:  {}", auth.issue(&demo.alice, hour)?);
    println!("bob:          {}", demo.bob);
    println!("bob token:    {}", auth.issue(&demo.bob, hour)?);
    Ok(())
}
