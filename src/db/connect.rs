//! Connecting: SQLite or PostgreSQL, Prisma's `?schema=` and `?pgbouncer=true` taken off the
//! URL and applied, short timeouts, and one clear line when the database cannot be opened.

use std::time::Duration;

use log::info;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, Statement};

use super::settings::DatabaseSettings;
use crate::setting::redact_url;

/// What `database.url` says besides the URL sqlx reads: Prisma's parameters, which Courier
/// takes off the URL (sqlx does not know them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlParams {
    /// `schema=NAME`: the search path (PostgreSQL).
    pub schema: Option<String>,
    /// `pgbouncer=true`: the database is reached through PgBouncer (or another pooler) in
    /// transaction mode: no named prepared statements, no `extra_float_digits` startup
    /// parameter, no session state (`SET search_path`).
    pub pgbouncer: bool,
}

/// Splits Prisma's `schema=NAME` and `pgbouncer=true` query parameters off a PostgreSQL URL.
/// Returns the URL without them and what they say.
pub fn split_params(url: &str) -> (String, UrlParams) {
    let mut params = UrlParams::default();
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), params);
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return (url.to_string(), params);
    }
    let rest: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.split_once('=') {
            Some(("schema", value)) if !value.is_empty() => {
                params.schema = Some(percent_decode(value));
                false
            }
            Some(("pgbouncer", value)) => {
                params.pgbouncer = value.eq_ignore_ascii_case("true") || value == "1";
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
    (url, params)
}

/// Splits a Prisma-style `schema=NAME` query parameter off a PostgreSQL URL (Prisma's
/// convention; sqlx does not know it), and `pgbouncer=…` with it. Returns the URL without
/// them and the schema.
pub fn split_schema(url: &str) -> (String, Option<String>) {
    let (url, params) = split_params(url);
    (url, params.schema)
}

/// SeaORM's options for `url` (its Prisma parameters applied, [`UrlParams`]); the schema
/// the sessions must be in when it cannot be set per session (through PgBouncer).
pub fn options(url: &str) -> (ConnectOptions, Option<String>) {
    let (base, params) = split_params(url);
    let mut options = ConnectOptions::new(base);
    options.sqlx_logging(false);
    if params.pgbouncer {
        // The statement cache off: with the patched sqlx-postgres (vendor/README.md) every
        // statement is the unnamed one, parsed in the same `Sync` as its execution. And no
        // `extra_float_digits` at startup, which PgBouncer refuses unless told to ignore it
        // (Courier reads floats in binary).
        options.map_sqlx_postgres_opts(|o| o.statement_cache_capacity(0).extra_float_digits(None));
        // `SET search_path` would stay on whichever server connection ran it, for whoever
        // gets it next: the role's (or the database's) own search path must be the schema.
        return (options, params.schema);
    }
    if let Some(schema) = params.schema {
        options.set_schema_search_path(schema);
    }
    (options, None)
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

/// Opens the database of `settings` (and says which in the log).
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let db = open(&settings.url).await?;
    info!("database: {}", redact_url(&settings.url));
    Ok(db)
}

/// Opens the database at `url`, quietly.
pub async fn open(url: &str) -> Result<DatabaseConnection, DbErr> {
    let (mut options, schema) = options(url);
    // Short timeouts: a database that does not answer is retried (`database.retry_for`),
    // not waited for.
    options
        .connect_timeout(Duration::from_secs(2))
        .acquire_timeout(Duration::from_secs(2));
    let db = Database::connect(options).await?;
    if let Some(schema) = schema {
        check_schema(&db, &schema).await?;
    }
    Ok(db)
}

/// Through PgBouncer, `schema=NAME` is not set per session but must already be the
/// sessions' schema (the role's or the database's search path): refuses to go on otherwise.
pub async fn check_schema(db: &DatabaseConnection, schema: &str) -> Result<(), DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT current_schema() AS s",
        ))
        .await?;
    let current: Option<String> = match row {
        Some(row) => row.try_get("", "s")?,
        None => None,
    };
    if current.as_deref() == Some(schema) {
        return Ok(());
    }
    Err(DbErr::Custom(format!(
        "database.url has schema={schema} and pgbouncer=true, but the sessions' schema is {}: \
         a pooler in transaction mode cannot carry a per-session search path; make it the \
         role's or the database's (ALTER ROLE <user> SET search_path = \"{schema}\"), or \
         leave schema= out",
        current.as_deref().unwrap_or("none"),
    )))
}

/// One line for a database that could not be opened: the URL (its password hidden), the
/// setting and where it came from, the cause, and what to do.
pub fn open_error(e: &DbErr, url: &str, source: Option<&str>) -> String {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::{ConnAcquireErr, RuntimeErr};
    const SET: &str = "DATABASE_URL (database.url)";
    let url = redact_url(url);
    let source = source.unwrap_or("config/default.toml, the embedded SQLite file");
    let unreachable = || {
        format!(
            "no connection within 2 s: is the database server running and reachable there? \
             Start it, or set {SET} to one that answers"
        )
    };
    let sqlx = match e {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => None,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(&**e),
        _ => None,
    };
    let why = match sqlx {
        None if matches!(e, DbErr::ConnectionAcquire(_)) => unreachable(),
        Some(Sqlx::PoolTimedOut | Sqlx::Io(_)) => unreachable(),
        Some(Sqlx::Database(db)) => {
            let message = db.message();
            match db.code().as_deref() {
                // PostgreSQL: invalid_catalog_name.
                Some("3D000") => format!(
                    "{message}: create it (e.g. `createdb` with the URL's host, user and name) \
                     or set {SET} to a database that exists"
                ),
                // PostgreSQL: invalid_password, invalid_authorization_specification.
                Some("28P01" | "28000") => {
                    format!("{message}: check the user and password in {SET}")
                }
                // SQLite: SQLITE_CANTOPEN.
                Some("14") => format!(
                    "{message}: the SQLite file cannot be opened or created; check that its \
                     directory exists and is writable, or set {SET} elsewhere"
                ),
                _ => format!("{message}; check {SET}"),
            }
        }
        Some(other) => format!("{other}; check {SET}"),
        None => format!("{e}; check {SET}"),
    };
    format!("cannot open the database {url} (database.url, from {source}): {why}")
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

    #[test]
    fn prisma_pgbouncer_parameter_is_read_and_taken_off() {
        assert_eq!(
            split_params("postgresql://u@h:6432/db?pgbouncer=true&schema=app&sslmode=disable"),
            (
                "postgresql://u@h:6432/db?sslmode=disable".to_string(),
                UrlParams {
                    schema: Some("app".into()),
                    pgbouncer: true
                }
            )
        );
        assert_eq!(
            split_params("postgres://u@h/db?pgbouncer=false"),
            ("postgres://u@h/db".to_string(), UrlParams::default())
        );
        // Through PgBouncer the schema is not set per session: it is to be checked.
        let (_, schema) = options("postgres://u@h/db?pgbouncer=true&schema=app");
        assert_eq!(schema.as_deref(), Some("app"));
        let (_, schema) = options("postgres://u@h/db?schema=app");
        assert_eq!(schema, None);
    }
}
