//! [`SettingsError`]: a setting that cannot be used, in one line naming the key and where
//! it came from; and reading `config-rs`'s errors into one.

use std::fmt;

use config::{Map, Value};

use super::layers::{source_of, Layer};

/// A setting that could not be used: one line naming the key and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The offending key (`server.port`), when known.
    pub key: Option<String>,
    /// The layer it came from (`environment variable PORT`, `config/local.toml`, ...).
    pub source: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(
                f,
                "invalid setting `{key}` (from {}): {}",
                self.source, self.message
            ),
            None => write!(
                f,
                "invalid settings (from {}): {}",
                self.source, self.message
            ),
        }
    }
}

impl std::error::Error for SettingsError {}

pub(super) fn from_config_error(error: config::ConfigError, layers: &[Layer]) -> SettingsError {
    let text = error.to_string();
    // config-rs names the key as "for key `a.b`" in its messages.
    let key = field_in(&text, "for key `");
    let message = text
        .split_once(" for key `")
        .map(|(head, _)| head.to_string())
        .unwrap_or_else(|| text.clone());
    // A list element is reported as `list[i]`: name the list.
    let key = key.map(|k| match k.split_once('[') {
        Some((list, _)) => list.to_string(),
        None => k,
    });
    // An unknown key (deny_unknown_fields) is reported on its section; name the field.
    let key = match (key, field_in(&text, "unknown field `")) {
        (Some(section), Some(field)) => Some(format!("{section}.{field}")),
        (None, Some(_)) => unknown_field_key(&text, layers),
        (key, None) => key,
    };
    let source = match &key {
        Some(key) => source_of(key, layers),
        None => "settings".into(),
    };
    SettingsError {
        key,
        source,
        message,
    }
}

/// The backquoted name after `marker` in an error text.
fn field_in(text: &str, marker: &str) -> Option<String> {
    text.split_once(marker)
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(f, _)| f.to_string())
}

/// Finds the full key of an `unknown field `x`` error by looking for it in the layers.
fn unknown_field_key(text: &str, layers: &[Layer]) -> Option<String> {
    let field = field_in(text, "unknown field `")?;
    for layer in layers.iter().rev() {
        if let Ok(table) = layer.config.clone().try_deserialize::<Map<String, Value>>() {
            if table.contains_key(&field) {
                return Some(field);
            }
            for (section, value) in table {
                if let Ok(inner) = value.into_table() {
                    if inner.contains_key(&field) {
                        return Some(format!("{section}.{field}"));
                    }
                }
            }
        }
    }
    Some(field)
}
