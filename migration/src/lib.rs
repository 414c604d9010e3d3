//! Schema migrations for Courier and the startup policy ([`prepare`]).
//!
//! The schema is owned by the Next.js app's Prisma schema. Courier's migrations create the
//! subset of it that Courier needs (tables `users`, `connections`, `messages`,
//! `user_online_status`, with Prisma's exact column, constraint and index names) and are
//! idempotent (`IF NOT EXISTS`, columns added only when missing). They run only on a
//! database Courier creates: a Prisma-managed one is never touched (see [`prepare`]).

pub use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DatabaseConnection, DbBackend, Statement, TransactionTrait};

mod m20260101_000001_create_chat_tables;
mod m20260201_000002_presence;
mod mode;

pub use mode::{MigrateMode, ParseMigrateModeError};

/// Courier's migrator (tracking table `seaql_migrations`).
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20260101_000001_create_chat_tables::Migration),
            Box::new(m20260201_000002_presence::Migration),
        ]
    }
}

/// What [`prepare`] did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MigrateOutcome {
    /// Pending migrations were applied (or none were pending); `seaql_migrations` exists.
    Migrated,
    /// `Auto` found a `_prisma_migrations` table: the database is managed by Prisma and
    /// was left completely untouched.
    SkippedPrismaManaged,
    /// `Never`: nothing was done.
    Disabled,
}

/// Arbitrary constant key for the PostgreSQL advisory lock serialising concurrent
/// migrations (several Courier instances starting at once).
const PG_MIGRATION_LOCK_KEY: i64 = 0x0063_6f75_7269_6572; // "courier" in ASCII

/// Startup policy:
/// - `Never`: do nothing → [`MigrateOutcome::Disabled`].
/// - `Always`: apply pending migrations → [`MigrateOutcome::Migrated`].
/// - `Auto`: if the current schema has a `_prisma_migrations` table, do nothing at all
///   (no DDL, no `seaql_migrations`, which Prisma would report as drift) →
///   [`MigrateOutcome::SkippedPrismaManaged`]; otherwise like `Always`.
///
/// On PostgreSQL the migration runs inside one transaction holding an advisory lock, so
/// concurrent starts are safe.
pub async fn prepare(db: &DatabaseConnection, mode: MigrateMode) -> Result<MigrateOutcome, DbErr> {
    match mode {
        MigrateMode::Never => return Ok(MigrateOutcome::Disabled),
        MigrateMode::Auto => {
            if prisma_managed(db).await? {
                return Ok(MigrateOutcome::SkippedPrismaManaged);
            }
        }
        MigrateMode::Always => {}
    }
    migrate(db).await?;
    Ok(MigrateOutcome::Migrated)
}

async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let txn = db.begin().await?;
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock($1)",
                [PG_MIGRATION_LOCK_KEY.into()],
            ))
            .await?;
            Migrator::up(&txn, None).await?;
            txn.commit().await
        }
        _ => Migrator::up(db, None).await,
    }
}

/// Whether the *current* schema (PostgreSQL: `current_schema()`; SQLite: `main`) has a
/// `_prisma_migrations` table.
pub async fn prisma_managed<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        // pg_catalog rather than information_schema: the latter hides tables the current
        // role has no privileges on.
        DbBackend::Postgres => {
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relname = '_prisma_migrations' \
             AND c.relkind IN ('r', 'p', 'v', 'm', 'f')) AS present"
        }
        DbBackend::Sqlite => {
            "SELECT EXISTS (SELECT 1 FROM sqlite_master \
             WHERE type = 'table' AND name = '_prisma_migrations') AS present"
        }
        _ => {
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = '_prisma_migrations') AS present"
        }
    };
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?
        .ok_or_else(|| DbErr::Custom("no row from _prisma_migrations check".into()))?;
    // PostgreSQL returns a BOOL, SQLite / MySQL an integer.
    match backend {
        DbBackend::Postgres => row.try_get::<bool>("", "present"),
        _ => Ok(row.try_get::<i64>("", "present")? != 0),
    }
}
