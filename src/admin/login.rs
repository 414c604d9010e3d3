//! The admin login's password checks: bounded, queued, and slowed down for everyone once too
//! many fail.
//!
//! - At most `admin.login_concurrency` bcrypt checks run at once; a login beyond that waits
//!   in a queue of at most `admin.login_queue` (past it: "too many login attempts"), so a
//!   few wrong guesses never make the right password fail, they only make it wait.
//! - Failures from all client addresses together have a budget (`admin.login_failures`, a
//!   token bucket) besides the per-address `admin.login_rate`: many addresses cannot each
//!   guess their five. Past the budget every check first waits a backoff (1 s, doubling with
//!   each failure past the budget, at most `admin.login_backoff_max`) until the budget has a
//!   token again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::rate::{RateSettings, TokenBucket};

/// The first backoff past the failure budget.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Password checks: their concurrency, their queue and the failure budget.
pub(crate) struct LoginGate {
    checks: Arc<Semaphore>,
    /// Logins queued or being checked.
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    budget: Mutex<Budget>,
    failure_rate: RateSettings,
    backoff_max: Duration,
}

struct Budget {
    bucket: TokenBucket,
    /// Failures past the budget since it last had a token.
    strikes: u32,
}

/// A login's place in the queue (given back when dropped).
pub(crate) struct Queued(Arc<AtomicUsize>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl LoginGate {
    /// `concurrency` checks at once, `queue` more waiting, failures budgeted at
    /// `failure_rate`, backoff at most `backoff_max`.
    pub fn new(
        concurrency: usize,
        queue: usize,
        failure_rate: RateSettings,
        backoff_max: Duration,
    ) -> Self {
        let concurrency = concurrency.clamp(1, Semaphore::MAX_PERMITS);
        LoginGate {
            checks: Arc::new(Semaphore::new(concurrency)),
            queued: Arc::default(),
            max_queued: concurrency.saturating_add(queue),
            budget: Mutex::new(Budget {
                bucket: TokenBucket::full(failure_rate),
                strikes: 0,
            }),
            failure_rate,
            backoff_max,
        }
    }

    /// A place in the queue; `None` when it is full.
    pub(crate) fn enter(&self) -> Option<Queued> {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_queued).then_some(n + 1)
            })
            .ok()?;
        Some(Queued(self.queued.clone()))
    }

    /// Waits for a check's turn (and the backoff, past the failure budget), then runs
    /// `check` on the blocking pool; `Err` if it could not run.
    pub async fn check<F>(&self, place: Queued, check: F) -> Result<bool, String>
    where
        F: FnOnce() -> bool + Send + 'static,
    {
        let permit = self
            .checks
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let delay = self.backoff();
        if !delay.is_zero() {
            log::info!("admin: too many failed logins; a password check waits {delay:?}");
            tokio::time::sleep(delay).await;
        }
        let ok = actix_web::web::block(check)
            .await
            .map_err(|e| e.to_string())?;
        drop(permit);
        drop(place);
        if !ok {
            self.failed();
        }
        Ok(ok)
    }

    /// How long the next check waits first.
    fn backoff(&self) -> Duration {
        let mut budget = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        if budget.bucket.has_token(self.failure_rate, Instant::now()) {
            budget.strikes = 0;
            return Duration::ZERO;
        }
        let doublings = budget.strikes.saturating_sub(1).min(20);
        (FIRST_BACKOFF * 2u32.pow(doublings)).min(self.backoff_max)
    }

    /// A check failed: it counts against the budget.
    fn failed(&self) {
        let mut budget = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        if !budget.bucket.take(self.failure_rate, Instant::now()) {
            budget.strikes = budget.strikes.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_failure_budget_checks_back_off_doubling_up_to_the_most() {
        let gate = LoginGate::new(
            1,
            0,
            RateSettings {
                per_second: 0.0001,
                burst: 2,
            },
            Duration::from_secs(5),
        );
        assert_eq!(gate.backoff(), Duration::ZERO);
        gate.failed();
        gate.failed();
        // The budget is spent: the next check waits, more with every failure past it.
        assert_eq!(gate.backoff(), FIRST_BACKOFF);
        gate.failed();
        assert_eq!(gate.backoff(), FIRST_BACKOFF);
        gate.failed();
        assert_eq!(gate.backoff(), FIRST_BACKOFF * 2);
        for _ in 0..10 {
            gate.failed();
        }
        assert_eq!(gate.backoff(), Duration::from_secs(5));
    }

    #[test]
    fn the_queue_is_bounded() {
        let off = RateSettings {
            per_second: 0.0,
            burst: 0,
        };
        let gate = LoginGate::new(2, 1, off, Duration::ZERO);
        let places: Vec<_> = (0..3).map(|_| gate.enter()).collect();
        assert!(places.iter().all(Option::is_some));
        assert!(gate.enter().is_none());
        drop(places);
        assert!(gate.enter().is_some());
    }
}
