//! Many Courier nodes (and Node servers with `@socket.io/redis-adapter` 8.x) as one service,
//! over Redis pub/sub, on the adapter's own wire protocol ([`wire`]).
//!
//! On when `redis.url` is set. [`Cluster`] is the chat's [`RemoteNodes`]:
//!
//! - **Out**: what the chat delivers to a user (`io.to(userId)`) or to everyone (`io.emit`)
//!   is also published as the adapter's broadcast, on `<key>#/#<userId>#` or `<key>#/#`.
//!   Everything this node writes to Redis goes through one queue and one connection, in
//!   order, pipelined: a room's deliveries reach the other nodes in the room's order. A
//!   publish that fails (Redis down, the queue full) is counted
//!   (`courier_cluster_publish_failed_total`) and logged, never retried (a retry would
//!   reorder).
//! - **In**: one subscriber connection per node: `PSUBSCRIBE <key>#/#*` (broadcasts, its own
//!   ignored by `uid`), `SUBSCRIBE <key>-request#/#` (Node counts the servers with
//!   `PUBSUB NUMSUB` on it and waits for one answer from each) and the response channels
//!   (`<key>-response#/#`, and `<key>-response#/#<uid>#`) for the answers to its own
//!   requests. Broadcasts go to this node's sockets in the Socket.IO rooms they name (a
//!   socket's id, its user's id, the conversations it joined, rooms joined by request: the
//!   chat's [`crate::chat::remote::SocketIndex`]), binary ones as binary packets; requests
//!   are answered on `<key>-response#/#` ([`requests`]). When the connection drops the
//!   subscriber connects and subscribes again by itself, and the chat's sockets catch up on
//!   what they missed meanwhile (`Users::remote_link`).
//! - **Presence**: how many sockets a user has on the other servers is asked as the
//!   adapter's `fetchSockets()` asks it (a `REMOTE_FETCH` request, one answer awaited from
//!   each server `PUBSUB NUMSUB` counts, Courier nodes and Node servers alike, within
//!   `redis.request_timeout`). Each node also keeps in Redis how many sockets each of its
//!   users has (the hash `courier:<key>:sockets:<userId>`, one field per node: the fallback
//!   when not every server answered) and that it is alive (the key
//!   `courier:<key>:node:<uid>`, which expires `redis.presence_ttl` after the node's last
//!   refresh); a count only counts while its node is alive. Every `redis.refresh` the node
//!   writes all of it again (so a restarted Redis has it back within one refresh) and looks
//!   for nodes that died: the one node that claims a dead node (`SREM` of the set
//!   `courier:<key>:nodes`) settles the presence of the dead node's users. The Node server's
//!   set `online_users` is kept too (users with a socket on a Courier node are added; a user
//!   who goes offline is removed).

pub mod link;
pub mod metrics;
pub mod requests;
pub mod sharded;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use log::{debug, info, warn};
use redis::{AsyncCommands, Cmd};
use tokio::sync::mpsc;

use crate::chat::push::{ChatPush, Frame, Mark, CHAT_NAMESPACE};
use crate::chat::remote::RemoteNodes;
use crate::chat::users::Users;
use crate::config::RedisSettings;
use link::{Conn, Link, Target};
pub use metrics::ClusterMetrics;
use wire::Channels;

/// The broadcast flag that carries an event's place in its conversation's stream between
/// Courier nodes, `[connectionId, stamp, key]` (a Node server ignores flags it does not know).
pub const MARK_FLAG: &str = "courierMark";

/// The flags that carry `mark`.
fn mark_flags(mark: &Mark) -> Vec<(rmpv::Value, rmpv::Value)> {
    vec![(
        rmpv::Value::from(MARK_FLAG),
        rmpv::Value::Array(vec![
            rmpv::Value::from(&*mark.conversation),
            rmpv::Value::from(mark.at),
            rmpv::Value::from(mark.key.as_str()),
        ]),
    )]
}

/// The mark a broadcast's flags carry, if any.
fn mark_of(flags: &serde_json::Value) -> Option<Mark> {
    let [conversation, at, key] = flags.get(MARK_FLAG)?.as_array()?.as_slice() else {
        return None;
    };
    let conversation = conversation.as_str()?;
    if conversation.is_empty() || conversation.chars().count() > crate::chat::args::MAX_ID_CHARS {
        return None;
    }
    Some(Mark {
        conversation: Arc::from(conversation),
        at: at.as_i64()?,
        key: crate::chat::recovery::StreamKey::parse(key.as_str()?)?,
    })
}

/// The Node server's set of online users.
pub const ONLINE_USERS: &str = "online_users";

/// The broadcast flag of a node's notice that some of its publishes were lost (Redis failed
/// them): a user's id (what was lost went to that user), or `true` (to anyone). The other
/// Courier nodes' sockets of that user (of everyone) catch up from the database; the notice
/// follows the lost publishes and comes before the next ones on the same channel.
pub const MISSED_FLAG: &str = "courierMissed";

/// The room a missed-publishes notice goes to: nobody's (a Node server delivers it to no one).
pub const MISSED_ROOM: &str = "courier:missed";

/// Most users a node remembers lost publishes for; past it, its notice is for everyone.
const MISSED_USERS: usize = 10_000;

/// What a queued command is.
#[derive(Debug, Clone)]
pub(crate) enum Queued {
    /// Not a publish.
    Command,
    /// A broadcast to every socket (not caught up when lost: live events only).
    Broadcast,
    /// A delivery to a user's sockets (caught up from the database when lost).
    ToUser(Arc<str>),
}

/// Most commands queued for Redis before more are dropped (and counted as failed).
const QUEUE: usize = 65_536;

/// Most commands sent in one pipeline.
const BATCH: usize = 512;

/// One node of the cluster.
pub struct Cluster {
    uid: Arc<str>,
    channels: Channels,
    keys: Keys,
    out: mpsc::Sender<(Cmd, Queued)>,
    conn: Conn,
    link: Link,
    /// This node's sockets per user, as last told by the chat.
    local: Mutex<HashMap<Arc<str>, usize>>,
    /// This node's requests waiting for answers.
    asked: Asked,
    users: OnceLock<Users>,
    settings: RedisSettings,
    metrics: Arc<ClusterMetrics>,
    /// On a Redis Cluster: the sharded protocol's channels and its subscriber.
    sharded: Option<Sharded>,
}

/// The sharded protocol's side of a node ([`sharded`]).
struct Sharded {
    channels: sharded::ShardedChannels,
    url: link::ClusterUrl,
    asks: mpsc::Sender<sharded::Ask>,
    /// The subscriber's end of `asks`, until it starts.
    asked: Mutex<Option<mpsc::Receiver<sharded::Ask>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("uid", &self.uid)
            .field("channels", &self.channels)
            .finish()
    }
}

/// The names of the presence keys.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn node(&self, uid: &str) -> String {
        format!("{}:node:{uid}", self.prefix)
    }
    fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
    fn sockets(&self, user: &str) -> String {
        format!("{}:sockets:{user}", self.prefix)
    }
    fn node_users(&self, uid: &str) -> String {
        format!("{}:node-users:{uid}", self.prefix)
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

/// A node id as the adapter makes them (`uid2(6)`: 6 characters of `[A-Za-z0-9]`); ours
/// are longer, to tell Courier nodes apart in logs, and still unique per process.
fn node_uid() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes).unwrap_or_default();
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

impl Cluster {
    /// Connects to `settings.url` lazily (Courier starts while Redis is down, and is not
    /// ready meanwhile) and starts the publishing queue. [`Cluster::attach`] starts the rest
    /// once the chat runs. Must run inside the actix system.
    pub fn start(
        settings: &RedisSettings,
        metrics: Arc<ClusterMetrics>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let url = settings
            .url()
            .ok_or_else(|| ClusterError("redis.url is not set".into()))?;
        let target = Target::parse(url)
            .map_err(|e| ClusterError(format!("redis.url {}: {e}", link::redacted(url))))?;
        let timeout = Duration::from_millis(settings.request_timeout.max(100));
        let sharded = match &target {
            Target::Cluster(url) => {
                let (asks, asked) = mpsc::channel(sharded::ASKS);
                Some(Sharded {
                    channels: sharded::ShardedChannels::new(&settings.key, CHAT_NAMESPACE),
                    url: url.clone(),
                    asks,
                    asked: Mutex::new(Some(asked)),
                })
            }
            _ => None,
        };
        let link = Link::open(target, timeout)
            .map_err(|e| ClusterError(format!("redis.url {}: {e}", link::redacted(url))))?;
        let conn = link.commands();
        let (out, rx) = mpsc::channel(QUEUE);
        let cluster = Arc::new(Cluster {
            uid: node_uid().into(),
            channels: Channels::new(&settings.key, CHAT_NAMESPACE),
            keys: Keys {
                prefix: format!("courier:{}", settings.key),
            },
            out,
            conn: conn.clone(),
            link,
            local: Mutex::new(HashMap::new()),
            asked: Arc::new(Mutex::new(HashMap::new())),
            users: OnceLock::new(),
            settings: settings.clone(),
            metrics: metrics.clone(),
            sharded,
        });
        let notices = Notices {
            uid: cluster.uid.clone(),
            channels: cluster.channels.clone(),
            sharded: cluster.sharded.as_ref().map(|s| s.channels.clone()),
        };
        actix::spawn(pump(rx, conn, metrics, notices));
        info!(
            "cluster: node {} on {} (channels {}*)",
            cluster.uid,
            link::redacted(url),
            cluster.channels.broadcast
        );
        Ok(cluster)
    }

    /// Starts receiving from the other nodes, delivering to `users`, and keeping this
    /// node's presence keys.
    pub fn attach(self: &Arc<Self>, users: Users) {
        if self.users.set(users).is_err() {
            return;
        }
        match &self.sharded {
            Some(sharded) => {
                let asked = sharded
                    .asked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                if let Some(asked) = asked {
                    actix::spawn(sharded::subscriber(
                        self.clone(),
                        sharded.url.clone(),
                        asked,
                    ));
                }
            }
            None => {
                actix::spawn(subscriber(self.clone()));
            }
        }
        actix::spawn(refresher(self.clone()));
    }

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
    fn send(&self, cmd: Cmd, queued: Queued) {
        let publish = !matches!(queued, Queued::Command);
        if self.out.try_send((cmd, queued)).is_err() && publish {
            self.metrics.publish_failed(1);
        }
    }

    /// Publishes the event in `frame` (`42[...]`) to `rooms` (everyone when empty), with its
    /// place in its conversation's stream (`mark`) as the flag [`MARK_FLAG`].
    fn publish_frame(&self, rooms: &[&str], frame: &Frame, mark: Option<&Mark>) {
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

    /// Writes this node's keys again: alive, its users' counts, `online_users`.
    fn refresh_commands(&self) -> redis::Pipeline {
        let ttl = self.settings.presence_ttl;
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.keys.node(&self.uid))
            .arg(1)
            .arg("PX")
            .arg(ttl)
            .ignore();
        pipe.cmd("SADD")
            .arg(self.keys.nodes())
            .arg(&*self.uid)
            .ignore();
        let local: Vec<(Arc<str>, usize)> = self
            .local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(u, n)| (u.clone(), *n))
            .collect();
        let node_users = self.keys.node_users(&self.uid);
        for (user, n) in &local {
            let key = self.keys.sockets(user);
            pipe.cmd("HSET").arg(&key).arg(&*self.uid).arg(*n).ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(ttl * 4).ignore();
            pipe.cmd("SADD").arg(&node_users).arg(&**user).ignore();
            pipe.cmd("SADD").arg(ONLINE_USERS).arg(&**user).ignore();
        }
        pipe.cmd("PEXPIRE").arg(&node_users).arg(ttl * 4).ignore();
        pipe
    }

    /// Finds the nodes whose key expired; settles the presence of the users of those this
    /// node claims.
    async fn bury_dead_nodes(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let nodes: Vec<String> = conn.smembers(self.keys.nodes()).await?;
        for uid in nodes.into_iter().filter(|uid| **uid != *self.uid) {
            let alive: bool = conn.exists(self.keys.node(&uid)).await?;
            if alive {
                continue;
            }
            let claimed: usize = conn.srem(self.keys.nodes(), &uid).await?;
            if claimed == 0 {
                continue;
            }
            let list = self.keys.node_users(&uid);
            let users: Vec<String> = conn.smembers(&list).await?;
            let _: () = conn.del(&list).await?;
            info!(
                "cluster: node {uid} stopped refreshing its keys; settling the presence of its {} users",
                users.len()
            );
            for user in users {
                let _: () = conn.hdel(self.keys.sockets(&user), &uid).await?;
                if let Some(all) = self.users.get() {
                    all.node_gone(&user);
                }
            }
        }
        Ok(())
    }
}

impl Cluster {
    /// What asking the other nodes about a user's sockets needs.
    fn elsewhere(&self) -> Elsewhere {
        Elsewhere {
            conn: self.conn.clone(),
            keys: self.keys.clone(),
            uid: self.uid.clone(),
            channels: self.channels.clone(),
            sharded: self.sharded.as_ref().map(|s| s.channels.clone()),
            asked: self.asked.clone(),
        }
    }
}

impl RemoteNodes for Cluster {
    fn to_user(&self, user: &str, frame: &Frame, mark: Option<&Mark>) {
        self.publish_frame(&[user], frame, mark);
    }

    fn broadcast(&self, frame: &Frame) {
        self.publish_frame(&[], frame, None);
    }

    fn sockets_elsewhere(&self, user: &str) -> BoxFuture<'static, usize> {
        let view = self.elsewhere();
        let user = user.to_string();
        let timeout = Duration::from_millis(self.settings.request_timeout);
        Box::pin(async move {
            match view.fetch(&user, timeout).await {
                Ok(Some(n)) => n,
                outcome => {
                    // Not every node answered in time (or Redis failed): the Courier nodes'
                    // counts in Redis, or what did answer, whichever is more.
                    let partial = outcome.ok().flatten().unwrap_or(0);
                    match tokio::time::timeout(timeout, view.count(&user)).await {
                        Ok(Ok(n)) => n.max(partial),
                        Ok(Err(e)) => {
                            debug!("cluster: counting the sockets of {user} elsewhere failed: {e}");
                            partial
                        }
                        Err(_) => partial,
                    }
                }
            }
        })
    }

    fn sockets_counted(&self, user: &str) -> BoxFuture<'static, usize> {
        let view = self.elsewhere();
        let timeout = Duration::from_millis(self.settings.request_timeout);
        // Sharded: the user's room channel is subscribed before the CONNECT is answered, so
        // that nothing sent to them from then on misses this node.
        let subscribed = self.sharded.as_ref().map(|sharded| {
            let (done, subscribed) = tokio::sync::oneshot::channel();
            let _ = sharded
                .asks
                .try_send(sharded::Ask::Room(Arc::from(user), done));
            subscribed
        });
        let user = user.to_string();
        Box::pin(async move {
            let count = async {
                match tokio::time::timeout(timeout, view.count(&user)).await {
                    Ok(Ok(n)) => n,
                    _ => 0,
                }
            };
            let subscribed = async {
                if let Some(subscribed) = subscribed {
                    let _ = tokio::time::timeout(timeout, subscribed).await;
                }
            };
            futures_util::future::join(count, subscribed).await.0
        })
    }

    fn local_count(&self, user: &str, count: usize) {
        {
            let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            if count == 0 {
                local.remove(user);
            } else {
                local.insert(user.into(), count);
            }
        }
        let key = self.keys.sockets(user);
        if count == 0 {
            // The user stays in this node's list until their presence is settled
            // (`went_offline`): if this node stops first, whoever buries it settles them.
            let mut cmd = redis::cmd("HDEL");
            cmd.arg(&key).arg(&*self.uid);
            self.send(cmd, Queued::Command);
        } else {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(&key).arg(&*self.uid).arg(count);
            self.send(cmd, Queued::Command);
            let mut cmd = redis::cmd("PEXPIRE");
            cmd.arg(&key).arg(self.settings.presence_ttl * 4);
            self.send(cmd, Queued::Command);
            let mut cmd = redis::cmd("SADD");
            cmd.arg(self.keys.node_users(&self.uid)).arg(user);
            self.send(cmd, Queued::Command);
            let mut cmd = redis::cmd("SADD");
            cmd.arg(ONLINE_USERS).arg(user);
            self.send(cmd, Queued::Command);
        }
    }

    fn pid_taken(&self, nonce: &str) {
        let opts = serde_json::json!({
            "rooms": [format!("{}{nonce}", crate::chat::remote::PID_ROOM)],
            "except": [],
            "flags": {},
        });
        let cmd = match &self.sharded {
            Some(sharded) => {
                let mut cmd = redis::cmd("SPUBLISH");
                cmd.arg(&sharded.channels.main).arg(sharded::encode(
                    &self.uid,
                    sharded::kind::DISCONNECT_SOCKETS,
                    serde_json::json!({"opts": opts, "close": true}),
                ));
                cmd
            }
            None => {
                let request = serde_json::json!({
                    "uid": &*self.uid,
                    "type": wire::request_type::REMOTE_DISCONNECT,
                    "opts": opts,
                    "close": true,
                })
                .to_string();
                let mut cmd = redis::cmd("PUBLISH");
                cmd.arg(&self.channels.request).arg(request);
                cmd
            }
        };
        self.send(cmd, Queued::Command);
    }

    fn went_offline(&self, user: &str) {
        let mut cmd = redis::cmd("SREM");
        cmd.arg(ONLINE_USERS).arg(user);
        self.send(cmd, Queued::Command);
        let mut cmd = redis::cmd("SREM");
        cmd.arg(self.keys.node_users(&self.uid)).arg(user);
        self.send(cmd, Queued::Command);
    }

    fn note_message(&self, user: &str) {
        let key = format!("ratelimit:messages:{user}");
        let window = crate::chat::rate_limit::CLUSTER_WINDOW.as_millis() as u64;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key).arg(0).arg("PX").arg(window).arg("NX");
        self.send(cmd, Queued::Command);
        let mut cmd = redis::cmd("INCR");
        cmd.arg(&key);
        self.send(cmd, Queued::Command);
    }

    fn count_message(&self, user: &str) -> BoxFuture<'static, Option<u64>> {
        let mut conn = self.conn.clone();
        let key = format!("ratelimit:messages:{user}");
        let window = crate::chat::rate_limit::CLUSTER_WINDOW.as_millis() as u64;
        Box::pin(async move {
            // The Node server's counter: created for one window by the first message in it.
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(&key)
                .arg(0)
                .arg("PX")
                .arg(window)
                .arg("NX")
                .ignore();
            pipe.cmd("INCR").arg(&key);
            match pipe.query_async::<(u64,)>(&mut conn).await {
                Ok((n,)) => Some(n),
                Err(e) => {
                    debug!("cluster: counting a message of {key} failed: {e}");
                    None
                }
            }
        })
    }

    fn max_rooms_per_socket(&self) -> usize {
        self.settings.max_rooms_per_socket
    }

    fn online_anywhere(&self, user: &str) -> BoxFuture<'static, bool> {
        let elsewhere = self.sockets_elsewhere(user);
        let mut conn = self.conn.clone();
        let user = user.to_string();
        Box::pin(async move {
            if elsewhere.await > 0 {
                return true;
            }
            // A user connected to a Node server only is in its set.
            conn.sismember(ONLINE_USERS, &user).await.unwrap_or(false)
        })
    }
}

/// This node's `fetchSockets` requests waiting for answers, by request id.
type Asked = Arc<Mutex<HashMap<String, Asking>>>;

/// A `fetchSockets` request of this node: the answers it waits for, the sockets so far.
struct Asking {
    expected: usize,
    got: usize,
    sockets: usize,
    done: Option<tokio::sync::oneshot::Sender<usize>>,
}

/// An answer on the response channel: counted if it answers one of this node's requests.
fn on_response(asked: &Asked, payload: &[u8]) {
    if let Ok(answer) = serde_json::from_slice::<serde_json::Value>(payload) {
        on_response_value(asked, &answer);
    }
}

/// An answer (`{requestId, sockets}`) counted if it answers one of this node's requests.
fn on_response_value(asked: &Asked, answer: &serde_json::Value) {
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
struct Elsewhere {
    conn: Conn,
    keys: Keys,
    uid: Arc<str>,
    channels: Channels,
    sharded: Option<sharded::ShardedChannels>,
    asked: Asked,
}

impl Elsewhere {
    /// Asks every other server (Courier nodes and Node servers alike) for `user`'s sockets,
    /// as the adapter's `fetchSockets()` does: `PUBSUB NUMSUB` on the request channel says
    /// how many answers to wait for. `Ok(None)`: not all answered within `timeout`.
    async fn fetch(&self, user: &str, timeout: Duration) -> redis::RedisResult<Option<usize>> {
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

    async fn count(&self, user: &str) -> redis::RedisResult<usize> {
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

/// What a node's notice of lost publishes needs.
struct Notices {
    uid: Arc<str>,
    channels: Channels,
    sharded: Option<sharded::ShardedChannels>,
}

impl Notices {
    /// The notice that publishes to `user` (`None`: to anyone) were lost, on the channel they
    /// went to (so that it comes after them and before the next ones).
    fn missed(&self, user: Option<&str>) -> Cmd {
        if let Some(channels) = &self.sharded {
            return sharded::missed_notice(&self.uid, channels, user);
        }
        let flag = user.map_or(rmpv::Value::Boolean(true), rmpv::Value::from);
        let payload = wire::encode_broadcast(
            &self.uid,
            CHAT_NAMESPACE,
            &serde_json::json!([MISSED_ROOM]),
            &[MISSED_ROOM],
            vec![(rmpv::Value::from(MISSED_FLAG), flag)],
        );
        let channel = match user {
            Some(user) => self.channels.broadcast_to(&[user]),
            None => self.channels.broadcast.clone(),
        };
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(payload);
        cmd
    }
}

/// The users whose deliveries Redis failed since the last notice.
#[derive(Default)]
struct Missed {
    users: std::collections::HashSet<Arc<str>>,
    everyone: bool,
}

impl Missed {
    fn is_empty(&self) -> bool {
        self.users.is_empty() && !self.everyone
    }

    fn add(&mut self, user: Arc<str>) {
        if self.everyone {
            return;
        }
        if self.users.len() >= MISSED_USERS {
            self.users.clear();
            self.everyone = true;
        } else {
            self.users.insert(user);
        }
    }

    fn notices(&self, notices: &Notices) -> Vec<Cmd> {
        if self.everyone {
            return vec![notices.missed(None)];
        }
        self.users.iter().map(|u| notices.missed(Some(u))).collect()
    }
}

/// Runs `pipe` (its replies ignored). On a Redis Cluster a pipeline goes to one node: there
/// it is one pipeline per hash slot (the slot of each command's first key or channel), the
/// commands of each in their order, all at once; it fails if any fails.
async fn run(conn: &mut Conn, pipe: redis::Pipeline) -> redis::RedisResult<()> {
    if !conn.is_cluster() {
        return pipe.query_async::<()>(conn).await;
    }
    let mut groups: Vec<(redis::cluster_routing::Slot, redis::Pipeline)> = Vec::new();
    for cmd in pipe.cmd_iter() {
        let key = match cmd.args_iter().nth(1) {
            Some(redis::Arg::Simple(key)) => key.to_vec(),
            _ => Vec::new(),
        };
        let slot = redis::cluster_routing::Slot::for_key(&key);
        let group = match groups.iter_mut().position(|(s, _)| *s == slot) {
            Some(i) => &mut groups[i].1,
            None => {
                let at = groups.len();
                groups.push((slot, redis::pipe()));
                &mut groups[at].1
            }
        };
        group.add_command(cmd.clone()).ignore();
    }
    let sent = groups.into_iter().map(|(_, group)| {
        let mut conn = conn.clone();
        async move { group.query_async::<()>(&mut conn).await }
    });
    futures_util::future::join_all(sent)
        .await
        .into_iter()
        .collect::<redis::RedisResult<Vec<()>>>()
        .map(|_| ())
}

/// How long a pump with lost publishes to tell waits for new commands before it tries to
/// send the notices alone.
const NOTICE_RETRY: Duration = Duration::from_millis(250);

/// Sends the queued commands to Redis, in order, in pipelines.
///
/// A pipeline that fails is not sent again (that would reorder); the users it was delivering
/// to are remembered, and the first pipeline that goes through after it starts with a notice
/// for each ([`MISSED_FLAG`]): their sockets on the other nodes catch up from the database.
async fn pump(
    mut rx: mpsc::Receiver<(Cmd, Queued)>,
    mut conn: Conn,
    metrics: Arc<ClusterMetrics>,
    notices: Notices,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut failing: Option<(Instant, usize)> = None;
    let mut missed = Missed::default();
    loop {
        let received = if missed.is_empty() {
            rx.recv_many(&mut batch, BATCH).await
        } else {
            match tokio::time::timeout(NOTICE_RETRY, rx.recv_many(&mut batch, BATCH)).await {
                Ok(n) => n,
                // Nothing new: the notices alone.
                Err(_) => usize::MAX,
            }
        };
        if received == 0 {
            return;
        }
        let mut pipe = redis::pipe();
        let telling = !missed.is_empty();
        for notice in missed.notices(&notices) {
            pipe.add_command(notice).ignore();
        }
        let mut publishes = 0;
        let mut to_users = Vec::new();
        for (cmd, queued) in batch.drain(..) {
            pipe.add_command(cmd).ignore();
            match queued {
                Queued::Command => {}
                Queued::Broadcast => publishes += 1,
                Queued::ToUser(user) => {
                    publishes += 1;
                    to_users.push(user);
                }
            }
        }
        match run(&mut conn, pipe).await {
            Ok(()) => {
                metrics.published(publishes);
                if telling {
                    missed = Missed::default();
                }
                if let Some((_, lost)) = failing.take() {
                    info!(
                        "cluster: Redis is back; {lost} messages for other nodes were lost \
                         (their users' sockets there catch up from the database)"
                    );
                }
            }
            Err(e) => {
                metrics.publish_failed(publishes);
                for user in to_users {
                    missed.add(user);
                }
                match &mut failing {
                    None => {
                        warn!(
                            "cluster: publishing to Redis failed ({e}): {publishes} messages \
                             for other nodes lost; local delivery goes on"
                        );
                        failing = Some((Instant::now(), publishes));
                    }
                    Some((since, lost)) => {
                        *lost += publishes;
                        if since.elapsed() >= Duration::from_secs(10) {
                            warn!(
                                "cluster: Redis still failing ({e}): {lost} messages for other \
                                 nodes lost so far"
                            );
                            *since = Instant::now();
                        }
                    }
                }
            }
        }
    }
}

/// Subscribes, delivers, answers; subscribes again whenever the connection drops.
///
/// While it is not subscribed, this node misses what the others deliver to its sockets: the
/// chat is told when that starts and when it ends (`Users::remote_link`), and its sockets
/// catch up on what they missed from the database once subscribed again.
async fn subscriber(cluster: Arc<Cluster>) {
    let mut logged_down = false;
    let link = |up: bool| {
        if let Some(users) = cluster.users.get() {
            users.remote_link(up);
        }
    };
    loop {
        match subscribe(&cluster).await {
            Ok((mut pubsub, server)) => {
                info!(
                    "cluster: subscribed to {} on {server}",
                    cluster.channels.pattern()
                );
                logged_down = false;
                cluster.metrics.subscribed(true);
                link(true);
                let mut messages = pubsub.on_message();
                // Behind sentinels: whether the master moved with this server still up.
                let mut watch =
                    tokio::time::interval(Duration::from_millis(cluster.settings.refresh));
                watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                watch.tick().await;
                let moved = loop {
                    tokio::select! {
                        msg = messages.next() => match msg {
                            Some(msg) => on_message(&cluster, &msg),
                            None => break false,
                        },
                        _ = watch.tick(), if cluster.link.watches_master() => {
                            if cluster.link.master_moved_from(&server).await {
                                break true;
                            }
                        }
                    }
                };
                link(false);
                cluster.metrics.subscribed(false);
                if moved {
                    warn!("cluster: the master moved from {server}; subscribing again");
                } else {
                    warn!("cluster: lost the subscription to Redis; subscribing again");
                }
            }
            Err(e) => {
                link(false);
                if !logged_down {
                    warn!("cluster: cannot subscribe to Redis ({e}); trying again");
                    logged_down = true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A new subscription: the pub/sub connection and the server it is on.
async fn subscribe(cluster: &Cluster) -> redis::RedisResult<(redis::aio::PubSub, String)> {
    let timeout = Duration::from_millis(cluster.settings.request_timeout.max(100));
    let connect = cluster.link.pubsub();
    let (mut pubsub, server) = tokio::time::timeout(timeout * 2, connect)
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
    pubsub.psubscribe(cluster.channels.pattern()).await?;
    pubsub.subscribe(&cluster.channels.request).await?;
    // Answers to this node's requests (on the specific channel when the answering Node
    // server has `publishOnSpecificResponseChannel`).
    pubsub.subscribe(&cluster.channels.response).await?;
    pubsub
        .subscribe(format!("{}{}#", cluster.channels.response, cluster.uid))
        .await?;
    Ok((pubsub, server))
}

fn on_message(cluster: &Arc<Cluster>, msg: &redis::Msg) {
    let channel = msg.get_channel_name();
    let payload = msg.get_payload_bytes();
    if channel == cluster.channels.request {
        requests::on_request(cluster, payload);
        return;
    }
    if channel.starts_with(&cluster.channels.response) {
        on_response(&cluster.asked, payload);
        return;
    }
    if !channel.starts_with(&cluster.channels.broadcast) {
        return;
    }
    let broadcast = match wire::decode_broadcast(payload) {
        Ok(b) => b,
        Err(e) => return debug!("cluster: unreadable broadcast on {channel}: {e}"),
    };
    if *broadcast.uid == *cluster.uid || broadcast.nsp != CHAT_NAMESPACE {
        return;
    }
    if let Some(missed) = broadcast.flags.get(MISSED_FLAG) {
        return on_missed(cluster, missed);
    }
    deliver(cluster, broadcast);
}

/// A broadcast from another server: to this node's sockets in its rooms, binary ones as
/// binary packets.
fn deliver(cluster: &Arc<Cluster>, broadcast: wire::Broadcast) {
    if broadcast.packet_type != wire::EVENT && broadcast.packet_type != wire::BINARY_EVENT {
        return debug!(
            "cluster: broadcast of packet type {} ignored (not an event)",
            broadcast.packet_type
        );
    }
    let Some(users) = cluster.users.get() else {
        return;
    };
    cluster.metrics.received();
    let rooms: Vec<Arc<str>> = broadcast.rooms.into_iter().map(Arc::from).collect();
    let except: Vec<Arc<str>> = broadcast.except.into_iter().map(Arc::from).collect();
    if broadcast.attachments.is_empty() {
        let frame: Frame = format!("42{}", broadcast.data).into();
        users.deliver_local(&rooms, &except, frame, mark_of(&broadcast.flags));
        return;
    }
    // Node's Buffers: a binary event, its attachments sent as binary messages.
    match requests::event_packet(broadcast.data, broadcast.attachments) {
        Some(packet) => {
            users.deliver_packet(&rooms, &except, packet);
        }
        None => debug!("cluster: a binary broadcast that is not an event ignored"),
    }
}

/// Another node's notice that some of its deliveries to `missed` (a user, or `true`: anyone)
/// were lost: those sockets here catch up from the database.
fn on_missed(cluster: &Arc<Cluster>, missed: &serde_json::Value) {
    let Some(users) = cluster.users.get() else {
        return;
    };
    let rooms: Vec<Arc<str>> = match missed {
        serde_json::Value::String(user) => vec![Arc::from(user.as_str())],
        serde_json::Value::Bool(true) => Vec::new(),
        _ => return,
    };
    let sockets = users.local_sockets(&rooms, &[]);
    debug!(
        "cluster: another node lost deliveries to {missed}: {} sockets here catch up",
        sockets.len()
    );
    for socket in sockets {
        socket.push.do_send(ChatPush::CatchUp);
    }
}

/// Keeps this node's keys and buries dead nodes, every `redis.refresh`.
///
/// After its own refreshes failed (Redis down, a failover), a node buries no other node for
/// one `redis.presence_ttl`: the others' keys may have expired meanwhile (a replica promoted
/// after longer than their life keeps the keys' expiry running), and they get that long to
/// write them again, as they always have.
async fn refresher(cluster: Arc<Cluster>) {
    let every = Duration::from_millis(cluster.settings.refresh);
    let grace = Duration::from_millis(cluster.settings.presence_ttl);
    let mut conn = cluster.conn.clone();
    let mut failing = false;
    let mut bury_from = Instant::now();
    loop {
        let pipe = cluster.refresh_commands();
        match run(&mut conn, pipe).await {
            Ok(()) => {
                if std::mem::take(&mut failing) {
                    bury_from = Instant::now() + grace;
                }
                if Instant::now() >= bury_from {
                    if let Err(e) = cluster.bury_dead_nodes().await {
                        debug!("cluster: looking for dead nodes failed: {e}");
                    }
                }
            }
            Err(e) => {
                failing = true;
                debug!("cluster: refreshing this node's keys failed: {e}");
            }
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::recovery::StreamKey;
    use serde_json::json;

    #[test]
    fn a_missed_notice_goes_where_the_lost_deliveries_went_and_to_nobody() {
        let notices = Notices {
            uid: Arc::from("node1"),
            channels: Channels::new("socket.io", "/"),
            sharded: None,
        };
        let args = |cmd: &Cmd| -> Vec<Vec<u8>> {
            cmd.args_iter()
                .filter_map(|a| match a {
                    redis::Arg::Simple(bytes) => Some(bytes.to_vec()),
                    _ => None,
                })
                .collect()
        };
        let to_u1 = args(&notices.missed(Some("u1")));
        assert_eq!(to_u1[0], b"PUBLISH");
        assert_eq!(to_u1[1], b"socket.io#/#u1#");
        let notice = wire::decode_broadcast(&to_u1[2]).expect("a broadcast");
        assert_eq!(notice.rooms, vec![MISSED_ROOM.to_string()]);
        assert_eq!(notice.flags, json!({"courierMissed": "u1"}));
        let to_all = args(&notices.missed(None));
        assert_eq!(to_all[1], b"socket.io#/#");
        let notice = wire::decode_broadcast(&to_all[2]).expect("a broadcast");
        assert_eq!(notice.flags, json!({"courierMissed": true}));
        // Too many users: one notice for everyone.
        let mut missed = Missed::default();
        for i in 0..=MISSED_USERS {
            missed.add(Arc::from(format!("u{i}")));
        }
        assert_eq!(missed.notices(&notices).len(), 1);
        assert!(missed.everyone);
    }

    #[test]
    fn a_mark_crosses_in_the_broadcast_flags() {
        let mark = Mark {
            conversation: Arc::from("conv1"),
            at: 1_768_712_378_123,
            key: StreamKey::read("m1"),
        };
        let bytes = wire::encode_broadcast(
            "node1",
            "/",
            &json!(["message_read", {"messageId": "m1"}]),
            &["u1"],
            mark_flags(&mark),
        );
        let broadcast = wire::decode_broadcast(&bytes).expect("a broadcast");
        assert_eq!(
            broadcast.flags,
            json!({"courierMark": ["conv1", 1_768_712_378_123_i64, "r:m1"]})
        );
        let back = mark_of(&broadcast.flags).expect("a mark");
        assert_eq!(&*back.conversation, "conv1");
        assert_eq!(back.at, mark.at);
        assert_eq!(back.key, mark.key);
        // A Node server's flags, or a mangled mark: none.
        assert!(mark_of(&json!({})).is_none());
        assert!(mark_of(&json!({"volatile": true})).is_none());
        assert!(mark_of(&json!({"courierMark": ["c", "x", "m:1"]})).is_none());
        assert!(mark_of(&json!({"courierMark": ["c", 1, "z:1"]})).is_none());
        assert!(mark_of(&json!({"courierMark": ["", 1, "m:1"]})).is_none());
        assert!(mark_of(&json!({"courierMark": ["c", 1]})).is_none());
    }
}
