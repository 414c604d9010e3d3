//! [`Chat::start`]: the chat's actors on threads of their own (the room and user shards,
//! the persistence actor), wired together, and their shutdown.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Arbiter};
use sea_orm::DatabaseConnection;
use tokio::sync::Semaphore;

use super::context::ChatContext;
use super::keys::MessageIdKey;
use super::metrics::ChatMetrics;
use super::persistence::{Persistence, Shutdown};
use super::pids;
use super::protocol::Limits;
use super::rate_limit;
use super::recovery::{PidKey, RecoveryOptions};
use super::remote;
use super::room::{RoomDeps, RoomShard, Rooms};
use super::socket;
use super::users::{PresenceOptions, ShardDeps, SocketSlots, UserShard, Users};
use crate::auth::Authenticator;
use crate::engineio::admission::RefusalLog;
use crate::rate::RateSettings;

/// How the chat runs.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// Room and user shards (threads); 0 means one per CPU core.
    pub shards: usize,
    /// A room with nothing joined and nothing in flight stops after this long.
    pub room_idle_timeout: Duration,
    /// Most writes committed together.
    pub batch_max: usize,
    /// Most batches committed at a time (`database.writers`; 1 on SQLite).
    pub writers: usize,
    /// How long a failed database connection is retried before writes fail.
    pub retry_for: Duration,
    /// Most writes queued or being committed, all sockets together.
    pub write_queue: usize,
    /// Longest accepted message content, in characters.
    pub max_content_chars: usize,
    /// Most message ids in one `delete_messages`.
    pub max_notice_ids: usize,
    /// Requests one socket may have in flight.
    pub send_window: usize,
    /// The per-user limit on `send_message`.
    pub rate_limit: RateSettings,
    /// The per-socket limit on call signalling.
    pub call_rate: RateSettings,
    /// Sockets one user may have connected to this node.
    pub max_sockets_per_user: usize,
    /// How presence works.
    pub presence: PresenceOptions,
    /// Where the chat counts what it does ([`ChatMetrics::off`] counts nothing).
    pub metrics: Arc<ChatMetrics>,
    /// The other nodes of the cluster (`None`: a single node).
    pub remote: Option<Arc<dyn remote::RemoteNodes>>,
    /// Connection state recovery.
    pub recovery: RecoveryOptions,
}

/// The running chat: its shared actors and their threads.
pub struct Chat {
    /// What sockets need (shared by all of them).
    pub context: Arc<ChatContext>,
    /// The writer.
    pub persistence: Addr<Persistence>,
    arbiters: Vec<Arbiter>,
}

impl Chat {
    /// Starts the chat's actors on threads of their own: `options.shards` room and user
    /// shards, and persistence over `db`.
    pub fn start(
        db: DatabaseConnection,
        auth: Arc<Authenticator>,
        message_ids: MessageIdKey,
        pid_key: PidKey,
        options: &ChatOptions,
    ) -> Chat {
        let shards = match options.shards {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let writer = Arbiter::new();
        let (batch_max, retry_for) = (options.batch_max, options.retry_for);
        // SQLite has one writer: concurrent transactions would only wait on its lock.
        let writers = match db.get_database_backend() {
            sea_orm::DatabaseBackend::Sqlite => 1,
            _ => options.writers,
        };
        let writer_db = db.clone();
        let writer_metrics = options.metrics.clone();
        let persistence = Persistence::start_in_arbiter(&writer.handle(), move |_| {
            Persistence::new(writer_db, batch_max, retry_for)
                .writers(writers)
                .metrics(writer_metrics)
        });
        let arbiters: Vec<Arbiter> = (0..shards).map(|_| Arbiter::new()).collect();
        let shard_deps = ShardDeps {
            db: db.clone(),
            persistence: persistence.clone().recipient(),
            presence: options.presence.clone(),
            metrics: options.metrics.clone(),
        };
        let pids = pids::PidSessions::new(
            options.recovery.max_disconnection,
            options.recovery.max_records,
            options.metrics.clone(),
        );
        let users = Users::new(
            arbiters
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let deps = shard_deps.clone();
                    UserShard::start_in_arbiter(&a.handle(), move |_| UserShard::new(i, deps))
                })
                .collect(),
            options.remote.clone(),
            pids.clone(),
        );
        let deps = RoomDeps {
            persistence: persistence.clone().recipient(),
            users: users.clone(),
            db: db.clone(),
            idle_timeout: options.room_idle_timeout,
            retry_for,
            metrics: options.metrics.clone(),
        };
        let rooms = Rooms::new(
            arbiters
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let deps = deps.clone();
                    RoomShard::start_in_arbiter(&a.handle(), move |_| RoomShard::new(i, deps))
                })
                .collect(),
        );
        let context = ChatContext {
            auth,
            rooms,
            users,
            write_permits: socket::write_permits(options.write_queue),
            write_queue: options.write_queue.clamp(1, Semaphore::MAX_PERMITS),
            message_ids,
            limits: Limits {
                max_content_chars: options.max_content_chars,
                max_notice_ids: options.max_notice_ids.max(1),
            },
            send_window: options.send_window.max(1),
            rate_limit: rate_limit::user_rate_limiter(options.rate_limit, options.remote.clone()),
            call_rate: options.call_rate,
            socket_slots: SocketSlots::new(options.max_sockets_per_user, options.remote.clone()),
            refusals: Arc::new(RefusalLog::new("CONNECTs")),
            metrics: options.metrics.clone(),
            db,
            retry_for,
            recovery: options.recovery,
            pid_key,
        };
        // Disconnected pid records are forgotten after recovery.max_disconnection.
        let sweeping = Arc::downgrade(&pids);
        let every = pids.sweep_every();
        writer.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                let Some(pids) = sweeping.upgrade() else {
                    break;
                };
                pids.sweep();
            }
        });
        let mut arbiters = arbiters;
        arbiters.push(writer);
        Chat {
            context: Arc::new(context),
            persistence,
            arbiters,
        }
    }

    /// Waits until every write received so far is committed and answered, then stops the
    /// chat's threads.
    pub async fn shutdown(&self) {
        let _ = self.persistence.send(Shutdown).await;
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

/// A chat dropped without [`Chat::shutdown`] (a server whose runtime ended, a test) stops its
/// threads too: they would otherwise live on with the database connections they hold.
impl Drop for Chat {
    fn drop(&mut self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}
