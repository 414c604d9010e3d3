//! Sharded pub/sub on a Redis Cluster (`redis+cluster://`): the protocol of
//! `@socket.io/redis-adapter` 8.3's `createShardedAdapter` (its `lib/sharded-adapter.ts`, on
//! `socket.io-adapter` 2.5's `ClusterAdapter`), with its defaults (`channelPrefix` =
//! `redis.key`, `subscriptionMode: "dynamic"`).
//!
//! - **Channels** (`SSUBSCRIBE`/`SPUBLISH`, each on the shard of its hash slot):
//!   `<key>#/#` for what goes to every server, `<key>#/#<uid>#` for the answers to server
//!   `uid`'s requests, and one channel per room, `<key>#/#<room>#`, which a server subscribes
//!   to while it has a socket in the room (not the sockets' own rooms). A broadcast to one
//!   room goes to the room's channel, unless it asks for acks or the room looks like a
//!   socket id (20 characters): then to `<key>#/#`.
//! - **Messages**: `{uid, nsp, type, data}`, JSON, or MessagePack when they carry binary:
//!   `BROADCAST` (3: `{packet, opts: {rooms, except, flags}, requestId?}`), `SOCKETS_JOIN`
//!   (4), `SOCKETS_LEAVE` (5), `DISCONNECT_SOCKETS` (6), `FETCH_SOCKETS` (7) and its
//!   `FETCH_SOCKETS_RESPONSE` (8), `SERVER_SIDE_EMIT` (9) and its response (10),
//!   `BROADCAST_CLIENT_COUNT` (11) and `BROADCAST_ACK` (12) for a broadcast with acks.
//! - **How many servers** there are (what a request waits for): `PUBSUB SHARDNUMSUB <key>#/#`
//!   summed over the cluster's nodes.
//!
//! What the classic protocol has and this one does not: `allRooms()` (`ALL_ROOMS`) and
//! `SOCKETS` requests, the one-socket `remoteJoin`/`remoteLeave`/`remoteDisconnect` by id,
//! and one order across channels (each channel is ordered, a user's deliveries all go to
//! their room's channel; broadcasts to everyone may arrive before or after them).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use log::{debug, info, warn};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, PushKind, Value as RedisValue};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::requests::{self, Request};
use super::wire::{self, request_type as classic};
use super::{link, Cluster, MARK_FLAG, MISSED_FLAG, MISSED_ROOM};
use crate::chat::push::CHAT_NAMESPACE;
use crate::chat::remote::RoomChange;

/// The message types of `socket.io-adapter`'s `ClusterAdapter`.
pub mod kind {
    pub const BROADCAST: u64 = 3;
    pub const SOCKETS_JOIN: u64 = 4;
    pub const SOCKETS_LEAVE: u64 = 5;
    pub const DISCONNECT_SOCKETS: u64 = 6;
    pub const FETCH_SOCKETS: u64 = 7;
    pub const FETCH_SOCKETS_RESPONSE: u64 = 8;
    pub const SERVER_SIDE_EMIT: u64 = 9;
    pub const SERVER_SIDE_EMIT_RESPONSE: u64 = 10;
    pub const BROADCAST_CLIENT_COUNT: u64 = 11;
    pub const BROADCAST_ACK: u64 = 12;
}

/// The channels of one namespace under the prefix `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardedChannels {
    /// `<key>#<nsp>#`: what goes to every server; the prefix of the others.
    pub main: String,
}

/// Whether `room` looks like a socket id to the adapter (`room.length === 20` in JavaScript:
/// UTF-16 units).
pub fn looks_like_a_socket_id(room: &str) -> bool {
    room.encode_utf16().count() == 20
}

impl ShardedChannels {
    pub fn new(key: &str, nsp: &str) -> Self {
        ShardedChannels {
            main: format!("{key}#{nsp}#"),
        }
    }

    /// `<key>#<nsp>#<room>#`: the room's channel (or, for a server's uid, its answers').
    pub fn of(&self, room: &str) -> String {
        format!("{}{room}#", self.main)
    }

    /// Where a broadcast to `rooms` goes (`with_ack`: a broadcast with acks).
    pub fn broadcast_to(&self, rooms: &[&str], with_ack: bool) -> String {
        match rooms {
            [room] if !with_ack && !looks_like_a_socket_id(room) => self.of(room),
            _ => self.main.clone(),
        }
    }
}

/// A message between servers.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub uid: String,
    pub nsp: String,
    pub kind: u64,
    /// Binary values as placeholders for `attachments`.
    pub data: Value,
    pub attachments: Vec<Bytes>,
}

/// Reads a message: JSON, or MessagePack (with binary values).
pub fn decode(payload: &[u8]) -> Option<Message> {
    let mut attachments = Vec::new();
    let v: Value = if payload.first() == Some(&b'{') {
        serde_json::from_slice(payload).ok()?
    } else {
        let mp = rmpv::decode::read_value(&mut std::io::Cursor::new(payload)).ok()?;
        wire::to_json_with_attachments(&mp, &mut attachments)
    };
    Some(Message {
        uid: v.get("uid")?.as_str()?.to_string(),
        nsp: v
            .get("nsp")
            .and_then(Value::as_str)
            .unwrap_or("/")
            .to_string(),
        kind: v.get("type")?.as_u64()?,
        data: v.get("data").cloned().unwrap_or(Value::Null),
        attachments,
    })
}

/// A message from `uid` (JSON: nothing binary in it).
pub fn encode(uid: &str, kind: u64, data: Value) -> Vec<u8> {
    json!({"type": kind, "data": data, "uid": uid, "nsp": CHAT_NAMESPACE})
        .to_string()
        .into_bytes()
}

/// A message from `uid` whose `data` holds binary values (MessagePack, as `notepack.io`).
pub fn encode_binary(uid: &str, kind: u64, data: rmpv::Value) -> Vec<u8> {
    let message = rmpv::Value::Map(vec![
        (rmpv::Value::from("type"), rmpv::Value::from(kind)),
        (rmpv::Value::from("data"), data),
        (rmpv::Value::from("uid"), rmpv::Value::from(uid)),
        (rmpv::Value::from("nsp"), rmpv::Value::from(CHAT_NAMESPACE)),
    ]);
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, &message);
    out
}

/// The broadcast of the event `data` (`[name, ...args]`) to `rooms` (none: everyone), with
/// `flags`.
pub fn encode_broadcast(uid: &str, data: &Value, rooms: &[&str], flags: Value) -> Vec<u8> {
    encode(
        uid,
        kind::BROADCAST,
        json!({
            "packet": {"type": wire::EVENT, "data": data, "nsp": CHAT_NAMESPACE},
            "opts": {"rooms": rooms, "except": [], "flags": flags},
        }),
    )
}

/// The request of a message of another server, as the classic protocol's requests are read
/// (its type mapped to theirs), for the types that are requests.
pub fn request_of(message: &Message) -> Option<Request> {
    let data = &message.data;
    let opts = data.get("opts").filter(|o| o.is_object());
    let request_id = data
        .get("requestId")
        .and_then(Value::as_str)
        .map(str::to_string);
    let kind = match message.kind {
        kind::BROADCAST if request_id.is_some() => classic::BROADCAST,
        kind::SOCKETS_JOIN => classic::REMOTE_JOIN,
        kind::SOCKETS_LEAVE => classic::REMOTE_LEAVE,
        kind::DISCONNECT_SOCKETS => classic::REMOTE_DISCONNECT,
        kind::FETCH_SOCKETS => classic::REMOTE_FETCH,
        kind::SERVER_SIDE_EMIT => classic::SERVER_SIDE_EMIT,
        _ => return None,
    };
    let strings = |v: Option<&Value>| -> Vec<Arc<str>> {
        v.and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| match v {
                        Value::String(s) => Some(Arc::from(s.as_str())),
                        Value::Number(n) => Some(Arc::from(n.to_string())),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    Some(Request {
        uid: Some(message.uid.clone()),
        request_id,
        kind: Some(kind),
        // Every request selects sockets by rooms here (none: all of them).
        opts: Some((
            strings(opts.and_then(|o| o.get("rooms"))),
            strings(opts.and_then(|o| o.get("except"))),
        )),
        rooms: strings(data.get("rooms")),
        sid: None,
        room: None,
        close: data.get("close").and_then(Value::as_bool).unwrap_or(false),
        data: data.get("packet").and_then(|p| p.get("data")).cloned(),
        attachments: message.attachments.clone(),
        timeout: opts
            .and_then(|o| o.get("flags"))
            .and_then(|f| f.get("timeout"))
            .and_then(Value::as_f64)
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| Duration::from_millis(ms as u64)),
    })
}

/// What the subscriber is asked by the rest of the node.
pub(super) enum Ask {
    /// Subscribe to `room`'s channel now (a socket of that user is connecting) and say when
    /// it is; it stays subscribed for a while even if no socket comes.
    Room(Arc<str>, oneshot::Sender<()>),
}

/// Most CONNECTs' asks waiting for the subscriber; past it a CONNECT does not wait.
pub(super) const ASKS: usize = 1024;

/// How long a room's channel subscribed for a CONNECT stays without a socket in the room
/// (once a socket is in it, the room keeps it).
const PIN: Duration = Duration::from_secs(5);

/// At most so many subscription commands in flight at once.
const IN_FLIGHT: usize = 64;

/// The subscriber's connection: RESP3, its pushes (messages, disconnections) on `pushes`.
fn subscriber_client(
    url: &link::ClusterUrl,
    timeout: Duration,
    pushes: mpsc::UnboundedSender<redis::PushInfo>,
) -> redis::RedisResult<redis::cluster::ClusterClient> {
    link::cluster_builder(url, timeout)
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(pushes)
        .build()
}

/// Subscribes to the channels of `rooms` (all of them, each on its shard); those that failed.
async fn subscribe_all(conn: &ClusterConnection, channels: Vec<String>, up: bool) -> Vec<String> {
    stream::iter(channels)
        .map(|channel| {
            let mut conn = conn.clone();
            async move {
                let done = if up {
                    conn.ssubscribe(&channel).await
                } else {
                    conn.sunsubscribe(&channel).await
                };
                (channel, done)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .filter_map(|(channel, done)| async move {
            match done {
                Ok(()) => None,
                Err(e) => {
                    debug!("cluster: (un)subscribing {channel} failed: {e}");
                    Some(channel)
                }
            }
        })
        .collect()
        .await
}

/// The sharded subscriber: connects, keeps the channels subscribed (`<key>#/#`, this node's
/// answers', and one per room with a socket here), delivers, answers; tells the chat when the
/// link is down (a node of the cluster dropped the connection) and when it is back (every
/// channel subscribed again).
pub(super) async fn subscriber(
    cluster: Arc<Cluster>,
    url: link::ClusterUrl,
    mut asks: mpsc::Receiver<Ask>,
) {
    let Some(users) = cluster.users.get() else {
        return;
    };
    let link_state = |up: bool| {
        users.remote_link(up);
        cluster.metrics.subscribed(up);
    };
    let (room_tx, mut room_rx) = mpsc::unbounded_channel::<RoomChange>();
    if let Some(index) = users.index() {
        index.watch_rooms(room_tx);
    }
    let timeout = Duration::from_millis(cluster.settings.request_timeout.max(100));
    let channels = ShardedChannels::new(&cluster.settings.key, CHAT_NAMESPACE);
    let own = channels.of(&cluster.uid);
    let (push_tx, mut pushes) = mpsc::unbounded_channel();
    let client = match subscriber_client(&url, timeout, push_tx) {
        Ok(client) => client,
        Err(e) => return warn!("cluster: the subscriber's client: {e}"),
    };
    // Rooms with a socket here, rooms pinned by CONNECTs (until when), channels subscribed.
    let mut rooms: HashSet<Arc<str>> = HashSet::new();
    let mut pinned: HashMap<Arc<str>, Instant> = HashMap::new();
    let mut subscribed: HashSet<Arc<str>> = HashSet::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut logged_down = false;
    link_state(false);
    // Made (again every tick until it is) by the loop, which meanwhile keeps taking the room
    // changes and the CONNECTs' asks.
    let mut conn: Option<ClusterConnection> = None;
    let mut down = false;
    let mut resync = true;
    // Rooms whose channel may have to be subscribed or dropped.
    let mut touched: HashSet<Arc<str>> = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        // Room changes first: a request handled just before (a join) has its room's channel
        // subscribed before the next message is handled (a broadcast to that room).
        tokio::select! {
            biased;
            change = room_rx.recv() => {
                let Some(change) = change else { return };
                touched.insert(change.0.clone());
                room_changed(&mut rooms, &mut pinned, change);
            }
            ask = asks.recv() => {
                let Some(Ask::Room(room, done)) = ask else { return };
                touched.insert(room.clone());
                pinned.insert(room, Instant::now() + PIN);
                waiting.push(done);
            }
            push = pushes.recv() => {
                let Some(push) = push else { return };
                match push.kind {
                    PushKind::SMessage => on_push_message(&cluster, &own, push.data),
                    PushKind::Disconnection => {
                        if !down {
                            warn!(
                                "cluster: a node of the Redis Cluster dropped the subscriber's \
                                 connection; subscribing again"
                            );
                            link_state(false);
                            down = true;
                        }
                        resync = true;
                    }
                    _ => {}
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                pinned.retain(|room, until| {
                    let keep = *until > now;
                    if !keep {
                        touched.insert(room.clone());
                    }
                    keep
                });
                if conn.is_none() {
                    let connected = tokio::time::timeout(timeout * 2, client.get_async_connection())
                        .await
                        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "timed out")))
                        .and_then(|made| made);
                    match connected {
                        Ok(made) => {
                            conn = Some(made);
                            resync = true;
                        }
                        Err(e) => {
                            if !logged_down {
                                warn!(
                                    "cluster: cannot subscribe to the Redis Cluster ({e}); \
                                     trying again"
                                );
                                logged_down = true;
                            }
                        }
                    }
                }
            }
        }
        while let Ok(change) = room_rx.try_recv() {
            touched.insert(change.0.clone());
            room_changed(&mut rooms, &mut pinned, change);
        }
        while let Ok(Ask::Room(room, done)) = asks.try_recv() {
            touched.insert(room.clone());
            pinned.insert(room, Instant::now() + PIN);
            waiting.push(done);
        }
        let Some(conn) = &conn else {
            // Not connected: nothing to wait for (the subscriptions are made once it is).
            waiting.clear();
            continue;
        };
        if !touched.is_empty() {
            let (to_add, to_drop): (Vec<Arc<str>>, Vec<Arc<str>>) = touched
                .drain()
                .filter(|room| {
                    let wanted = rooms.contains(room) || pinned.contains_key(room);
                    wanted != subscribed.contains(room)
                })
                .partition(|room| !subscribed.contains(room));
            if !to_add.is_empty() {
                let failed: HashSet<String> =
                    subscribe_all(conn, to_add.iter().map(|r| channels.of(r)).collect(), true)
                        .await
                        .into_iter()
                        .collect();
                for room in to_add {
                    if failed.contains(&channels.of(&room)) {
                        // Tried again with the next change or tick.
                        touched.insert(room);
                    } else {
                        subscribed.insert(room);
                    }
                }
            }
            if !to_drop.is_empty() {
                subscribe_all(
                    conn,
                    to_drop.iter().map(|r| channels.of(r)).collect(),
                    false,
                )
                .await;
                for room in to_drop {
                    subscribed.remove(&room);
                }
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
        if resync {
            // After a dropped connection (and at first): every channel subscribed again, on
            // the nodes that hold them now; then the sockets catch up on what they missed.
            let mut all = vec![channels.main.clone(), own.clone()];
            all.extend(subscribed.iter().map(|r| channels.of(r)));
            if subscribe_all(conn, all, true).await.is_empty() {
                resync = false;
                info!(
                    "cluster: subscribed to {}* (sharded) on the Redis Cluster",
                    channels.main
                );
                down = false;
                logged_down = false;
                link_state(true);
            }
        }
    }
}

/// A room appeared here (its pin, if any, is over: the room keeps its channel) or went.
fn room_changed(
    rooms: &mut HashSet<Arc<str>>,
    pinned: &mut HashMap<Arc<str>, Instant>,
    (room, up): RoomChange,
) {
    if up {
        pinned.remove(&room);
        rooms.insert(room);
    } else {
        rooms.remove(&room);
    }
}

/// A message pushed on a subscribed channel: `[channel, payload]`.
fn on_push_message(cluster: &Arc<Cluster>, own: &str, data: Vec<RedisValue>) {
    let [channel, payload]: [RedisValue; 2] = match data.try_into() {
        Ok(pair) => pair,
        Err(_) => return,
    };
    let (RedisValue::BulkString(channel), RedisValue::BulkString(payload)) = (channel, payload)
    else {
        return;
    };
    let Some(message) = decode(&payload) else {
        cluster.metrics.request(false);
        return debug!(
            "cluster: an unreadable message on {}",
            String::from_utf8_lossy(&channel)
        );
    };
    if message.uid == *cluster.uid || message.nsp != CHAT_NAMESPACE {
        return;
    }
    if channel == own.as_bytes() || is_response(message.kind) {
        return on_response(cluster, &message);
    }
    if message.kind == kind::BROADCAST && message.data.get("requestId").is_none() {
        return on_broadcast(cluster, message);
    }
    match request_of(&message) {
        Some(request) => requests::handle(
            cluster,
            request,
            requests::Reply::Sharded {
                to: message.uid.clone(),
            },
        ),
        None => debug!("cluster: message of type {} ignored", message.kind),
    }
}

fn is_response(kind: u64) -> bool {
    matches!(
        kind,
        kind::FETCH_SOCKETS_RESPONSE
            | kind::SERVER_SIDE_EMIT_RESPONSE
            | kind::BROADCAST_CLIENT_COUNT
            | kind::BROADCAST_ACK
    )
}

/// An answer to one of this node's requests (`fetchSockets`).
fn on_response(cluster: &Arc<Cluster>, message: &Message) {
    if message.kind == kind::FETCH_SOCKETS_RESPONSE {
        super::on_response_value(&cluster.asked, &message.data);
    }
}

/// A broadcast from another server: to this node's sockets in its rooms.
fn on_broadcast(cluster: &Arc<Cluster>, message: Message) {
    let opts = message.data.get("opts").cloned().unwrap_or(Value::Null);
    let strings = |key: &str| -> Vec<String> {
        opts.get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| match v {
                        Value::String(s) => Some(s.clone()),
                        Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let flags = opts.get("flags").cloned().unwrap_or(json!({}));
    if let Some(missed) = flags.get(MISSED_FLAG) {
        return super::on_missed(cluster, missed);
    }
    let packet = message.data.get("packet").cloned().unwrap_or(Value::Null);
    let packet_type = packet.get("type").and_then(Value::as_u64).unwrap_or(0);
    let data = packet.get("data").cloned().unwrap_or(Value::Null);
    super::deliver(
        cluster,
        wire::Broadcast {
            uid: message.uid,
            packet_type,
            nsp: message.nsp,
            data,
            attachments: message.attachments,
            rooms: strings("rooms"),
            except: strings("except"),
            flags,
        },
    );
}

/// The `SPUBLISH` of a broadcast of `data` to `rooms` with `flags` (JSON).
pub fn publish(
    cluster_uid: &str,
    channels: &ShardedChannels,
    data: &Value,
    rooms: &[&str],
    flags: Value,
) -> Cmd {
    let payload = encode_broadcast(cluster_uid, data, rooms, flags);
    let mut cmd = redis::cmd("SPUBLISH");
    cmd.arg(channels.broadcast_to(rooms, false)).arg(payload);
    cmd
}

/// The mark flag as JSON (see [`MARK_FLAG`]).
pub fn mark_flags(mark: Option<&crate::chat::push::Mark>) -> Value {
    match mark {
        Some(mark) => json!({ MARK_FLAG: [&*mark.conversation, mark.at, mark.key.as_str()] }),
        None => json!({}),
    }
}

/// The notice that deliveries to `user` (`None`: anyone) were lost, on their channel.
pub fn missed_notice(uid: &str, channels: &ShardedChannels, user: Option<&str>) -> Cmd {
    let flag = user.map_or(Value::Bool(true), |u| Value::String(u.to_string()));
    let payload = encode_broadcast(
        uid,
        &json!([MISSED_ROOM]),
        &[MISSED_ROOM],
        json!({ MISSED_FLAG: flag }),
    );
    let mut cmd = redis::cmd("SPUBLISH");
    cmd.arg(match user {
        Some(user) => channels.broadcast_to(&[user], false),
        None => channels.main.clone(),
    })
    .arg(payload);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_the_sharded_adapters() {
        let c = ShardedChannels::new("socket.io", "/");
        assert_eq!(c.main, "socket.io#/#");
        assert_eq!(c.of("u1"), "socket.io#/#u1#");
        assert_eq!(c.broadcast_to(&["u1"], false), "socket.io#/#u1#");
        // A socket id's room, several rooms, everyone, acks: the main channel.
        assert_eq!(
            c.broadcast_to(&["abcdefghij0123456789"], false),
            "socket.io#/#"
        );
        assert_eq!(c.broadcast_to(&["a", "b"], false), "socket.io#/#");
        assert_eq!(c.broadcast_to(&[], false), "socket.io#/#");
        assert_eq!(c.broadcast_to(&["u1"], true), "socket.io#/#");
        // JavaScript's length: UTF-16 units.
        assert!(looks_like_a_socket_id(&"é".repeat(20)));
        assert!(looks_like_a_socket_id(&"\u{1F600}".repeat(10)));
        assert!(!looks_like_a_socket_id(&"\u{1F600}".repeat(20)));
    }

    #[test]
    fn node_messages_are_read() {
        // What `io.in("u1").fetchSockets()` publishes with the sharded adapter.
        let m = decode(
            br#"{"type":7,"data":{"opts":{"rooms":["u1"],"except":[],"flags":{}},"requestId":"abc"},"uid":"9f2c","nsp":"/"}"#,
        )
        .unwrap();
        assert_eq!(
            (m.kind, m.uid.as_str(), m.nsp.as_str()),
            (kind::FETCH_SOCKETS, "9f2c", "/")
        );
        let r = request_of(&m).unwrap();
        assert_eq!(r.kind, Some(classic::REMOTE_FETCH));
        assert_eq!(r.request_id.as_deref(), Some("abc"));
        assert_eq!(r.opts, Some((vec![Arc::from("u1")], vec![])));
        // socketsJoin.
        let m = decode(
            br#"{"type":4,"data":{"opts":{"rooms":["u1"],"except":["s9"]},"rooms":["vip"]},"uid":"n","nsp":"/"}"#,
        )
        .unwrap();
        let r = request_of(&m).unwrap();
        assert_eq!(r.kind, Some(classic::REMOTE_JOIN));
        assert_eq!(r.rooms, vec![Arc::from("vip")]);
        assert_eq!(r.opts, Some((vec![Arc::from("u1")], vec![Arc::from("s9")])));
        // A broadcast with acks is a request; without, it is not.
        let m = decode(
            br#"{"type":3,"data":{"packet":{"type":2,"data":["q","x"],"nsp":"/"},"requestId":"r1","opts":{"rooms":["u1"],"except":[],"flags":{"timeout":1500}}},"uid":"n","nsp":"/"}"#,
        )
        .unwrap();
        let r = request_of(&m).unwrap();
        assert_eq!(r.kind, Some(classic::BROADCAST));
        assert_eq!(r.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(r.data, Some(json!(["q", "x"])));
        let mut plain = m.clone();
        plain.data.as_object_mut().unwrap().remove("requestId");
        assert!(request_of(&plain).is_none());
        // MessagePack (binary data).
        let bytes = encode_binary(
            "n",
            kind::BROADCAST,
            rmpv::Value::Map(vec![(
                rmpv::Value::from("packet"),
                rmpv::Value::Map(vec![
                    (rmpv::Value::from("type"), rmpv::Value::from(2)),
                    (
                        rmpv::Value::from("data"),
                        rmpv::Value::Array(vec![
                            rmpv::Value::from("f"),
                            rmpv::Value::Binary(vec![7]),
                        ]),
                    ),
                ]),
            )]),
        );
        let m = decode(&bytes).unwrap();
        assert_eq!(m.attachments, vec![Bytes::from_static(&[7])]);
        assert_eq!(
            m.data["packet"]["data"],
            json!(["f", {"_placeholder": true, "num": 0}])
        );
        assert!(decode(b"{not json").is_none());
        assert!(decode(b"").is_none());
        assert!(decode(br#"{"type":3}"#).is_none(), "no uid");
    }

    #[test]
    fn a_broadcast_is_what_the_sharded_adapter_reads() {
        let bytes = encode_broadcast(
            "me",
            &json!(["hi", {"a": 1}]),
            &["u1"],
            json!({"courierMark": ["c", 1, "m:x"]}),
        );
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            json!({"type": 3, "uid": "me", "nsp": "/", "data": {
                "packet": {"type": 2, "data": ["hi", {"a": 1}], "nsp": "/"},
                "opts": {"rooms": ["u1"], "except": [], "flags": {"courierMark": ["c", 1, "m:x"]}}
            }})
        );
    }
}
