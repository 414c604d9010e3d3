//! The per-user limit on `send_message` (`chat.rate_limit`), shared by all of a user's
//! sockets on this node (token buckets from [`crate::rate`]) and, in a cluster, counted
//! across nodes.
//!
//! In a cluster every message is also counted in Redis, in the Node server's own key
//! `ratelimit:messages:<userId>` (a counter that lives one second), so a user who writes
//! through Node servers and Courier nodes at once is limited by both. The count comes back
//! after the message was let through: when it is over `chat.rate_limit.burst` in that
//! second, the user's next messages on this node are refused until the second is over (the
//! cluster-wide limit is enforced one message late, and the local bucket still holds at
//! once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::remote::RemoteNodes;
use crate::rate::{KeyedLimiter, RateSettings};

/// The `error` event's message when a user sends too fast (the Node server's string).
pub const TOO_FAST: &str = "You are sending messages too fast. Please wait a moment.";

/// How long the Node server's counter lives (its window).
pub const CLUSTER_WINDOW: Duration = Duration::from_secs(1);

/// One bucket per user, and the cluster's count.
pub struct UserRateLimiter {
    local: KeyedLimiter<Arc<str>>,
    rate: RateSettings,
    remote: Option<Arc<dyn RemoteNodes>>,
    /// Users over the limit cluster-wide, until when.
    over: Arc<Mutex<HashMap<Arc<str>, Instant>>>,
}

/// The limiter for `rate` (off when `rate.per_second` is 0), counting across the cluster's
/// nodes through `remote`.
pub fn user_rate_limiter(
    rate: RateSettings,
    remote: Option<Arc<dyn RemoteNodes>>,
) -> Arc<UserRateLimiter> {
    Arc::new(UserRateLimiter {
        local: KeyedLimiter::new(rate),
        rate,
        remote,
        over: Arc::new(Mutex::new(HashMap::new())),
    })
}

impl UserRateLimiter {
    /// Whether `user` may send one more message now (and counts it).
    pub fn allow(&self, user: &Arc<str>) -> bool {
        let Some(remote) = &self.remote else {
            return self.local.allow(user);
        };
        if self.rate.is_on() {
            let mut over = self.over.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if over.get(user).is_some_and(|until| *until > now) {
                return false;
            }
            over.retain(|_, until| *until > now);
        }
        if !self.local.allow(user) {
            return false;
        }
        if !self.rate.is_on() {
            // Only the Node server's key is kept current.
            remote.note_message(user);
            return true;
        }
        let count = remote.count_message(user);
        let (over, user, limit) = (self.over.clone(), user.clone(), u64::from(self.rate.burst));
        actix::spawn(async move {
            if count.await.is_some_and(|n| n > limit) {
                over.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(user, Instant::now() + CLUSTER_WINDOW);
            }
        });
        true
    }
}
