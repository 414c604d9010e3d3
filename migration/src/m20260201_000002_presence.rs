//! Presence, as the app's Prisma schema has it: `users."connectionCount"` and
//! `users."lastHeartbeatAt"` (the first migration already made `"isOnline"` and
//! `"lastSeenAt"`), the `users` indexes on them, and the `user_online_status` history table,
//! with Prisma's names.
//!
//! Idempotent: columns are added only when missing, tables and indexes `IF NOT EXISTS`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// PostgreSQL: Prisma's DDL for these columns, table and indexes.
const POSTGRES_UP: &[&str] = &[
    r#"ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "connectionCount" INTEGER NOT NULL DEFAULT 0"#,
    r#"ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "lastHeartbeatAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP"#,
    r#"CREATE INDEX IF NOT EXISTS "users_isOnline_idx" ON "users"("isOnline")"#,
    r#"CREATE INDEX IF NOT EXISTS "users_lastSeenAt_idx" ON "users"("lastSeenAt")"#,
    r#"CREATE TABLE IF NOT EXISTS "user_online_status" (
    "id"         TEXT         NOT NULL,
    "userId"     TEXT         NOT NULL,
    "isOnline"   BOOLEAN      NOT NULL,
    "timestamp"  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "deviceInfo" TEXT,
    "ipAddress"  TEXT,
    CONSTRAINT "user_online_status_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "user_online_status_userId_fkey" FOREIGN KEY ("userId") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE
)"#,
    r#"CREATE INDEX IF NOT EXISTS "user_online_status_userId_idx" ON "user_online_status"("userId")"#,
    r#"CREATE INDEX IF NOT EXISTS "user_online_status_timestamp_idx" ON "user_online_status"("timestamp")"#,
];

/// SQLite: the same names. `ALTER TABLE ... ADD COLUMN` takes only a constant default
/// there; Courier writes `lastHeartbeatAt` whenever a user comes online.
const SQLITE_COLUMNS: &[(&str, &str)] = &[
    (
        "connectionCount",
        r#"ALTER TABLE "users" ADD COLUMN "connectionCount" INTEGER NOT NULL DEFAULT 0"#,
    ),
    (
        "lastHeartbeatAt",
        r#"ALTER TABLE "users" ADD COLUMN "lastHeartbeatAt" DATETIME NOT NULL DEFAULT '1970-01-01 00:00:00.000'"#,
    ),
];

const SQLITE_UP: &[&str] = &[
    r#"CREATE INDEX IF NOT EXISTS "users_isOnline_idx" ON "users"("isOnline")"#,
    r#"CREATE INDEX IF NOT EXISTS "users_lastSeenAt_idx" ON "users"("lastSeenAt")"#,
    r#"CREATE TABLE IF NOT EXISTS "user_online_status" (
    "id"         TEXT     NOT NULL,
    "userId"     TEXT     NOT NULL,
    "isOnline"   BOOLEAN  NOT NULL,
    "timestamp"  DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    "deviceInfo" TEXT,
    "ipAddress"  TEXT,
    CONSTRAINT "user_online_status_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "user_online_status_userId_fkey" FOREIGN KEY ("userId") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE
)"#,
    r#"CREATE INDEX IF NOT EXISTS "user_online_status_userId_idx" ON "user_online_status"("userId")"#,
    r#"CREATE INDEX IF NOT EXISTS "user_online_status_timestamp_idx" ON "user_online_status"("timestamp")"#,
];

/// Whether SQLite's `users` has `column`.
async fn sqlite_has_column(manager: &SchemaManager<'_>, column: &str) -> Result<bool, DbErr> {
    let row = manager
        .get_connection()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            r#"SELECT count(*) AS n FROM pragma_table_info('users') WHERE name = ?"#,
            [column.into()],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0)
        > 0)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                for sql in POSTGRES_UP {
                    db.execute_unprepared(sql).await?;
                }
            }
            DbBackend::Sqlite => {
                for (column, sql) in SQLITE_COLUMNS {
                    if !sqlite_has_column(manager, column).await? {
                        db.execute_unprepared(sql).await?;
                    }
                }
                for sql in SQLITE_UP {
                    db.execute_unprepared(sql).await?;
                }
            }
            other => {
                return Err(DbErr::Migration(format!(
                    "unsupported database backend {other:?} (PostgreSQL or SQLite only)"
                )))
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(r#"DROP TABLE IF EXISTS "user_online_status""#)
            .await?;
        db.execute_unprepared(r#"DROP INDEX IF EXISTS "users_isOnline_idx""#)
            .await?;
        db.execute_unprepared(r#"DROP INDEX IF EXISTS "users_lastSeenAt_idx""#)
            .await?;
        for column in ["connectionCount", "lastHeartbeatAt"] {
            db.execute_unprepared(&format!(r#"ALTER TABLE "users" DROP COLUMN "{column}""#))
                .await?;
        }
        Ok(())
    }
}
