//! The requests of `@socket.io/redis-adapter` on `<key>-request#/#`, and this node's answers
//! on `<key>-response#/#` (JSON, as the adapter writes them; MessagePack for a broadcast's
//! acknowledgements).
//!
//! A Node server counts the servers with `PUBSUB NUMSUB` on the request channel and, for the
//! requests that collect answers, waits for one from each (`requestsTimeout`, 5 s by
//! default): so every Courier node answers each of them, once, whatever it holds. Rooms are
//! Socket.IO's ([`crate::chat::remote`]): a socket's id, its user's id, the conversations it
//! joined and the rooms other servers made it join.
//!
//! - `SOCKETS` (0): the ids of this node's sockets in `rooms`.
//! - `ALL_ROOMS` (1): every room with a socket of this node.
//! - `REMOTE_JOIN` (2), `REMOTE_LEAVE` (3): with `opts` (`io.in(…).socketsJoin(rooms)`),
//!   this node's sockets in `opts.rooms` and not in `opts.except` join (leave) `rooms`, no
//!   answer; with `sid` and `room` (`remoteJoin`), that socket, answered `{requestId}` by its
//!   node only.
//! - `REMOTE_DISCONNECT` (4): the same selection (or `sid`) is disconnected (`close`: its
//!   whole connection).
//! - `REMOTE_FETCH` (5, `fetchSockets()`): this node's sockets in `opts.rooms` and not in
//!   `opts.except`, each as `{id, handshake, rooms, data: {userId}}`.
//! - `SERVER_SIDE_EMIT` (6): Courier has no server-side handlers; one with an ack
//!   (`requestId`) is answered with `data: null`, so the emitter does not wait out its
//!   timeout.
//! - `BROADCAST` (7, MessagePack: `io.timeout(…).emit(…, callback)`): the packet goes to the
//!   selected sockets asking for their acknowledgement; the node answers
//!   `BROADCAST_CLIENT_COUNT` (8) with how many it reached, then one `BROADCAST_ACK` (9,
//!   MessagePack) per acknowledgement that comes within the broadcast's `flags.timeout`.

pub mod parse;

use std::sync::Arc;

use log::debug;
use serde_json::{json, Value};

use super::node::Cluster;
use super::publish::Queued;
use super::sharded::wire as sharded_wire;
use super::wire::{self, request_type as t};
use crate::chat::push::{AckReply, ChatPush};
use crate::chat::remote::Reached;
use crate::chat::users::Users;
use bytes::Bytes;
use parse::{
    event_packet, fetch_response, parse, Request, BROADCAST_ACK, BROADCAST_CLIENT_COUNT,
    DEFAULT_ACK_TIMEOUT, MAX_ACK_TIMEOUT,
};

/// Where a request's answers go, and in which protocol's form.
#[derive(Debug, Clone)]
pub(super) enum Reply {
    /// The classic protocol: JSON (MessagePack for an ack) on `<key>-response#/#`.
    Classic,
    /// Sharded pub/sub: `{uid, nsp, type, data}` on the requester's own channel.
    Sharded { to: String },
}

impl Reply {
    /// Publishes an answer: `classic` in the classic protocol; else the sharded protocol's
    /// message of type `kind` with `data`.
    fn send(&self, cluster: &Cluster, classic: impl FnOnce() -> Vec<u8>, kind: u64, data: Value) {
        let cmd = match (self, &cluster.sharded) {
            (Reply::Sharded { to }, Some(sharded)) => {
                let mut cmd = redis::cmd("SPUBLISH");
                cmd.arg(sharded.channels.of(to)).arg(sharded_wire::encode(
                    cluster.uid(),
                    kind,
                    data,
                ));
                cmd
            }
            _ => {
                let mut cmd = redis::cmd("PUBLISH");
                cmd.arg(&cluster.channels.response).arg(classic());
                cmd
            }
        };
        cluster.send(cmd, Queued::Command);
    }

    fn is_classic(&self) -> bool {
        matches!(self, Reply::Classic)
    }
}

/// Handles one message of the request channel (the classic protocol).
pub(super) fn on_request(cluster: &Arc<Cluster>, users: &Users, payload: &[u8]) {
    let Some(request) = parse(payload) else {
        cluster.metrics.request(false);
        return debug!("cluster: an unreadable request ignored");
    };
    handle(cluster, users, request, Reply::Classic);
}

/// Handles a request of another server; its answers go as `reply` says.
pub(super) fn handle(cluster: &Arc<Cluster>, users: &Users, request: Request, reply: Reply) {
    use sharded_wire::kind as sharded;
    if request.uid.as_deref() == Some(cluster.uid()) {
        return;
    }
    let Some(kind) = request.kind else {
        return;
    };
    let Some(index) = users.index() else {
        return;
    };
    // The sockets a request selects: by rooms, or the one it names.
    let selected = |request: &Request| -> Vec<Reached> {
        match (&request.opts, &request.sid) {
            (Some((rooms, except)), _) => index.reach(rooms, except),
            (None, Some(sid)) => index.reach(&[Arc::from(sid.as_str())], &[]),
            (None, None) => Vec::new(),
        }
    };
    let id = request.request_id.clone();
    match kind {
        // Classic only: the sharded protocol has no such requests.
        t::SOCKETS if reply.is_classic() => {
            if let Some(id) = id {
                let ids: Vec<String> = index
                    .reach(&request.rooms, &[])
                    .iter()
                    .map(|s| s.sid.to_string())
                    .collect();
                let answer = json!({ "requestId": id, "sockets": ids }).to_string();
                reply.send(cluster, || answer.into_bytes(), 0, Value::Null);
            }
        }
        t::ALL_ROOMS if reply.is_classic() => {
            if let Some(id) = id {
                let mut rooms: Vec<String> =
                    index.all_rooms().iter().map(|r| r.to_string()).collect();
                rooms.sort_unstable();
                let answer = json!({ "requestId": id, "rooms": rooms }).to_string();
                reply.send(cluster, || answer.into_bytes(), 0, Value::Null);
            }
        }
        t::REMOTE_JOIN | t::REMOTE_LEAVE => {
            let join = kind == t::REMOTE_JOIN;
            let sockets = selected(&request);
            let rooms: Vec<Arc<str>> = match (&request.opts, &request.room) {
                (Some(_), _) => request.rooms.clone(),
                (None, Some(room)) => vec![room.clone()],
                (None, None) => Vec::new(),
            };
            for socket in &sockets {
                for room in &rooms {
                    if join {
                        if index.join(&socket.sid, room) {
                            socket.push.do_send(ChatPush::Joined(room.clone()));
                        }
                    } else {
                        index.leave(&socket.sid, room);
                    }
                }
            }
            // Only the node of the socket a request names answers it.
            if let Some(id) = id.filter(|_| request.opts.is_none() && !sockets.is_empty()) {
                let answer = json!({ "requestId": id }).to_string();
                reply.send(cluster, || answer.into_bytes(), 0, Value::Null);
            }
        }
        t::REMOTE_DISCONNECT => {
            // Another Courier node took a recovery stream over.
            for room in request.opts.iter().flat_map(|(rooms, _)| rooms) {
                if let Some(nonce) = room.strip_prefix(crate::chat::remote::PID_ROOM) {
                    users.pid_taken_elsewhere(nonce);
                }
            }
            let sockets = selected(&request);
            for socket in &sockets {
                socket.push.do_send(ChatPush::Disconnect {
                    close: request.close,
                });
            }
            if let Some(id) = id.filter(|_| request.opts.is_none() && !sockets.is_empty()) {
                let answer = json!({ "requestId": id }).to_string();
                reply.send(cluster, || answer.into_bytes(), 0, Value::Null);
            }
        }
        t::REMOTE_FETCH => {
            if let Some(id) = id {
                let (rooms, except) = request.opts.clone().unwrap_or_default();
                let sockets: Vec<_> = index
                    .reach(&rooms, &except)
                    .into_iter()
                    .map(|s| {
                        let rooms = index.rooms_of(&s.sid);
                        (s.sid, s.user, rooms)
                    })
                    .collect();
                let answer = fetch_response(&id, &sockets);
                let data = serde_json::from_str(&answer).unwrap_or(Value::Null);
                reply.send(
                    cluster,
                    || answer.into_bytes(),
                    sharded::FETCH_SOCKETS_RESPONSE,
                    data,
                );
            }
        }
        t::SERVER_SIDE_EMIT => {
            if let Some(id) = id {
                let answer = json!({
                    "type": t::SERVER_SIDE_EMIT,
                    "requestId": id,
                    "data": null,
                })
                .to_string();
                reply.send(
                    cluster,
                    || answer.into_bytes(),
                    sharded::SERVER_SIDE_EMIT_RESPONSE,
                    json!({ "requestId": id, "packet": null }),
                );
            }
        }
        t::BROADCAST => broadcast_with_acks(cluster, request, selected, reply),
        other => {
            cluster.metrics.request(false);
            return debug!("cluster: request of type {other} ignored");
        }
    }
    cluster.metrics.request(true);
}

/// A broadcast with acks: the packet goes to the selected sockets, asking each for its
/// acknowledgement; the count goes back at once, each acknowledgement when it comes.
fn broadcast_with_acks(
    cluster: &Arc<Cluster>,
    request: Request,
    selected: impl Fn(&Request) -> Vec<Reached>,
    reply: Reply,
) {
    use sharded_wire::kind as sharded;
    let Some(id) = request.request_id.clone() else {
        return;
    };
    let sockets = selected(&request);
    let packet = request
        .data
        .clone()
        .and_then(|data| event_packet(data, request.attachments.clone()));
    let Some(packet) = packet.map(Arc::new) else {
        return debug!("cluster: a broadcast with acks that is not an event ignored");
    };
    let timeout = request
        .timeout
        .unwrap_or(DEFAULT_ACK_TIMEOUT)
        .min(MAX_ACK_TIMEOUT);
    let count = json!({
        "type": BROADCAST_CLIENT_COUNT,
        "requestId": id,
        "clientCount": sockets.len(),
    })
    .to_string();
    reply.send(
        cluster,
        || count.into_bytes(),
        sharded::BROADCAST_CLIENT_COUNT,
        json!({ "requestId": id, "clientCount": sockets.len() }),
    );
    let to = cluster.clone();
    let ack_reply = AckReply(Arc::new(
        move |args: Vec<Value>, attachments: Vec<Bytes>| {
            let first = args.first().cloned().unwrap_or(Value::Null);
            let packet = wire::to_msgpack_with_attachments(&first, &attachments);
            match (&reply, &to.sharded) {
                (Reply::Sharded { to: requester }, Some(sharded)) => {
                    // MessagePack when the answer carries binary, as the adapter writes it.
                    let data = rmpv::Value::Map(vec![
                        (
                            rmpv::Value::from("requestId"),
                            rmpv::Value::from(id.as_str()),
                        ),
                        (rmpv::Value::from("packet"), packet),
                    ]);
                    let payload = if attachments.is_empty() {
                        sharded_wire::encode(
                            to.uid(),
                            sharded::BROADCAST_ACK,
                            json!({ "requestId": id, "packet": first }),
                        )
                    } else {
                        sharded_wire::encode_binary(to.uid(), sharded::BROADCAST_ACK, data)
                    };
                    let mut cmd = redis::cmd("SPUBLISH");
                    cmd.arg(sharded.channels.of(requester)).arg(payload);
                    to.send(cmd, Queued::Command);
                }
                _ => {
                    let answer = rmpv::Value::Map(vec![
                        (rmpv::Value::from("type"), rmpv::Value::from(BROADCAST_ACK)),
                        (
                            rmpv::Value::from("requestId"),
                            rmpv::Value::from(id.as_str()),
                        ),
                        (rmpv::Value::from("packet"), packet),
                    ]);
                    let mut bytes = Vec::new();
                    // Writing to a Vec cannot fail.
                    let _ = rmpv::encode::write_value(&mut bytes, &answer);
                    let mut cmd = redis::cmd("PUBLISH");
                    cmd.arg(&to.channels.response).arg(bytes);
                    to.send(cmd, Queued::Command);
                }
            }
        },
    ));
    for socket in sockets {
        socket.push.do_send(ChatPush::Ask {
            packet: packet.clone(),
            reply: ack_reply.clone(),
            timeout,
        });
    }
}
