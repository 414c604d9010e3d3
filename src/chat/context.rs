//! [`ChatContext`]: what every chat socket shares (the handles to the chat's actors, its
//! limits, its keys).

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::sync::Semaphore;

use super::keys::MessageIdKey;
use super::metrics::ChatMetrics;
use super::protocol::Limits;
use super::rate_limit::UserRateLimiter;
use super::recovery::{PidKey, RecoveryOptions};
use super::room::Rooms;
use super::users::{SocketSlots, Users};
use crate::auth::Authenticator;
use crate::engineio::admission::RefusalLog;
use crate::rate::RateSettings;

/// What every chat socket shares.
#[derive(Clone)]
pub struct ChatContext {
    /// Verifies handshake tokens.
    pub auth: Arc<Authenticator>,
    /// Conversations' rooms.
    pub rooms: Rooms,
    /// Users' sockets.
    pub users: Users,
    /// The database's write queue (`database.write_queue`), shared by all sockets.
    pub write_permits: Arc<Semaphore>,
    /// Its size.
    pub write_queue: usize,
    /// Makes message ids.
    pub message_ids: MessageIdKey,
    /// The limits the events' checks use.
    pub limits: Limits,
    /// Requests one socket may have in flight before it is read no further.
    pub send_window: usize,
    /// The per-user limit on `send_message`.
    pub rate_limit: Arc<UserRateLimiter>,
    /// The per-socket limit on call signalling.
    pub call_rate: RateSettings,
    /// Sockets per user (`chat.max_sockets_per_user`), on all nodes in a cluster.
    pub socket_slots: Arc<SocketSlots>,
    /// Refused CONNECTs, logged at info without flooding the log.
    pub refusals: Arc<RefusalLog>,
    /// What the chat counts (`/metrics`).
    pub metrics: Arc<ChatMetrics>,
    /// Reads (history, replay).
    pub db: DatabaseConnection,
    /// How long a failed database connection is retried before a read fails.
    pub retry_for: Duration,
    /// Connection state recovery.
    pub recovery: RecoveryOptions,
    /// Signs pids.
    pub pid_key: PidKey,
}

impl ChatContext {
    /// Writes queued or being committed now.
    pub(crate) fn write_queue_depth(&self) -> usize {
        self.write_queue
            .saturating_sub(self.write_permits.available_permits())
    }
}
