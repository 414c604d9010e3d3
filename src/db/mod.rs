//! Database access: connecting (SQLite or PostgreSQL, Prisma-style `?schema=`), the startup
//! migration policy, and the chat's queries (reads here, writes in `actors::persistence`).

pub mod seed;

use std::time::Duration;

use log::{info, warn};
use migration::{MigrateMode, MigrateOutcome};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use crate::config::{redact_url, DatabaseSettings, MigrateSetting};

/// Splits a Prisma-style `schema=NAME` query parameter off a PostgreSQL URL (Prisma's
/// convention; sqlx does not know it). Returns the URL without it and the schema.
pub fn split_schema(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return (url.to_string(), None);
    }
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.split_once('=') {
            Some(("schema", value)) if !value.is_empty() => {
                schema = Some(percent_decode(value));
                false
            }
            _ => true,
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, schema)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => match std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Opens the database of `settings`.
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let (url, schema) = split_schema(&settings.url);
    let mut options = ConnectOptions::new(url);
    options
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    if let Some(schema) = schema {
        options.set_schema_search_path(schema);
    }
    let db = Database::connect(options).await?;
    info!("database: {}", redact_url(&settings.url));
    Ok(db)
}

/// Applies the migration policy (`database.migrate`).
pub async fn migrate(db: &DatabaseConnection, setting: MigrateSetting) -> Result<(), DbErr> {
    let mode = match setting {
        MigrateSetting::Auto => MigrateMode::Auto,
        MigrateSetting::Always => MigrateMode::Always,
        MigrateSetting::Never => MigrateMode::Never,
    };
    match migration::prepare(db, mode).await? {
        MigrateOutcome::Migrated => info!("database schema is up to date"),
        MigrateOutcome::SkippedPrismaManaged => {
            info!("database is managed by Prisma (_prisma_migrations): not migrating it")
        }
        MigrateOutcome::Disabled => warn!("database.migrate = false: not migrating"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prisma_schema_parameter_becomes_the_search_path() {
        assert_eq!(
            split_schema("postgresql://u@h:5432/db?schema=app"),
            (
                "postgresql://u@h:5432/db".to_string(),
                Some("app".to_string())
            )
        );
        assert_eq!(
            split_schema("postgres://u@h/db?sslmode=disable&schema=my%2Dschema&x=1"),
            (
                "postgres://u@h/db?sslmode=disable&x=1".to_string(),
                Some("my-schema".to_string())
            )
        );
        assert_eq!(
            split_schema("sqlite://courier.db?mode=rwc"),
            ("sqlite://courier.db?mode=rwc".to_string(), None)
        );
        assert_eq!(
            split_schema("postgres://u@h/db"),
            ("postgres://u@h/db".to_string(), None)
        );
    }
}
