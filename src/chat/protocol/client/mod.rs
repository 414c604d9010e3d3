//! [`ClientEvent`]: the events the app's client emits, one variant each with its checked
//! arguments. [`ClientEvent::parse`] is the one place a name picks its parser; an unknown
//! name is no event of the chat (ignored), bad arguments are an [`Invalid`] the socket answers.
//! Each event's arguments have a file of their own; [`args`] has the checks they share.
//!
//! Pure code: no I/O, no actors, nothing of the server side (the fuzz targets build this
//! folder on its own).

pub mod args;
pub mod call;
pub mod clear_conversation;
pub mod delete_messages;
pub mod fetch_messages;
pub mod join_chat;
pub mod mark_read;
pub mod send_message;

use serde_json::Value;

use args::ArgError;
use call::Call;
use clear_conversation::ClearConversation;
use delete_messages::DeleteMessages;
use fetch_messages::FetchMessages;
use join_chat::JoinChat;
use mark_read::MarkRead;
use send_message::SendMessage;

/// The chat's events, by name (the metrics count these by name, any other as `other`).
pub(crate) const NAMES: [&str; 12] = [
    FETCH_MESSAGES,
    JOIN_CHAT,
    SEND_MESSAGE,
    MARK_MESSAGE_READ,
    HEARTBEAT,
    DELETE_MESSAGES,
    CLEAR_CONVERSATION,
    call::INITIATE,
    call::ANSWER,
    call::REJECT,
    call::END,
    call::ICE_CANDIDATE,
];

const JOIN_CHAT: &str = "join_chat";
const SEND_MESSAGE: &str = "send_message";
const MARK_MESSAGE_READ: &str = "mark_message_read";
const FETCH_MESSAGES: &str = "fetch_messages";
const DELETE_MESSAGES: &str = "delete_messages";
const CLEAR_CONVERSATION: &str = "clear_conversation";
const HEARTBEAT: &str = "heartbeat";

/// An event from a client, its arguments checked.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientEvent {
    /// `join_chat(connectionId)`.
    JoinChat(JoinChat),
    /// `send_message({connectionId, content, tempId, media…})`.
    SendMessage(SendMessage),
    /// `mark_message_read({messageId, connectionId})`.
    MarkMessageRead(MarkRead),
    /// `fetch_messages({connectionId, before?, limit?})`.
    FetchMessages(FetchMessages),
    /// `delete_messages({connectionId, messageIds})`.
    DeleteMessages(DeleteMessages),
    /// `clear_conversation({connectionId})`.
    ClearConversation(ClearConversation),
    /// `heartbeat()`.
    Heartbeat,
    /// A `call:*` event.
    Call(Call),
}

/// The limits some checks use (from the chat's settings).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `chat.max_content_chars`.
    pub max_content_chars: usize,
    /// `chat.max_notice_ids`.
    pub max_notice_ids: usize,
}

/// Arguments that did not pass their event's checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// What the client is told.
    pub error: ArgError,
    /// A call event: answered `call:failed` (`INVALID_PAYLOAD`), not `error`.
    pub call: bool,
    /// A `send_message`: counted as a refused message.
    pub message: bool,
}

impl ClientEvent {
    /// The event `name` with `args`; `None` if `name` is no event of the chat.
    pub fn parse(name: &str, args: &[Value], limits: &Limits) -> Option<Result<Self, Invalid>> {
        let plain = |r: Result<ClientEvent, ArgError>| {
            r.map_err(|error| Invalid {
                error,
                call: false,
                message: name == SEND_MESSAGE,
            })
        };
        Some(match name {
            JOIN_CHAT => plain(join_chat::parse(args).map(Self::JoinChat)),
            SEND_MESSAGE => {
                plain(send_message::parse(args, limits.max_content_chars).map(Self::SendMessage))
            }
            MARK_MESSAGE_READ => plain(mark_read::parse(args).map(Self::MarkMessageRead)),
            FETCH_MESSAGES => plain(fetch_messages::parse(args).map(Self::FetchMessages)),
            DELETE_MESSAGES => {
                plain(delete_messages::parse(args, limits.max_notice_ids).map(Self::DeleteMessages))
            }
            CLEAR_CONVERSATION => {
                plain(clear_conversation::parse(args).map(Self::ClearConversation))
            }
            HEARTBEAT => Ok(Self::Heartbeat),
            other => call::parse(other, args)?
                .map(Self::Call)
                .map_err(|error| Invalid {
                    error,
                    call: true,
                    message: false,
                }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: Limits = Limits {
        max_content_chars: 10,
        max_notice_ids: 2,
    };

    #[test]
    fn names_pick_their_parser() {
        let parsed = |name, args: Value| ClientEvent::parse(name, &[args], &LIMITS);
        assert!(matches!(
            parsed("join_chat", json!("c1")),
            Some(Ok(ClientEvent::JoinChat(_)))
        ));
        assert!(matches!(
            parsed("heartbeat", json!(null)),
            Some(Ok(ClientEvent::Heartbeat))
        ));
        assert!(matches!(
            parsed("call:end", json!({"connectionId": ""})),
            Some(Ok(ClientEvent::Call(_)))
        ));
        assert_eq!(parsed("whatever", json!({})), None);
        // The limits apply.
        let long = json!({"connectionId": "c", "content": "x".repeat(11), "tempId": "t"});
        assert!(matches!(
            parsed("send_message", long),
            Some(Err(Invalid { call: false, .. }))
        ));
        // A call event's bad arguments are answered as a call's.
        assert!(matches!(
            parsed("call:answer", json!("nope")),
            Some(Err(Invalid { call: true, .. }))
        ));
        for name in NAMES {
            assert!(ClientEvent::parse(name, &[], &LIMITS).is_some(), "{name}");
        }
    }
}
