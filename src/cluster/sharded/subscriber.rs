//! The sharded subscriber: one connection to the Redis Cluster, `SSUBSCRIBE` per channel
//! on its shard, delivery and answers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};
use log::{debug, info, warn};
use redis::cluster_async::ClusterConnection;
use redis::{PushKind, Value as RedisValue};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::wire::{decode, kind, request_of, Message, ShardedChannels};
use crate::chat::push::CHAT_NAMESPACE;
use crate::chat::remote::RoomChange;
use crate::chat::users::Users;
use crate::cluster::elsewhere::on_response_value;
use crate::cluster::flags::MISSED_FLAG;
use crate::cluster::link::{self, ClusterUrl};
use crate::cluster::node::{Ask, Cluster};
use crate::cluster::requests;
use crate::cluster::subscriber::{deliver, on_missed};
use crate::cluster::wire;

/// How long a room's channel subscribed for a CONNECT stays without a socket in the room
/// (once a socket is in it, the room keeps it).
const PIN: Duration = Duration::from_secs(5);

/// At most so many subscription commands in flight at once.
const IN_FLIGHT: usize = 64;

/// The subscriber's connection: RESP3, its pushes (messages, disconnections) on `pushes`.
fn subscriber_client(
    url: &ClusterUrl,
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
pub(crate) async fn subscriber(
    cluster: Arc<Cluster>,
    users: Users,
    url: ClusterUrl,
    mut asks: mpsc::Receiver<Ask>,
) {
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
                    PushKind::SMessage => on_push_message(&cluster, &users, &own, push.data),
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
fn on_push_message(cluster: &Arc<Cluster>, users: &Users, own: &str, data: Vec<RedisValue>) {
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
        return on_broadcast(cluster, users, message);
    }
    match request_of(&message) {
        Some(request) => requests::handle(
            cluster,
            users,
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
        on_response_value(&cluster.asked, &message.data);
    }
}

/// A broadcast from another server: to this node's sockets in its rooms.
fn on_broadcast(cluster: &Cluster, users: &Users, message: Message) {
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
        return on_missed(users, missed);
    }
    let packet = message.data.get("packet").cloned().unwrap_or(Value::Null);
    let packet_type = packet.get("type").and_then(Value::as_u64).unwrap_or(0);
    let data = packet.get("data").cloned().unwrap_or(Value::Null);
    deliver(
        cluster,
        users,
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
