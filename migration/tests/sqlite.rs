//! SQLite (in-memory) tests of the migration, `prepare` and the entities.

mod common;

use migration::sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, QueryResult, Statement,
};
use migration::{prepare, MigrateMode, MigrateOutcome, Migrator, MigratorTrait};

async fn memory_db() -> DatabaseConnection {
    // sea-orm limits an SQLite pool to one connection unless told otherwise, so every query
    // sees the same in-memory database.
    Database::connect("sqlite::memory:")
        .await
        .expect("open sqlite::memory:")
}

async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<QueryResult> {
    db.query_all_raw(Statement::from_string(DbBackend::Sqlite, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Every schema object (type, name, table, SQL), sorted.
async fn schema_snapshot(db: &DatabaseConnection) -> Vec<(String, String, String, Option<String>)> {
    rows(
        db,
        "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name",
    )
    .await
    .iter()
    .map(|r| {
        (
            r.try_get("", "type").unwrap(),
            r.try_get("", "name").unwrap(),
            r.try_get("", "tbl_name").unwrap(),
            r.try_get("", "sql").unwrap(),
        )
    })
    .collect()
}

async fn names(db: &DatabaseConnection, kind: &str) -> Vec<String> {
    rows(
        db,
        &format!("SELECT name FROM sqlite_master WHERE type = '{kind}' ORDER BY name"),
    )
    .await
    .iter()
    .map(|r| r.try_get("", "name").unwrap())
    .collect()
}

#[tokio::test]
async fn auto_migrates_idempotently_and_entities_round_trip() {
    let db = memory_db().await;

    assert_eq!(
        prepare(&db, MigrateMode::Auto).await.unwrap(),
        MigrateOutcome::Migrated
    );

    let tables = names(&db, "table").await;
    for t in [
        "users",
        "connections",
        "messages",
        "user_online_status",
        "seaql_migrations",
    ] {
        assert!(
            tables.contains(&t.to_string()),
            "missing table {t}: {tables:?}"
        );
    }
    let indexes = names(&db, "index").await;
    for i in [
        "users_email_key",
        "connections_user1Id_user2Id_key",
        "connections_user1Id_idx",
        "connections_user2Id_idx",
        "connections_status_idx",
        "messages_connectionId_idx",
        "messages_senderId_idx",
        "messages_receiverId_idx",
        "messages_isRead_idx",
        "users_isOnline_idx",
        "users_lastSeenAt_idx",
        "user_online_status_userId_idx",
        "user_online_status_timestamp_idx",
    ] {
        assert!(
            indexes.contains(&i.to_string()),
            "missing index {i}: {indexes:?}"
        );
    }

    // Foreign keys with ON DELETE CASCADE.
    let fks = rows(&db, "SELECT \"table\", \"from\", on_delete FROM pragma_foreign_key_list('messages') ORDER BY \"from\"").await;
    let fks: Vec<(String, String, String)> = fks
        .iter()
        .map(|r| {
            (
                r.try_get("", "table").unwrap(),
                r.try_get("", "from").unwrap(),
                r.try_get("", "on_delete").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        fks,
        vec![
            (
                "connections".into(),
                "connectionId".into(),
                "CASCADE".into()
            ),
            ("users".into(), "receiverId".into(), "CASCADE".into()),
            ("users".into(), "senderId".into(), "CASCADE".into()),
        ]
    );

    // Second run (Auto and Always): succeeds and changes nothing.
    let before = schema_snapshot(&db).await;
    assert_eq!(
        prepare(&db, MigrateMode::Auto).await.unwrap(),
        MigrateOutcome::Migrated
    );
    assert_eq!(
        prepare(&db, MigrateMode::Always).await.unwrap(),
        MigrateOutcome::Migrated
    );
    assert_eq!(schema_snapshot(&db).await, before);
    let applied = rows(&db, "SELECT version FROM seaql_migrations ORDER BY version").await;
    let applied: Vec<String> = applied
        .iter()
        .map(|r| r.try_get::<String>("", "version").unwrap())
        .collect();
    assert_eq!(
        applied,
        [
            "m20260101_000001_create_chat_tables",
            "m20260201_000002_presence"
        ]
    );
    let presence = rows(
        &db,
        "SELECT name FROM pragma_table_info('users') \
         WHERE name IN ('isOnline', 'lastSeenAt', 'connectionCount', 'lastHeartbeatAt')",
    )
    .await;
    assert_eq!(presence.len(), 4, "the presence columns");

    common::entity_round_trip(&db, "a_").await;
    // Data survives another prepare.
    common::entity_round_trip(&db, "b_").await;
}

#[tokio::test]
async fn timestamps_are_stored_as_utc_text() {
    let db = memory_db().await;
    prepare(&db, MigrateMode::Always).await.unwrap();
    use entity::users;
    use migration::sea_orm::{ActiveModelTrait, Set};
    users::ActiveModel {
        id: Set("u".into()),
        email: Set("u@example.com".into()),
        updated_at: Set(common::ts(678)),
        ..Default::default()
    }
    .insert(&db)
    .await
    .unwrap();
    let r = rows(
        &db,
        r#"SELECT "updatedAt" AS u, typeof("updatedAt") AS tu, "createdAt" AS c FROM users"#,
    )
    .await;
    assert_eq!(
        r[0].try_get::<String>("", "u").unwrap(),
        "2026-01-02 03:04:05.678"
    );
    assert_eq!(r[0].try_get::<String>("", "tu").unwrap(), "text");
    // Database default: same format, with milliseconds.
    let c: String = r[0].try_get("", "c").unwrap();
    assert_eq!(c.len(), "2026-01-02 03:04:05.678".len(), "{c}");
}

#[tokio::test]
async fn never_does_nothing() {
    let db = memory_db().await;
    assert_eq!(
        prepare(&db, MigrateMode::Never).await.unwrap(),
        MigrateOutcome::Disabled
    );
    assert!(schema_snapshot(&db).await.is_empty());
}

#[tokio::test]
async fn auto_leaves_a_prisma_managed_database_alone() {
    let db = memory_db().await;
    db.execute_unprepared(r#"CREATE TABLE "_prisma_migrations" (id TEXT PRIMARY KEY)"#)
        .await
        .unwrap();
    let before = schema_snapshot(&db).await;
    assert_eq!(
        prepare(&db, MigrateMode::Auto).await.unwrap(),
        MigrateOutcome::SkippedPrismaManaged
    );
    assert_eq!(schema_snapshot(&db).await, before);
    assert!(!names(&db, "table")
        .await
        .contains(&"seaql_migrations".to_string()));

    // Always overrides the check.
    assert_eq!(
        prepare(&db, MigrateMode::Always).await.unwrap(),
        MigrateOutcome::Migrated
    );
    assert!(names(&db, "table").await.contains(&"messages".to_string()));
}

#[tokio::test]
async fn down_drops_the_tables() {
    let db = memory_db().await;
    prepare(&db, MigrateMode::Auto).await.unwrap();
    Migrator::down(&db, None).await.unwrap();
    let tables = names(&db, "table").await;
    for t in ["users", "connections", "messages"] {
        assert!(!tables.contains(&t.to_string()), "{t} still exists");
    }
    let leftover: Vec<String> = names(&db, "index")
        .await
        .into_iter()
        .filter(|n| !n.contains("seaql_migrations"))
        .collect();
    assert_eq!(leftover, Vec::<String>::new());
    // And up again.
    prepare(&db, MigrateMode::Auto).await.unwrap();
    common::entity_round_trip(&db, "").await;
}

#[test]
fn migrate_mode_deserializes_from_config_values() {
    let parse = |j: &str| serde_json::from_str::<MigrateMode>(j);
    assert_eq!(parse(r#""auto""#).unwrap(), MigrateMode::Auto);
    assert_eq!(parse("true").unwrap(), MigrateMode::Always);
    assert_eq!(parse("false").unwrap(), MigrateMode::Never);
    assert_eq!(parse(r#""false""#).unwrap(), MigrateMode::Never);
    assert!(parse(r#""maybe""#).is_err());
    assert!(parse("3").is_err());
}

#[tokio::test]
async fn a_database_of_the_first_migration_gets_the_presence_columns() {
    let db = memory_db().await;
    Migrator::up(&db, Some(1)).await.unwrap();
    db.execute_unprepared(
        "INSERT INTO users (id, email, \"updatedAt\") VALUES ('u1', 'u1@x', '2026-01-01 00:00:00')",
    )
    .await
    .unwrap();
    assert_eq!(
        prepare(&db, MigrateMode::Auto).await.unwrap(),
        MigrateOutcome::Migrated
    );
    let row = rows(
        &db,
        "SELECT \"connectionCount\" AS n, \"lastHeartbeatAt\" AS h FROM users WHERE id = 'u1'",
    )
    .await;
    assert_eq!(row[0].try_get::<i64>("", "n").unwrap(), 0);
    assert_eq!(
        row[0].try_get::<String>("", "h").unwrap(),
        "1970-01-01 00:00:00.000"
    );
    assert!(names(&db, "table")
        .await
        .contains(&"user_online_status".to_string()));
}
