//! Token buckets, for every rate limit Courier has: handshakes per client address
//! (`engineio::admission`), messages per user and call events per socket (`chat`).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;

/// A token bucket's settings: `per_second` on average, `burst` at once; `per_second = 0`
/// is off.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSettings {
    pub per_second: f64,
    pub burst: u32,
}

impl RateSettings {
    /// Whether the limit is on.
    pub(crate) fn is_on(&self) -> bool {
        self.per_second > 0.0
    }

    /// The setting `key` holding these: `per_second` a number ≥ 0, and `burst` at least 1
    /// when the limit is on.
    pub fn check(&self, key: &str) -> crate::setting::Checked {
        use crate::setting::invalid;
        if !self.per_second.is_finite() || self.per_second < 0.0 {
            return Err(invalid(key, "per_second must be a number >= 0"));
        }
        if self.per_second > 0.0 && self.burst == 0 {
            return Err(invalid(
                key,
                "burst must be at least 1 when the limit is on",
            ));
        }
        Ok(())
    }
}

/// A bucket of `burst` tokens refilled at `per_second`.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
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
        if !rate.is_on() {
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

    /// Whether a token could be taken at `now` (none is).
    pub(crate) fn has_token(&self, rate: RateSettings, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        !rate.is_on() || self.tokens + elapsed * rate.per_second >= 1.0
    }

    /// Whether the bucket is full again by `now` (so forgetting it changes nothing).
    fn refilled(&self, rate: RateSettings, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * rate.per_second >= f64::from(rate.burst)
    }
}

/// Buckets kept per lock before full ones are forgotten.
const PRUNE_AT: usize = 4096;

/// One bucket per key (a user, a client address), in a few locked maps: a check is a hash
/// and a short lock. Full buckets are forgotten, so memory follows the active keys.
pub(crate) struct KeyedLimiter<K> {
    rate: RateSettings,
    maps: Vec<Mutex<HashMap<K, TokenBucket>>>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter at `rate` (off when `rate.per_second` is 0).
    pub fn new(rate: RateSettings) -> Self {
        KeyedLimiter {
            rate,
            maps: (0..16).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Whether `key` may do one more thing now (and counts it).
    pub fn allow(&self, key: &K) -> bool {
        if !self.rate.is_on() {
            return true;
        }
        let now = Instant::now();
        let index = crate::ids::shard_of(key, self.maps.len());
        // A panic while holding the lock cannot leave a bucket inconsistent.
        let mut map = self.maps[index].lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= PRUNE_AT {
            let rate = self.rate;
            map.retain(|_, bucket| !bucket.refilled(rate, now));
        }
        map.entry(key.clone())
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
        let limiter = KeyedLimiter::new(rate(0.0, 0));
        assert!((0..10_000).all(|_| limiter.allow(&"u")));
    }

    #[test]
    fn keys_have_buckets_of_their_own() {
        let limiter = KeyedLimiter::new(rate(1.0, 2));
        assert!(limiter.allow(&"a") && limiter.allow(&"a"));
        assert!(!limiter.allow(&"a"));
        assert!(limiter.allow(&"b") && limiter.allow(&"b"));
        assert!(!limiter.allow(&"b"));
    }

    #[test]
    fn full_buckets_are_forgotten_past_the_prune_size() {
        let limiter = KeyedLimiter::new(rate(1000.0, 1));
        for i in 0..(PRUNE_AT * 16 * 2) {
            limiter.allow(&i);
        }
        std::thread::sleep(Duration::from_millis(5));
        limiter.allow(&usize::MAX);
        let kept: usize = limiter
            .maps
            .iter()
            .map(|m| m.lock().map(|m| m.len()).unwrap_or(0))
            .sum();
        assert!(kept <= PRUNE_AT * 16, "{kept}");
    }
}
