//! Token buckets: the per-user limit on `send_message` (`chat.rate_limit`), shared by all
//! of a user's sockets on this node, and the per-socket limit on call signalling
//! (`chat.call_rate`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::users::shard_of;
use crate::config::RateSettings;

/// The `error` event's message when a user sends too fast (the Node server's string).
pub const TOO_FAST: &str = "You are sending messages too fast. Please wait a moment.";

/// A bucket of `burst` tokens refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket for `rate`.
    pub fn full(rate: RateSettings) -> Self {
        TokenBucket {
            tokens: f64::from(rate.burst),
            last: Instant::now(),
        }
    }

    /// Takes a token if there is one (always, when `rate` is off).
    pub fn take(&mut self, rate: RateSettings, now: Instant) -> bool {
        if rate.per_second <= 0.0 {
            return true;
        }
        let burst = f64::from(rate.burst);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full again by `now` (so forgetting it changes nothing).
    fn refilled(&self, rate: RateSettings, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * rate.per_second >= f64::from(rate.burst)
    }
}

/// Buckets kept per lock before full ones are forgotten.
const PRUNE_AT: usize = 4096;

/// One bucket per user, in a few locked maps (a check is a hash and a short lock).
pub struct UserRateLimiter {
    rate: RateSettings,
    maps: Vec<Mutex<HashMap<Arc<str>, TokenBucket>>>,
}

impl UserRateLimiter {
    /// A limiter at `rate` (off when `rate.per_second` is 0).
    pub fn new(rate: RateSettings) -> Arc<Self> {
        Arc::new(UserRateLimiter {
            rate,
            maps: (0..16).map(|_| Mutex::new(HashMap::new())).collect(),
        })
    }

    /// Whether `user` may send one more message now.
    pub fn allow(&self, user: &Arc<str>) -> bool {
        if self.rate.per_second <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let map = &self.maps[shard_of(user, self.maps.len())];
        // A panic while holding the lock cannot leave a bucket inconsistent.
        let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= PRUNE_AT {
            let rate = self.rate;
            map.retain(|_, bucket| !bucket.refilled(rate, now));
        }
        map.entry(user.clone())
            .or_insert_with(|| TokenBucket::full(self.rate))
            .take(self.rate, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rate(per_second: f64, burst: u32) -> RateSettings {
        RateSettings { per_second, burst }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let r = rate(5.0, 3);
        let mut b = TokenBucket::full(r);
        let t0 = Instant::now();
        assert!(b.take(r, t0));
        assert!(b.take(r, t0));
        assert!(b.take(r, t0));
        assert!(!b.take(r, t0), "the burst is used");
        assert!(!b.take(r, t0 + Duration::from_millis(100)), "half a token");
        assert!(
            b.take(r, t0 + Duration::from_millis(200)),
            "one token after 200 ms"
        );
        assert!(!b.take(r, t0 + Duration::from_millis(200)));
        // Never more than the burst, however long it waited.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(b.take(r, later));
        }
        assert!(!b.take(r, later));
    }

    #[test]
    fn off_allows_everything() {
        let limiter = UserRateLimiter::new(rate(0.0, 0));
        let user: Arc<str> = "u".into();
        assert!((0..10_000).all(|_| limiter.allow(&user)));
    }

    #[test]
    fn users_have_buckets_of_their_own() {
        let limiter = UserRateLimiter::new(rate(1.0, 2));
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        assert!(limiter.allow(&a) && limiter.allow(&a));
        assert!(!limiter.allow(&a));
        assert!(limiter.allow(&b) && limiter.allow(&b));
        assert!(!limiter.allow(&b));
    }
}
