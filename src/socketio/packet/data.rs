//! The Socket.IO packet: [`Packet`] (a namespace and its [`PacketData`]), the limits and
//! names the protocol fixes, and the placeholder that stands for a binary attachment.

use bytes::Bytes;
use serde_json::{Map, Value};

/// The most attachments a binary packet may announce (as socket.io-parser's
/// default `maxAttachments`).
pub const MAX_ATTACHMENTS: usize = 10;

/// Event names that clients may not emit: decoding an event with one of these
/// names fails with [`DecodeError::ReservedEventName`](super::DecodeError::ReservedEventName).
pub const RESERVED_EVENTS: [&str; 7] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
    "error",
];

/// The default (main) namespace.
pub const DEFAULT_NSP: &str = "/";

/// A Socket.IO packet: the namespace it is addressed to, and its data.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// The namespace, `"/"` by default. It must not contain `,`, which ends a
    /// namespace on the wire.
    pub nsp: String,
    /// The packet type and its payload.
    pub data: PacketData,
}

/// The type of a Socket.IO packet, and its payload.
#[derive(Debug, Clone, PartialEq)]
pub enum PacketData {
    /// `0`: connection to a namespace. From the client, the optional auth
    /// object; from the server, `{"sid": ...}`.
    Connect(Option<Value>),
    /// `1`: disconnection from a namespace. No payload.
    Disconnect,
    /// `2`: an event; the payload is `["event", ...args]`. With an id, the
    /// sender expects an acknowledgement.
    Event {
        /// The event name.
        event: String,
        /// The event arguments.
        args: Vec<Value>,
        /// The acknowledgement id, if an ack is requested.
        id: Option<u64>,
    },
    /// `3`: acknowledgement of an event; the payload is the array of
    /// arguments.
    Ack {
        /// The acknowledgement arguments.
        args: Vec<Value>,
        /// The id of the acknowledged event.
        id: u64,
    },
    /// `4`: refusal of a connection to a namespace; the payload is an object
    /// such as `{"message":"..."}` (or, as legacy, a string).
    ConnectError(Value),
    /// `5`: an event with binary attachments; `args` holds placeholders that
    /// refer to `attachments` by index.
    BinaryEvent {
        /// The event name.
        event: String,
        /// The event arguments, with placeholders for the attachments.
        args: Vec<Value>,
        /// The acknowledgement id, if an ack is requested.
        id: Option<u64>,
        /// The binary attachments, sent as separate binary messages.
        attachments: Vec<Bytes>,
    },
    /// `6`: an acknowledgement with binary attachments; `args` holds
    /// placeholders that refer to `attachments` by index.
    BinaryAck {
        /// The acknowledgement arguments, with placeholders for the attachments.
        args: Vec<Value>,
        /// The id of the acknowledged event.
        id: u64,
        /// The binary attachments, sent as separate binary messages.
        attachments: Vec<Bytes>,
    },
}

/// The placeholder object `{"_placeholder":true,"num":num}` that stands for
/// attachment number `num` in the payload of a binary packet.
pub fn placeholder(num: usize) -> Value {
    let mut map = Map::new();
    map.insert("_placeholder".to_owned(), Value::Bool(true));
    map.insert("num".to_owned(), Value::from(num));
    Value::Object(map)
}

impl Packet {
    /// Creates a packet for namespace `nsp`.
    pub fn new(nsp: impl Into<String>, data: PacketData) -> Self {
        Packet {
            nsp: nsp.into(),
            data,
        }
    }
}

impl PacketData {
    /// The type digit of this packet on the wire.
    pub(super) fn type_char(&self) -> char {
        match self {
            PacketData::Connect(_) => '0',
            PacketData::Disconnect => '1',
            PacketData::Event { .. } => '2',
            PacketData::Ack { .. } => '3',
            PacketData::ConnectError(_) => '4',
            PacketData::BinaryEvent { .. } => '5',
            PacketData::BinaryAck { .. } => '6',
        }
    }

    /// Stores the attachments of a binary packet (no-op for other types).
    pub(super) fn set_attachments(&mut self, received: Vec<Bytes>) {
        match self {
            PacketData::BinaryEvent { attachments, .. }
            | PacketData::BinaryAck { attachments, .. } => *attachments = received,
            _ => {}
        }
    }
}
