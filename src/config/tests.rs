//! The settings' loading and checks, through `Settings::load`.

use super::*;
use crate::engineio::TransportKind;
use std::collections::HashMap;
use std::path::PathBuf;

/// A secret long enough for production.
const LONG: &str = "a-production-secret-of-forty-bytes-0123";

fn load(env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    Settings::load(&LoadOptions {
        config_dir: Some(PathBuf::from("/nonexistent-courier-config")),
        config_file: None,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

#[test]
fn the_old_max_pending_sends_is_accepted_with_a_warning_naming_its_replacement() {
    assert!(load(&[]).unwrap().warnings().is_empty());
    let s = load(&[("COURIER__CHAT__MAX_PENDING_SENDS", "64")]).unwrap();
    let warnings = s.warnings();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("chat.max_pending_sends"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("chat.send_window"), "{}", warnings[0]);
    assert!(!warnings[0].contains('\n'), "one line");
    assert_eq!(s.chat.send_window, 32, "the default window applies");
}

#[test]
fn batch_max_is_bounded_by_the_statement_parameter_limit() {
    assert_eq!(load(&[]).unwrap().database.batch_max, 512);
    let e = load(&[("COURIER__DATABASE__BATCH_MAX", "5000")]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("database.batch_max"));
    assert!(load(&[("COURIER__DATABASE__BATCH_MAX", "2978")]).is_ok());
    let e = load(&[("COURIER__CHAT__SEND_WINDOW", "0")]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("chat.send_window"));
}

#[test]
fn the_development_secret_binds_loopback_only() {
    let dev = load(&[("COURIER__SERVER__HOST", "0.0.0.0")]).unwrap();
    assert!(dev.uses_development_secret());
    assert_eq!(dev.bind_host(), "127.0.0.1");
    let dev6 = load(&[("COURIER__SERVER__HOST", "::")]).unwrap();
    assert_eq!(dev6.bind_host(), "::1");
    let real = load(&[
        ("COURIER__SERVER__HOST", "0.0.0.0"),
        ("SOCKET_SECRET", "a-real-secret"),
    ])
    .unwrap();
    assert_eq!(real.bind_host(), "0.0.0.0");
}

#[test]
fn production_needs_an_explicit_database() {
    let e = load(&[("COURIER_ENV", "production"), ("SOCKET_SECRET", LONG)]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("database.url"));
    assert!(e.message.contains("DATABASE_URL"), "{e}");
    let s = load(&[
        ("COURIER_ENV", "production"),
        ("SOCKET_SECRET", LONG),
        ("DATABASE_URL", "postgres://u@h/db"),
    ])
    .unwrap();
    assert_eq!(
        s.database_url_source.as_deref(),
        Some("environment variable DATABASE_URL")
    );
    // Outside production the built-in SQLite file is fine.
    let s = load(&[("SOCKET_SECRET", LONG)]).unwrap();
    assert!(s.database_is_default());
}

/// The repository's config/default.toml on disk is not the deployer's choice, whatever it
/// says; config/{env}.toml, config/local.toml, --config and the environment are.
#[test]
fn production_does_not_count_the_repositorys_default_toml() {
    let dir = std::env::temp_dir().join(format!("courier-prod-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("default.toml"),
        format!("[auth]\nsecret = \"{LONG}\"\n[database]\nurl = \"postgres://u@h/db\"\n"),
    )
    .unwrap();
    let load_in = |env: &[(&str, &str)], file: Option<PathBuf>| {
        Settings::load(&LoadOptions {
            config_dir: Some(dir.clone()),
            config_file: file,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    };
    let production = ("COURIER_ENV", "production");
    let e = load_in(&[production], None).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("auth.secret"), "{e}");
    assert!(e.message.contains("SOCKET_SECRET"), "{e}");
    let e = load_in(&[production, ("SOCKET_SECRET", LONG)], None).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("database.url"), "{e}");
    // Outside production the file applies as any layer.
    let s = load_in(&[], None).unwrap();
    assert_eq!(s.database.url, "postgres://u@h/db");
    assert!(s.database_is_default());
    // Files the deployer adds count.
    let named = format!("[auth]\nsecret = \"{LONG}\"\n[database]\nurl = \"sqlite::memory:\"\n");
    std::fs::write(dir.join("production.toml"), &named).unwrap();
    let s = load_in(&[production], None).unwrap();
    assert_eq!(s.database.url, "sqlite::memory:");
    std::fs::remove_file(dir.join("production.toml")).unwrap();
    std::fs::write(dir.join("local.toml"), &named).unwrap();
    assert!(load_in(&[production], None).is_ok());
    std::fs::remove_file(dir.join("local.toml")).unwrap();
    let extra = dir.join("deploy.toml");
    std::fs::write(&extra, &named).unwrap();
    assert!(load_in(&[production], Some(extra)).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn production_refuses_a_short_secret_and_development_warns() {
    let short = &LONG[..MIN_SECRET_BYTES - 1];
    let e = load(&[
        ("COURIER_ENV", "production"),
        ("SOCKET_SECRET", short),
        ("DATABASE_URL", "postgres://u@h/db"),
    ])
    .unwrap_err();
    assert_eq!(e.key.as_deref(), Some("auth.secret"));
    assert_eq!(e.source, "environment variable SOCKET_SECRET");
    assert!(
        e.message.contains("31 bytes") && e.message.contains("32"),
        "{e}"
    );
    assert!(load(&[
        ("COURIER_ENV", "production"),
        ("SOCKET_SECRET", &LONG[..MIN_SECRET_BYTES]),
        ("DATABASE_URL", "postgres://u@h/db"),
    ])
    .is_ok());
    // Development: accepted, with one warning naming the setting.
    let warnings = load(&[("SOCKET_SECRET", short)]).unwrap().warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("auth.secret"), "{}", warnings[0]);
    assert!(!warnings[0].contains('\n'));
    assert!(load(&[("SOCKET_SECRET", LONG)])
        .unwrap()
        .warnings()
        .is_empty());
}

#[test]
fn defaults_are_the_node_servers() {
    let s = load(&[]).unwrap();
    assert_eq!(s.server.host, "0.0.0.0");
    assert_eq!(s.server.port, 4000);
    assert_eq!(s.engineio.ping_interval, 25_000);
    assert_eq!(s.engineio.ping_timeout, 20_000);
    assert_eq!(s.engineio.max_payload, 1_000_000);
    assert_eq!(
        s.engineio.transports,
        vec![TransportKind::Polling, TransportKind::Websocket]
    );
    assert_eq!(s.socketio.connect_timeout, 45_000);
    assert_eq!(s.auth.leeway, 0);
    assert_eq!(s.database.url, "sqlite://courier.db?mode=rwc");
    assert_eq!(s.database.migrate, MigrateSetting::Auto);
    assert!(s.uses_development_secret());
}

#[test]
fn nested_environment_overrides_files() {
    let s = load(&[
        ("COURIER__SERVER__PORT", "4100"),
        ("COURIER__ENGINEIO__TRANSPORTS", "websocket"),
        ("COURIER__DATABASE__MIGRATE", "false"),
    ])
    .unwrap();
    assert_eq!(s.server.port, 4100);
    assert_eq!(s.engineio.transports, vec![TransportKind::Websocket]);
    assert_eq!(s.database.migrate, MigrateSetting::Never);
}

#[test]
fn plain_node_variables_win() {
    let s = load(&[
        ("COURIER__SERVER__PORT", "4100"),
        ("PORT", "4200"),
        ("SOCKET_SECRET", "s3cret"),
        ("DATABASE_URL", "postgres://u:pw@localhost/db"),
        ("NEXTJS_URL", "http://a.example, https://b.example"),
        ("REDIS_URL", "redis://:rpw@redis.example:6380/0"),
    ])
    .unwrap();
    assert_eq!(s.server.port, 4200);
    assert_eq!(s.redis.url(), Some("redis://:rpw@redis.example:6380/0"));
    assert!(!format!("{:?}", s).contains("rpw"));
    assert_eq!(s.auth.secret, "s3cret");
    assert_eq!(s.database.url, "postgres://u:pw@localhost/db");
    assert_eq!(
        s.cors.origins,
        vec!["http://a.example", "https://b.example"]
    );
    assert!(!format!("{:?}", s).contains("pw@"));
    assert!(!format!("{:?}", s).contains("s3cret"));
}

#[test]
fn redis_is_off_by_default_and_checked_when_set() {
    let s = load(&[]).unwrap();
    assert_eq!(s.redis.url(), None);
    assert_eq!(s.redis.key, "socket.io");
    let e = load(&[("REDIS_URL", "http://nope")]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("redis.url"), "{e}");
    assert!(load(&[("COURIER__REDIS__URL", "rediss://u:p@h:6380")]).is_ok());
    assert!(load(&[("REDIS_URL", "redis+sentinel://h1:26379,h2:26379/mymaster")]).is_ok());
    assert!(load(&[("REDIS_URL", "redis+cluster://h1:7000,h2:7001")]).is_ok());
    let e = load(&[("REDIS_URL", "redis+sentinel://:secret@h1:26379")]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("redis.url"), "{e}");
    assert!(e.to_string().contains("master"), "{e}");
    assert!(!e.to_string().contains("secret"), "{e}");
    let production = [
        ("COURIER_ENV", "production"),
        ("SOCKET_SECRET", LONG),
        ("DATABASE_URL", "postgres://u@h/db"),
    ];
    let s = load(&production).unwrap();
    assert!(s.warnings().iter().any(|w| w.contains("redis.url")));
    let s = load(&[production.as_slice(), &[("REDIS_URL", "redis://h")]].concat()).unwrap();
    assert!(!s.warnings().iter().any(|w| w.contains("redis.url")));
}

#[test]
fn bad_port_names_key_and_source() {
    let e = load(&[("PORT", "forty")]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("server.port"));
    assert_eq!(e.source, "environment variable PORT");
    let e = load(&[("COURIER__SERVER__PORT", "99999")]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("server.port"));
    assert_eq!(e.source, "environment variable COURIER__SERVER__PORT");
}

#[test]
fn unknown_transport_is_refused() {
    let e = load(&[("COURIER__ENGINEIO__TRANSPORTS", "websocket,carrier-pigeon")]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("engineio.transports"), "{e}");
    assert!(e.to_string().contains("carrier-pigeon"), "{e}");
}

#[test]
fn empty_secret_is_refused() {
    let e = load(&[("SOCKET_SECRET", "")]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("auth.secret"));
    assert_eq!(e.source, "environment variable SOCKET_SECRET");
}

#[test]
fn production_refuses_development_secret() {
    let e = load(&[("COURIER_ENV", "production")]).unwrap_err();
    assert_eq!(e.key.as_deref(), Some("auth.secret"));
    let s = load(&[
        ("COURIER_ENV", "production"),
        ("SOCKET_SECRET", LONG),
        ("DATABASE_URL", "postgres://u@h/db"),
    ])
    .unwrap();
    assert!(s.is_production());
}

#[test]
fn config_file_layer_and_unknown_keys() {
    let dir = std::env::temp_dir().join(format!("courier-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("extra.toml");
    std::fs::write(&file, "[server]\nport = 4300\nprot = 1\n").unwrap();
    let e = Settings::load(&LoadOptions {
        config_dir: Some(dir.clone()),
        config_file: Some(file.clone()),
        env: HashMap::new(),
    })
    .unwrap_err();
    assert_eq!(e.key.as_deref(), Some("server.prot"), "{e}");
    assert_eq!(e.source, file.display().to_string());
    std::fs::write(&file, "[server]\nport = 4300\n").unwrap();
    std::fs::write(
        dir.join("local.toml"),
        "[server]\nport = 4400\nhost = \"127.0.0.1\"\n",
    )
    .unwrap();
    let s = Settings::load(&LoadOptions {
        config_dir: Some(dir.clone()),
        config_file: Some(file),
        env: HashMap::new(),
    })
    .unwrap();
    assert_eq!(s.server.port, 4300, "--config wins over local.toml");
    assert_eq!(s.server.host, "127.0.0.1");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn redacts_passwords() {
    assert_eq!(
        redact_url("postgres://user:secret@host:5432/db"),
        "postgres://user:***@host:5432/db"
    );
    assert_eq!(redact_url("sqlite://courier.db"), "sqlite://courier.db");
}
