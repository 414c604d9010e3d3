//! The per-user limit on `send_message` (`chat.rate_limit`), shared by all of a user's
//! sockets on this node (token buckets from [`crate::rate`]) and, in a cluster, counted
//! across nodes.
//!
//! In a cluster every message is also counted in Redis, in the Node server's own key
//! `ratelimit:messages:<userId>` (a counter that lives one second, `INCR`ed atomically), so
//! a user who writes through Node servers and Courier nodes at once is limited by both, at
//! once: a message goes on only once its count is back, and is refused when the count in
//! that second is over `chat.rate_limit.burst` ([`RateCheck::Counting`]). When Redis does
//! not answer, the local bucket alone decides.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::remote::RemoteNodes;
use crate::rate::{KeyedLimiter, RateSettings};

/// The `error` event's message when a user sends too fast (the Node server's string).
pub(crate) const TOO_FAST: &str = "You are sending messages too fast. Please wait a moment.";

/// How long the Node server's counter lives (its window).
pub(crate) const CLUSTER_WINDOW: Duration = Duration::from_secs(1);

/// One bucket per user, and the cluster's count.
pub struct UserRateLimiter {
    local: KeyedLimiter<Arc<str>>,
    rate: RateSettings,
    remote: Option<Arc<dyn RemoteNodes>>,
}

/// Whether a message may go on.
pub enum RateCheck {
    Allowed,
    Refused,
    /// The local bucket allows it; the cluster's count decides (`true`: allowed).
    Counting(BoxFuture<'static, bool>),
}

/// The limiter for `rate` (off when `rate.per_second` is 0), counting across the cluster's
/// nodes through `remote`.
pub(crate) fn user_rate_limiter(
    rate: RateSettings,
    remote: Option<Arc<dyn RemoteNodes>>,
) -> Arc<UserRateLimiter> {
    Arc::new(UserRateLimiter {
        local: KeyedLimiter::new(rate),
        rate,
        remote,
    })
}

impl UserRateLimiter {
    /// Whether `user` may send one more message now (and counts it).
    pub fn check(&self, user: &Arc<str>) -> RateCheck {
        if !self.local.allow(user) {
            return RateCheck::Refused;
        }
        let Some(remote) = &self.remote else {
            return RateCheck::Allowed;
        };
        if !self.rate.is_on() {
            // Only the Node server's key is kept current.
            remote.note_message(user);
            return RateCheck::Allowed;
        }
        let count = remote.count_message(user);
        let limit = u64::from(self.rate.burst);
        RateCheck::Counting(Box::pin(
            async move { count.await.is_none_or(|n| n <= limit) },
        ))
    }
}
