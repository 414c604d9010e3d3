//! Reading the adapter's requests, and the answers' forms (pure).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::cluster::wire;
use crate::socketio::{Packet, PacketData};

/// `BROADCAST_CLIENT_COUNT`: how many sockets a broadcast with acks reached here.
pub(crate) const BROADCAST_CLIENT_COUNT: u64 = 8;
/// `BROADCAST_ACK`: one socket's acknowledgement.
pub(crate) const BROADCAST_ACK: u64 = 9;

/// How long a broadcast's acknowledgements are awaited when its flags name no timeout.
pub(super) const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait for a broadcast's acknowledgements, whatever its flags say.
pub(super) const MAX_ACK_TIMEOUT: Duration = Duration::from_secs(120);

/// Sockets selected by rooms: those in any of the first, in none of the second.
pub(crate) type Selection = (Vec<Arc<str>>, Vec<Arc<str>>);

/// A socket in a `fetchSockets()` answer: its id, its user, its rooms.
pub(crate) type Fetched = (Arc<str>, Arc<str>, Vec<Arc<str>>);

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

/// A broadcast's `opts.flags.timeout` (milliseconds), when it has a usable one.
pub(crate) fn ack_timeout(opts: Option<&Value>) -> Option<Duration> {
    opts.and_then(|o| o.get("flags"))
        .and_then(|f| f.get("timeout"))
        .and_then(Value::as_f64)
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .map(|ms| Duration::from_millis(ms as u64))
}

/// Reads a request: JSON, or MessagePack (a broadcast with acks).
pub fn parse(payload: &[u8]) -> Option<Request> {
    let (v, attachments) = wire::read_message(payload)?;
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
        timeout: ack_timeout(opts),
    })
}

/// The Socket.IO packet of an event's `data` (`[name, ...args]`) on `/`: a binary event when
/// it has attachments. `None` if `data` is not an event.
pub(crate) fn event_packet(data: Value, attachments: Vec<Bytes>) -> Option<Packet> {
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
pub(crate) fn fetch_response(request_id: &str, sockets: &[Fetched]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::wire::request_type as t;

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
