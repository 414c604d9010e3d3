//! PostgreSQL tests. Each test works in its own freshly created schema (random name) and
//! drops it afterwards. The server URL comes from `TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`); if it is unreachable these tests FAIL.

mod common;

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};

use migration::sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, QueryResult,
    Statement,
};
use migration::{prepare, MigrateMode, MigrateOutcome};

fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn connect(search_path: Option<&str>) -> DatabaseConnection {
    let url = database_url();
    let mut opts = ConnectOptions::new(url.clone());
    opts.max_connections(4).sqlx_logging(false);
    if let Some(path) = search_path {
        // sea-orm runs `SET search_path = "<schema>"` on every new pool connection.
        opts.set_schema_search_path(path.to_owned());
    }
    Database::connect(opts)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is required for these tests: {e}"))
}

/// A fresh schema plus a connection whose search_path is that schema; dropped on `Drop`
/// (even when the test panics).
struct TestSchema {
    name: String,
    db: DatabaseConnection,
}

impl TestSchema {
    async fn new() -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        h.write_u32(std::process::id());
        let name = format!("courier_test_{:016x}", h.finish());
        let admin = connect(None).await;
        admin
            .execute_unprepared(&format!(r#"CREATE SCHEMA "{name}""#))
            .await
            .expect("create schema");
        admin.close().await.ok();
        let db = connect(Some(&name)).await;
        let current: String = db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT current_schema()::text AS s",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "s")
            .unwrap();
        assert_eq!(current, name, "search_path not applied");
        TestSchema { name, db }
    }

    async fn rows(&self, sql: &str) -> Vec<QueryResult> {
        self.db
            .query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn exec(&self, sql: &str) {
        self.db
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn apply_prisma_layout(&self) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/reference/prisma-layout.sql"
        );
        let sql = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        self.exec(&sql).await;
    }

    async fn tables(&self) -> BTreeSet<String> {
        self.rows(&format!(
            "SELECT table_name::text AS t FROM information_schema.tables \
             WHERE table_schema = '{}'",
            self.name
        ))
        .await
        .iter()
        .map(|r| r.try_get("", "t").unwrap())
        .collect()
    }

    async fn indexes(&self) -> BTreeSet<String> {
        self.rows(&format!(
            "SELECT indexname::text AS i FROM pg_indexes WHERE schemaname = '{}'",
            self.name
        ))
        .await
        .iter()
        .map(|r| r.try_get("", "i").unwrap())
        .collect()
    }

    async fn constraints(&self) -> BTreeSet<String> {
        self.rows(&format!(
            "SELECT conname::text AS c FROM pg_constraint c \
             JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = '{}'",
            self.name
        ))
        .await
        .iter()
        .map(|r| r.try_get("", "c").unwrap())
        .collect()
    }

    /// (table, column, data_type, datetime_precision, is_nullable, column_default)
    async fn columns(
        &self,
        table: &str,
    ) -> Vec<(String, String, Option<i32>, String, Option<String>)> {
        self.rows(&format!(
            "SELECT column_name::text AS c, data_type::text AS t, \
             datetime_precision::int4 AS p, is_nullable::text AS n, column_default::text AS d \
             FROM information_schema.columns \
             WHERE table_schema = '{}' AND table_name = '{table}' ORDER BY column_name",
            self.name
        ))
        .await
        .iter()
        .map(|r| {
            (
                r.try_get("", "c").unwrap(),
                r.try_get("", "t").unwrap(),
                r.try_get("", "p").unwrap(),
                r.try_get("", "n").unwrap(),
                r.try_get("", "d").unwrap(),
            )
        })
        .collect()
    }

    /// Full description of the schema (tables, columns, indexes with definitions,
    /// constraints with definitions), excluding `seaql_migrations`.
    async fn snapshot(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in self
            .rows(&format!(
                "SELECT table_name::text || '.' || column_name::text || ' ' || data_type::text \
                 || ' ' || coalesce(datetime_precision::text, '-') || ' ' || is_nullable::text \
                 || ' ' || coalesce(column_default::text, '-') AS x \
                 FROM information_schema.columns WHERE table_schema = '{0}' \
                 AND table_name <> 'seaql_migrations' \
                 UNION ALL SELECT indexname::text || ': ' || indexdef FROM pg_indexes \
                 WHERE schemaname = '{0}' AND tablename <> 'seaql_migrations' \
                 UNION ALL SELECT conrelid::regclass::text || ' ' || conname::text || ': ' \
                 || pg_get_constraintdef(c.oid) FROM pg_constraint c \
                 JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = '{0}' \
                 AND conrelid::regclass::text NOT LIKE '%seaql_migrations' \
                 ORDER BY 1",
                self.name
            ))
            .await
        {
            out.push(r.try_get("", "x").unwrap());
        }
        out
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop the schema from a separate runtime (we may be inside a panicking test).
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let admin = connect(None).await;
                    admin
                        .execute_unprepared(&format!(r#"DROP SCHEMA IF EXISTS "{name}" CASCADE"#))
                        .await
                        .expect("drop schema");
                    admin.close().await.ok();
                })
        })
        .join()
        .ok();
    }
}

const COURIER_TABLES: [&str; 4] = ["users", "connections", "messages", "user_online_status"];

const PRISMA_INDEXES: [&str; 17] = [
    "users_pkey",
    "users_email_key",
    "users_isOnline_idx",
    "users_lastSeenAt_idx",
    "user_online_status_pkey",
    "user_online_status_userId_idx",
    "user_online_status_timestamp_idx",
    "connections_pkey",
    "connections_user1Id_user2Id_key",
    "connections_user1Id_idx",
    "connections_user2Id_idx",
    "connections_status_idx",
    "messages_pkey",
    "messages_connectionId_idx",
    "messages_senderId_idx",
    "messages_receiverId_idx",
    "messages_isRead_idx",
];

const PRISMA_FKEYS: [&str; 6] = [
    "user_online_status_userId_fkey",
    "connections_user1Id_fkey",
    "connections_user2Id_fkey",
    "messages_connectionId_fkey",
    "messages_senderId_fkey",
    "messages_receiverId_fkey",
];

fn col(
    name: &str,
    ty: &str,
    nullable: bool,
    default: Option<&str>,
) -> (String, String, Option<i32>, String, Option<String>) {
    let precision = match ty {
        "timestamp without time zone" => Some(3),
        _ => None,
    };
    (
        name.to_owned(),
        ty.to_owned(),
        precision,
        if nullable { "YES" } else { "NO" }.to_owned(),
        default.map(str::to_owned),
    )
}

#[tokio::test]
async fn auto_on_empty_schema_creates_prisma_layout() {
    let s = TestSchema::new().await;
    assert_eq!(
        prepare(&s.db, MigrateMode::Auto).await.unwrap(),
        MigrateOutcome::Migrated
    );

    let tables = s.tables().await;
    for t in COURIER_TABLES.iter().chain(&["seaql_migrations"]) {
        assert!(tables.contains(*t), "missing table {t}: {tables:?}");
    }

    const TS: &str = "timestamp without time zone";
    const NOW: Option<&str> = Some("CURRENT_TIMESTAMP");
    let mut users = vec![
        col("id", "text", false, None),
        col("email", "text", false, None),
        col("name", "text", true, None),
        col("fullName", "text", true, None),
        col("image", "text", true, None),
        col("isOnline", "boolean", false, Some("false")),
        col("lastSeenAt", TS, false, NOW),
        col("connectionCount", "integer", false, Some("0")),
        col("lastHeartbeatAt", TS, false, NOW),
        col("createdAt", TS, false, NOW),
        col("updatedAt", TS, false, None),
    ];
    users.sort();
    assert_eq!(s.columns("users").await, users);

    let mut history = vec![
        col("id", "text", false, None),
        col("userId", "text", false, None),
        col("isOnline", "boolean", false, None),
        col("timestamp", TS, false, NOW),
        col("deviceInfo", "text", true, None),
        col("ipAddress", "text", true, None),
    ];
    history.sort();
    assert_eq!(s.columns("user_online_status").await, history);

    let mut connections = vec![
        col("id", "text", false, None),
        col("user1Id", "text", false, None),
        col("user2Id", "text", false, None),
        col("status", "text", false, Some("'ACTIVE'::text")),
        col("createdAt", TS, false, NOW),
        col("updatedAt", TS, false, None),
    ];
    connections.sort();
    assert_eq!(s.columns("connections").await, connections);

    let mut messages = vec![
        col("id", "text", false, None),
        col("connectionId", "text", false, None),
        col("senderId", "text", false, None),
        col("receiverId", "text", false, None),
        col("content", "text", false, None),
        col("isRead", "boolean", false, Some("false")),
        col("createdAt", TS, false, NOW),
        col("updatedAt", TS, false, None),
        col("mediaUrl", "text", true, None),
        col("mediaType", "text", true, None),
        col("mediaName", "text", true, None),
        col("mediaSize", "integer", true, None),
        col("mediaThumbnail", "text", true, None),
    ];
    messages.sort();
    assert_eq!(s.columns("messages").await, messages);

    let indexes = s.indexes().await;
    for i in PRISMA_INDEXES {
        assert!(indexes.contains(i), "missing index {i}: {indexes:?}");
    }
    let constraints = s.constraints().await;
    for c in PRISMA_FKEYS {
        assert!(
            constraints.contains(c),
            "missing constraint {c}: {constraints:?}"
        );
    }
    // All FKs cascade on delete and update.
    let rules = s
        .rows(&format!(
            "SELECT constraint_name::text AS c, delete_rule::text AS d, update_rule::text AS u \
             FROM information_schema.referential_constraints WHERE constraint_schema = '{}'",
            s.name
        ))
        .await;
    assert_eq!(rules.len(), PRISMA_FKEYS.len());
    for r in rules {
        assert_eq!(r.try_get::<String>("", "d").unwrap(), "CASCADE");
        assert_eq!(r.try_get::<String>("", "u").unwrap(), "CASCADE");
    }

    let ours = s.snapshot().await;
    assert_eq!(
        prepare(&s.db, MigrateMode::Auto).await.unwrap(),
        MigrateOutcome::Migrated
    );
    assert_eq!(s.snapshot().await, ours, "second run changed the schema");

    common::entity_round_trip(&s.db, "").await;
}

#[tokio::test]
async fn auto_skips_prisma_managed_schema_and_entities_work_on_it() {
    let s = TestSchema::new().await;
    s.apply_prisma_layout().await;
    s.exec(r#"CREATE TABLE "_prisma_migrations"(id TEXT PRIMARY KEY)"#)
        .await;
    let before = s.snapshot().await;

    assert_eq!(
        prepare(&s.db, MigrateMode::Auto).await.unwrap(),
        MigrateOutcome::SkippedPrismaManaged
    );
    assert!(!s.tables().await.contains("seaql_migrations"));
    assert_eq!(s.snapshot().await, before);

    // Entities work on Prisma's tables, extra columns and all.
    common::entity_round_trip(&s.db, "").await;
}

#[tokio::test]
async fn always_on_prisma_layout_changes_nothing() {
    let s = TestSchema::new().await;
    s.apply_prisma_layout().await;
    let before = s.snapshot().await;
    assert!(before.iter().any(|l| l.starts_with("users.bio ")));

    assert_eq!(
        prepare(&s.db, MigrateMode::Always).await.unwrap(),
        MigrateOutcome::Migrated
    );
    assert_eq!(s.snapshot().await, before);
    assert!(s.tables().await.contains("seaql_migrations"));
    assert!(s.columns("users").await.iter().any(|c| c.0 == "bio"));

    // Auto without _prisma_migrations also runs (and is a no-op now).
    assert_eq!(
        prepare(&s.db, MigrateMode::Auto).await.unwrap(),
        MigrateOutcome::Migrated
    );
    assert_eq!(s.snapshot().await, before);
    common::entity_round_trip(&s.db, "").await;
}

#[tokio::test]
async fn never_does_nothing() {
    let s = TestSchema::new().await;
    assert_eq!(
        prepare(&s.db, MigrateMode::Never).await.unwrap(),
        MigrateOutcome::Disabled
    );
    assert!(s.tables().await.is_empty());
}

#[tokio::test]
async fn prisma_check_only_looks_at_the_current_schema() {
    // `_prisma_migrations` in another schema on the search_path must not count.
    let s = TestSchema::new().await;
    let other = TestSchema::new().await;
    other
        .exec(r#"CREATE TABLE "_prisma_migrations"(id TEXT PRIMARY KEY)"#)
        .await;
    let mut opts = ConnectOptions::new(database_url());
    opts.sqlx_logging(false)
        .set_schema_search_path(format!("{},{}", s.name, other.name));
    let db = Database::connect(opts).await.unwrap();
    assert!(!migration::prisma_managed(&db).await.unwrap());
    assert_eq!(
        prepare(&db, MigrateMode::Auto).await.unwrap(),
        MigrateOutcome::Migrated
    );
    assert!(s.tables().await.contains("messages"));
    assert!(!other.tables().await.contains("messages"));
    db.close().await.ok();
}

#[tokio::test]
async fn concurrent_startups_both_succeed() {
    let s = TestSchema::new().await;
    let a = connect(Some(&s.name)).await;
    let b = connect(Some(&s.name)).await;
    let (ra, rb) = tokio::join!(
        prepare(&a, MigrateMode::Auto),
        prepare(&b, MigrateMode::Auto)
    );
    assert_eq!(ra.unwrap(), MigrateOutcome::Migrated);
    assert_eq!(rb.unwrap(), MigrateOutcome::Migrated);
    let n = s
        .rows("SELECT count(*)::int8 AS n FROM seaql_migrations")
        .await;
    assert_eq!(
        n[0].try_get::<i64>("", "n").unwrap(),
        2,
        "each migration once"
    );
    a.close().await.ok();
    b.close().await.ok();
}

#[tokio::test]
async fn migration_ddl_matches_prisma_for_shared_columns() {
    // Schema A: created by our migration; schema B: Prisma's DDL. Every column, index and
    // constraint of A must exist identically in B (B has extra app-only ones).
    let ours = TestSchema::new().await;
    prepare(&ours.db, MigrateMode::Always).await.unwrap();
    let prisma = TestSchema::new().await;
    prisma.apply_prisma_layout().await;
    let strip = |lines: Vec<String>, schema: &str| -> BTreeSet<String> {
        lines
            .into_iter()
            .map(|l| {
                l.replace(&format!("{schema}."), "")
                    .replace(&format!("\"{schema}\"."), "")
            })
            .collect()
    };
    let a = strip(ours.snapshot().await, &ours.name);
    let b = strip(prisma.snapshot().await, &prisma.name);
    let missing: Vec<_> = a.difference(&b).collect();
    assert!(
        missing.is_empty(),
        "differs from Prisma's DDL: {missing:#?}"
    );
    assert!(a.len() > 40, "snapshot suspiciously small: {a:#?}");
}
