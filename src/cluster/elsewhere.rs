//! Counting a user's sockets on the other servers: `fetchSockets` asked of each, or the
//! Courier nodes' counts kept in Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::debug;
use redis::AsyncCommands;

use super::keys::{node_uid, Keys};
use super::link::Conn;
use super::sharded::wire as sharded;
use super::wire::{self, Channels};

/// This node's `fetchSockets` requests waiting for answers, by request id.
pub(super) type Asked = Arc<Mutex<HashMap<String, Asking>>>;

/// A `fetchSockets` request of this node: the answers it waits for, the sockets so far.
pub(super) struct Asking {
    expected: usize,
    got: usize,
    sockets: usize,
    done: Option<tokio::sync::oneshot::Sender<usize>>,
}

/// An answer on the response channel: counted if it answers one of this node's requests.
pub(super) fn on_response(asked: &Asked, payload: &[u8]) {
    if let Ok(answer) = serde_json::from_slice::<serde_json::Value>(payload) {
        on_response_value(asked, &answer);
    }
}

/// An answer (`{requestId, sockets}`) counted if it answers one of this node's requests.
pub(super) fn on_response_value(asked: &Asked, answer: &serde_json::Value) {
    let Some(id) = answer.get("requestId").and_then(|v| v.as_str()) else {
        return;
    };
    let mut asked = asked.lock().unwrap_or_else(|p| p.into_inner());
    let Some(asking) = asked.get_mut(id) else {
        return;
    };
    asking.got += 1;
    asking.sockets += answer
        .get("sockets")
        .and_then(|s| s.as_array())
        .map_or(0, Vec::len);
    if asking.got >= asking.expected {
        if let Some(asking) = asked.remove(id) {
            if let Some(done) = asking.done {
                let _ = done.send(asking.sockets);
            }
        }
    }
}

/// What counting sockets elsewhere needs, apart from the [`Cluster`].
pub(super) struct Elsewhere {
    pub(super) conn: Conn,
    pub(super) keys: Keys,
    pub(super) uid: Arc<str>,
    pub(super) channels: Channels,
    pub(super) sharded: Option<sharded::ShardedChannels>,
    pub(super) asked: Asked,
}

impl Elsewhere {
    /// Asks every other server (Courier nodes and Node servers alike) for `user`'s sockets,
    /// as the adapter's `fetchSockets()` does: `PUBSUB NUMSUB` on the request channel says
    /// how many answers to wait for. `Ok(None)`: not all answered within `timeout`.
    pub(super) async fn fetch(
        &self,
        user: &str,
        timeout: Duration,
    ) -> redis::RedisResult<Option<usize>> {
        let mut conn = self.conn.clone();
        let servers = match &self.sharded {
            // Summed over the cluster's nodes (each answers for its own shards).
            Some(channels) => {
                let counts: HashMap<String, usize> = redis::cmd("PUBSUB")
                    .arg("SHARDNUMSUB")
                    .arg(&channels.main)
                    .query_async(&mut conn)
                    .await?;
                counts.get(&channels.main).copied().unwrap_or(0)
            }
            None => {
                let (_, servers): (String, usize) = redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(&self.channels.request)
                    .query_async(&mut conn)
                    .await?;
                servers
            }
        };
        let expected = servers.saturating_sub(1);
        if expected == 0 {
            return Ok(Some(0));
        }
        let id = node_uid();
        let (done, answered) = tokio::sync::oneshot::channel();
        self.asked.lock().unwrap_or_else(|p| p.into_inner()).insert(
            id.clone(),
            Asking {
                expected,
                got: 0,
                sockets: 0,
                done: Some(done),
            },
        );
        let opts = serde_json::json!({"rooms": [user], "except": [], "flags": {}});
        let (channel, request) = match &self.sharded {
            Some(channels) => (
                channels.main.clone(),
                sharded::encode(
                    &self.uid,
                    sharded::kind::FETCH_SOCKETS,
                    serde_json::json!({"opts": opts, "requestId": id}),
                ),
            ),
            None => (
                self.channels.request.clone(),
                serde_json::json!({
                    "uid": &*self.uid,
                    "requestId": id,
                    "type": wire::request_type::REMOTE_FETCH,
                    "opts": opts,
                })
                .to_string()
                .into_bytes(),
            ),
        };
        let publish = if self.sharded.is_some() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let published = redis::cmd(publish)
            .arg(channel)
            .arg(request)
            .query_async::<usize>(&mut conn)
            .await;
        let outcome = match published {
            Ok(_) => tokio::time::timeout(timeout, answered).await,
            Err(e) => {
                self.asked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                return Err(e);
            }
        };
        match outcome {
            Ok(Ok(n)) => Ok(Some(n)),
            _ => {
                let left = self
                    .asked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                debug!(
                    "cluster: fetchSockets for {user}: {} of {expected} servers answered in time",
                    left.as_ref().map_or(0, |a| a.got)
                );
                Ok(None)
            }
        }
    }

    pub(super) async fn count(&self, user: &str) -> redis::RedisResult<usize> {
        let mut conn = self.conn.clone();
        let counts: HashMap<String, usize> = conn.hgetall(self.keys.sockets(user)).await?;
        let others: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|(uid, n)| *n > 0 && **uid != *self.uid)
            .collect();
        if others.is_empty() {
            return Ok(0);
        }
        let alive: Vec<Option<String>> = redis::cmd("MGET")
            .arg(
                others
                    .iter()
                    .map(|(uid, _)| self.keys.node(uid))
                    .collect::<Vec<_>>(),
            )
            .query_async(&mut conn)
            .await?;
        Ok(others
            .iter()
            .zip(alive)
            .filter(|(_, alive)| alive.is_some())
            .map(|((_, n), _)| n)
            .sum())
    }
}
