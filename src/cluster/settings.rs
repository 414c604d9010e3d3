//! The cluster's settings (`[redis]`) and their checks.

use std::fmt;

use serde::Deserialize;

use super::link::url::{redacted, Target};
use crate::setting::{invalid, positive, Checked};

/// `[redis]`: clustering over Redis, on the wire protocol of `@socket.io/redis-adapter`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://`, `rediss://`, `redis+sentinel://` or `redis+cluster://` URL
    /// ([`super::link`]); empty: a single node, no Redis.
    pub url: String,
    /// The adapter's channel prefix (`socket.io`).
    pub key: String,
    /// Milliseconds a node's presence keys live unless it refreshes them.
    pub presence_ttl: u64,
    /// Milliseconds between two refreshes of this node's keys.
    pub refresh: u64,
    /// Milliseconds a request to the other nodes waits for their answers.
    pub request_timeout: u64,
    /// Most Socket.IO rooms a socket is in besides its own id and its user's (conversations
    /// joined, rooms other servers made it join).
    pub max_rooms_per_socket: usize,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("RedisSettings")
            .field("url", &redacted(&self.url))
            .field("key", &self.key)
            .field("presence_ttl", &self.presence_ttl)
            .field("refresh", &self.refresh)
            .field("request_timeout", &self.request_timeout)
            .field("max_rooms_per_socket", &self.max_rooms_per_socket)
            .finish()
    }
}

impl RedisSettings {
    /// The URL, when clustering is on.
    pub fn url(&self) -> Option<&str> {
        Some(self.url.trim()).filter(|u| !u.is_empty())
    }

    /// Whether every value can be used.
    pub(crate) fn validate(&self) -> Checked {
        positive(&[
            ("redis.presence_ttl", self.presence_ttl),
            ("redis.refresh", self.refresh),
            ("redis.request_timeout", self.request_timeout),
            (
                "redis.max_rooms_per_socket",
                self.max_rooms_per_socket as u64,
            ),
        ])?;
        if let Some(url) = self.url() {
            Target::parse(url).map_err(|e| invalid("redis.url", e))?;
        }
        if self.url().is_some() && self.key.is_empty() {
            return Err(invalid("redis.key", "must not be empty"));
        }
        if self.refresh >= self.presence_ttl {
            return Err(invalid(
                "redis.refresh",
                "must be shorter than redis.presence_ttl, or live nodes' keys would expire",
            ));
        }
        Ok(())
    }
}
