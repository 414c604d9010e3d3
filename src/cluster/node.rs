//! One node of the cluster: its state, and publishing a frame.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use log::warn;
use redis::Cmd;
use tokio::sync::{mpsc, oneshot};

use super::elsewhere::Asked;
use super::flags::mark_flags;
use super::keys::Keys;
use super::link::{ClusterUrl, Conn, Link};
use super::metrics::ClusterMetrics;
use super::publish::Queued;
use super::settings::RedisSettings;
use super::sharded::wire as sharded;
use super::wire::{self, Channels};
use crate::chat::push::{Frame, Mark, CHAT_NAMESPACE};

/// One node of the cluster.
pub struct Cluster {
    pub(super) uid: Arc<str>,
    pub(super) channels: Channels,
    pub(super) keys: Keys,
    pub(super) out: mpsc::Sender<(Cmd, Queued)>,
    pub(super) conn: Conn,
    pub(super) link: Link,
    /// This node's sockets per user, as last told by the chat.
    pub(super) local: Mutex<HashMap<Arc<str>, usize>>,
    /// This node's requests waiting for answers.
    pub(super) asked: Asked,
    /// Whether the subscriber and the refresher run ([`Cluster::attach`]).
    pub(super) attached: AtomicBool,
    pub(super) settings: RedisSettings,
    pub(super) metrics: Arc<ClusterMetrics>,
    /// On a Redis Cluster: the sharded protocol's channels and its subscriber.
    pub(super) sharded: Option<Sharded>,
}

/// The sharded protocol's side of a node ([`sharded`]).
pub(super) struct Sharded {
    pub(super) channels: sharded::ShardedChannels,
    pub(super) url: ClusterUrl,
    pub(super) asks: mpsc::Sender<Ask>,
    /// The subscriber's end of `asks`, until it starts.
    pub(super) asked: Mutex<Option<mpsc::Receiver<Ask>>>,
}

/// What the sharded subscriber is asked by the rest of the node.
pub(super) enum Ask {
    /// Subscribe to `room`'s channel now (a socket of that user is connecting) and say when
    /// it is; it stays subscribed for a while even if no socket comes.
    Room(Arc<str>, oneshot::Sender<()>),
}

/// Most CONNECTs' asks waiting for the subscriber; past it a CONNECT does not wait.
pub(super) const ASKS: usize = 1024;

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("uid", &self.uid)
            .field("channels", &self.channels)
            .finish()
    }
}

/// Why the cluster could not start.
#[derive(Debug)]
pub struct ClusterError(pub String);

impl std::fmt::Display for ClusterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClusterError {}

impl Cluster {
    /// This node's id on the wire.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// `/readyz`'s check: a `PING` on the commands' connection.
    pub async fn ping(&self) -> Result<(), String> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Queues `cmd` for Redis (a publish is counted as one).
    pub(super) fn send(&self, cmd: Cmd, queued: Queued) {
        let publish = !matches!(queued, Queued::Command);
        if self.out.try_send((cmd, queued)).is_err() && publish {
            self.metrics.publish_failed(1);
        }
    }

    /// Publishes the event in `frame` (`42[...]`) to `rooms` (everyone when empty), with its
    /// place in its conversation's stream (`mark`) as the flag `courierMark`.
    pub(super) fn publish_frame(&self, rooms: &[&str], frame: &Frame, mark: Option<&Mark>) {
        let Some(data) = frame
            .strip_prefix("42")
            .and_then(|json| serde_json::from_str::<serde_json::Value>(json).ok())
        else {
            warn!("cluster: not an event frame, not published: {frame:.80}");
            return;
        };
        let cmd = match &self.sharded {
            Some(sharded) => sharded::publish(
                &self.uid,
                &sharded.channels,
                &data,
                rooms,
                sharded::mark_flags(mark),
            ),
            None => {
                let flags = mark.map_or_else(Vec::new, mark_flags);
                let payload =
                    wire::encode_broadcast(&self.uid, CHAT_NAMESPACE, &data, rooms, flags);
                let mut cmd = redis::cmd("PUBLISH");
                cmd.arg(self.channels.broadcast_to(rooms)).arg(payload);
                cmd
            }
        };
        let queued = match rooms {
            [user] => Queued::ToUser(Arc::from(*user)),
            _ => Queued::Broadcast,
        };
        self.send(cmd, queued);
    }
}
