//! [`ServerEvent`]: everything the chat sends its clients, each event's name and payload
//! spelled here and nowhere else, encoded once into a [`Frame`] for all its recipients; the
//! acknowledgements' bodies ([`ack`]); and a stream event's recovery offset, appended to its
//! frame as the last argument ([`with_offset`]).
//!
//! Payloads are the Node server's, key for key (the app's hook reads them).

use bytestring::ByteString;
use serde_json::{json, Value};

use super::client::call::Failure;
use crate::socketio::packet::{ack_frame, event_frame};

/// The only namespace the chat serves.
pub const CHAT_NAMESPACE: &str = "/";

/// A complete Engine.IO frame (`42[…]`, `43…[…]`).
pub type Frame = ByteString;

const RECEIVE_MESSAGE: &str = "receive_message";
const MESSAGE_SENT: &str = "message_sent";
const MESSAGE_READ: &str = "message_read";
const MESSAGES_DELETED: &str = "messages_deleted";
const CONVERSATION_CLEARED: &str = "conversation_cleared";
const USER_ONLINE_STATUS: &str = "user_online_status";
const USER_OFFLINE_STATUS: &str = "user_offline_status";
const USER_ONLINE: &str = "user_online";
const USER_OFFLINE: &str = "user_offline";
const CALL_INCOMING: &str = "call:incoming";
const CALL_ACCEPTED: &str = "call:accepted";
const CALL_REJECTED: &str = "call:rejected";
const CALL_ENDED: &str = "call:ended";
const CALL_ICE_CANDIDATE: &str = "call:ice-candidate";
const CALL_FAILED: &str = "call:failed";
const ERROR: &str = "error";
/// The event that tells a client it missed events it will not get (it should refetch): its
/// stream could not be caught up (its last argument, the offset `"-"`, makes its next
/// reconnect a fresh connection, `socket.recovered` false), or it came back having missed
/// more than a replay gives (the last argument is the offset of its new stream).
pub(crate) const RESYNC: &str = "courier:resync";
/// The event that refreshes a client's offset (its stamp) when it got no stream event for a
/// while, and before a graceful shutdown closes it: socket.io-client keeps any event's last
/// string argument as its offset, and the app has no listener for it.
pub(crate) const OFFSET: &str = "courier:offset";

/// An event for a client.
#[derive(Clone, Copy, Debug)]
pub enum ServerEvent<'a> {
    /// `receive_message`: the saved message's JSON ([`super::message_json::MessageJson`]).
    ReceiveMessage { saved: &'a str },
    /// `message_sent`: a [`sent`] body.
    MessageSent { body: &'a str },
    /// `message_read`: a [`read_notice`] body.
    MessageRead { notice: &'a str },
    /// `messages_deleted`.
    MessagesDeleted {
        connection_id: &'a str,
        message_ids: &'a [String],
        deleted_by: &'a str,
    },
    /// `conversation_cleared`.
    ConversationCleared {
        connection_id: &'a str,
        cleared_by: &'a str,
    },
    /// `user_online_status` / `user_offline_status`, `at` an ISO time.
    Presence {
        user: &'a str,
        online: bool,
        at: &'a str,
    },
    /// `user_online` / `user_offline` (`presence.legacy_events`).
    LegacyPresence { user: &'a str, online: bool },
    /// `call:incoming`.
    CallIncoming {
        caller_id: &'a str,
        caller_name: &'a str,
        caller_image: Option<&'a str>,
        call_type: &'a str,
        room_name: &'a str,
        timestamp: &'a str,
    },
    /// `call:accepted`.
    CallAccepted(CallParty<'a>),
    /// `call:rejected`.
    CallRejected(CallParty<'a>),
    /// `call:ended` (`participant` absent when there was none).
    CallEnded {
        participant: Option<&'a str>,
        connection_id: &'a str,
        timestamp: &'a str,
    },
    /// `call:ice-candidate`.
    CallIceCandidate {
        from: &'a str,
        connection_id: &'a str,
        candidate: &'a Value,
    },
    /// `call:failed`.
    CallFailed {
        reason: &'a str,
        code: Option<&'a str>,
    },
    /// `error` `{message}`: a request was refused.
    Error { message: &'a str },
    /// `courier:resync` `{reason}` with an offset (`"-"`: none).
    Resync { reason: &'a str, offset: &'a str },
    /// `courier:offset` with the socket's offset.
    Offset { offset: &'a str },
}

impl From<Failure> for ServerEvent<'static> {
    /// `call:failed` for `failure`.
    fn from(failure: Failure) -> Self {
        ServerEvent::CallFailed {
            reason: failure.reason,
            code: failure.code,
        }
    }
}

/// A call event's other party, conversation and time.
#[derive(Clone, Copy, Debug)]
pub struct CallParty<'a> {
    pub participant: &'a str,
    pub connection_id: &'a str,
    pub timestamp: &'a str,
}

impl CallParty<'_> {
    fn body(&self) -> String {
        json!({
            "participantId": self.participant,
            "connectionId": self.connection_id,
            "timestamp": self.timestamp,
        })
        .to_string()
    }
}

impl ServerEvent<'_> {
    /// The event's name.
    pub fn name(&self) -> &'static str {
        match self {
            ServerEvent::ReceiveMessage { .. } => RECEIVE_MESSAGE,
            ServerEvent::MessageSent { .. } => MESSAGE_SENT,
            ServerEvent::MessageRead { .. } => MESSAGE_READ,
            ServerEvent::MessagesDeleted { .. } => MESSAGES_DELETED,
            ServerEvent::ConversationCleared { .. } => CONVERSATION_CLEARED,
            ServerEvent::Presence { online: true, .. } => USER_ONLINE_STATUS,
            ServerEvent::Presence { online: false, .. } => USER_OFFLINE_STATUS,
            ServerEvent::LegacyPresence { online: true, .. } => USER_ONLINE,
            ServerEvent::LegacyPresence { online: false, .. } => USER_OFFLINE,
            ServerEvent::CallIncoming { .. } => CALL_INCOMING,
            ServerEvent::CallAccepted(_) => CALL_ACCEPTED,
            ServerEvent::CallRejected(_) => CALL_REJECTED,
            ServerEvent::CallEnded { .. } => CALL_ENDED,
            ServerEvent::CallIceCandidate { .. } => CALL_ICE_CANDIDATE,
            ServerEvent::CallFailed { .. } => CALL_FAILED,
            ServerEvent::Error { .. } => ERROR,
            ServerEvent::Resync { .. } => RESYNC,
            ServerEvent::Offset { .. } => OFFSET,
        }
    }

    /// The event's arguments, as JSON texts.
    fn args(&self) -> Vec<String> {
        let one = |body: &str| vec![body.to_string()];
        match *self {
            ServerEvent::ReceiveMessage { saved } => one(saved),
            ServerEvent::MessageSent { body } => one(body),
            ServerEvent::MessageRead { notice } => one(notice),
            ServerEvent::MessagesDeleted {
                connection_id,
                message_ids,
                deleted_by,
            } => one(&json!({
                "connectionId": connection_id,
                "messageIds": message_ids,
                "deletedBy": deleted_by,
            })
            .to_string()),
            ServerEvent::ConversationCleared {
                connection_id,
                cleared_by,
            } => {
                one(&json!({ "connectionId": connection_id, "clearedBy": cleared_by }).to_string())
            }
            ServerEvent::Presence { user, online, at } => one(&json!({
                "userId": user,
                "isOnline": online,
                "lastSeenAt": at,
                "timestamp": at,
            })
            .to_string()),
            ServerEvent::LegacyPresence { user, .. } => one(&json!({ "userId": user }).to_string()),
            ServerEvent::CallIncoming {
                caller_id,
                caller_name,
                caller_image,
                call_type,
                room_name,
                timestamp,
            } => one(&json!({
                "callerId": caller_id,
                "callerName": caller_name,
                "callerImage": caller_image,
                "callType": call_type,
                "roomName": room_name,
                "connectionId": room_name,
                "timestamp": timestamp,
            })
            .to_string()),
            ServerEvent::CallAccepted(party) | ServerEvent::CallRejected(party) => {
                one(&party.body())
            }
            ServerEvent::CallEnded {
                participant,
                connection_id,
                timestamp,
            } => {
                let mut body = json!({ "connectionId": connection_id, "timestamp": timestamp });
                if let Some(participant) = participant {
                    body["participantId"] = json!(participant);
                }
                one(&body.to_string())
            }
            ServerEvent::CallIceCandidate {
                from,
                connection_id,
                candidate,
            } => one(
                &json!({ "from": from, "connectionId": connection_id, "candidate": candidate })
                    .to_string(),
            ),
            ServerEvent::CallFailed { reason, code } => one(&match code {
                Some(code) => json!({ "reason": reason, "code": code }),
                None => json!({ "reason": reason }),
            }
            .to_string()),
            ServerEvent::Error { message } => one(&json!({ "message": message }).to_string()),
            ServerEvent::Resync { reason, offset } => vec![
                json!({ "reason": reason }).to_string(),
                Value::from(offset).to_string(),
            ],
            ServerEvent::Offset { offset } => one(&Value::from(offset).to_string()),
        }
    }

    /// The event's frame, encoded once for all its recipients.
    pub fn frame(&self) -> Frame {
        let args = self.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        event_frame(CHAT_NAMESPACE, self.name(), &args).into()
    }
}

/// `message_sent`'s body (also the `send_message` acknowledgement): `{tempId, savedMessage}`
/// with the saved message's JSON.
pub fn sent(temp_id: &str, saved: &str) -> String {
    let temp_id = Value::from(temp_id).to_string();
    format!(r#"{{"tempId":{temp_id},"savedMessage":{saved}}}"#)
}

/// `message_read`'s body (also the `mark_message_read` acknowledgement).
pub(crate) fn read_notice(message_id: &str, connection_id: &str, read_by: &str) -> String {
    json!({
        "messageId": message_id,
        "connectionId": connection_id,
        "readBy": read_by,
    })
    .to_string()
}

/// The acknowledgements' bodies (JSON texts).
pub mod ack {
    use serde_json::json;

    /// A request done: `{ok: true}`.
    pub(crate) const OK: &str = r#"{"ok":true}"#;

    /// `join_chat` done: `{ok: true, connectionId}`.
    pub fn joined(connection_id: &str) -> String {
        json!({ "ok": true, "connectionId": connection_id }).to_string()
    }

    /// A request refused: `{error}`.
    pub fn error(message: &str) -> String {
        json!({ "error": message }).to_string()
    }

    /// A page of history: `{messages, nextCursor}`, each message's JSON already made.
    pub fn page(messages: &[String], next_cursor: Option<&str>) -> String {
        let next = serde_json::Value::from(next_cursor).to_string();
        format!(
            r#"{{"messages":[{}],"nextCursor":{next}}}"#,
            messages.join(",")
        )
    }
}

/// An acknowledgement of request `id` whose argument is the JSON text `body`.
pub(crate) fn ack_of(id: u64, body: &str) -> Frame {
    ack_frame(CHAT_NAMESPACE, id, &[body]).into()
}

/// The frames of a refused request: `error` `{message}` and, if an acknowledgement was asked
/// for, the ack `{error: message}`, so the client never waits out its timeout.
pub(crate) fn error_frames(message: &str, ack: Option<u64>) -> (Frame, Option<Frame>) {
    let event = ServerEvent::Error { message }.frame();
    (event, ack.map(|id| ack_of(id, &ack::error(message))))
}

/// `frame` (a complete `42[…]` event of a conversation's stream) with `offset` as one more,
/// last argument (connection state recovery: socket.io-client keeps it).
pub(crate) fn with_offset(frame: &Frame, offset: &str) -> Frame {
    let text: &str = frame;
    let body = text.strip_suffix(']').unwrap_or(text);
    let mut out = String::with_capacity(body.len() + offset.len() + 4);
    out.push_str(body);
    out.push(',');
    out.push_str(&Value::from(offset).to_string());
    out.push(']');
    out.into()
}

/// The saved message a `receive_message` frame carries (one from another node): its `id`,
/// `connectionId` and `createdAt` (milliseconds since the epoch); `None` for any other frame.
pub(crate) fn received_message(frame: &str) -> Option<(String, String, i64)> {
    let body = frame.strip_prefix("42")?;
    let (name, message): (String, Value) = serde_json::from_str(body).ok()?;
    if name != RECEIVE_MESSAGE {
        return None;
    }
    let id = message.get("id")?.as_str()?;
    let conversation = message.get("connectionId")?.as_str()?;
    let created = message.get("createdAt")?.as_str()?;
    let at = chrono::DateTime::parse_from_rfc3339(created)
        .ok()?
        .timestamp_millis();
    Some((id.to_string(), conversation.to_string(), at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_frames_carry_the_message_in_the_event_and_the_ack() {
        let (event, ack) = error_frames("Invalid payload.", Some(4));
        assert_eq!(&*event, r#"42["error",{"message":"Invalid payload."}]"#);
        assert_eq!(ack.as_deref(), Some(r#"434[{"error":"Invalid payload."}]"#));
        assert_eq!(error_frames("x", None).1, None);
    }

    #[test]
    fn an_offset_is_the_last_argument() {
        let frame = ServerEvent::ReceiveMessage {
            saved: r#"{"id":"m1"}"#,
        }
        .frame();
        assert_eq!(
            &*with_offset(&frame, "b2Zm"),
            r#"42["receive_message",{"id":"m1"},"b2Zm"]"#
        );
    }

    #[test]
    fn payloads_are_the_node_servers() {
        assert_eq!(
            &*ServerEvent::CallEnded {
                participant: None,
                connection_id: "",
                timestamp: "t"
            }
            .frame(),
            r#"42["call:ended",{"connectionId":"","timestamp":"t"}]"#
        );
        assert_eq!(
            &*ServerEvent::Resync {
                reason: "missed events",
                offset: "-"
            }
            .frame(),
            r#"42["courier:resync",{"reason":"missed events"},"-"]"#
        );
        assert_eq!(
            sent("t1", r#"{"id":"m"}"#),
            r#"{"tempId":"t1","savedMessage":{"id":"m"}}"#
        );
        assert_eq!(
            ack::page(&[r#"{"id":"m"}"#.to_string()], None),
            r#"{"messages":[{"id":"m"}],"nextCursor":null}"#
        );
    }

    #[test]
    fn remote_receive_message_frames_are_read_back() {
        let frame = r#"42["receive_message",{"id":"m1","connectionId":"c1","createdAt":"2026-01-18T04:59:38.123Z","content":"x"}]"#;
        assert_eq!(
            received_message(frame),
            Some(("m1".into(), "c1".into(), 1_768_712_378_123))
        );
        assert!(received_message(r#"42["message_read",{"messageId":"m1"}]"#).is_none());
        assert!(received_message(r#"42["receive_message",{"id":"m1"}]"#).is_none());
        assert!(received_message("42[").is_none());
    }
}
