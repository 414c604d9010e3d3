//! SeaORM entities for the tables Courier shares with the Next.js app (Prisma schema).
//!
//! Table and column names follow Prisma's PostgreSQL layout exactly: tables `users`,
//! `connections`, `messages`; camelCase, quoted column names (`"user1Id"`, `"isRead"`, ...).
//! Only the columns Courier uses are mapped; the app's tables may have more columns, which
//! SeaORM simply ignores (inserts rely on their database defaults / NULL).
//!
//! Timestamps are [`chrono::NaiveDateTime`] holding UTC (`TIMESTAMP(3) WITHOUT TIME ZONE` on
//! PostgreSQL, millisecond precision). Use [`now_utc_ms`] to produce a value that round-trips
//! unchanged through the database.

pub mod connections;
pub mod messages;
pub mod prelude;
pub mod user_online_status;
pub mod users;

/// Current UTC time truncated to whole milliseconds (the precision of Prisma's
/// `TIMESTAMP(3)` columns), so that the value stored and the value read back are identical.
pub fn now_utc_ms() -> chrono::NaiveDateTime {
    truncate_to_ms(chrono::Utc::now().naive_utc())
}

/// Truncate a timestamp to whole milliseconds (PostgreSQL would otherwise *round* the
/// sub-millisecond part of a `TIMESTAMP(3)` value).
pub fn truncate_to_ms(t: chrono::NaiveDateTime) -> chrono::NaiveDateTime {
    use chrono::Timelike;
    let nanos = t.nanosecond();
    // nanosecond() may exceed 1e9 during a leap second; keep that marker intact.
    t.with_nanosecond(nanos - nanos % 1_000_000).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn truncates_to_milliseconds() {
        let t = NaiveDate::from_ymd_opt(2026, 1, 2)
            .unwrap()
            .and_hms_nano_opt(3, 4, 5, 123_456_789)
            .unwrap();
        let expected = NaiveDate::from_ymd_opt(2026, 1, 2)
            .unwrap()
            .and_hms_milli_opt(3, 4, 5, 123)
            .unwrap();
        assert_eq!(truncate_to_ms(t), expected);
        assert_eq!(
            now_utc_ms().and_utc().timestamp_subsec_nanos() % 1_000_000,
            0
        );
    }
}
