//! The command line: `courier [--config PATH] [serve | token --user ID [--ttl SECONDS] |
//! seed-demo | hash-password | help | --version]`, parsed by [`parse`] and carried out by
//! [`run`] (or [`run_without_settings`]).

use std::path::PathBuf;
use std::time::Duration;

use crate::app::{AppError, Application};
use crate::auth::Authenticator;
use crate::config::Settings;
use crate::db;

/// Usage text for `--help` and errors.
pub const USAGE: &str = "\
usage: courier [--config PATH] [COMMAND]

commands:
  serve                            run the server (the default)
  token --user ID [--ttl SECONDS]  print a JWT for user ID signed with the configured
                                   secret (default ttl 3600); warns when the configured
                                   database has no such user; `alice` / `bob` name the demo
                                   users when no user has that id; refused with
                                   COURIER_ENV=production
  seed-demo                        create two users and an ACTIVE connection in the configured
                                   database and print their ids and tokens (valid one hour);
                                   refused with COURIER_ENV=production
  hash-password                    read a password on stdin (one line) and print its bcrypt
                                   hash, for admin.password_hash
  help                             show this text

options:
  --config PATH   an extra TOML settings file, above config/local.toml and below the environment
  -V, --version   print the version
";

/// What `--version` prints.
pub(crate) const VERSION: &str = concat!("courier ", env!("CARGO_PKG_VERSION"), "\n");

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the server.
    Serve,
    /// Print a token.
    Token { user: String, ttl: u64 },
    /// Create demo users and a connection.
    SeedDemo,
    /// Read a password on stdin and print its bcrypt hash.
    HashPassword,
    /// Print usage.
    Help,
    /// Print the version.
    Version,
}

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    /// `--config PATH`.
    pub config: Option<PathBuf>,
    /// The subcommand.
    pub command: Command,
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Cli, String> {
    let mut config = None;
    let mut command: Option<String> = None;
    let mut user = None;
    let mut ttl = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--config" => config = Some(PathBuf::from(value("--config")?)),
            "--user" => user = Some(value("--user")?),
            "--ttl" => {
                let raw = value("--ttl")?;
                ttl = Some(raw.parse::<u64>().ok().filter(|t| *t > 0).ok_or_else(|| {
                    format!("--ttl: {raw:?} is not a positive number of seconds")
                })?);
            }
            "-h" | "--help" => command = Some("help".into()),
            "-V" | "--version" => command = Some("version".into()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => {
                if command.is_some() {
                    return Err(format!("unexpected argument {s:?}"));
                }
                command = Some(s.to_string());
            }
        }
    }
    let token_flags = user.is_some() || ttl.is_some();
    let command = match command.as_deref().unwrap_or("serve") {
        "serve" => Command::Serve,
        "help" => Command::Help,
        "version" => Command::Version,
        "seed-demo" => Command::SeedDemo,
        "hash-password" => Command::HashPassword,
        "token" => Command::Token {
            user: user
                .filter(|u| !u.is_empty())
                .ok_or("token needs --user ID")?,
            ttl: ttl.unwrap_or(3600),
        },
        other => return Err(format!("unknown command {other:?}")),
    };
    if !matches!(command, Command::Token { .. }) && token_flags {
        return Err("--user and --ttl belong to the token command".into());
    }
    Ok(Cli { config, command })
}

/// The logger: `level` (`log.level`), then `rust_log` (`RUST_LOG`) over it. PostgreSQL's
/// own notices (`relation "seaql_migrations" already exists, skipping`), which sqlx logs at
/// info, are shown from warn up only, unless `RUST_LOG` names their target
/// (`sqlx::postgres::notice=info`).
pub fn logger(level: &str, rust_log: Option<&str>) -> env_logger::Builder {
    let mut builder = env_logger::Builder::new();
    builder
        .parse_filters(level)
        .filter_module("sqlx::postgres::notice", log::LevelFilter::Warn);
    if let Some(filters) = rust_log {
        builder.parse_filters(filters);
    }
    if let Ok(style) = std::env::var("RUST_LOG_STYLE") {
        builder.parse_write_style(&style);
    }
    builder
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Success; print this on standard output.
    Done(String),
    /// Refused before doing anything (exit code 2).
    Refused(String),
    /// Failed (exit code 1).
    Failed(String),
}

/// Runs the commands that need no settings (so that a half-done configuration does not
/// stand in their way): `help`, `--version`, `hash-password`. `None` for the others.
pub fn run_without_settings(command: &Command) -> Option<Outcome> {
    match command {
        Command::Help => Some(Outcome::Done(USAGE.to_string())),
        Command::Version => Some(Outcome::Done(VERSION.to_string())),
        Command::HashPassword => Some(hash_password_from_stdin()),
        _ => None,
    }
}

/// Runs `command` with `settings` (logging is already set up).
pub fn run(command: Command, settings: Settings) -> Outcome {
    match command {
        Command::Help | Command::Version | Command::HashPassword => {
            run_without_settings(&command).unwrap_or_else(unreachable_outcome)
        }
        Command::Token { .. } | Command::SeedDemo if settings.is_production() => {
            Outcome::Refused("this command is refused with COURIER_ENV=production".into())
        }
        Command::Token { user, ttl } => {
            let user = match actix_web::rt::System::new().block_on(check_user(&settings, &user)) {
                UserCheck::Exists => user,
                UserCheck::Demo(id) => {
                    eprintln!(
                        "courier: no user has the id {user:?}: this token is for the demo user \
                         {user} (id {id}) of {}",
                        crate::setting::redact_url(&settings.database.url)
                    );
                    id
                }
                UserCheck::Missing => {
                    eprintln!(
                        "courier: warning: no user has the id {user:?} in {}: the token is \
                         valid, but its socket will be part of no conversation (`--user alice` \
                         or `--user bob` name the demo users `seed-demo` made)",
                        crate::setting::redact_url(&settings.database.url)
                    );
                    user
                }
                UserCheck::Unknown(why) => {
                    eprintln!("courier: warning: cannot check that user {user:?} exists: {why}");
                    user
                }
            };
            match authenticator(&settings).issue(&user, Duration::from_secs(ttl)) {
                Ok(token) => Outcome::Done(format!("{token}\n")),
                Err(e) => Outcome::Failed(format!("cannot sign a token: {e}")),
            }
        }
        Command::SeedDemo => match actix_web::rt::System::new().block_on(seed_demo(&settings)) {
            Ok(out) => Outcome::Done(out),
            Err(e) => Outcome::Failed(format!("seed-demo failed: {e}")),
        },
        Command::Serve => {
            crate::app::raise_open_file_limit(settings.engineio.max_sessions);
            let served = actix_web::rt::System::new().block_on(async move {
                let app = Application::build(settings).await?;
                app.handle_signals();
                app.run_until_stopped().await.map_err(AppError::Bind)
            });
            match served {
                Ok(()) => Outcome::Done(String::new()),
                Err(e) => Outcome::Failed(format!("server failed: {e}")),
            }
        }
    }
}

/// bcrypt's cost for `hash-password` (the `bcrypt` crate's default, 2^12 rounds).
pub(crate) const HASH_COST: u32 = bcrypt::DEFAULT_COST;

/// `hash-password`: one line from stdin, hashed. Needs no settings (the binary runs it
/// before loading them, so that a half-done `[admin]` section does not stand in the way).
pub(crate) fn hash_password_from_stdin() -> Outcome {
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(_) => match hash_password(&line) {
            Ok(hash) => Outcome::Done(format!("{hash}\n")),
            Err(e) => Outcome::Refused(e),
        },
        Err(e) => Outcome::Failed(format!("cannot read the password: {e}")),
    }
}

/// The bcrypt hash of `line` (a password as read from stdin: the line end is not part of it).
pub(crate) fn hash_password(line: &str) -> Result<String, String> {
    let password = line.strip_suffix('\n').unwrap_or(line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err("the password is empty (give it on stdin, one line)".into());
    }
    if password.len() > 72 {
        // bcrypt reads 72 bytes at most: a longer password would be cut silently.
        return Err("the password is longer than bcrypt's 72 bytes".into());
    }
    bcrypt::hash(password, HASH_COST).map_err(|e| format!("cannot hash: {e}"))
}

/// Not reached: [`run_without_settings`] answers these commands.
fn unreachable_outcome() -> Outcome {
    Outcome::Failed("internal error: a command without settings reached run".into())
}

/// Whether `token --user ID` names a user of the configured database.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UserCheck {
    /// A user has that id.
    Exists,
    /// No user has that id, but it names a demo user (`alice`, `bob`): theirs.
    Demo(String),
    /// No user has that id.
    Missing,
    /// The database could not be read (the reason).
    Unknown(String),
}

/// Looks `user` up in the configured database, read-only (an embedded SQLite file that does
/// not exist yet is not created by this).
async fn check_user(settings: &Settings, user: &str) -> UserCheck {
    use sea_orm::EntityTrait;
    let url = settings.database.url.replace("mode=rwc", "mode=ro");
    let db = match db::open(&url).await {
        Ok(db) => db,
        Err(_) if url.starts_with("sqlite:") && url.contains("mode=ro") => {
            return UserCheck::Unknown(format!(
                "there is no database at {} yet (the server makes it, and the demo users, on \
                 its first start; or run `courier seed-demo`)",
                crate::setting::redact_url(&settings.database.url)
            ))
        }
        Err(e) => {
            return UserCheck::Unknown(db::open_error(
                &e,
                &settings.database.url,
                settings.database_url_source.as_deref(),
            ))
        }
    };
    match entity::users::Entity::find_by_id(user.to_string())
        .one(&db)
        .await
    {
        Ok(Some(_)) => UserCheck::Exists,
        Ok(None) => match crate::http::demo::demo_user(&db, user).await {
            Ok(Some(id)) => UserCheck::Demo(id),
            Ok(None) => UserCheck::Missing,
            Err(e) => UserCheck::Unknown(e.to_string()),
        },
        Err(e) => UserCheck::Unknown(format!(
            "{e} (in {})",
            crate::setting::redact_url(&settings.database.url)
        )),
    }
}

fn authenticator(settings: &Settings) -> Authenticator {
    Authenticator::new(&settings.auth.secret, settings.auth.leeway)
}

/// `seed-demo`: the demo users, their connection and an hour-long token for each.
async fn seed_demo(settings: &Settings) -> Result<String, Box<dyn std::error::Error>> {
    let db = db::connect(&settings.database).await.map_err(|e| {
        db::open_error(
            &e,
            &settings.database.url,
            settings.database_url_source.as_deref(),
        )
    })?;
    db::migrate(&db, settings.database.migrate).await?;
    let demo = db::seed::seed_demo(&db).await?;
    let auth = authenticator(settings);
    let hour = Duration::from_secs(3600);
    let next = if settings.uses_development_secret() {
        format!(
            "next: start the server on this database (`cargo run --release`, or `courier`, \
             with the same settings) and open http://localhost:{}/demo",
            settings.server.port
        )
    } else {
        "next: start the server and connect socket.io-client with one of these tokens \
         (README: Connecting a client); the demo page needs the development secret"
            .to_string()
    };
    Ok(format!(
        "connectionId: {}\nalice:        {}\nalice token:  {}\nbob:          {}\nbob token:    {}\n{next}\n",
        demo.connection,
        demo.alice,
        auth.issue(&demo.alice, hour)?,
        demo.bob,
        auth.issue(&demo.bob, hour)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Cli, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn serve_is_the_default() {
        assert_eq!(p(&[]).unwrap().command, Command::Serve);
        assert_eq!(p(&["seed-demo"]).unwrap().command, Command::SeedDemo);
        let cli = p(&["--config", "x.toml", "serve"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("x.toml")));
    }

    #[test]
    fn token_takes_user_and_ttl() {
        assert_eq!(
            p(&["token", "--user", "u1"]).unwrap().command,
            Command::Token {
                user: "u1".into(),
                ttl: 3600
            }
        );
        assert_eq!(
            p(&["token", "--user=u2", "--ttl", "60"]).unwrap().command,
            Command::Token {
                user: "u2".into(),
                ttl: 60
            }
        );
        assert!(p(&["token"]).is_err());
        assert!(p(&["token", "--user", "u", "--ttl", "soon"]).is_err());
        assert!(p(&["serve", "--user", "u"]).is_err());
        assert!(p(&["launch"]).is_err());
        assert!(p(&["--verbose"]).is_err());
    }

    #[test]
    fn version_flags() {
        for flag in ["-V", "--version"] {
            let command = p(&[flag]).unwrap().command;
            assert_eq!(command, Command::Version);
            assert_eq!(
                run_without_settings(&command),
                Some(Outcome::Done(format!(
                    "courier {}\n",
                    env!("CARGO_PKG_VERSION")
                )))
            );
        }
    }

    #[test]
    fn hash_password_hashes_one_line() {
        assert_eq!(
            p(&["hash-password"]).unwrap().command,
            Command::HashPassword
        );
        let hash = hash_password("s3cret\n").unwrap();
        assert!(bcrypt::verify("s3cret", &hash).unwrap());
        let hash = hash_password("s3cret\r\n").unwrap();
        assert!(bcrypt::verify("s3cret", &hash).unwrap());
        assert!(hash_password("\n").is_err());
        assert!(hash_password(&"x".repeat(73)).is_err());
    }
}
