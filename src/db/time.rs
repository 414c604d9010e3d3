//! Database times (`TIMESTAMP(3)`, UTC, as `NaiveDateTime`) and milliseconds since the epoch.

use chrono::{DateTime, NaiveDateTime};

/// Milliseconds since the epoch of a database time (UTC).
pub fn millis(t: &NaiveDateTime) -> i64 {
    t.and_utc().timestamp_millis()
}

/// The database time of `ms` milliseconds since the epoch.
pub fn from_millis(ms: i64) -> NaiveDateTime {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .naive_utc()
}
