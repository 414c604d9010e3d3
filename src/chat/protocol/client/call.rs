//! Call signalling: `call:initiate`, `call:answer`, `call:reject`, `call:end` and
//! `call:ice-candidate`. Courier only relays them; the media goes through LiveKit.
//!
//! The events' `connectionId` is not a connection id: the app sends its LiveKit room name
//! (`call-<connectionId>-<ms>`), and `call:end` may send `""`; it is relayed verbatim as an
//! opaque string of at most [`MAX_OPAQUE_CHARS`] characters.
//!
//! Authorization is by the pair of users: every call event only between the two users of an
//! ACTIVE connection, the rule of `send_message`. `call:initiate` reads the sender's
//! connections afresh from `connections` (the app changes a status through its own API, so
//! a connection BLOCKED a moment ago no longer rings); the relays (`call:answer`,
//! `call:reject`, `call:end`, `call:ice-candidate`) rely on that read for the call's
//! lifetime: between two users in a call (a `call:initiate` passed, on this node, and no
//! `call:end`/`call:reject` since; at most four hours) they are relayed even after the
//! connection was ended mid-call, so the call can be hung up; outside a call they need the
//! ACTIVE connection as read within `presence.peers_ttl` (a relay that read refuses is
//! checked again against the database once, if the read is older than a second). Otherwise:
//! `call:failed` `{reason: "You are not connected with this user.", code: "NOT_CONNECTED"}`
//! and nothing is relayed.
//!
//! - `call:initiate` `{recipientId, callType, roomName}` → `call:incoming` `{callerId,
//!   callerName, callerImage, callType, roomName, connectionId: roomName, timestamp}` to every
//!   socket of the recipient, on every node; no socket on any node: `call:failed` `{reason: "Recipient is offline",
//!   code: "USER_OFFLINE"}`; the caller's row unreadable: `call:failed` `{reason: "Failed to
//!   initiate call"}`.
//! - `call:answer` `{callerId, connectionId}` → `call:accepted` `{participantId: <me>,
//!   connectionId, timestamp}` to the caller's sockets.
//! - `call:reject` `{callerId, connectionId}` → `call:rejected` `{participantId: <me>, …}` to
//!   the caller's sockets, and `call:rejected` `{participantId: callerId, …}` back.
//! - `call:end` `{participantId, connectionId}` → `call:ended` `{participantId: <me>, …}` to
//!   the participant's sockets (when given), and `call:ended` `{participantId, …}` back.
//! - `call:ice-candidate` `{to, connectionId, candidate}` → `{from: <me>, connectionId,
//!   candidate}` to every socket of `to`; `candidate` an object of at most
//!   [`MAX_CANDIDATE_BYTES`] of JSON.
//!
//! A malformed payload: `call:failed` `{reason: "Invalid call payload.", code:
//! "INVALID_PAYLOAD"}`; more than `chat.call_rate` events from one socket: `call:failed`
//! `{reason: "Too many call events.", code: "RATE_LIMITED"}`. Acks (if asked): `{ok: true}`,
//! or `{error: reason}`.

use serde_json::{Map, Value};

use super::args::{id_string, ArgError};

/// Most characters of the opaque `connectionId` / `roomName`.
pub(crate) const MAX_OPAQUE_CHARS: usize = 256;
/// Most characters of `callType`.
pub(crate) const MAX_CALL_TYPE_CHARS: usize = 32;
/// Largest ICE candidate, as JSON.
pub(crate) const MAX_CANDIDATE_BYTES: usize = 4096;

/// The events' names.
pub(crate) const INITIATE: &str = "call:initiate";
pub(crate) const ANSWER: &str = "call:answer";
pub(crate) const REJECT: &str = "call:reject";
pub const END: &str = "call:end";
pub(crate) const ICE_CANDIDATE: &str = "call:ice-candidate";

/// The `call:failed` reason of a malformed payload.
pub(crate) const INVALID_CALL_PAYLOAD: &str = "Invalid call payload.";

/// Why a call event was refused: `call:failed` `{reason, code?}` (and the failed ack
/// `{error: reason}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: &'static str,
    pub code: Option<&'static str>,
}

/// The users share no ACTIVE connection: nothing is relayed.
pub const NOT_CONNECTED: Failure = Failure {
    reason: "You are not connected with this user.",
    code: Some("NOT_CONNECTED"),
};
/// No socket of the recipient on any node.
pub const USER_OFFLINE: Failure = Failure {
    reason: "Recipient is offline",
    code: Some("USER_OFFLINE"),
};
/// The caller's row could not be read.
pub(crate) const INITIATE_FAILED: Failure = Failure {
    reason: "Failed to initiate call",
    code: None,
};
/// A malformed payload.
pub const INVALID: Failure = Failure {
    reason: INVALID_CALL_PAYLOAD,
    code: Some("INVALID_PAYLOAD"),
};
/// More than `chat.call_rate` events from one socket.
pub const RATE_LIMITED: Failure = Failure {
    reason: "Too many call events.",
    code: Some("RATE_LIMITED"),
};

/// A call event, parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    /// `call:initiate`.
    Initiate {
        recipient: String,
        call_type: String,
        room_name: String,
    },
    /// `call:answer`.
    Answer {
        caller: String,
        connection_id: String,
    },
    /// `call:reject`.
    Reject {
        caller: String,
        connection_id: String,
    },
    /// `call:end`; `participant` absent or empty: nobody to tell.
    End {
        participant: Option<String>,
        connection_id: String,
    },
    /// `call:ice-candidate`.
    IceCandidate {
        to: String,
        connection_id: String,
        candidate: Value,
    },
}

impl Call {
    /// The user the event is for, if any.
    pub fn other(&self) -> Option<&str> {
        match self {
            Call::Initiate { recipient, .. } => Some(recipient),
            Call::Answer { caller, .. } | Call::Reject { caller, .. } => Some(caller),
            Call::End { participant, .. } => participant.as_deref(),
            Call::IceCandidate { to, .. } => Some(to),
        }
    }

    /// Whether the event starts a call (its status check is read afresh).
    pub(crate) fn is_initiate(&self) -> bool {
        matches!(self, Call::Initiate { .. })
    }
}

/// Parses the call event `name` (`None` for a name that is not a call event).
pub fn parse(name: &str, args: &[Value]) -> Option<Result<Call, ArgError>> {
    let parse: fn(&Map<String, Value>) -> Option<Call> = match name {
        INITIATE => |o| {
            Some(Call::Initiate {
                recipient: user(o, "recipientId")?,
                call_type: bounded(o.get("callType")?, MAX_CALL_TYPE_CHARS)?,
                room_name: bounded(o.get("roomName")?, MAX_OPAQUE_CHARS)?,
            })
        },
        ANSWER => |o| {
            Some(Call::Answer {
                caller: user(o, "callerId")?,
                connection_id: opaque(o)?,
            })
        },
        REJECT => |o| {
            Some(Call::Reject {
                caller: user(o, "callerId")?,
                connection_id: opaque(o)?,
            })
        },
        END => |o| {
            let participant = match o.get("participantId") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.is_empty() => None,
                Some(v) => Some(id_string(Some(v))?),
            };
            Some(Call::End {
                participant,
                connection_id: opaque(o)?,
            })
        },
        ICE_CANDIDATE => |o| {
            let candidate = o.get("candidate").filter(|c| c.is_object())?;
            if candidate.to_string().len() > MAX_CANDIDATE_BYTES {
                return None;
            }
            Some(Call::IceCandidate {
                to: user(o, "to")?,
                connection_id: opaque(o)?,
                candidate: candidate.clone(),
            })
        },
        _ => return None,
    };
    let call = match args.first() {
        Some(Value::Object(obj)) => parse(obj),
        _ => None,
    };
    Some(call.ok_or(ArgError::fixed(INVALID_CALL_PAYLOAD)))
}

fn user(obj: &Map<String, Value>, key: &str) -> Option<String> {
    id_string(obj.get(key))
}

/// A string of at most `max` characters (possibly empty).
fn bounded(v: &Value, max: usize) -> Option<String> {
    v.as_str()
        .filter(|s| s.chars().count() <= max)
        .map(str::to_owned)
}

/// The opaque `connectionId` (absent or null: `""`).
fn opaque(obj: &Map<String, Value>) -> Option<String> {
    match obj.get("connectionId") {
        None | Some(Value::Null) => Some(String::new()),
        Some(v) => bounded(v, MAX_OPAQUE_CHARS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(name: &str, v: Value) -> Call {
        parse(name, &[v]).expect("a call event").expect("valid")
    }

    fn invalid(name: &str, v: Value) {
        let e = parse(name, std::slice::from_ref(&v))
            .expect("a call event")
            .unwrap_err();
        assert_eq!(e.message(), INVALID_CALL_PAYLOAD, "{name} {v}");
    }

    #[test]
    fn call_events_parse_with_opaque_room_names() {
        assert_eq!(
            ok(
                "call:initiate",
                json!({"recipientId": "u2", "callType": "video", "roomName": "call-c1-1700000000000"})
            ),
            Call::Initiate {
                recipient: "u2".into(),
                call_type: "video".into(),
                room_name: "call-c1-1700000000000".into()
            }
        );
        assert_eq!(
            ok("call:end", json!({"participantId": "", "connectionId": ""})),
            Call::End {
                participant: None,
                connection_id: String::new()
            }
        );
        assert_eq!(
            ok("call:end", json!({"connectionId": "call-x"})),
            Call::End {
                participant: None,
                connection_id: "call-x".into()
            }
        );
        let ice = ok(
            "call:ice-candidate",
            json!({"to": "u2", "connectionId": "r", "candidate": {"candidate": "a=1", "sdpMid": "0"}}),
        );
        assert_eq!(ice.other(), Some("u2"));
        assert!(!ice.is_initiate());
        assert!(ok(
            "call:initiate",
            json!({"recipientId": "u2", "callType": "audio", "roomName": "r"})
        )
        .is_initiate());
        assert!(parse("send_message", &[]).is_none());
    }

    #[test]
    fn malformed_call_events_are_refused() {
        invalid(
            "call:initiate",
            json!({"callType": "video", "roomName": "r"}),
        );
        invalid(
            "call:initiate",
            json!({"recipientId": "u", "callType": "v", "roomName": "r".repeat(257)}),
        );
        invalid(
            "call:initiate",
            json!({"recipientId": "u", "callType": 1, "roomName": "r"}),
        );
        invalid("call:answer", json!({"connectionId": "r"}));
        invalid("call:reject", json!({"callerId": 5}));
        invalid("call:end", json!({"participantId": 3, "connectionId": ""}));
        invalid(
            "call:ice-candidate",
            json!({"to": "u", "candidate": "text"}),
        );
        invalid(
            "call:ice-candidate",
            json!({"to": "u", "candidate": {"c": "x".repeat(MAX_CANDIDATE_BYTES)}}),
        );
        let e = parse("call:answer", &[json!("u")]).unwrap().unwrap_err();
        assert_eq!(e.message(), INVALID_CALL_PAYLOAD);
    }
}
