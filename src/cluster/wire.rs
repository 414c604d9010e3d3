//! The wire format of `@socket.io/redis-adapter` 8.x (classic pub/sub), as its `lib/index.ts`
//! has it; pure, no I/O.
//!
//! - **Broadcasts** go to `<key>#<nsp>#` (no room, or several) or `<key>#<nsp>#<room>#` (one
//!   room), MessagePack-encoded (`notepack.io`) as `[uid, packet, {rooms, except, flags}]`,
//!   where `packet` is the Socket.IO packet `{type, data, nsp}` (`type` 2 is an event, `data`
//!   `[name, ...args]`).
//! - **Requests** go to `<key>-request#<nsp>#`, JSON (`{uid, requestId, type, ...}`), and
//!   their **responses** to `<key>-response#<nsp>#`, JSON.
//!
//! Node's values arrive as `notepack.io` writes them: a `Date` is the MessagePack timestamp
//! extension (type −1), which becomes the string `JSON.stringify` gives
//! (`2026-01-18T04:59:38.123Z`); `undefined` is nil (`null`).

use std::io::Cursor;

use bytes::Bytes;
use rmpv::Value as Mp;
use serde_json::{Map, Number, Value};

/// The Socket.IO packet type of an event.
pub const EVENT: u64 = 2;
/// The Socket.IO packet type of an event with binary attachments.
pub const BINARY_EVENT: u64 = 5;

/// The adapter's request types.
pub(crate) mod request_type {
    pub(crate) const SOCKETS: u64 = 0;
    pub(crate) const ALL_ROOMS: u64 = 1;
    pub(crate) const REMOTE_JOIN: u64 = 2;
    pub(crate) const REMOTE_LEAVE: u64 = 3;
    pub(crate) const REMOTE_DISCONNECT: u64 = 4;
    pub(crate) const REMOTE_FETCH: u64 = 5;
    pub(crate) const SERVER_SIDE_EMIT: u64 = 6;
    pub(crate) const BROADCAST: u64 = 7;
}

/// The channels of one namespace under the prefix `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Channels {
    /// `<key>#<nsp>#`: broadcasts without a single room; the prefix of every broadcast.
    pub broadcast: String,
    /// `<key>-request#<nsp>#`.
    pub request: String,
    /// `<key>-response#<nsp>#`.
    pub response: String,
}

impl Channels {
    /// The channels of namespace `nsp`.
    pub fn new(key: &str, nsp: &str) -> Self {
        Channels {
            broadcast: format!("{key}#{nsp}#"),
            request: format!("{key}-request#{nsp}#"),
            response: format!("{key}-response#{nsp}#"),
        }
    }

    /// The channel of a broadcast to `rooms`: its own channel for a single room.
    pub(crate) fn broadcast_to(&self, rooms: &[&str]) -> String {
        match rooms {
            [room] => format!("{}{room}#", self.broadcast),
            _ => self.broadcast.clone(),
        }
    }

    /// The pattern that matches every broadcast of the namespace.
    pub(crate) fn pattern(&self) -> String {
        format!("{}*", self.broadcast)
    }
}

/// A broadcast between nodes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Broadcast {
    /// The sending node.
    pub uid: String,
    /// The Socket.IO packet type ([`EVENT`], [`BINARY_EVENT`]).
    pub packet_type: u64,
    /// The namespace (`/` when absent, as the adapter assumes).
    pub nsp: String,
    /// `[name, ...args]`, binary values as placeholders
    /// (`{"_placeholder": true, "num": n}`) for `attachments`.
    pub data: Value,
    /// The binary values of `data` (Node's Buffers), in placeholder order.
    pub attachments: Vec<Bytes>,
    /// The rooms it goes to; empty: every socket.
    pub rooms: Vec<String>,
    /// Rooms (and socket ids) it does not go to.
    pub except: Vec<String>,
    /// The broadcast's flags (`{}` when none), as JSON.
    pub flags: Value,
}

/// Why a message from Redis could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireError(pub String);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

/// Encodes the broadcast of the event `data` (`[name, ...args]`) from node `uid` to `rooms`
/// (none: everyone) on namespace `nsp`, with no exceptions and the `flags` given (a Node
/// server ignores flags it does not know), as the adapter does.
pub(crate) fn encode_broadcast(
    uid: &str,
    nsp: &str,
    data: &Value,
    rooms: &[&str],
    flags: Vec<(Mp, Mp)>,
) -> Vec<u8> {
    let packet = Mp::Map(vec![
        (Mp::from("type"), Mp::from(EVENT)),
        (Mp::from("data"), to_msgpack(data)),
        (Mp::from("nsp"), Mp::from(nsp)),
    ]);
    let opts = Mp::Map(vec![
        (
            Mp::from("rooms"),
            Mp::Array(rooms.iter().map(|r| Mp::from(*r)).collect()),
        ),
        (Mp::from("except"), Mp::Array(Vec::new())),
        (Mp::from("flags"), Mp::Map(flags)),
    ]);
    let message = Mp::Array(vec![Mp::from(uid), packet, opts]);
    let mut out = Vec::with_capacity(64);
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, &message);
    out
}

/// Decodes a broadcast.
pub(crate) fn decode_broadcast(bytes: &[u8]) -> Result<Broadcast, WireError> {
    let value = rmpv::decode::read_value(&mut Cursor::new(bytes))
        .map_err(|e| WireError(format!("not MessagePack: {e}")))?;
    let Mp::Array(items) = value else {
        return Err(WireError("not an array".into()));
    };
    let [uid, packet, opts] = <[Mp; 3]>::try_from(items)
        .map_err(|items| WireError(format!("{} items, not 3", items.len())))?;
    let uid = uid
        .as_str()
        .ok_or_else(|| WireError("uid is not a string".into()))?
        .to_string();
    let packet_type = field(&packet, "type")
        .and_then(Mp::as_u64)
        .ok_or_else(|| WireError("packet without a type".into()))?;
    let nsp = match field(&packet, "nsp") {
        None | Some(Mp::Nil) => "/".to_string(),
        Some(nsp) => nsp
            .as_str()
            .ok_or_else(|| WireError("nsp is not a string".into()))?
            .to_string(),
    };
    let mut attachments = Vec::new();
    let data = field(&packet, "data").map_or(Value::Null, |d| {
        to_json_with_attachments(d, &mut attachments)
    });
    Ok(Broadcast {
        uid,
        packet_type,
        nsp,
        data,
        attachments,
        rooms: strings(field(&opts, "rooms")),
        except: strings(field(&opts, "except")),
        flags: match field(&opts, "flags") {
            Some(flags @ Mp::Map(_)) => to_json(flags),
            _ => Value::Object(Map::new()),
        },
    })
}

fn field<'a>(map: &'a Mp, name: &str) -> Option<&'a Mp> {
    match map {
        Mp::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(name))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// Rooms as strings (a number as JavaScript prints it).
fn strings(value: Option<&Mp>) -> Vec<String> {
    match value {
        Some(Mp::Array(items)) => items
            .iter()
            .filter_map(|item| match to_json(item) {
                Value::String(s) => Some(s),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// JSON to MessagePack, as `notepack.io` encodes what `JSON.parse` gives.
pub(crate) fn to_msgpack(value: &Value) -> Mp {
    match value {
        Value::Null => Mp::Nil,
        Value::Bool(b) => Mp::Boolean(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Mp::from(u)
            } else if let Some(i) = n.as_i64() {
                Mp::from(i)
            } else {
                Mp::F64(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => Mp::from(s.as_str()),
        Value::Array(items) => Mp::Array(items.iter().map(to_msgpack).collect()),
        Value::Object(map) => Mp::Map(
            map.iter()
                .map(|(k, v)| (Mp::from(k.as_str()), to_msgpack(v)))
                .collect(),
        ),
    }
}

/// MessagePack to JSON, as `JSON.stringify` would write what `notepack.io` decodes: a
/// timestamp (a `Date`) as its ISO string, nil as `null`, a non-finite float as `null`, a
/// binary as Node's `Buffer.toJSON()` (`{"type": "Buffer", "data": [...]}`).
pub(crate) fn to_json(value: &Mp) -> Value {
    match value {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => Value::Bool(*b),
        Mp::Integer(i) => i
            .as_u64()
            .map(Value::from)
            .or_else(|| i.as_i64().map(Value::from))
            .unwrap_or(Value::Null),
        Mp::F32(f) => float(f64::from(*f)),
        Mp::F64(f) => float(*f),
        Mp::String(s) => match s.as_str() {
            Some(s) => Value::String(s.to_string()),
            None => Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        },
        Mp::Binary(bytes) => serde_json::json!({ "type": "Buffer", "data": bytes }),
        Mp::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Mp::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let key = match to_json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                map.insert(key, to_json(v));
            }
            Value::Object(map)
        }
        Mp::Ext(-1, data) => timestamp(data).map_or(Value::Null, Value::String),
        Mp::Ext(..) => Value::Null,
    }
}

/// A message of another server: JSON, or MessagePack (its binary values as attachments,
/// see [`to_json_with_attachments`]).
pub(crate) fn read_message(payload: &[u8]) -> Option<(Value, Vec<Bytes>)> {
    let mut attachments = Vec::new();
    let value = if payload.first() == Some(&b'{') {
        serde_json::from_slice(payload).ok()?
    } else {
        let mp = rmpv::decode::read_value(&mut Cursor::new(payload)).ok()?;
        to_json_with_attachments(&mp, &mut attachments)
    };
    Some((value, attachments))
}

/// MessagePack to JSON as [`to_json`], but each binary value becomes a Socket.IO placeholder
/// `{"_placeholder": true, "num": n}` and its bytes go to `attachments` (how a Socket.IO
/// server sends a Buffer: a binary packet).
pub(crate) fn to_json_with_attachments(value: &Mp, attachments: &mut Vec<Bytes>) -> Value {
    match value {
        Mp::Binary(bytes) => {
            attachments.push(Bytes::copy_from_slice(bytes));
            serde_json::json!({ "_placeholder": true, "num": attachments.len() - 1 })
        }
        Mp::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| to_json_with_attachments(i, attachments))
                .collect(),
        ),
        Mp::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let key = match to_json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                map.insert(key, to_json_with_attachments(v, attachments));
            }
            Value::Object(map)
        }
        other => to_json(other),
    }
}

/// JSON to MessagePack as [`to_msgpack`], each Socket.IO placeholder replaced by its
/// attachment as a binary value (a client's binary acknowledgement, for a Node server).
pub(crate) fn to_msgpack_with_attachments(value: &Value, attachments: &[Bytes]) -> Mp {
    match value {
        Value::Object(map)
            if map.len() == 2 && map.get("_placeholder") == Some(&Value::Bool(true)) =>
        {
            match map
                .get("num")
                .and_then(Value::as_u64)
                .and_then(|n| attachments.get(n as usize))
            {
                Some(bytes) => Mp::Binary(bytes.to_vec()),
                None => to_msgpack(value),
            }
        }
        Value::Array(items) => Mp::Array(
            items
                .iter()
                .map(|i| to_msgpack_with_attachments(i, attachments))
                .collect(),
        ),
        Value::Object(map) => Mp::Map(
            map.iter()
                .map(|(k, v)| {
                    (
                        Mp::from(k.as_str()),
                        to_msgpack_with_attachments(v, attachments),
                    )
                })
                .collect(),
        ),
        other => to_msgpack(other),
    }
}

fn float(f: f64) -> Value {
    // JSON.stringify writes NaN and the infinities as null.
    Number::from_f64(f).map_or(Value::Null, |n| {
        // JavaScript has one number type: 3.0 prints as 3.
        if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
            Value::from(f as i64)
        } else {
            Value::Number(n)
        }
    })
}

/// The MessagePack timestamp extension's data (32, 64 or 96 bits) as `Date.toISOString()`
/// prints it (milliseconds, UTC).
pub fn timestamp(data: &[u8]) -> Option<String> {
    let (secs, nanos): (i64, u32) = match data.len() {
        4 => (i64::from(u32::from_be_bytes(data.try_into().ok()?)), 0),
        8 => {
            let v = u64::from_be_bytes(data.try_into().ok()?);
            ((v & 0x3_ffff_ffff) as i64, (v >> 34) as u32)
        }
        12 => (
            i64::from_be_bytes(data[4..].try_into().ok()?),
            u32::from_be_bytes(data[..4].try_into().ok()?),
        ),
        _ => return None,
    };
    let at = chrono::DateTime::from_timestamp(secs, nanos)?;
    Some(at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn channels_are_the_adapters() {
        let c = Channels::new("socket.io", "/");
        assert_eq!(c.broadcast, "socket.io#/#");
        assert_eq!(c.request, "socket.io-request#/#");
        assert_eq!(c.response, "socket.io-response#/#");
        assert_eq!(c.pattern(), "socket.io#/#*");
        assert_eq!(c.broadcast_to(&["u1"]), "socket.io#/#u1#");
        assert_eq!(c.broadcast_to(&[]), "socket.io#/#");
        assert_eq!(c.broadcast_to(&["a", "b"]), "socket.io#/#");
    }

    #[test]
    fn a_broadcast_is_encoded_byte_for_byte_as_notepack_does() {
        // notepack.io 3's encode(["abc123", {type: 2, data: ["hi", {a: 1}], nsp: "/"},
        //   {rooms: ["u1"], except: [], flags: {}}]), checked against the npm package.
        let bytes = encode_broadcast("abc123", "/", &json!(["hi", {"a": 1}]), &["u1"], vec![]);
        let expected: Vec<u8> = [
            &[0x93, 0xa6][..],
            b"abc123",
            &[0x83, 0xa4],
            b"type",
            &[0x02, 0xa4],
            b"data",
            &[0x92, 0xa2],
            b"hi",
            &[0x81, 0xa1],
            b"a",
            &[0x01, 0xa3],
            b"nsp",
            &[0xa1],
            b"/",
            &[0x83, 0xa5],
            b"rooms",
            &[0x91, 0xa2],
            b"u1",
            &[0xa6],
            b"except",
            &[0x90, 0xa5],
            b"flags",
            &[0x80],
        ]
        .concat();
        assert_eq!(bytes, expected);
        let back = decode_broadcast(&bytes).unwrap();
        assert_eq!(
            back,
            Broadcast {
                uid: "abc123".into(),
                packet_type: EVENT,
                nsp: "/".into(),
                data: json!(["hi", {"a": 1}]),
                rooms: vec!["u1".into()],
                except: vec![],
                flags: json!({}),
                attachments: vec![],
            }
        );
    }

    #[test]
    fn node_values_become_what_json_stringify_gives() {
        // 2026-01-18T04:59:38.123Z as notepack.io writes a Date: timestamp 64 (ns << 34 | s).
        let ms: i64 = 1_768_712_378_123;
        let (s, ns) = (ms / 1000, (ms % 1000) * 1_000_000);
        let ts64 = ((ns as u64) << 34) | s as u64;
        let mut bytes = vec![0x93, 0xa1, b'n', 0x82, 0xa4];
        bytes.extend(b"type");
        bytes.push(0x02);
        bytes.push(0xa4);
        bytes.extend(b"data");
        // ["m", {createdAt: Date, x: undefined, f: 1.5, g: 2.0}]
        bytes.extend([0x92, 0xa1, b'm', 0x84, 0xa9]);
        bytes.extend(b"createdAt");
        bytes.extend([0xd7, 0xff]);
        bytes.extend(ts64.to_be_bytes());
        bytes.extend([0xa1, b'x', 0xc0]);
        bytes.extend([0xa1, b'f', 0xcb]);
        bytes.extend(1.5f64.to_be_bytes());
        bytes.extend([0xa1, b'g', 0xcb]);
        bytes.extend(2.0f64.to_be_bytes());
        bytes.extend([0x82, 0xa5]);
        bytes.extend(b"rooms");
        bytes.push(0x90);
        bytes.push(0xa6);
        bytes.extend(b"except");
        bytes.extend([0x91, 0xa2]);
        bytes.extend(b"s1");
        let b = decode_broadcast(&bytes).unwrap();
        assert_eq!(b.uid, "n");
        assert_eq!(b.nsp, "/", "a packet without nsp is on the main namespace");
        assert_eq!(
            b.data.to_string(),
            r#"["m",{"createdAt":"2026-01-18T04:59:38.123Z","f":1.5,"g":2,"x":null}]"#
        );
        assert!(b.rooms.is_empty());
        assert_eq!(b.except, vec!["s1".to_string()]);
    }

    #[test]
    fn timestamps_of_every_size() {
        // notepack.io 3 encodes new Date("2026-01-18T04:59:38.123Z") as d7 ff 1d535300696c68ba.
        assert_eq!(
            timestamp(&[0x1d, 0x53, 0x53, 0x00, 0x69, 0x6c, 0x68, 0xba]).as_deref(),
            Some("2026-01-18T04:59:38.123Z")
        );
        // timestamp 32: whole seconds.
        assert_eq!(
            timestamp(&1_768_712_378u32.to_be_bytes()).as_deref(),
            Some("2026-01-18T04:59:38.000Z")
        );
        // timestamp 96: before 1970.
        let mut t96 = 500_000_000u32.to_be_bytes().to_vec();
        t96.extend((-2i64).to_be_bytes());
        assert_eq!(timestamp(&t96).as_deref(), Some("1969-12-31T23:59:58.500Z"));
        assert_eq!(timestamp(&[1, 2, 3]), None);
    }

    #[test]
    fn node_buffers_become_attachments() {
        // ["file", {name: "a", body: <Buffer 01 02>}, <Buffer ff>] as notepack.io writes it.
        let data = Mp::Array(vec![
            Mp::from("file"),
            Mp::Map(vec![
                (Mp::from("name"), Mp::from("a")),
                (Mp::from("body"), Mp::Binary(vec![1, 2])),
            ]),
            Mp::Binary(vec![0xff]),
        ]);
        let mut attachments = Vec::new();
        let json = to_json_with_attachments(&data, &mut attachments);
        assert_eq!(
            json.to_string(),
            r#"["file",{"body":{"_placeholder":true,"num":0},"name":"a"},{"_placeholder":true,"num":1}]"#
        );
        assert_eq!(
            attachments,
            vec![Bytes::from_static(&[1, 2]), Bytes::from_static(&[0xff])]
        );
        // And back, for an acknowledgement going to Node.
        let back = to_msgpack_with_attachments(&json, &attachments);
        assert_eq!(back.as_array().map(Vec::len), Some(3));
        assert_eq!(back.as_array().unwrap()[2], Mp::Binary(vec![0xff]));
        // A placeholder without its attachment stays a map.
        let lone = to_msgpack_with_attachments(&json!({"_placeholder": true, "num": 9}), &[]);
        assert!(lone.is_map());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_broadcast(b"").is_err());
        assert!(decode_broadcast(&[0x92, 0xa1, b'x', 0x80]).is_err());
        assert!(decode_broadcast(&[0x93, 0x01, 0x80, 0x80]).is_err());
        assert!(decode_broadcast(&[0x93, 0xa1, b'x', 0x80, 0x80]).is_err());
    }
}
