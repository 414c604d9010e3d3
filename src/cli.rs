//! Command-line arguments:
//! `courier [--config PATH] [serve | token --user ID [--ttl SECONDS] | seed-demo]`.

use std::path::PathBuf;

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
}
