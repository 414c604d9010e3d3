//! The per-user limit on `send_message` (`chat.rate_limit`), shared by all of a user's
//! sockets on this node (token buckets from [`crate::rate`]).

use std::sync::Arc;

use crate::rate::{KeyedLimiter, RateSettings};

/// The `error` event's message when a user sends too fast (the Node server's string).
pub const TOO_FAST: &str = "You are sending messages too fast. Please wait a moment.";

/// One bucket per user.
pub type UserRateLimiter = KeyedLimiter<Arc<str>>;

/// The limiter for `rate` (off when `rate.per_second` is 0).
pub fn user_rate_limiter(rate: RateSettings) -> Arc<UserRateLimiter> {
    Arc::new(KeyedLimiter::new(rate))
}
