//! What the chat's actors send to a socket: Engine.IO frames encoded once, whoever they go
//! to, and the answer to each of the socket's own requests.

use std::sync::Arc;

use actix::{Message, Recipient};

use super::protocol::server::{ack_of, error_frames};
pub use super::protocol::server::{Frame, CHAT_NAMESPACE};
pub use super::recovery::Mark;
use crate::socketio::Packet;

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
        let ack = self.ack.map(|id| ack_of(id, ack_json));
        self.push.do_send(ChatPush::Done {
            event,
            ack,
            mark: None,
        });
    }

    /// Like [`Caller::done`], for an event of a conversation's stream.
    pub(crate) fn done_marked(&self, event: Frame, mark: Mark, ack_json: &str) {
        let ack = self.ack.map(|id| ack_of(id, ack_json));
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

/// An actor that takes every push and drops it: a socket's recipient in unit tests.
#[cfg(test)]
pub(crate) struct Sink;

#[cfg(test)]
impl actix::Actor for Sink {
    type Context = actix::Context<Self>;
}

#[cfg(test)]
impl actix::Handler<ChatPush> for Sink {
    type Result = ();
    fn handle(&mut self, _: ChatPush, _: &mut actix::Context<Self>) {}
}
