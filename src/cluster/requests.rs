//! The requests of `@socket.io/redis-adapter` on `<key>-request#/#`, and this node's answers
//! on `<key>-response#/#` (JSON, as the adapter writes them).
//!
//! A Node server counts the servers with `PUBSUB NUMSUB` on the request channel and, for the
//! requests that collect answers, waits for one from each (`requestsTimeout`, 5 s by
//! default): so every Courier node answers each of them, once, whatever it holds.
//!
//! - `SOCKETS` (0): the ids of this node's sockets in `rooms`.
//! - `ALL_ROOMS` (1): this node's rooms: its users' ids and its sockets' ids.
//! - `REMOTE_FETCH` (5, `fetchSockets()`): this node's sockets in `opts.rooms` and not in
//!   `opts.except`, each as `{id, handshake, rooms, data: {userId}}`.
//! - `SERVER_SIDE_EMIT` (6): Courier has no server-side handlers; one with an ack
//!   (`requestId`) is answered with `data: null`, so the emitter does not wait out its
//!   timeout.
//! - `REMOTE_JOIN`, `REMOTE_LEAVE`, `REMOTE_DISCONNECT` (2, 3, 4) and `BROADCAST` with acks
//!   (7, MessagePack) are not carried out (the Node server never sends them): they are
//!   counted as ignored and logged at debug level. Those naming a single socket expect an
//!   answer from its node only, so the requester times out as for an unknown socket.

use std::sync::Arc;

use log::debug;
use serde_json::{json, Value};

use super::wire::request_type as t;
use super::Cluster;

/// A request's body, as far as it is read.
#[derive(Debug, Default, PartialEq)]
pub struct Request {
    pub uid: Option<String>,
    pub request_id: Option<String>,
    pub kind: Option<u64>,
    pub rooms: Vec<Arc<str>>,
    pub except: Vec<Arc<str>>,
}

fn strings(v: Option<&Value>) -> Vec<Arc<str>> {
    v.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(Arc::from(s.as_str())),
                    Value::Number(n) => Some(Arc::from(n.to_string())),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a request (JSON; a MessagePack one is a broadcast with acks and is not read).
pub fn parse(payload: &[u8]) -> Option<Request> {
    if payload.first() != Some(&b'{') {
        return None;
    }
    let v: Value = serde_json::from_slice(payload).ok()?;
    let opts = v.get("opts");
    Some(Request {
        uid: v.get("uid").and_then(Value::as_str).map(str::to_string),
        request_id: v
            .get("requestId")
            .and_then(Value::as_str)
            .map(str::to_string),
        kind: v.get("type").and_then(Value::as_u64),
        rooms: strings(opts.and_then(|o| o.get("rooms")).or_else(|| v.get("rooms"))),
        except: strings(opts.and_then(|o| o.get("except"))),
    })
}

/// The answer to `REMOTE_FETCH` with this node's `sockets` (sid, user).
pub fn fetch_response(request_id: &str, sockets: &[(Arc<str>, Arc<str>)]) -> String {
    let sockets: Vec<Value> = sockets
        .iter()
        .map(|(sid, user)| {
            json!({
                "id": &**sid,
                "handshake": {"headers": {}, "query": {}, "auth": {}},
                "rooms": [&**sid, &**user],
                "data": {"userId": &**user},
            })
        })
        .collect();
    json!({ "requestId": request_id, "sockets": sockets }).to_string()
}

/// Handles one message of the request channel.
pub(super) fn on_request(cluster: &Arc<Cluster>, payload: &[u8]) {
    let Some(request) = parse(payload) else {
        cluster.metrics.request(false);
        return debug!("cluster: a request that is not JSON ignored (broadcast with acks?)");
    };
    if request.uid.as_deref() == Some(cluster.uid()) {
        return;
    }
    let (Some(kind), Some(users)) = (request.kind, cluster.users.get().cloned()) else {
        return;
    };
    let Some(request_id) = request.request_id.clone() else {
        // REMOTE_JOIN/LEAVE/DISCONNECT by rooms, SERVER_SIDE_EMIT without an ack: no answer.
        cluster.metrics.request(false);
        return debug!("cluster: request of type {kind} without an answer ignored");
    };
    let cluster = cluster.clone();
    actix::spawn(async move {
        let response = match kind {
            t::SOCKETS => {
                let sockets = users.local_sockets(request.rooms, request.except).await;
                let ids: Vec<&str> = sockets.iter().map(|(sid, _)| &**sid).collect();
                json!({ "requestId": request_id, "sockets": ids }).to_string()
            }
            t::ALL_ROOMS => {
                let sockets = users.local_sockets(Vec::new(), Vec::new()).await;
                let mut rooms: Vec<&str> = sockets
                    .iter()
                    .flat_map(|(sid, user)| [&**sid, &**user])
                    .collect();
                rooms.sort_unstable();
                rooms.dedup();
                json!({ "requestId": request_id, "rooms": rooms }).to_string()
            }
            t::REMOTE_FETCH => {
                let sockets = users.local_sockets(request.rooms, request.except).await;
                fetch_response(&request_id, &sockets)
            }
            t::SERVER_SIDE_EMIT => json!({
                "type": t::SERVER_SIDE_EMIT,
                "requestId": request_id,
                "data": null,
            })
            .to_string(),
            other => {
                cluster.metrics.request(false);
                return debug!("cluster: request of type {other} ignored");
            }
        };
        cluster.metrics.request(true);
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(&cluster.channels.response).arg(response);
        cluster.send(cmd, false);
    });
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
        assert_eq!(r.rooms, vec![Arc::from("u1")]);
        // SOCKETS carries its rooms at the top level.
        let r = parse(br#"{"uid":"a","requestId":"b","type":0,"rooms":["r",7]}"#).unwrap();
        assert_eq!(r.rooms, vec![Arc::from("r"), Arc::from("7")]);
        assert_eq!(parse(&[0x83, 0xa3]), None);
        assert_eq!(parse(b"{not json"), None);
    }

    #[test]
    fn fetch_sockets_answer_has_the_adapters_shape() {
        let answer = fetch_response("xYz123", &[(Arc::from("sid1"), Arc::from("u1"))]);
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
