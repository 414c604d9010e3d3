//! The startup migration policy (`database.migrate`): Courier creates the app's tables with
//! Prisma's names only on a database that is not Prisma-managed.

use log::{info, warn};
use migration::{MigrateMode, MigrateOutcome};
use sea_orm::{DatabaseConnection, DbErr};

use super::settings::MigrateSetting;

/// Applies the migration policy (`database.migrate`); says what it did.
pub async fn migrate(
    db: &DatabaseConnection,
    setting: MigrateSetting,
) -> Result<MigrateOutcome, DbErr> {
    let mode = match setting {
        MigrateSetting::Auto => MigrateMode::Auto,
        MigrateSetting::Always => MigrateMode::Always,
        MigrateSetting::Never => MigrateMode::Never,
    };
    let outcome = migration::prepare(db, mode).await?;
    match outcome {
        MigrateOutcome::Migrated => info!("database schema is up to date"),
        MigrateOutcome::SkippedPrismaManaged => {
            info!("database is managed by Prisma (_prisma_migrations): not migrating it")
        }
        MigrateOutcome::Disabled => warn!("database.migrate = false: not migrating"),
    }
    Ok(outcome)
}
