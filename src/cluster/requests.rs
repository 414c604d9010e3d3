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

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use log::debug;
use serde_json::{json, Value};

use super::wire::{self, request_type as t};
use super::Cluster;
use crate::chat::push::{AckReply, ChatPush};
use crate::chat::remote::Reached;
use crate::socketio::{Packet, PacketData};

/// `BROADCAST_CLIENT_COUNT`: how many sockets a broadcast with acks reached here.
pub const BROADCAST_CLIENT_COUNT: u64 = 8;
/// `BROADCAST_ACK`: one socket's acknowledgement.
pub const BROADCAST_ACK: u64 = 9;

/// How long a broadcast's acknowledgements are awaited when its flags name no timeout.
const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait for a broadcast's acknowledgements, whatever its flags say.
const MAX_ACK_TIMEOUT: Duration = Duration::from_secs(120);

/// Sockets selected by rooms: those in any of the first, in none of the second.
pub type Selection = (Vec<Arc<str>>, Vec<Arc<str>>);

/// A socket in a `fetchSockets()` answer: its id, its user, its rooms.
pub type Fetched = (Arc<str>, Arc<str>, Vec<Arc<str>>);

/// A request's body, as far as it is read.
#[derive(Debug, Default, PartialEq)]
pub struct Request {
    pub uid: Option<String>,
    pub request_id: Option<String>,
    pub kind: Option<u64>,
    /// `opts.rooms` and `opts.except`, when the request selects sockets by rooms.
    pub opts: Option<Selection>,
    /// The top-level `rooms`: what `SOCKETS` asks about, what `REMOTE_JOIN`/`LEAVE` join.
    pub rooms: Vec<Arc<str>>,
    /// One socket (`remoteJoin`, `remoteLeave`, `remoteDisconnect`) and its room.
    pub sid: Option<String>,
    pub room: Option<Arc<str>>,
    /// `REMOTE_DISCONNECT`: close the whole connection.
    pub close: bool,
    /// `BROADCAST`: the packet's `data` (`[name, ...args]`) and its binary values.
    pub data: Option<Value>,
    pub attachments: Vec<Bytes>,
    /// `BROADCAST`: `opts.flags.timeout`.
    pub timeout: Option<Duration>,
}

fn strings(v: Option<&Value>) -> Vec<Arc<str>> {
    v.and_then(Value::as_array)
        .map(|items| items.iter().filter_map(room).collect())
        .unwrap_or_default()
}

/// A room as the adapter sends it (a number as JavaScript prints it).
fn room(v: &Value) -> Option<Arc<str>> {
    match v {
        Value::String(s) => Some(Arc::from(s.as_str())),
        Value::Number(n) => Some(Arc::from(n.to_string())),
        _ => None,
    }
}

/// Reads a request: JSON, or MessagePack (a broadcast with acks).
pub fn parse(payload: &[u8]) -> Option<Request> {
    let mut attachments = Vec::new();
    let v: Value = if payload.first() == Some(&b'{') {
        serde_json::from_slice(payload).ok()?
    } else {
        let mp = rmpv::decode::read_value(&mut std::io::Cursor::new(payload)).ok()?;
        wire::to_json_with_attachments(&mp, &mut attachments)
    };
    if !v.is_object() {
        return None;
    }
    let opts = v.get("opts").filter(|o| o.is_object());
    let packet = v.get("packet");
    Some(Request {
        uid: v.get("uid").and_then(Value::as_str).map(str::to_string),
        request_id: v
            .get("requestId")
            .and_then(Value::as_str)
            .map(str::to_string),
        kind: v.get("type").and_then(Value::as_u64),
        opts: opts.map(|o| (strings(o.get("rooms")), strings(o.get("except")))),
        rooms: strings(v.get("rooms")),
        sid: v.get("sid").and_then(Value::as_str).map(str::to_string),
        room: v.get("room").and_then(room),
        close: v.get("close").and_then(Value::as_bool).unwrap_or(false),
        data: packet.and_then(|p| p.get("data")).cloned(),
        attachments,
        timeout: opts
            .and_then(|o| o.get("flags"))
            .and_then(|f| f.get("timeout"))
            .and_then(Value::as_f64)
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| Duration::from_millis(ms as u64)),
    })
}

/// The Socket.IO packet of an event's `data` (`[name, ...args]`) on `/`: a binary event when
/// it has attachments. `None` if `data` is not an event.
pub fn event_packet(data: Value, attachments: Vec<Bytes>) -> Option<Packet> {
    let Value::Array(mut items) = data else {
        return None;
    };
    if !matches!(items.first(), Some(Value::String(_))) {
        return None;
    }
    let Value::String(event) = items.remove(0) else {
        return None;
    };
    let data = if attachments.is_empty() {
        PacketData::Event {
            event,
            args: items,
            id: None,
        }
    } else {
        PacketData::BinaryEvent {
            event,
            args: items,
            id: None,
            attachments,
        }
    };
    Some(Packet {
        nsp: "/".to_string(),
        data,
    })
}

/// The answer to `REMOTE_FETCH` with this node's `sockets` (sid, user, rooms).
pub fn fetch_response(request_id: &str, sockets: &[Fetched]) -> String {
    let sockets: Vec<Value> = sockets
        .iter()
        .map(|(sid, user, rooms)| {
            let rooms: Vec<&str> = rooms.iter().map(|r| &**r).collect();
            json!({
                "id": &**sid,
                "handshake": {"headers": {}, "query": {}, "auth": {}},
                "rooms": rooms,
                "data": {"userId": &**user},
            })
        })
        .collect();
    json!({ "requestId": request_id, "sockets": sockets }).to_string()
}

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
                cmd.arg(sharded.channels.of(to)).arg(super::sharded::encode(
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
        cluster.send(cmd, super::Queued::Command);
    }

    fn is_classic(&self) -> bool {
        matches!(self, Reply::Classic)
    }
}

/// Handles one message of the request channel (the classic protocol).
pub(super) fn on_request(cluster: &Arc<Cluster>, payload: &[u8]) {
    let Some(request) = parse(payload) else {
        cluster.metrics.request(false);
        return debug!("cluster: an unreadable request ignored");
    };
    handle(cluster, request, Reply::Classic);
}

/// Handles a request of another server; its answers go as `reply` says.
pub(super) fn handle(cluster: &Arc<Cluster>, request: Request, reply: Reply) {
    use super::sharded::kind as sharded;
    if request.uid.as_deref() == Some(cluster.uid()) {
        return;
    }
    let (Some(kind), Some(users)) = (request.kind, cluster.users.get()) else {
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
    use super::sharded::kind as sharded;
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
                        super::sharded::encode(
                            to.uid(),
                            sharded::BROADCAST_ACK,
                            json!({ "requestId": id, "packet": first }),
                        )
                    } else {
                        super::sharded::encode_binary(to.uid(), sharded::BROADCAST_ACK, data)
                    };
                    let mut cmd = redis::cmd("SPUBLISH");
                    cmd.arg(sharded.channels.of(requester)).arg(payload);
                    to.send(cmd, super::Queued::Command);
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
                    to.send(cmd, super::Queued::Command);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_requests_are_read() {
        // What `io.in("u1").fetchSockets()` publishes.
        let r = parse(
            br#"{"uid":"aB3dE6","requestId":"xYz123","type":5,"opts":{"rooms":["u1"],"except":[]}}"#,
        )
        .unwrap();
        assert_eq!(r.uid.as_deref(), Some("aB3dE6"));
        assert_eq!(r.request_id.as_deref(), Some("xYz123"));
        assert_eq!(r.kind, Some(t::REMOTE_FETCH));
        assert_eq!(r.opts, Some((vec![Arc::from("u1")], vec![])));
        // SOCKETS carries its rooms at the top level.
        let r = parse(br#"{"uid":"a","requestId":"b","type":0,"rooms":["r",7]}"#).unwrap();
        assert_eq!(r.rooms, vec![Arc::from("r"), Arc::from("7")]);
        assert_eq!(parse(&[0x83, 0xa3]), None);
        assert_eq!(parse(b"{not json"), None);
        // remoteJoin of one socket; socketsJoin by rooms.
        let r = parse(br#"{"uid":"a","requestId":"b","type":2,"sid":"s1","room":"r1"}"#).unwrap();
        assert_eq!(
            (r.sid.as_deref(), r.room.as_deref()),
            (Some("s1"), Some("r1"))
        );
        assert_eq!(r.opts, None);
        let r = parse(
            br#"{"uid":"a","type":2,"opts":{"rooms":["u1"],"except":["s9"]},"rooms":["vip"]}"#,
        )
        .unwrap();
        assert_eq!(r.opts, Some((vec![Arc::from("u1")], vec![Arc::from("s9")])));
        assert_eq!(r.rooms, vec![Arc::from("vip")]);
        let r = parse(br#"{"uid":"a","requestId":"b","type":4,"sid":"s1","close":true}"#).unwrap();
        assert!(r.close);
    }

    #[test]
    fn a_broadcast_with_acks_is_read_from_messagepack() {
        // notepack.io's encode({uid: "n1", requestId: "r1", type: 7,
        //   packet: {type: 2, data: ["ping", Buffer.from([7])], nsp: "/"},
        //   opts: {rooms: ["u1"], except: [], flags: {timeout: 1500}}}).
        use rmpv::Value as Mp;
        let request = Mp::Map(vec![
            (Mp::from("uid"), Mp::from("n1")),
            (Mp::from("requestId"), Mp::from("r1")),
            (Mp::from("type"), Mp::from(7)),
            (
                Mp::from("packet"),
                Mp::Map(vec![
                    (Mp::from("type"), Mp::from(2)),
                    (
                        Mp::from("data"),
                        Mp::Array(vec![Mp::from("ping"), Mp::Binary(vec![7])]),
                    ),
                    (Mp::from("nsp"), Mp::from("/")),
                ]),
            ),
            (
                Mp::from("opts"),
                Mp::Map(vec![
                    (Mp::from("rooms"), Mp::Array(vec![Mp::from("u1")])),
                    (Mp::from("except"), Mp::Array(vec![])),
                    (
                        Mp::from("flags"),
                        Mp::Map(vec![(Mp::from("timeout"), Mp::from(1500))]),
                    ),
                ]),
            ),
        ]);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &request).unwrap();
        let r = parse(&bytes).unwrap();
        assert_eq!(r.kind, Some(t::BROADCAST));
        assert_eq!(r.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(r.attachments, vec![Bytes::from_static(&[7])]);
        let packet = event_packet(r.data.clone().unwrap(), r.attachments.clone()).unwrap();
        assert_eq!(
            packet.encode().0,
            r#"51-["ping",{"_placeholder":true,"num":0}]"#
        );
        assert_eq!(event_packet(json!({"x": 1}), vec![]), None);
        assert_eq!(event_packet(json!([1, 2]), vec![]), None);
        assert_eq!(
            event_packet(json!(["hi", 1]), vec![]).unwrap().encode().0,
            r#"2["hi",1]"#
        );
    }

    #[test]
    fn fetch_sockets_answer_has_the_adapters_shape() {
        let answer = fetch_response(
            "xYz123",
            &[(
                Arc::from("sid1"),
                Arc::from("u1"),
                vec![Arc::from("sid1"), Arc::from("u1")],
            )],
        );
        let v: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(v["requestId"], "xYz123");
        assert_eq!(v["sockets"][0]["id"], "sid1");
        assert_eq!(v["sockets"][0]["rooms"], json!(["sid1", "u1"]));
        assert_eq!(v["sockets"][0]["data"], json!({"userId": "u1"}));
        assert_eq!(
            fetch_response("r", &[]),
            r#"{"requestId":"r","sockets":[]}"#
        );
    }
}
