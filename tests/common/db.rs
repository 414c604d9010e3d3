//! Test databases: a temporary SQLite file, a fresh PostgreSQL schema, or a fresh schema
//! laid out exactly as Prisma creates the app's tables. Each is removed when dropped.

use std::sync::atomic::{AtomicUsize, Ordering};

use entity::{connections, messages, users};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder, Set,
};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The PostgreSQL server tests use.
pub fn postgres_base_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Whether the tests reach PostgreSQL through PgBouncer in transaction mode
/// (`TEST_DATABASE_URL` with `pgbouncer=true`): each test then has a database of its own
/// rather than a schema (a pooler cannot carry a per-session search path).
pub fn through_pgbouncer() -> bool {
    courier::db::split_params(&postgres_base_url()).1.pgbouncer
}

/// `url` (`postgres://…/DB?…`) naming database `name` instead.
fn with_database(url: &str, name: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let authority = head.find("://").map_or(0, |i| i + 3);
    let host_end = head[authority..]
        .find('/')
        .map_or(head.len(), |i| authority + i);
    let mut out = format!("{}/{name}", &head[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A pool on `url` as Courier opens it (its Prisma parameters applied).
async fn open(url: &str, max: Option<u32>) -> DatabaseConnection {
    let (mut options, _) = courier::db::options(url);
    if let Some(max) = max {
        options.max_connections(max);
    }
    Database::connect(options)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is required for this test: {e}"))
}

/// What to remove when the test is over.
enum Cleanup {
    File(String),
    Schema(String),
    Database(String),
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    )
}

/// The database `url` names, if any, and the same URL on the server's `postgres` database.
fn maintenance_url(url: &str) -> Option<(String, String)> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let (server, name) = base.rsplit_once('/')?;
    if name.is_empty() || !server.contains("://") || server.ends_with('/') {
        return None;
    }
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    Some((name.to_string(), format!("{server}/postgres{query}")))
}

/// Connects to the PostgreSQL database at `url`, creating it first when the server runs
/// but has no such database (so the tests set up what they need: a fresh server needs no
/// `createdb test`). Several tests may race to create it: one does, the others find it.
/// The error is one line naming the URL and what to do.
pub async fn create_database_if_missing(url: &str) -> Result<DatabaseConnection, String> {
    let what_to_do = "start PostgreSQL there, or set TEST_DATABASE_URL to a server the tests \
                      may use (e.g. postgres://postgres@127.0.0.1:5432/test)";
    let missing = match Database::connect(url).await {
        Ok(db) => return Ok(db),
        Err(e) if sqlstate(&e).as_deref() == Some("3D000") => e,
        Err(e) => {
            return Err(format!(
                "PostgreSQL at {url} is required: {e}; {what_to_do}"
            ))
        }
    };
    let Some((name, maintenance)) = maintenance_url(url) else {
        return Err(format!("PostgreSQL at {url}: {missing}"));
    };
    let admin = Database::connect(maintenance.as_str()).await.map_err(|e| {
        format!("{missing}, and it cannot be created through {maintenance}: {e}; create it yourself (createdb {name})")
    })?;
    let create = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    match admin.execute_unprepared(&create).await {
        Ok(_) => {}
        // duplicate_database, or the unique index of pg_database: another test was first.
        Err(e) if matches!(sqlstate(&e).as_deref(), Some("42P04" | "23505")) => {}
        Err(e) => {
            return Err(format!(
                "{missing}, and creating it failed: {e}; create it yourself (createdb {name}) \
                 or set TEST_DATABASE_URL"
            ))
        }
    }
    let _ = admin.close().await;
    Database::connect(url)
        .await
        .map_err(|e| format!("PostgreSQL at {url}, just created: {e}"))
}

/// The SQLSTATE of a database error, if it is one.
fn sqlstate(e: &sea_orm::DbErr) -> Option<String> {
    use sea_orm::RuntimeErr;
    match e {
        sea_orm::DbErr::Conn(RuntimeErr::SqlxError(e))
        | sea_orm::DbErr::Exec(RuntimeErr::SqlxError(e))
        | sea_orm::DbErr::Query(RuntimeErr::SqlxError(e)) => match &**e {
            sea_orm::sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        },
        _ => None,
    }
}

/// Which kind of database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A temporary SQLite file; Courier migrates it.
    Sqlite,
    /// A fresh PostgreSQL schema; Courier migrates it.
    Postgres,
    /// A fresh PostgreSQL schema holding the app's Prisma layout and `_prisma_migrations`.
    PrismaPostgres,
}

/// A database for one test.
pub struct TestDb {
    /// The URL to give Courier.
    pub url: String,
    /// The test's own connection (for seeding and checking).
    pub conn: DatabaseConnection,
    kind: Kind,
    cleanup: Option<Cleanup>,
    /// The server's URL (what the cleanup connects to).
    base: String,
}

impl TestDb {
    pub async fn new(kind: Kind) -> TestDb {
        Self::new_on(kind, &postgres_base_url()).await
    }

    /// A database on the PostgreSQL server at `base` (`TEST_DATABASE_URL`'s form; with
    /// `pgbouncer=true` a database of its own, else a schema).
    pub async fn new_on(kind: Kind, base: &str) -> TestDb {
        let base = base.to_string();
        match kind {
            Kind::Sqlite => {
                let path = std::env::temp_dir().join(format!("{}.db", unique("courier_test")));
                let url = format!("sqlite://{}?mode=rwc", path.display());
                let conn = Database::connect(url.as_str()).await.expect("sqlite opens");
                TestDb {
                    url,
                    conn,
                    kind,
                    cleanup: Some(Cleanup::File(path.display().to_string())),
                    base,
                }
            }
            Kind::Postgres | Kind::PrismaPostgres => {
                let pgbouncer = courier::db::split_params(&base).1.pgbouncer;
                if !pgbouncer {
                    if let Err(e) = create_database_if_missing(&base).await {
                        panic!("{e}");
                    }
                }
                let admin = open(&base, Some(1)).await;
                let (url, conn, cleanup) = if pgbouncer {
                    let name = unique("courier_test");
                    admin
                        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                        .await
                        .expect("create database");
                    let url = with_database(&base, &name);
                    let conn = open(&url, None).await;
                    (url, conn, Cleanup::Database(name))
                } else {
                    let schema = unique("courier_test");
                    admin
                        .execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
                        .await
                        .expect("create schema");
                    // Every connection to this schema carries its name, so that the cleanup
                    // can end them all: pools held by actors that outlive the test would
                    // otherwise keep their connections until the process exits, and the
                    // shared server takes 100 at most.
                    let separator = if base.contains('?') { '&' } else { '?' };
                    let named = format!("{base}{separator}application_name={schema}");
                    let mut options = ConnectOptions::new(named.clone());
                    options.set_schema_search_path(schema.clone());
                    let conn = Database::connect(options).await.expect("connect to schema");
                    let url = format!("{named}&schema={schema}");
                    (url, conn, Cleanup::Schema(schema))
                };
                if kind == Kind::PrismaPostgres {
                    let ddl = std::fs::read_to_string(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/../shared/reference/prisma-layout.sql"
                    ))
                    .expect("prisma-layout.sql is readable");
                    conn.execute_unprepared(&ddl).await.expect("prisma layout");
                    conn.execute_unprepared(
                        "CREATE TABLE \"_prisma_migrations\" (\"id\" VARCHAR(36) PRIMARY KEY, \
                         \"checksum\" VARCHAR(64) NOT NULL, \"migration_name\" VARCHAR(255) NOT NULL)",
                    )
                    .await
                    .expect("_prisma_migrations");
                }
                TestDb {
                    url,
                    conn,
                    kind,
                    cleanup: Some(cleanup),
                    base,
                }
            }
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Inserts a user; returns its id.
    pub async fn user(&self, name: &str) -> String {
        let id = unique(name).replace('_', "");
        users::ActiveModel {
            id: Set(id.clone()),
            email: Set(format!("{id}@example.test")),
            name: Set(Some(name.into())),
            updated_at: Set(entity::now_utc_ms()),
            ..Default::default()
        }
        .insert(&self.conn)
        .await
        .expect("insert user");
        id
    }

    /// Inserts a connection between `a` and `b` (smaller id first, as the app does).
    pub async fn connection(&self, a: &str, b: &str, status: &str) -> String {
        let id = unique("conn").replace('_', "");
        let (user1, user2) = if a < b { (a, b) } else { (b, a) };
        connections::ActiveModel {
            id: Set(id.clone()),
            user1_id: Set(user1.into()),
            user2_id: Set(user2.into()),
            status: Set(status.into()),
            updated_at: Set(entity::now_utc_ms()),
            ..Default::default()
        }
        .insert(&self.conn)
        .await
        .expect("insert connection");
        id
    }

    /// Changes a connection's status behind Courier's back, as the app does.
    pub async fn set_status(&self, connection_id: &str, status: &str) {
        connections::Entity::update_many()
            .col_expr(
                connections::Column::Status,
                sea_orm::sea_query::Expr::value(status),
            )
            .filter(connections::Column::Id.eq(connection_id))
            .exec(&self.conn)
            .await
            .expect("update status");
    }

    /// The messages of a connection, oldest first.
    pub async fn messages(&self, connection_id: &str) -> Vec<messages::Model> {
        messages::Entity::find()
            .filter(messages::Column::ConnectionId.eq(connection_id))
            .order_by_asc(messages::Column::CreatedAt)
            .order_by_asc(messages::Column::Id)
            .all(&self.conn)
            .await
            .expect("read messages")
    }

    /// The contents of a connection's messages, oldest first.
    pub async fn contents(&self, connection_id: &str) -> Vec<String> {
        self.messages(connection_id)
            .await
            .into_iter()
            .map(|m| m.content)
            .collect()
    }

    /// A user's presence columns: `(isOnline, connectionCount)`.
    pub async fn presence(&self, user: &str) -> (bool, i32) {
        let row = users::Entity::find_by_id(user.to_string())
            .one(&self.conn)
            .await
            .expect("read users")
            .expect("the user's row");
        (row.is_online, row.connection_count)
    }

    /// A connection pool of its own to this database (at most `max` sessions).
    pub async fn connect(&self, max: u32) -> DatabaseConnection {
        open(&self.url, Some(max)).await
    }

    /// Holds the `messages` table from another session so that writes wait: `LOCK TABLE`
    /// in a transaction on PostgreSQL, `BEGIN IMMEDIATE` on SQLite.
    pub async fn lock_messages(&self) -> MessagesLock {
        // One session, so that BEGIN, the lock and COMMIT run on the same one.
        let conn = self.connect(1).await;
        match conn.get_database_backend() {
            sea_orm::DbBackend::Postgres => {
                conn.execute_unprepared("BEGIN").await.expect("begin");
                conn.execute_unprepared("LOCK TABLE \"messages\" IN EXCLUSIVE MODE")
                    .await
                    .expect("lock messages");
            }
            _ => {
                conn.execute_unprepared("BEGIN IMMEDIATE")
                    .await
                    .expect("begin immediate");
            }
        }
        MessagesLock { conn }
    }

    /// A message by id.
    pub async fn message(&self, id: &str) -> Option<messages::Model> {
        messages::Entity::find_by_id(id.to_string())
            .one(&self.conn)
            .await
            .expect("read message")
    }
}

/// The lock of [`TestDb::lock_messages`].
pub struct MessagesLock {
    conn: DatabaseConnection,
}

impl MessagesLock {
    /// Ends the other session's transaction: writes go on.
    pub async fn release(self) {
        self.conn
            .execute_unprepared("COMMIT")
            .await
            .expect("commit");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(target) = self.cleanup.take() else {
            return;
        };
        let statements = match target {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
                return;
            }
            // Its connections first (application_name, see `TestDb::new_on`).
            Cleanup::Schema(schema) => vec![
                format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = '{schema}'"
                ),
                format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
            ],
            // The pooler's server connections to it go with it.
            Cleanup::Database(name) => {
                vec![format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")]
            }
        };
        execute_on(self.base.clone(), statements);
    }
}

/// Runs `statements` on the server at `url` (errors ignored), from a thread and runtime of
/// its own: for a `Drop`, which cannot await.
pub fn execute_on(url: String, statements: Vec<String>) {
    let done = super::on_own_runtime(async move {
        let (options, _) = courier::db::options(&url);
        if let Ok(admin) = Database::connect(options).await {
            for sql in &statements {
                let _ = admin.execute_unprepared(sql).await;
            }
            let _ = admin.close().await;
        }
    });
    let _ = done.join();
}
