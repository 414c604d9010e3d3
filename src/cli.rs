//! The command line: `courier [--config PATH] [serve | token --user ID [--ttl SECONDS] |
//! seed-demo | hash-password]`, parsed by [`parse`] and carried out by [`run`].

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
                                   secret (default ttl 3600); refused with COURIER_ENV=production
  seed-demo                        create two users and an ACTIVE connection in the configured
                                   database and print their ids and tokens (valid one hour);
                                   refused with COURIER_ENV=production
  hash-password                    read a password on stdin (one line) and print its bcrypt
                                   hash, for admin.password_hash
  help                             show this text

options:
  --config PATH   an extra TOML settings file, above config/local.toml and below the environment
";

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

/// Runs `command` with `settings` (logging is already set up).
pub fn run(command: Command, settings: Settings) -> Outcome {
    match command {
        Command::Help => Outcome::Done(USAGE.to_string()),
        Command::HashPassword => hash_password_from_stdin(),
        Command::Token { .. } | Command::SeedDemo if settings.is_production() => {
            Outcome::Refused("this command is refused with COURIER_ENV=production".into())
        }
        Command::Token { user, ttl } => {
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
pub const HASH_COST: u32 = bcrypt::DEFAULT_COST;

/// `hash-password`: one line from stdin, hashed. Needs no settings (the binary runs it
/// before loading them, so that a half-done `[admin]` section does not stand in the way).
pub fn hash_password_from_stdin() -> Outcome {
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
pub fn hash_password(line: &str) -> Result<String, String> {
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

fn authenticator(settings: &Settings) -> Authenticator {
    Authenticator::new(&settings.auth.secret, settings.auth.leeway)
}

/// `seed-demo`: the demo users, their connection and an hour-long token for each.
async fn seed_demo(settings: &Settings) -> Result<String, Box<dyn std::error::Error>> {
    let db = db::connect(&settings.database).await?;
    db::migrate(&db, settings.database.migrate).await?;
    let demo = db::seed::seed_demo(&db).await?;
    let auth = authenticator(settings);
    let hour = Duration::from_secs(3600);
    Ok(format!(
        "connectionId: {}\nalice:        {}\nalice token:  {}\nbob:          {}\nbob token:    {}\n",
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
