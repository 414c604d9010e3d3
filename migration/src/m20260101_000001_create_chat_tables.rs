//! Creates `users`, `connections` and `messages` exactly as the app's Prisma schema does
//! (restricted to the columns Courier uses), with Prisma's constraint and index names.
//!
//! Every statement is `IF NOT EXISTS`, so on a database whose tables Prisma already created
//! this migration changes nothing (extra columns / indexes are left alone).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// PostgreSQL: Prisma's DDL verbatim for these columns (`TIMESTAMP(3)` = timestamp(3)
/// without time zone, holding UTC).
const POSTGRES_UP: &[&str] = &[
    r#"CREATE TABLE IF NOT EXISTS "users" (
    "id"         TEXT         NOT NULL,
    "email"      TEXT         NOT NULL,
    "fullName"   TEXT,
    "name"       TEXT,
    "image"      TEXT,
    "createdAt"  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"  TIMESTAMP(3) NOT NULL,
    "isOnline"   BOOLEAN      NOT NULL DEFAULT false,
    "lastSeenAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "users_pkey" PRIMARY KEY ("id")
)"#,
    r#"CREATE UNIQUE INDEX IF NOT EXISTS "users_email_key" ON "users"("email")"#,
    r#"CREATE TABLE IF NOT EXISTS "connections" (
    "id"        TEXT         NOT NULL,
    "user1Id"   TEXT         NOT NULL,
    "user2Id"   TEXT         NOT NULL,
    "status"    TEXT         NOT NULL DEFAULT 'ACTIVE',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "connections_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "connections_user1Id_fkey" FOREIGN KEY ("user1Id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "connections_user2Id_fkey" FOREIGN KEY ("user2Id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE
)"#,
    r#"CREATE UNIQUE INDEX IF NOT EXISTS "connections_user1Id_user2Id_key" ON "connections"("user1Id", "user2Id")"#,
    r#"CREATE INDEX IF NOT EXISTS "connections_user1Id_idx" ON "connections"("user1Id")"#,
    r#"CREATE INDEX IF NOT EXISTS "connections_user2Id_idx" ON "connections"("user2Id")"#,
    r#"CREATE INDEX IF NOT EXISTS "connections_status_idx" ON "connections"("status")"#,
    r#"CREATE TABLE IF NOT EXISTS "messages" (
    "id"             TEXT         NOT NULL,
    "connectionId"   TEXT         NOT NULL,
    "senderId"       TEXT         NOT NULL,
    "receiverId"     TEXT         NOT NULL,
    "content"        TEXT         NOT NULL,
    "isRead"         BOOLEAN      NOT NULL DEFAULT false,
    "createdAt"      TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"      TIMESTAMP(3) NOT NULL,
    "mediaUrl"       TEXT,
    "mediaType"      TEXT,
    "mediaName"      TEXT,
    "mediaSize"      INTEGER,
    "mediaThumbnail" TEXT,
    CONSTRAINT "messages_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "messages_connectionId_fkey" FOREIGN KEY ("connectionId") REFERENCES "connections"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "messages_senderId_fkey" FOREIGN KEY ("senderId") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "messages_receiverId_fkey" FOREIGN KEY ("receiverId") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE
)"#,
    r#"CREATE INDEX IF NOT EXISTS "messages_connectionId_idx" ON "messages"("connectionId")"#,
    r#"CREATE INDEX IF NOT EXISTS "messages_senderId_idx" ON "messages"("senderId")"#,
    r#"CREATE INDEX IF NOT EXISTS "messages_receiverId_idx" ON "messages"("receiverId")"#,
    r#"CREATE INDEX IF NOT EXISTS "messages_isRead_idx" ON "messages"("isRead")"#,
];

/// SQLite: same names and constraints. Timestamps are `DATETIME` columns holding UTC text
/// `YYYY-MM-DD HH:MM:SS[.fff]`, the format sqlx writes for `NaiveDateTime`; the defaults use
/// the same format with milliseconds. Booleans are stored as 0/1.
const SQLITE_UP: &[&str] = &[
    r#"CREATE TABLE IF NOT EXISTS "users" (
    "id"         TEXT     NOT NULL,
    "email"      TEXT     NOT NULL,
    "fullName"   TEXT,
    "name"       TEXT,
    "image"      TEXT,
    "createdAt"  DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    "updatedAt"  DATETIME NOT NULL,
    "isOnline"   BOOLEAN  NOT NULL DEFAULT false,
    "lastSeenAt" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    CONSTRAINT "users_pkey" PRIMARY KEY ("id")
)"#,
    r#"CREATE UNIQUE INDEX IF NOT EXISTS "users_email_key" ON "users"("email")"#,
    r#"CREATE TABLE IF NOT EXISTS "connections" (
    "id"        TEXT     NOT NULL,
    "user1Id"   TEXT     NOT NULL,
    "user2Id"   TEXT     NOT NULL,
    "status"    TEXT     NOT NULL DEFAULT 'ACTIVE',
    "createdAt" DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "connections_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "connections_user1Id_fkey" FOREIGN KEY ("user1Id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "connections_user2Id_fkey" FOREIGN KEY ("user2Id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE
)"#,
    r#"CREATE UNIQUE INDEX IF NOT EXISTS "connections_user1Id_user2Id_key" ON "connections"("user1Id", "user2Id")"#,
    r#"CREATE INDEX IF NOT EXISTS "connections_user1Id_idx" ON "connections"("user1Id")"#,
    r#"CREATE INDEX IF NOT EXISTS "connections_user2Id_idx" ON "connections"("user2Id")"#,
    r#"CREATE INDEX IF NOT EXISTS "connections_status_idx" ON "connections"("status")"#,
    r#"CREATE TABLE IF NOT EXISTS "messages" (
    "id"             TEXT     NOT NULL,
    "connectionId"   TEXT     NOT NULL,
    "senderId"       TEXT     NOT NULL,
    "receiverId"     TEXT     NOT NULL,
    "content"        TEXT     NOT NULL,
    "isRead"         BOOLEAN  NOT NULL DEFAULT false,
    "createdAt"      DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    "updatedAt"      DATETIME NOT NULL,
    "mediaUrl"       TEXT,
    "mediaType"      TEXT,
    "mediaName"      TEXT,
    "mediaSize"      INTEGER,
    "mediaThumbnail" TEXT,
    CONSTRAINT "messages_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "messages_connectionId_fkey" FOREIGN KEY ("connectionId") REFERENCES "connections"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "messages_senderId_fkey" FOREIGN KEY ("senderId") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "messages_receiverId_fkey" FOREIGN KEY ("receiverId") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE
)"#,
    r#"CREATE INDEX IF NOT EXISTS "messages_connectionId_idx" ON "messages"("connectionId")"#,
    r#"CREATE INDEX IF NOT EXISTS "messages_senderId_idx" ON "messages"("senderId")"#,
    r#"CREATE INDEX IF NOT EXISTS "messages_receiverId_idx" ON "messages"("receiverId")"#,
    r#"CREATE INDEX IF NOT EXISTS "messages_isRead_idx" ON "messages"("isRead")"#,
];

/// Dropping a table drops its indexes and constraints too.
const DOWN: &[&str] = &[
    r#"DROP TABLE IF EXISTS "messages""#,
    r#"DROP TABLE IF EXISTS "connections""#,
    r#"DROP TABLE IF EXISTS "users""#,
];

async fn run_all(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for sql in statements {
        db.execute_unprepared(sql).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements = match manager.get_database_backend() {
            DbBackend::Postgres => POSTGRES_UP,
            DbBackend::Sqlite => SQLITE_UP,
            other => {
                return Err(DbErr::Migration(format!(
                    "unsupported database backend {other:?} (PostgreSQL or SQLite only)"
                )))
            }
        };
        run_all(manager, statements).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(manager, DOWN).await
    }
}
