//! What the chat's actors send to a socket: Engine.IO frames encoded once, whoever they go
//! to, and the answer to each of the socket's own requests.

use std::sync::Arc;

use actix::{Message, Recipient};
use bytestring::ByteString;
use serde_json::json;

use super::recovery::StreamKey;
use crate::socketio::packet::{ack_frame, event_frame};
use crate::socketio::Packet;

/// The only namespace the chat serves.
pub const CHAT_NAMESPACE: &str = "/";

/// A complete Engine.IO frame (`42[…]`, `43…[…]`).
pub type Frame = ByteString;

/// A message for a chat socket.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum ChatPush {
    /// An event for this socket, encoded once for all its recipients.
    Deliver(Frame),
    /// An event of a conversation's stream (`receive_message`, `message_read`): the socket
    /// adds its offset (connection state recovery) as the last argument.
    Stream(Frame, Mark),
    /// One of this socket's requests is done: write its answer (an event and an ack, either
    /// may be absent) and free its slot of the send window. `mark` is set when the event is
    /// of a conversation's stream (`message_sent`).
    Done {
        event: Option<Frame>,
        ack: Option<Frame>,
        mark: Option<Mark>,
    },
    /// The socket joined the conversation (a room, as the socket layer's observer sees it);
    /// sent just before the request's `Done`.
    Joined(Arc<str>),
    /// This node lost (`false`) or got back (`true`) its link to the other nodes (Redis):
    /// a socket with a stream catches up from the database on what it missed meanwhile.
    RemoteLink(bool),
    /// Another node could not deliver some of this user's events (Redis failed its
    /// publishes): a socket with a stream catches up from the database, as after a link
    /// outage, from where it stands now.
    CatchUp,
    /// A packet from another server of the cluster that is not a plain text event (a
    /// binary event: a Node server's Buffers).
    Packet(Arc<Packet>),
    /// An event from another server that asks for the client's acknowledgement (a Node
    /// server's `io.timeout(…).emit(…, callback)`): the acknowledgement goes to `reply`,
    /// if it comes within `timeout`.
    Ask {
        packet: Arc<Packet>,
        reply: AckReply,
        timeout: std::time::Duration,
    },
    /// Another server disconnects this socket (`disconnectSockets`): from the namespace, or
    /// with `close` its whole connection.
    Disconnect { close: bool },
    /// A new connection with this socket's recovery pid took its stream over: the transport
    /// closes (without a DISCONNECT packet, so a client still there reconnects).
    TakenOver,
}

/// Where a client's acknowledgement goes: its arguments (binary ones as placeholders) and
/// attachments.
#[derive(Clone)]
pub struct AckReply(pub Arc<dyn Fn(Vec<serde_json::Value>, Vec<bytes::Bytes>) + Send + Sync>);

impl std::fmt::Debug for AckReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AckReply(..)")
    }
}

/// Where an event stands in its conversation's stream.
#[derive(Debug, Clone)]
pub struct Mark {
    /// The conversation.
    pub conversation: Arc<str>,
    /// Its stamp (milliseconds since the epoch; see `chat::recovery`).
    pub at: i64,
    /// Tells it apart from a replayed event.
    pub key: StreamKey,
}

/// `frame` (a complete `42[…]` event) with `offset` as one more, last argument.
pub fn with_offset(frame: &Frame, offset: &str) -> Frame {
    let text: &str = frame;
    let body = text.strip_suffix(']').unwrap_or(text);
    let mut out = String::with_capacity(body.len() + offset.len() + 4);
    out.push_str(body);
    out.push(',');
    out.push_str(&serde_json::Value::from(offset).to_string());
    out.push(']');
    out.into()
}

/// The event `name` on the chat namespace with arguments that are JSON texts already.
pub fn event(name: &str, json_args: &[&str]) -> Frame {
    event_frame(CHAT_NAMESPACE, name, json_args).into()
}

/// The socket that made a request, and the ack it asked for.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Its Engine.IO session id.
    pub sid: Arc<str>,
    /// Where its answer goes.
    pub push: Recipient<ChatPush>,
    /// The acknowledgement id, if it asked for one.
    pub ack: Option<u64>,
}

impl Caller {
    /// The request is done: `event` (if any) and, if asked for, an ack whose argument is the
    /// JSON text `ack_json`.
    pub fn done(&self, event: Option<Frame>, ack_json: &str) {
        let ack = self
            .ack
            .map(|id| ack_frame(CHAT_NAMESPACE, id, &[ack_json]).into());
        self.push.do_send(ChatPush::Done {
            event,
            ack,
            mark: None,
        });
    }

    /// Like [`Caller::done`], for an event of a conversation's stream.
    pub fn done_marked(&self, event: Frame, mark: Mark, ack_json: &str) {
        let ack = self
            .ack
            .map(|id| ack_frame(CHAT_NAMESPACE, id, &[ack_json]).into());
        self.push.do_send(ChatPush::Done {
            event: Some(event),
            ack,
            mark: Some(mark),
        });
    }

    /// The request failed: an `error` event `{message}` and, if an ack was asked for, an ack
    /// `{error: message}`, so the client never waits out its timeout.
    pub fn fail(&self, message: &str) {
        let (event, ack) = error_frames(message, self.ack);
        self.push.do_send(ChatPush::Done {
            event: Some(event),
            ack,
            mark: None,
        });
    }
}

/// The frames of a failed request: `error` `{message}` and the ack `{error: message}`.
pub fn error_frames(message: &str, ack: Option<u64>) -> (Frame, Option<Frame>) {
    let event = event("error", &[&json!({ "message": message }).to_string()]);
    let ack = ack.map(|id| {
        ack_frame(
            CHAT_NAMESPACE,
            id,
            &[&json!({ "error": message }).to_string()],
        )
        .into()
    });
    (event, ack)
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
        let frame: Frame = event("receive_message", &[r#"{"id":"m1"}"#]);
        assert_eq!(
            &*with_offset(&frame, "b2Zm"),
            r#"42["receive_message",{"id":"m1"},"b2Zm"]"#
        );
    }
}
