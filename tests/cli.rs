//! The `courier` binary: `token`, `seed-demo`, and how bad settings stop it.

mod common;

use std::process::Command;

use common::db::{Kind, TestDb};
// Run away from the repository's config/ directory, with a clean environment.
use common::process::courier_command as courier;
use courier::auth::Authenticator;
use entity::connections;
use sea_orm::EntityTrait;

/// Runs `cmd`, which must succeed; returns its standard output.
fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn token_prints_a_verifiable_jwt() {
    let token = stdout_of(
        courier()
            .args(["token", "--user", "user-42", "--ttl", "120"])
            .env("SOCKET_SECRET", "cli-secret"),
    );
    let auth = Authenticator::new("cli-secret", 0);
    assert_eq!(auth.verify(token.trim()), Ok("user-42".to_string()));
    assert!(Authenticator::new("other", 0).verify(token.trim()).is_err());
}

#[test]
fn token_is_refused_in_production() {
    let out = courier()
        .args(["token", "--user", "u"])
        .env("COURIER_ENV", "production")
        .env("SOCKET_SECRET", LONG_SECRET)
        .env("DATABASE_URL", "sqlite::memory:")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_settings_exit_2_with_one_line() {
    for (var, value, key, source) in [
        ("PORT", "forty", "server.port", "environment variable PORT"),
        (
            "COURIER__ENGINEIO__TRANSPORTS",
            "websocket,pigeon",
            "engineio.transports",
            "environment variable COURIER__ENGINEIO__TRANSPORTS",
        ),
        (
            "SOCKET_SECRET",
            "",
            "auth.secret",
            "environment variable SOCKET_SECRET",
        ),
    ] {
        let out = courier().env(var, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(key) && stderr.contains(source), "{stderr}");
    }
    // The development secret is refused in production.
    let out = courier().env("COURIER_ENV", "production").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.secret"));
}

#[actix_web::test]
async fn seed_demo_creates_users_a_connection_and_tokens() {
    let db = TestDb::new(Kind::Sqlite).await;
    let stdout = stdout_of(
        courier()
            .arg("seed-demo")
            .env("DATABASE_URL", &db.url)
            .env("SOCKET_SECRET", "seed-secret"),
    );
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
    };
    let (alice, bob, connection) = (field("alice"), field("bob"), field("connectionId"));
    // And what to do next.
    assert!(field("next").contains("token"), "{stdout}");
    let auth = Authenticator::new("seed-secret", 0);
    assert_eq!(auth.verify(&field("alice token")), Ok(alice.clone()));
    assert_eq!(auth.verify(&field("bob token")), Ok(bob.clone()));
    let row = connections::Entity::find_by_id(connection)
        .one(&db.conn)
        .await
        .unwrap()
        .expect("the connection exists");
    assert_eq!(row.status, "ACTIVE");
    assert!(
        row.user1_id < row.user2_id,
        "smaller id first, as the app does"
    );
    let mut members = [row.user1_id, row.user2_id];
    members.sort();
    let mut expected = [alice, bob];
    expected.sort();
    assert_eq!(members, expected);
}

#[test]
fn seed_demo_is_refused_in_production() {
    let out = courier()
        .arg("seed-demo")
        .env("COURIER_ENV", "production")
        .env("SOCKET_SECRET", LONG_SECRET)
        .env("DATABASE_URL", "sqlite::memory:")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Spawns `cmd` with its standard error piped and reads its log, line by line, until `done`
/// says so of a line or the log ends: the child (running, unless it exited), the log up to
/// there, and whether `done` was met.
fn read_log_until(
    cmd: &mut Command,
    mut done: impl FnMut(&str) -> bool,
) -> (std::process::Child, String, bool) {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut log = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if done(&line) {
            return (child, log, true);
        }
    }
    (child, log, false)
}

/// The address in the log's `listening on http://…` line.
fn listening_address(log: &str) -> Option<String> {
    let at = log.find("listening on http://")? + "listening on http://".len();
    log[at..].lines().next().map(|addr| addr.trim().to_string())
}

/// Starts the binary with `env` (port 0); returns it and the address it logged.
fn serve(env: &[(&str, &str)]) -> (std::process::Child, String, String) {
    let mut cmd = courier();
    cmd.env("PORT", "0")
        .env("DATABASE_URL", "sqlite::memory:")
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (mut child, log, listened) =
        read_log_until(&mut cmd, |line| line.contains("listening on http://"));
    match listening_address(&log).filter(|_| listened) {
        Some(addr) => (child, addr, log),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("courier did not start:\n{log}");
        }
    }
}

#[test]
fn the_development_secret_binds_loopback_whatever_the_host() {
    let (mut child, addr, log) = serve(&[("COURIER__SERVER__HOST", "0.0.0.0")]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert!(log.contains("DEVELOPMENT secret"), "{log}");
    assert!(
        log.contains("SOCKET_SECRET"),
        "the warning says how to fix it: {log}"
    );
    // With a real secret, server.host is honoured.
    let (mut child, addr, _) = serve(&[
        ("COURIER__SERVER__HOST", "0.0.0.0"),
        ("SOCKET_SECRET", "a-real-secret"),
    ]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(addr.starts_with("0.0.0.0:"), "{addr}");
}

/// A secret long enough for production (32 bytes at least).
const LONG_SECRET: &str = "a-production-secret-of-forty-bytes-0123";

/// How a start of the binary ended.
#[derive(Debug)]
enum Start {
    /// It exited before listening: its exit code and standard error.
    Refused(Option<i32>, String),
    /// It listened (and was stopped): its log up to then.
    Listened(String),
}

/// Starts `cmd` (port 0 and metrics on a free port, unless `cmd` sets them) and reads its
/// log until it listens or exits; a server that listens is stopped.
fn start(cmd: &mut Command) -> Start {
    for key in ["PORT", "COURIER__METRICS__BIND"] {
        if !cmd.get_envs().any(|(k, v)| k == key && v.is_some()) {
            cmd.env(key, if key == "PORT" { "0" } else { "127.0.0.1:0" });
        }
    }
    let (mut child, log, listened) =
        read_log_until(cmd, |line| line.contains("listening on http://"));
    if listened {
        let _ = child.kill();
        let _ = child.wait();
        return Start::Listened(log);
    }
    Start::Refused(child.wait().unwrap().code(), log)
}

/// The project's root, where the repository's config/default.toml is.
fn project_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Production needs the database named by the deployer: the repository's own
/// config/default.toml (on disk at the project's root) is no such setting.
#[test]
fn production_refuses_the_built_in_database_wherever_it_starts() {
    assert!(project_root().join("config/default.toml").is_file());
    for dir in [project_root(), std::env::temp_dir()] {
        let started = start(
            courier()
                .current_dir(&dir)
                .env("COURIER_ENV", "production")
                .env("SOCKET_SECRET", LONG_SECRET),
        );
        let Start::Refused(code, stderr) = started else {
            panic!(
                "started in production from {} on config/default.toml's database: {started:?}",
                dir.display()
            );
        };
        assert_eq!(code, Some(2), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("database.url") && stderr.contains("DATABASE_URL"),
            "{stderr}"
        );
        // Nor is the secret of a file the repository ships.
        let started = start(
            courier()
                .current_dir(&dir)
                .env("COURIER_ENV", "production")
                .env("DATABASE_URL", "sqlite::memory:"),
        );
        let Start::Refused(code, stderr) = started else {
            panic!("started in production without SOCKET_SECRET: {started:?}");
        };
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("auth.secret"), "{stderr}");
    }
}

/// With the deployer's settings, production starts from the project's root too.
#[test]
fn production_starts_with_the_deployers_settings() {
    let started = start(
        courier()
            .current_dir(project_root())
            .env("COURIER_ENV", "production")
            .env("SOCKET_SECRET", LONG_SECRET)
            .env("DATABASE_URL", "sqlite::memory:"),
    );
    assert!(matches!(started, Start::Listened(_)), "{started:?}");
}

/// Issue 17.7: a short HS256 secret can be brute-forced offline from any token.
#[test]
fn production_refuses_a_short_secret_and_development_warns() {
    let short = &LONG_SECRET[..31];
    let started = start(
        courier()
            .env("COURIER_ENV", "production")
            .env("SOCKET_SECRET", short)
            .env("DATABASE_URL", "sqlite::memory:"),
    );
    let Start::Refused(code, stderr) = started else {
        panic!("started in production with a 31-byte secret: {started:?}");
    };
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("auth.secret") && stderr.contains("SOCKET_SECRET") && stderr.contains("32"),
        "{stderr}"
    );
    // 32 bytes are enough.
    let started = start(
        courier()
            .env("COURIER_ENV", "production")
            .env("SOCKET_SECRET", &LONG_SECRET[..32])
            .env("DATABASE_URL", "sqlite::memory:"),
    );
    assert!(matches!(started, Start::Listened(_)), "{started:?}");
    // Development starts, with one warning line naming the setting.
    let Start::Listened(log) = start(
        courier()
            .env("SOCKET_SECRET", short)
            .env("DATABASE_URL", "sqlite::memory:")
            .env("RUST_LOG", "info"),
    ) else {
        panic!("development refused a short secret");
    };
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("auth.secret"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("32"), "{log}");
}

/// Starts the binary in `dir` (port 0) and reads its log up to the line saying where the
/// demo is; returns it running, its address and its log.
fn serve_demo_in(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String, String) {
    let mut cmd = courier();
    cmd.current_dir(dir)
        .env("PORT", "0")
        .env("COURIER__METRICS__BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // "listening on" comes before the demo's line.
    let (mut child, log, told) = read_log_until(&mut cmd, |line| line.contains("demo: "));
    match listening_address(&log).filter(|_| told) {
        Some(addr) => (child, addr, log),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("courier did not say where the demo is:\n{log}");
        }
    }
}

/// `GET http://addr/path`: status and body.
async fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut resp = awc::Client::new()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .expect("GET");
    let body = resp.body().await.expect("a body");
    (
        resp.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// `cargo run` alone: with the development secret on config/default.toml's database (the
/// embedded SQLite file, made in the directory it starts from) the server makes the demo
/// users on its first start, in one log line with the URL; not again on the next start;
/// never on a database someone named.
#[actix_web::test]
async fn the_first_start_on_the_embedded_database_makes_the_demo_users() {
    let dir = std::env::temp_dir().join(format!("courier-first-start-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut sessions = Vec::new();
    for start in 0..2 {
        let (mut child, addr, log) = serve_demo_in(&dir, &[]);
        let (status, body) = http_get(&addr, "/demo/session").await;
        let _ = child.kill();
        let _ = child.wait();
        let demo_lines: Vec<&str> = log.lines().filter(|l| l.contains("demo: ")).collect();
        assert_eq!(demo_lines.len(), 1, "{log}");
        assert!(
            demo_lines[0].contains(&format!("http://{addr}/demo")),
            "{log}"
        );
        assert_eq!(
            demo_lines[0].contains("made the users Alice and Bob"),
            start == 0,
            "{log}"
        );
        assert_eq!(status, 200, "{body}");
        let session: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(session["users"][0]["name"], "Alice");
        assert_eq!(session["users"][1]["name"], "Bob");
        sessions.push(session["connectionId"].clone());
    }
    assert_eq!(sessions[0], sessions[1], "the same demo pair");
    assert!(dir.join("courier.db").is_file());

    // A database someone named gets no demo users by itself.
    let named = format!("sqlite://{}?mode=rwc", dir.join("named.db").display());
    let (mut child, addr, log) = serve_demo_in(&dir, &[("DATABASE_URL", &named)]);
    let (status, _) = http_get(&addr, "/demo/session").await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(!log.contains("made the users"), "{log}");
    assert_eq!(status, 404);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn version_prints_the_version() {
    for flag in ["-V", "--version"] {
        // Whatever the settings say.
        let out = courier().arg(flag).env("PORT", "forty").output().unwrap();
        assert!(out.status.success(), "{flag}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("courier {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

/// `token` warns on standard error when the user does not exist, and names the demo users.
#[actix_web::test]
async fn token_checks_the_user_and_knows_the_demo_users() {
    let db = TestDb::new(Kind::Sqlite).await;
    let seeded = stdout_of(courier().arg("seed-demo").env("DATABASE_URL", &db.url));
    let alice = seeded
        .lines()
        .find_map(|l| l.strip_prefix("alice:"))
        .map(|v| v.trim().to_string())
        .expect("alice's id");
    let token = |user: &str| {
        let out = courier()
            .args(["token", "--user", user])
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap();
        assert!(out.status.success());
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let id = Authenticator::new(courier::config::DEVELOPMENT_SECRET, 0)
            .verify(&token)
            .expect("a valid token");
        (id, String::from_utf8(out.stderr).unwrap())
    };
    let (id, stderr) = token("alice");
    assert_eq!(id, alice, "the demo Alice: {stderr}");
    assert!(stderr.contains("demo user"), "{stderr}");
    let (id, stderr) = token(&alice);
    assert_eq!(id, alice);
    assert!(!stderr.contains("warning"), "{stderr}");
    let (id, stderr) = token("nobody");
    assert_eq!(id, "nobody");
    assert!(
        stderr.contains("warning") && stderr.contains("\"nobody\""),
        "{stderr}"
    );
}

/// PostgreSQL's own notices (`relation "seaql_migrations" already exists, skipping`) are
/// not logged at info.
#[actix_web::test]
async fn no_postgresql_notice_at_info() {
    let db = TestDb::new(Kind::Postgres).await;
    for _ in 0..2 {
        let Start::Listened(log) = start(
            courier()
                .env("DATABASE_URL", &db.url)
                .env("RUST_LOG", "info"),
        ) else {
            panic!("courier did not start on {}", db.url);
        };
        assert!(log.contains("database schema is up to date"), "{log}");
        assert!(!log.contains("sqlx::postgres::notice"), "{log}");
        assert!(!log.contains("already exists, skipping"), "{log}");
    }
}

/// A database that does not exist, or does not answer: one line naming the setting and
/// what to do.
#[test]
fn database_errors_name_the_setting() {
    let base = common::db::postgres_base_url();
    let missing = match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/courier_no_such_database"),
        None => panic!("{base} has no database name"),
    };
    for (url, says) in [
        (
            missing.as_str(),
            "courier_no_such_database\" does not exist",
        ),
        ("postgres://postgres@127.0.0.1:1/test", "no connection"),
    ] {
        let Start::Refused(code, stderr) = start(courier().env("DATABASE_URL", url)) else {
            panic!("started on {url}");
        };
        assert_eq!(code, Some(1), "{stderr}");
        let last = stderr.trim_end().lines().last().unwrap_or_default();
        assert!(last.contains(says), "{stderr}");
        assert!(
            last.contains("DATABASE_URL") && last.contains("database.url"),
            "{stderr}"
        );
        assert!(!last.contains(" at line "), "{stderr}");
    }
}

#[test]
fn hash_password_reads_a_piped_line_and_prints_a_bcrypt_hash() {
    use std::io::Write;
    use std::process::Stdio;
    // Settings are not needed, nor read: an [admin] section still without its hash does
    // not stand in the way.
    let mut child = courier()
        .arg("hash-password")
        .env("COURIER__ADMIN__ENABLED", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped secret\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap();
    let hash = hash.trim();
    assert!(hash.starts_with("$2"), "{hash}");
    assert!(bcrypt::verify("piped secret", hash).unwrap());
    assert!(!bcrypt::verify("piped secret\n", hash).unwrap());

    // Nothing on stdin: refused.
    let out = courier()
        .arg("hash-password")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

/// Two processes on one host collide on `metrics.bind` (and `server.port`) unless each has
/// its own: the refusal names the setting and the address, not only the OS's words.
#[test]
fn a_taken_address_is_refused_naming_its_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    for (setting, port, metrics) in [
        ("metrics.bind", "0".to_string(), address.to_string()),
        (
            "server.port",
            address.port().to_string(),
            "127.0.0.1:0".into(),
        ),
    ] {
        let started = start(
            courier()
                .env("DATABASE_URL", "sqlite::memory:")
                .env("PORT", port)
                .env("COURIER__METRICS__BIND", metrics),
        );
        let Start::Refused(code, log) = started else {
            panic!("{setting}: listened on a taken address: {started:?}");
        };
        assert_ne!(code, Some(0), "{setting}: {log}");
        assert!(
            log.contains(&format!("cannot listen on 127.0.0.1:{}", address.port()))
                && log.contains(&format!("({setting})")),
            "{setting}: {log}"
        );
    }
    drop(taken);
}

/// Each session holds a socket: Courier raises its soft open-file limit to the hard limit,
/// says the ceiling, and warns when `engineio.max_sessions` does not fit under it.
#[test]
fn the_open_file_limit_is_raised_and_max_sessions_checked_against_it() {
    let hard: u64 = String::from_utf8(
        Command::new("sh")
            .args(["-c", "ulimit -Hn"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .parse()
    .unwrap_or(u64::MAX);
    if hard <= 256 {
        eprintln!("skipped: a hard open-file limit of {hard} leaves nothing to raise");
        return;
    }
    let over = (hard + 1000).to_string();
    let started = start(
        Command::new("sh")
            .args([
                "-c",
                "ulimit -Sn 256 && exec \"$0\"",
                env!("CARGO_BIN_EXE_courier"),
            ])
            .current_dir(std::env::temp_dir())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", "sqlite::memory:")
            .env("COURIER__ENGINEIO__MAX_SESSIONS", &over),
    );
    let Start::Listened(log) = started else {
        panic!("did not start: {started:?}");
    };
    assert!(
        log.contains(&format!(
            "open files: up to {hard} (soft limit raised from 256"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("engineio.max_sessions = {over}")) && log.contains("WARN"),
        "{log}"
    );
}
