//! Riding out a database that is briefly gone: which failures are the connection's
//! ([`is_transient`]), and retrying an operation with backoff for `database.retry_for`
//! ([`retrying`]). Every read and write of the chat goes through it.

use std::time::{Duration, Instant};

use log::warn;
use sea_orm::DbErr;

/// Whether `e` is a failure of the connection rather than of the statement: the server
/// restarting or unreachable, a connection dropped, the pool unable to open one, a
/// serialization failure or deadlock, SQLite busy or locked. Retrying may succeed.
pub fn is_transient(e: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::{ConnAcquireErr, RuntimeErr};
    let sqlx = match e {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout | ConnAcquireErr::ConnectionClosed) => {
            return true
        }
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        DbErr::Conn(_) => return true,
        _ => return false,
    };
    match &**sqlx {
        Sqlx::Io(_)
        | Sqlx::Tls(_)
        | Sqlx::Protocol(_)
        | Sqlx::PoolTimedOut
        | Sqlx::PoolClosed
        | Sqlx::WorkerCrashed
        | Sqlx::BeginFailed => true,
        Sqlx::Database(db) => match db.code() {
            // PostgreSQL: connection exceptions (08…), serialization failure, deadlock,
            // too many connections, the server shutting down or starting up (57P…).
            Some(code) => {
                let code = code.as_ref();
                code.starts_with("08")
                    || matches!(code, "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03")
                    // SQLite: SQLITE_BUSY, SQLITE_LOCKED and their extended codes.
                    || code.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
            }
            None => false,
        },
        _ => false,
    }
}

/// Runs `attempt` until it succeeds, fails for good, or `retry_for` has passed since the
/// first attempt: failures of the connection ([`is_transient`]) are retried with backoff
/// (50 ms doubling up to 1 s). A write whose outcome was unknown (the connection broke after
/// its commit was sent) is safe to run again: ids are made once and inserts skip rows that
/// exist; the classification tells such a row of ours from a client's retry.
pub async fn retrying<T, F, Fut>(retry_for: Duration, mut attempt: F) -> Result<T, DbErr>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DbErr>>,
{
    let started = Instant::now();
    let mut backoff = Duration::from_millis(50);
    let mut failures = 0u32;
    loop {
        match attempt().await {
            Ok(value) => {
                if failures > 0 {
                    warn!(
                        "database: back after {failures} failed attempts ({:?})",
                        started.elapsed()
                    );
                }
                return Ok(value);
            }
            Err(e) if is_transient(&e) && started.elapsed() + backoff <= retry_for => {
                if failures == 0 {
                    warn!("database: unavailable ({e}); retrying for up to {retry_for:?}");
                }
                failures += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    }
}
