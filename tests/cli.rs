//! The `courier` binary: `token`, `seed-demo`, and how bad settings stop it.

mod common;

use std::process::Command;

use common::db::{Kind, TestDb};
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

fn courier() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_courier"));
    // Run away from the repository's config/ directory, with a clean environment.
    cmd.current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
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
        .env("SOCKET_SECRET", "real-secret")
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
        .env("SOCKET_SECRET", "real-secret")
        .env("DATABASE_URL", "sqlite::memory:")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Starts the binary with `env` (port 0); returns it and the address it logged.
fn serve(env: &[(&str, &str)]) -> (std::process::Child, String, String) {
    use std::io::{BufRead, BufReader};
    let mut cmd = courier();
    cmd.env("PORT", "0")
        .env("DATABASE_URL", "sqlite::memory:")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut log = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if let Some(at) = line.find("listening on http://") {
            let addr = line[at + "listening on http://".len()..].trim().to_string();
            return (child, addr, log);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("courier did not start:\n{log}");
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

#[test]
fn production_refuses_the_built_in_database() {
    let out = courier()
        .env("COURIER_ENV", "production")
        .env("SOCKET_SECRET", "real-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("database.url"), "{stderr}");
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
