//! The sharded adapter's channels and message format (pure).

use std::sync::Arc;

use bytes::Bytes;
use redis::Cmd;
use serde_json::{json, Value};

use crate::chat::push::{Mark, CHAT_NAMESPACE};
use crate::cluster::flags::{MARK_FLAG, MISSED_FLAG, MISSED_ROOM};
use crate::cluster::requests::parse::{ack_timeout, Request};
use crate::cluster::wire::{self, request_type as classic};

/// The message types of `socket.io-adapter`'s `ClusterAdapter`.
pub mod kind {
    pub(crate) const BROADCAST: u64 = 3;
    pub(crate) const SOCKETS_JOIN: u64 = 4;
    pub(crate) const SOCKETS_LEAVE: u64 = 5;
    pub(crate) const DISCONNECT_SOCKETS: u64 = 6;
    pub const FETCH_SOCKETS: u64 = 7;
    pub(crate) const FETCH_SOCKETS_RESPONSE: u64 = 8;
    pub(crate) const SERVER_SIDE_EMIT: u64 = 9;
    pub(crate) const SERVER_SIDE_EMIT_RESPONSE: u64 = 10;
    pub(crate) const BROADCAST_CLIENT_COUNT: u64 = 11;
    pub(crate) const BROADCAST_ACK: u64 = 12;
}

/// The channels of one namespace under the prefix `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardedChannels {
    /// `<key>#<nsp>#`: what goes to every server; the prefix of the others.
    pub main: String,
}

/// Whether `room` looks like a socket id to the adapter (`room.length === 20` in JavaScript:
/// UTF-16 units).
pub(crate) fn looks_like_a_socket_id(room: &str) -> bool {
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
    pub(crate) fn broadcast_to(&self, rooms: &[&str], with_ack: bool) -> String {
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
    let (v, attachments) = wire::read_message(payload)?;
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
pub(crate) fn encode_binary(uid: &str, kind: u64, data: rmpv::Value) -> Vec<u8> {
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
pub(crate) fn encode_broadcast(uid: &str, data: &Value, rooms: &[&str], flags: Value) -> Vec<u8> {
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
pub(crate) fn request_of(message: &Message) -> Option<Request> {
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
        timeout: ack_timeout(opts),
    })
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
pub(crate) fn mark_flags(mark: Option<&Mark>) -> Value {
    match mark {
        Some(mark) => json!({ MARK_FLAG: [&*mark.conversation, mark.at, mark.key.as_str()] }),
        None => json!({}),
    }
}

/// The notice that deliveries to `user` (`None`: anyone) were lost, on their channel.
pub(crate) fn missed_notice(uid: &str, channels: &ShardedChannels, user: Option<&str>) -> Cmd {
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
    use std::time::Duration;

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
