//! [`MigrateMode`]: the `migrate` configuration value (`"auto"` | `true` | `false`).

use std::fmt;
use std::str::FromStr;

/// When to run migrations at startup.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum MigrateMode {
    /// Migrate unless the database is Prisma-managed (has `_prisma_migrations`). Default.
    #[default]
    Auto,
    /// Always apply pending migrations (config `true`).
    Always,
    /// Never touch the schema (config `false`).
    Never,
}

impl From<bool> for MigrateMode {
    fn from(b: bool) -> Self {
        if b {
            Self::Always
        } else {
            Self::Never
        }
    }
}

/// Error for an unrecognised `migrate` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseMigrateModeError(pub String);

impl fmt::Display for ParseMigrateModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid migrate mode {:?} (expected \"auto\", true or false)",
            self.0
        )
    }
}

impl std::error::Error for ParseMigrateModeError {}

impl FromStr for MigrateMode {
    type Err = ParseMigrateModeError;

    /// Case-insensitive: `auto`; `true`/`always`/`yes`/`on`/`1`; `false`/`never`/`no`/`off`/`0`.
    /// (Strings matter because environment-variable overrides arrive as text.)
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "true" | "always" | "yes" | "on" | "1" => Ok(Self::Always),
            "false" | "never" | "no" | "off" | "0" => Ok(Self::Never),
            _ => Err(ParseMigrateModeError(s.to_owned())),
        }
    }
}

impl fmt::Display for MigrateMode {
    /// `auto`, `true`, `false` (the config spelling).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Always => "true",
            Self::Never => "false",
        })
    }
}

/// Deserializes from a boolean (`true` → Always, `false` → Never) or a string accepted by
/// [`FromStr`].
impl<'de> serde::Deserialize<'de> for MigrateMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = MigrateMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"auto\", true or false")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<MigrateMode, E> {
                Ok(v.into())
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MigrateMode, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<MigrateMode, E> {
                match v {
                    0 => Ok(MigrateMode::Never),
                    1 => Ok(MigrateMode::Always),
                    _ => Err(E::custom(format!("invalid migrate mode {v}"))),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<MigrateMode, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_any(V)
    }
}

impl serde::Serialize for MigrateMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::Always => s.serialize_bool(true),
            Self::Never => s.serialize_bool(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!("auto".parse(), Ok(MigrateMode::Auto));
        assert_eq!(" AUTO ".parse(), Ok(MigrateMode::Auto));
        assert_eq!("true".parse(), Ok(MigrateMode::Always));
        assert_eq!("false".parse(), Ok(MigrateMode::Never));
        assert!("sometimes".parse::<MigrateMode>().is_err());
        assert_eq!(MigrateMode::from(true), MigrateMode::Always);
        assert_eq!(MigrateMode::default(), MigrateMode::Auto);
    }
}
