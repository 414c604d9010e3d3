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
pub const MAX_OPAQUE_CHARS: usize = 256;
/// Most characters of `callType`.
pub const MAX_CALL_TYPE_CHARS: usize = 32;
/// Largest ICE candidate, as JSON.
pub const MAX_CANDIDATE_BYTES: usize = 4096;

/// The `call:failed` reason of a malformed payload.
pub const INVALID_CALL_PAYLOAD: &str = "Invalid call payload.";

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
    pub fn is_initiate(&self) -> bool {
        matches!(self, Call::Initiate { .. })
    }
}

/// Parses the call event `name` (`None` for a name that is not a call event).
pub fn parse(name: &str, args: &[Value]) -> Option<Result<Call, ArgError>> {
    let parse: fn(&Map<String, Value>) -> Option<Call> = match name {
        "call:initiate" => |o| {
            Some(Call::Initiate {
                recipient: user(o, "recipientId")?,
                call_type: bounded(o.get("callType")?, MAX_CALL_TYPE_CHARS)?,
                room_name: bounded(o.get("roomName")?, MAX_OPAQUE_CHARS)?,
            })
        },
        "call:answer" => |o| {
            Some(Call::Answer {
                caller: user(o, "callerId")?,
                connection_id: opaque(o)?,
            })
        },
        "call:reject" => |o| {
            Some(Call::Reject {
                caller: user(o, "callerId")?,
                connection_id: opaque(o)?,
            })
        },
        "call:end" => |o| {
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
        "call:ice-candidate" => |o| {
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

#[cfg(not(fuzzing))]
pub use handling::CallRequest;

#[cfg(not(fuzzing))]
mod handling {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use actix::{ActorFutureExt, AsyncContext, Context, Handler, Message, WrapFuture};
    use serde_json::{json, Value};

    use super::{parse, Call};
    use crate::chat::message_json::iso_millis;
    use crate::chat::push::{event, Caller, Frame, CHAT_NAMESPACE};
    use crate::chat::socket::ChatSocket;
    use crate::chat::users::{Relations, UserShard};
    use crate::socketio::{Event, SocketIo};

    const NOT_CONNECTED: (&str, Option<&str>) = (
        "You are not connected with this user.",
        Some("NOT_CONNECTED"),
    );
    const USER_OFFLINE: (&str, Option<&str>) = ("Recipient is offline", Some("USER_OFFLINE"));
    const INITIATE_FAILED: (&str, Option<&str>) = ("Failed to initiate call", None);
    const INVALID: (&str, Option<&str>) = (super::INVALID_CALL_PAYLOAD, Some("INVALID_PAYLOAD"));
    const RATE_LIMITED: (&str, Option<&str>) = ("Too many call events.", Some("RATE_LIMITED"));

    /// `call:failed` `{reason, code?}`.
    fn failed((reason, code): (&str, Option<&str>)) -> Frame {
        let body = match code {
            Some(code) => json!({ "reason": reason, "code": code }),
            None => json!({ "reason": reason }),
        };
        event("call:failed", &[&body.to_string()])
    }

    /// Answers `caller` with `call:failed` (and a failed ack).
    fn fail(caller: &Caller, why: (&str, Option<&str>)) {
        caller.done(Some(failed(why)), &json!({ "error": why.0 }).to_string());
    }

    const OK: &str = r#"{"ok":true}"#;

    /// A call event from `from`'s socket, for `from`'s user shard.
    #[derive(Message)]
    #[rtype(result = "()")]
    pub struct CallRequest {
        pub from: Arc<str>,
        pub caller: Caller,
        pub call: Call,
    }

    /// For the recipient's shard: ring every socket of `to`, or tell the caller they are
    /// offline.
    #[derive(Message)]
    #[rtype(result = "()")]
    struct Ring {
        to: Arc<str>,
        /// Who calls.
        from: Arc<str>,
        frame: Frame,
        caller: Caller,
    }

    impl ChatSocket {
        /// A call event from the client (`name` starts with `call:`); `false` if `name` is
        /// not one.
        pub(in crate::chat) fn call_event(
            &mut self,
            event: &Event,
            io: &mut SocketIo<'_, '_, Self>,
        ) -> bool {
            let Some(parsed) = parse(&event.name, &event.args) else {
                return false;
            };
            let Some((from, caller)) = self.caller(event.ack, io) else {
                return true;
            };
            let ack = event.ack;
            let mut answer_now = |why: (&str, Option<&str>)| {
                io.send_framed(failed(why));
                if let Some(id) = ack {
                    io.ack(CHAT_NAMESPACE, id, vec![json!({ "error": why.0 })]);
                }
            };
            let call = match parsed {
                Ok(call) => call,
                Err(_) => {
                    answer_now(INVALID);
                    return true;
                }
            };
            if !self.call_bucket.take(self.ctx.call_rate, Instant::now()) {
                self.ctx
                    .metrics
                    .rate_limited(crate::chat::metrics::Limited::Call);
                answer_now(RATE_LIMITED);
                return true;
            }
            let shard = self.ctx.users.shard(&from).clone();
            self.begin(io);
            shard.do_send(CallRequest { from, caller, call });
            true
        }
    }

    /// A relay refused by a view of the sender's connections older than this is checked
    /// once more against the database (a connection that just became ACTIVE).
    const RECHECK_AFTER: Duration = Duration::from_secs(1);

    /// How long a call's relays rely on its `call:initiate`'s check at most.
    const CALL_LIFETIME: Duration = Duration::from_secs(4 * 3600);

    /// Most calls one user is in at once (the oldest is forgotten past it).
    const MAX_CALLS: usize = 8;

    /// Notes on `user`'s entry that they are in a call with `peer` (from now), or that the
    /// call ended (`open == false`).
    fn note_call(shard: &mut UserShard, user: &Arc<str>, peer: &str, open: bool) {
        let Some(entry) = shard.users.get_mut(user) else {
            return;
        };
        entry
            .calls
            .retain(|(p, since)| **p != *peer && since.elapsed() < CALL_LIFETIME);
        if open {
            if entry.calls.len() >= MAX_CALLS {
                entry.calls.remove(0);
            }
            entry.calls.push((Arc::from(peer), Instant::now()));
        }
    }

    /// Whether `user` is in a call with `peer`.
    fn in_call(shard: &UserShard, user: &str, peer: &str) -> bool {
        shard.users.get(user).is_some_and(|entry| {
            entry
                .calls
                .iter()
                .any(|(p, since)| **p == *peer && since.elapsed() < CALL_LIFETIME)
        })
    }

    impl Handler<CallRequest> for UserShard {
        type Result = ();

        fn handle(&mut self, msg: CallRequest, ctx: &mut Self::Context) {
            // `call:initiate` reads the connection's status afresh, as `send_message` does
            // (the app changes it through its own API); the relays within a call rely on that
            // read, kept for `presence.peers_ttl`.
            let max_age = if msg.call.is_initiate() {
                Duration::ZERO
            } else {
                Duration::from_millis(self.deps.presence.peers_ttl)
            };
            self.authorize_call(msg, max_age, ctx);
        }
    }

    impl UserShard {
        /// Relays `msg` if its two users share an ACTIVE connection, as read within
        /// `max_age`.
        fn authorize_call(&mut self, msg: CallRequest, max_age: Duration, ctx: &mut Context<Self>) {
            let from = msg.from.clone();
            self.with_relations_within(
                &from,
                max_age,
                Box::new(move |shard, _user, relations, ctx| {
                    let refused_by_old_view = relations.as_ref().is_some_and(|r| {
                        r.age() >= RECHECK_AFTER
                            && msg.call.other().is_some_and(|other| {
                                !r.active_with(other) && !in_call(shard, &msg.from, other)
                            })
                    });
                    if refused_by_old_view && max_age > Duration::ZERO {
                        return shard.authorize_call(msg, Duration::ZERO, ctx);
                    }
                    shard.relay_call(msg, relations.as_deref(), ctx)
                }),
                ctx,
            );
        }

        fn relay_call(
            &mut self,
            msg: CallRequest,
            relations: Option<&Relations>,
            _ctx: &mut Context<Self>,
        ) {
            let CallRequest { from, caller, call } = msg;
            let Some(relations) = relations else {
                return fail(
                    &caller,
                    if call.is_initiate() {
                        INITIATE_FAILED
                    } else {
                        NOT_CONNECTED
                    },
                );
            };
            // Every call event, between the two users of an ACTIVE connection only; within a
            // call, as its `call:initiate` found them (a call can be ended after the
            // connection was ended mid-call).
            if let Some(other) = call.other() {
                let allowed = relations.active_with(other)
                    || (!call.is_initiate() && in_call(self, &from, other));
                if !allowed || other == &*from {
                    return fail(&caller, NOT_CONNECTED);
                }
            }
            let Some(all) = self.all.clone() else {
                return fail(&caller, INITIATE_FAILED);
            };
            let now = iso_millis(&entity::now_utc_ms());
            let to_frame = |name: &str, body: Value| event(name, &[&body.to_string()]);
            match call {
                Call::Initiate {
                    recipient,
                    call_type,
                    room_name,
                } => {
                    let frame = to_frame(
                        "call:incoming",
                        json!({
                            "callerId": &*from,
                            "callerName": relations.name.clone().unwrap_or_else(|| "User".into()),
                            "callerImage": relations.image,
                            "callType": call_type,
                            "roomName": room_name,
                            "connectionId": room_name,
                            "timestamp": now,
                        }),
                    );
                    note_call(self, &from, &recipient, true);
                    let to: Arc<str> = recipient.into();
                    all.shard(&to).do_send(Ring {
                        to,
                        from: from.clone(),
                        frame,
                        caller,
                    });
                }
                Call::Answer {
                    caller: callee_of,
                    connection_id,
                } => {
                    all.to_user(
                        &callee_of.into(),
                        to_frame(
                            "call:accepted",
                            json!({"participantId": &*from, "connectionId": connection_id, "timestamp": now}),
                        ),
                    );
                    caller.done(None, OK);
                }
                Call::Reject {
                    caller: ringing,
                    connection_id,
                } => {
                    note_call(self, &from, &ringing, false);
                    all.to_user(
                        &ringing.as_str().into(),
                        to_frame(
                            "call:rejected",
                            json!({"participantId": &*from, "connectionId": connection_id, "timestamp": now}),
                        ),
                    );
                    let back = to_frame(
                        "call:rejected",
                        json!({"participantId": ringing, "connectionId": connection_id, "timestamp": now}),
                    );
                    caller.done(Some(back), OK);
                }
                Call::End {
                    participant,
                    connection_id,
                } => {
                    let mut back = json!({"connectionId": connection_id, "timestamp": now});
                    if let Some(participant) = participant {
                        note_call(self, &from, &participant, false);
                        all.to_user(
                            &participant.as_str().into(),
                            to_frame(
                                "call:ended",
                                json!({"participantId": &*from, "connectionId": connection_id, "timestamp": now}),
                            ),
                        );
                        back["participantId"] = json!(participant);
                    }
                    caller.done(Some(to_frame("call:ended", back)), OK);
                }
                Call::IceCandidate {
                    to,
                    connection_id,
                    candidate,
                } => {
                    all.to_user(
                        &to.into(),
                        to_frame(
                            "call:ice-candidate",
                            json!({"from": &*from, "connectionId": connection_id, "candidate": candidate}),
                        ),
                    );
                    caller.done(None, OK);
                }
            }
        }
    }

    impl Handler<Ring> for UserShard {
        type Result = ();

        fn handle(&mut self, msg: Ring, ctx: &mut Self::Context) {
            // The recipient's relays in this call rely on the caller's check too.
            note_call(self, &msg.to, &msg.from, true);
            let here = self.deliver_here(&msg.to, &msg.frame);
            let Some(remote) = self.all.as_ref().and_then(|all| all.remote()).cloned() else {
                return if here == 0 {
                    fail(&msg.caller, USER_OFFLINE)
                } else {
                    msg.caller.done(None, OK)
                };
            };
            // In a cluster: ring the sockets on the other nodes too; offline only when no
            // node has a socket of the recipient.
            remote.to_user(&msg.to, &msg.frame, None);
            if here > 0 {
                return msg.caller.done(None, OK);
            }
            let online = remote.online_anywhere(&msg.to);
            ctx.spawn(online.into_actor(self).map(move |online, _shard, _ctx| {
                if online {
                    msg.caller.done(None, OK)
                } else {
                    fail(&msg.caller, USER_OFFLINE)
                }
            }));
        }
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
