//! The database's settings (`[database]`) and their checks.

use std::fmt;

use serde::{Deserialize, Deserializer};

use super::messages::MAX_BATCH;
use crate::setting::{invalid, positive, redact_url, Checked};

/// When migrations run at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateSetting {
    /// Migrate unless the database is managed by Prisma (has `_prisma_migrations`).
    Auto,
    /// Always migrate.
    Always,
    /// Never migrate.
    Never,
}

impl<'de> Deserialize<'de> for MigrateSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(MigrateSetting::Always),
            Raw::Bool(false) => Ok(MigrateSetting::Never),
            Raw::Text(s) => match s.to_ascii_lowercase().as_str() {
                "auto" => Ok(MigrateSetting::Auto),
                "true" => Ok(MigrateSetting::Always),
                "false" => Ok(MigrateSetting::Never),
                other => Err(serde::de::Error::custom(format!(
                    "expected \"auto\", true or false, found {other:?}"
                ))),
            },
        }
    }
}

/// `[database]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub migrate: MigrateSetting,
    pub write_queue: usize,
    pub batch_max: usize,
    pub writers: usize,
    pub retry_for: u64,
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("migrate", &self.migrate)
            .field("write_queue", &self.write_queue)
            .field("batch_max", &self.batch_max)
            .field("writers", &self.writers)
            .field("retry_for", &self.retry_for)
            .finish()
    }
}

impl DatabaseSettings {
    /// Whether every value can be used.
    pub(crate) fn validate(&self) -> Checked {
        positive(&[
            ("database.write_queue", self.write_queue as u64),
            ("database.batch_max", self.batch_max as u64),
            ("database.writers", self.writers as u64),
        ])?;
        if self.batch_max > MAX_BATCH {
            return Err(invalid(
                "database.batch_max",
                format!(
                    "must be at most {MAX_BATCH} (the databases' limit on statement parameters)"
                ),
            ));
        }
        if self.url.trim().is_empty() {
            return Err(invalid("database.url", "must not be empty"));
        }
        Ok(())
    }
}
