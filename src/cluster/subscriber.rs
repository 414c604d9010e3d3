//! The classic protocol's subscriber: broadcasts, requests and answers in.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use log::{debug, info, warn};

use super::elsewhere::on_response;
use super::flags::{mark_of, MISSED_FLAG};
use super::node::Cluster;
use super::requests;
use super::requests::parse::event_packet;
use super::wire;
use crate::chat::push::{ChatPush, Frame, CHAT_NAMESPACE};
use crate::chat::users::Users;

/// Subscribes, delivers, answers; subscribes again whenever the connection drops.
///
/// While it is not subscribed, this node misses what the others deliver to its sockets: the
/// chat is told when that starts and when it ends (`Users::remote_link`), and its sockets
/// catch up on what they missed from the database once subscribed again.
pub(super) async fn subscriber(cluster: Arc<Cluster>, users: Users) {
    let mut logged_down = false;
    let link = |up: bool| {
        users.remote_link(up);
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
                            Some(msg) => on_message(&cluster, &users, &msg),
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

fn on_message(cluster: &Arc<Cluster>, users: &Users, msg: &redis::Msg) {
    let channel = msg.get_channel_name();
    let payload = msg.get_payload_bytes();
    if channel == cluster.channels.request {
        requests::on_request(cluster, users, payload);
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
        return on_missed(users, missed);
    }
    deliver(cluster, users, broadcast);
}

/// A broadcast from another server: to this node's sockets in its rooms, binary ones as
/// binary packets.
pub(super) fn deliver(cluster: &Cluster, users: &Users, broadcast: wire::Broadcast) {
    if broadcast.packet_type != wire::EVENT && broadcast.packet_type != wire::BINARY_EVENT {
        return debug!(
            "cluster: broadcast of packet type {} ignored (not an event)",
            broadcast.packet_type
        );
    }
    cluster.metrics.received();
    let rooms: Vec<Arc<str>> = broadcast.rooms.into_iter().map(Arc::from).collect();
    let except: Vec<Arc<str>> = broadcast.except.into_iter().map(Arc::from).collect();
    if broadcast.attachments.is_empty() {
        let frame: Frame = format!("42{}", broadcast.data).into();
        users.deliver_local(&rooms, &except, frame, mark_of(&broadcast.flags));
        return;
    }
    // Node's Buffers: a binary event, its attachments sent as binary messages.
    match event_packet(broadcast.data, broadcast.attachments) {
        Some(packet) => {
            users.deliver_packet(&rooms, &except, packet);
        }
        None => debug!("cluster: a binary broadcast that is not an event ignored"),
    }
}

/// Another node's notice that some of its deliveries to `missed` (a user, or `true`: anyone)
/// were lost: those sockets here catch up from the database.
pub(super) fn on_missed(users: &Users, missed: &serde_json::Value) {
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
