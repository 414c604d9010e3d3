//! Transports: the byte pipes under an Engine.IO session.
//!
//! A session actor never touches a socket. It reads [`Inbound`] items from a bounded channel
//! and writes [`Outbound`] items to another; a transport (WebSocket via actix-ws here) pumps
//! the real connection into and out of those channels. Both channels are bounded: a client
//! that sends faster than its session handles is slowed down (the pump awaits), and a client
//! that stops reading fills its outgoing queue and is disconnected instead of growing memory.
//!
//! Because channels are `Send`, a transport opened on one actix-web worker can feed a session
//! that lives on another.

pub mod websocket;

use bytes::Bytes;
use bytestring::ByteString;
use tokio::sync::mpsc;

/// Something that arrived from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A text message (one Engine.IO packet over WebSocket).
    Text(ByteString),
    /// A binary message (an Engine.IO binary message over WebSocket).
    Binary(Bytes),
    /// The transport ended: closed by the client, or broken (the reason says which).
    Closed(CloseReason),
}

/// Why a transport ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed the connection.
    ClientClosed,
    /// A message above `max_payload`.
    TooLarge,
    /// The transport broke the WebSocket protocol (or the connection failed).
    TransportError(String),
}

/// Something to send to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// A text message.
    Text(ByteString),
    /// A binary message.
    Binary(Bytes),
    /// Close the connection with this WebSocket close code after what is queued.
    Close(u16),
}

/// WebSocket close code: normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// WebSocket close code: protocol error.
pub const CLOSE_PROTOCOL: u16 = 1002;
/// WebSocket close code: message too big.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// WebSocket close code: policy violation (e.g. a client that stopped reading).
pub const CLOSE_POLICY: u16 = 1008;

/// The session's ends of a transport.
#[derive(Debug)]
pub struct SessionLink {
    /// What the client sent.
    pub inbound: mpsc::Receiver<Inbound>,
    /// Where to queue what the client should receive.
    pub outbound: mpsc::Sender<Outbound>,
}

/// The transport's ends.
#[derive(Debug)]
pub struct TransportLink {
    /// Feed what the client sent.
    pub inbound: mpsc::Sender<Inbound>,
    /// Drain what the client should receive.
    pub outbound: mpsc::Receiver<Outbound>,
}

/// How many inbound messages may wait for the session before the transport stops reading.
pub const INBOUND_QUEUE: usize = 64;

/// A connected pair of links; `outbound_capacity` bounds the per-session send queue.
pub fn link(outbound_capacity: usize) -> (SessionLink, TransportLink) {
    let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
    let (out_tx, out_rx) = mpsc::channel(outbound_capacity.max(1));
    (
        SessionLink {
            inbound: in_rx,
            outbound: out_tx,
        },
        TransportLink {
            inbound: in_tx,
            outbound: out_rx,
        },
    )
}
