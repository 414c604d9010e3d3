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

pub mod metrics;
pub mod requests;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use log::{debug, info, warn};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Cmd};
use tokio::sync::mpsc;

use crate::chat::push::{Frame, Mark, CHAT_NAMESPACE};
use crate::chat::remote::RemoteNodes;
use crate::chat::users::Users;
use crate::config::{redact_url, RedisSettings};
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

/// Most commands queued for Redis before more are dropped (and counted as failed).
const QUEUE: usize = 65_536;

/// Most commands sent in one pipeline.
const BATCH: usize = 512;

/// One node of the cluster.
pub struct Cluster {
    uid: Arc<str>,
    channels: Channels,
    keys: Keys,
    out: mpsc::Sender<(Cmd, bool)>,
    conn: ConnectionManager,
    client: redis::Client,
    /// This node's sockets per user, as last told by the chat.
    local: Mutex<HashMap<Arc<str>, usize>>,
    /// This node's requests waiting for answers.
    asked: Asked,
    users: OnceLock<Users>,
    settings: RedisSettings,
    metrics: Arc<ClusterMetrics>,
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
        let client = redis::Client::open(url)
            .map_err(|e| ClusterError(format!("redis.url {}: {e}", redact_url(url))))?;
        let timeout = Duration::from_millis(settings.request_timeout.max(100));
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| ClusterError(format!("redis: {e}")))?;
        let (out, rx) = mpsc::channel(QUEUE);
        let cluster = Arc::new(Cluster {
            uid: node_uid().into(),
            channels: Channels::new(&settings.key, CHAT_NAMESPACE),
            keys: Keys {
                prefix: format!("courier:{}", settings.key),
            },
            out,
            conn: conn.clone(),
            client,
            local: Mutex::new(HashMap::new()),
            asked: Arc::new(Mutex::new(HashMap::new())),
            users: OnceLock::new(),
            settings: settings.clone(),
            metrics: metrics.clone(),
        });
        actix::spawn(pump(rx, conn, metrics));
        info!(
            "cluster: node {} on {} (channels {}*)",
            cluster.uid,
            redact_url(url),
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
        actix::spawn(subscriber(self.clone()));
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

    /// Queues `cmd` for Redis; `publish` counts it as a publish.
    fn send(&self, cmd: Cmd, publish: bool) {
        if self.out.try_send((cmd, publish)).is_err() && publish {
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
        let flags = mark.map_or_else(Vec::new, mark_flags);
        let payload = wire::encode_broadcast(&self.uid, CHAT_NAMESPACE, &data, rooms, flags);
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.channels.broadcast_to(rooms)).arg(payload);
        self.send(cmd, true);
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
        let user = user.to_string();
        let timeout = Duration::from_millis(self.settings.request_timeout);
        Box::pin(async move {
            match tokio::time::timeout(timeout, view.count(&user)).await {
                Ok(Ok(n)) => n,
                _ => 0,
            }
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
            self.send(cmd, false);
        } else {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(&key).arg(&*self.uid).arg(count);
            self.send(cmd, false);
            let mut cmd = redis::cmd("PEXPIRE");
            cmd.arg(&key).arg(self.settings.presence_ttl * 4);
            self.send(cmd, false);
            let mut cmd = redis::cmd("SADD");
            cmd.arg(self.keys.node_users(&self.uid)).arg(user);
            self.send(cmd, false);
            let mut cmd = redis::cmd("SADD");
            cmd.arg(ONLINE_USERS).arg(user);
            self.send(cmd, false);
        }
    }

    fn pid_taken(&self, nonce: &str) {
        let request = serde_json::json!({
            "uid": &*self.uid,
            "type": wire::request_type::REMOTE_DISCONNECT,
            "opts": {"rooms": [format!("{}{nonce}", crate::chat::remote::PID_ROOM)], "except": []},
            "close": true,
        })
        .to_string();
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(&self.channels.request).arg(request);
        self.send(cmd, false);
    }

    fn went_offline(&self, user: &str) {
        let mut cmd = redis::cmd("SREM");
        cmd.arg(ONLINE_USERS).arg(user);
        self.send(cmd, false);
        let mut cmd = redis::cmd("SREM");
        cmd.arg(self.keys.node_users(&self.uid)).arg(user);
        self.send(cmd, false);
    }

    fn note_message(&self, user: &str) {
        let key = format!("ratelimit:messages:{user}");
        let window = crate::chat::rate_limit::CLUSTER_WINDOW.as_millis() as u64;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key).arg(0).arg("PX").arg(window).arg("NX");
        self.send(cmd, false);
        let mut cmd = redis::cmd("INCR");
        cmd.arg(&key);
        self.send(cmd, false);
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
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return;
    };
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
    conn: ConnectionManager,
    keys: Keys,
    uid: Arc<str>,
    channels: Channels,
    asked: Asked,
}

impl Elsewhere {
    /// Asks every other server (Courier nodes and Node servers alike) for `user`'s sockets,
    /// as the adapter's `fetchSockets()` does: `PUBSUB NUMSUB` on the request channel says
    /// how many answers to wait for. `Ok(None)`: not all answered within `timeout`.
    async fn fetch(&self, user: &str, timeout: Duration) -> redis::RedisResult<Option<usize>> {
        let mut conn = self.conn.clone();
        let (_, servers): (String, usize) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&self.channels.request)
            .query_async(&mut conn)
            .await?;
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
        let request = serde_json::json!({
            "uid": &*self.uid,
            "requestId": id,
            "type": wire::request_type::REMOTE_FETCH,
            "opts": {"rooms": [user], "except": []},
        })
        .to_string();
        let published = redis::cmd("PUBLISH")
            .arg(&self.channels.request)
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

/// Sends the queued commands to Redis, in order, in pipelines.
async fn pump(
    mut rx: mpsc::Receiver<(Cmd, bool)>,
    mut conn: ConnectionManager,
    metrics: Arc<ClusterMetrics>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut failing: Option<(Instant, usize)> = None;
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        let mut publishes = 0;
        for (cmd, publish) in batch.drain(..) {
            pipe.add_command(cmd).ignore();
            publishes += usize::from(publish);
        }
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => {
                metrics.published(publishes);
                if let Some((_, lost)) = failing.take() {
                    info!("cluster: Redis is back; {lost} messages for other nodes were lost");
                }
            }
            Err(e) => {
                metrics.publish_failed(publishes);
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
            Ok(mut pubsub) => {
                info!("cluster: subscribed to {}", cluster.channels.pattern());
                logged_down = false;
                cluster.metrics.subscribed(true);
                link(true);
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    on_message(&cluster, &msg);
                }
                link(false);
                cluster.metrics.subscribed(false);
                warn!("cluster: lost the subscription to Redis; subscribing again");
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

async fn subscribe(cluster: &Cluster) -> redis::RedisResult<redis::aio::PubSub> {
    let timeout = Duration::from_millis(cluster.settings.request_timeout.max(100));
    let connect = cluster.client.get_async_pubsub();
    let mut pubsub = tokio::time::timeout(timeout, connect)
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
    Ok(pubsub)
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

/// Keeps this node's keys and buries dead nodes, every `redis.refresh`.
async fn refresher(cluster: Arc<Cluster>) {
    let every = Duration::from_millis(cluster.settings.refresh);
    let mut conn = cluster.conn.clone();
    loop {
        let pipe = cluster.refresh_commands();
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => {
                if let Err(e) = cluster.bury_dead_nodes().await {
                    debug!("cluster: looking for dead nodes failed: {e}");
                }
            }
            Err(e) => debug!("cluster: refreshing this node's keys failed: {e}"),
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
