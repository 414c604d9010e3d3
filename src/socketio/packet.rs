//! Socket.IO protocol v5 packet codec.
//!
//! A Socket.IO packet travels as the data of an Engine.IO message, in the form
//!
//! ```text
//! <type>[<attachments>-][<nsp>,][<id>][<json>]
//! ```
//!
//! - `type` is one digit, `0` (connect) to `6` (binary ack);
//! - `attachments` (binary packets only) is the number of binary attachments
//!   that follow the header as separate binary messages, then `-`;
//! - `nsp` is present iff the next character is `/`, and runs to the next `,`
//!   (or to the end of the string); it defaults to `/`;
//! - `id` is the acknowledgement id, the ASCII digits right before the JSON;
//! - `json` is the payload.
//!
//! Binary attachments are referred to from the payload by placeholder objects
//! `{"_placeholder":true,"num":N}` (see [`placeholder`]).

use std::fmt;

use bytes::Bytes;
use serde_json::{Map, Value};

/// The most attachments a binary packet may announce (as socket.io-parser's
/// default `maxAttachments`).
pub const MAX_ATTACHMENTS: usize = 10;

/// Event names that clients may not emit: decoding an event with one of these
/// names fails with [`DecodeError::ReservedEventName`].
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

/// Why a Socket.IO packet could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The packet was empty.
    Empty,
    /// The first character is not a packet type digit `0`..=`6`.
    UnknownPacketType(char),
    /// The attachment count of a binary packet is missing, malformed, not
    /// followed by `-`, or not in `1..=MAX_ATTACHMENTS`.
    InvalidAttachmentCount,
    /// The acknowledgement id does not fit in a `u64`.
    InvalidAckId,
    /// An acknowledgement id on a packet type that has none.
    UnexpectedAckId,
    /// An ack packet without an acknowledgement id.
    MissingAckId,
    /// The payload is not valid JSON (or has trailing garbage).
    InvalidJson(String),
    /// A payload is required by this packet type but absent.
    MissingPayload,
    /// A payload on a packet type that takes none (disconnect).
    UnexpectedPayload,
    /// The payload is valid JSON of the wrong shape for this packet type.
    InvalidPayload,
    /// An event payload does not start with a string event name.
    InvalidEventName,
    /// An event uses a reserved name (see [`RESERVED_EVENTS`]).
    ReservedEventName(String),
    /// A placeholder's `num` is not an integer below the attachment count.
    InvalidPlaceholder,
    /// A text packet arrived while the attachments of a binary packet were
    /// still awaited.
    UnexpectedText,
    /// A binary attachment arrived while none was awaited.
    UnexpectedBinary,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => f.write_str("empty Socket.IO packet"),
            DecodeError::UnknownPacketType(c) => {
                write!(f, "unknown Socket.IO packet type {c:?}")
            }
            DecodeError::InvalidAttachmentCount => f.write_str("invalid attachment count"),
            DecodeError::InvalidAckId => f.write_str("invalid ack id"),
            DecodeError::UnexpectedAckId => f.write_str("ack id on a packet type without one"),
            DecodeError::MissingAckId => f.write_str("ack packet without an ack id"),
            DecodeError::InvalidJson(e) => write!(f, "invalid JSON payload: {e}"),
            DecodeError::MissingPayload => f.write_str("missing payload"),
            DecodeError::UnexpectedPayload => f.write_str("unexpected payload"),
            DecodeError::InvalidPayload => f.write_str("invalid payload for packet type"),
            DecodeError::InvalidEventName => f.write_str("event payload without a string name"),
            DecodeError::ReservedEventName(name) => {
                write!(f, "reserved event name {name:?}")
            }
            DecodeError::InvalidPlaceholder => f.write_str("invalid attachment placeholder"),
            DecodeError::UnexpectedText => {
                f.write_str("text packet while awaiting binary attachments")
            }
            DecodeError::UnexpectedBinary => {
                f.write_str("binary attachment while none was awaited")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

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

    /// Encodes the packet: the text header (the data of an Engine.IO
    /// message), and the attachments to send after it as binary messages.
    ///
    /// For binary packets the attachment count written is
    /// `attachments.len()`; the caller is responsible for `args` already
    /// holding the matching placeholders. The namespace is written, followed
    /// by `,`, unless it is `"/"` (or empty).
    pub fn encode(&self) -> (String, Vec<Bytes>) {
        let mut out = String::new();
        out.push(self.data.type_char());
        let attachments = match &self.data {
            PacketData::BinaryEvent { attachments, .. }
            | PacketData::BinaryAck { attachments, .. } => {
                out.push_str(&attachments.len().to_string());
                out.push('-');
                attachments.clone()
            }
            _ => Vec::new(),
        };
        push_nsp(&mut out, &self.nsp);
        match &self.data {
            PacketData::Connect(data) => {
                if let Some(data) = data {
                    out.push_str(&data.to_string());
                }
            }
            PacketData::Disconnect => {}
            PacketData::Event {
                event, args, id, ..
            }
            | PacketData::BinaryEvent {
                event, args, id, ..
            } => {
                if let Some(id) = id {
                    out.push_str(&id.to_string());
                }
                push_array(&mut out, Some(event), args);
            }
            PacketData::Ack { args, id } | PacketData::BinaryAck { args, id, .. } => {
                out.push_str(&id.to_string());
                push_array(&mut out, None, args);
            }
            PacketData::ConnectError(data) => out.push_str(&data.to_string()),
        }
        (out, attachments)
    }
}

impl PacketData {
    /// The type digit of this packet on the wire.
    fn type_char(&self) -> char {
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
    fn set_attachments(&mut self, received: Vec<Bytes>) {
        match self {
            PacketData::BinaryEvent { attachments, .. }
            | PacketData::BinaryAck { attachments, .. } => *attachments = received,
            _ => {}
        }
    }
}

/// Appends the JSON array `[first, ...rest]` (or `[...rest]`) to `out`.
fn push_array(out: &mut String, first: Option<&str>, rest: &[Value]) {
    out.push('[');
    let mut sep = "";
    if let Some(first) = first {
        out.push_str(&Value::from(first).to_string());
        sep = ",";
    }
    for value in rest {
        out.push_str(sep);
        out.push_str(&value.to_string());
        sep = ",";
    }
    out.push(']');
}

/// A text event encoded once, with arguments that are JSON texts already, as a complete
/// Engine.IO message frame: `4` + `2[<nsp>,]["<event>",<arg>,...]`. A fan-out builds the
/// frame once and sends the same bytes to every socket.
pub fn event_frame(nsp: &str, event: &str, json_args: &[&str]) -> String {
    let mut out = String::with_capacity(
        16 + nsp.len() + event.len() + json_args.iter().map(|a| a.len() + 1).sum::<usize>(),
    );
    out.push('4');
    out.push('2');
    push_nsp(&mut out, nsp);
    out.push('[');
    out.push_str(&Value::from(event).to_string());
    for arg in json_args {
        out.push(',');
        out.push_str(arg);
    }
    out.push(']');
    out
}

/// An acknowledgement with arguments that are JSON texts already, as a complete Engine.IO
/// message frame: `4` + `3[<nsp>,]<id>[<arg>,...]`.
pub fn ack_frame(nsp: &str, id: u64, json_args: &[&str]) -> String {
    let mut out = String::with_capacity(
        24 + nsp.len() + json_args.iter().map(|a| a.len() + 1).sum::<usize>(),
    );
    out.push('4');
    out.push('3');
    push_nsp(&mut out, nsp);
    out.push_str(&id.to_string());
    out.push('[');
    for (i, arg) in json_args.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(arg);
    }
    out.push(']');
    out
}

fn push_nsp(out: &mut String, nsp: &str) {
    if !nsp.is_empty() && nsp != DEFAULT_NSP {
        out.push_str(nsp);
        out.push(',');
    }
}

/// The result of feeding one message to a [`Decoder`].
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A complete packet.
    Packet(Packet),
    /// The header of a binary packet was received; its attachments are still
    /// awaited.
    Incomplete,
}

/// A binary packet whose attachments are being received.
#[derive(Debug)]
struct Partial {
    /// The decoded header, with no attachments yet.
    packet: Packet,
    /// How many attachments the header announced.
    expected: usize,
    /// The attachments received so far.
    received: Vec<Bytes>,
}

/// Stateful Socket.IO decoder for one connection, reassembling binary packets
/// from their text header and the binary attachments that follow it.
#[derive(Debug, Default)]
pub struct Decoder {
    /// The binary packet whose attachments are awaited, if any (boxed: rare, and every
    /// connection has a decoder).
    partial: Option<Box<Partial>>,
}

impl Decoder {
    /// Creates a decoder that awaits no attachments.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Decodes a text message (the data of an Engine.IO message).
    ///
    /// Returns [`Decoded::Incomplete`] for the header of a binary packet,
    /// whose attachments must then be fed to [`Decoder::decode_binary`]. Text
    /// while attachments are still awaited is an error, and discards the
    /// partial binary packet.
    ///
    /// # Errors
    ///
    /// Any [`DecodeError`] other than [`DecodeError::UnexpectedBinary`] when
    /// the packet is malformed or invalid for its type.
    pub fn decode_text(&mut self, s: &str) -> Result<Decoded, DecodeError> {
        if self.partial.take().is_some() {
            return Err(DecodeError::UnexpectedText);
        }
        let (packet, expected) = decode_str(s)?;
        if expected == 0 {
            Ok(Decoded::Packet(packet))
        } else {
            self.partial = Some(Box::new(Partial {
                packet,
                expected,
                received: Vec::with_capacity(expected),
            }));
            Ok(Decoded::Incomplete)
        }
    }

    /// Decodes a binary message: the next attachment of the pending binary
    /// packet. Returns the packet once its last attachment has arrived. Binary
    /// data while no attachment is awaited is an error.
    ///
    /// # Errors
    ///
    /// [`DecodeError::UnexpectedBinary`] when no attachment is awaited.
    pub fn decode_binary(&mut self, b: Bytes) -> Result<Decoded, DecodeError> {
        let mut partial = self.partial.take().ok_or(DecodeError::UnexpectedBinary)?;
        partial.received.push(b);
        if partial.received.len() >= partial.expected {
            let mut packet = partial.packet;
            packet.data.set_attachments(partial.received);
            Ok(Decoded::Packet(packet))
        } else {
            self.partial = Some(partial);
            Ok(Decoded::Incomplete)
        }
    }

    /// Whether the attachments of a binary packet are still awaited.
    pub fn is_waiting(&self) -> bool {
        self.partial.is_some()
    }
}

/// Splits `s` after its leading ASCII digits: `(digits, rest)`.
fn split_digits(s: &str) -> (&str, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    // ASCII digits are one byte each, so `n` is a char boundary.
    s.split_at_checked(n).unwrap_or((s, ""))
}

/// Parses a JSON payload, refusing trailing garbage.
fn parse_json(raw: &str) -> Result<Value, DecodeError> {
    serde_json::from_str(raw).map_err(|e| DecodeError::InvalidJson(e.to_string()))
}

/// Parses the payload required by an event or ack packet.
fn required_json(raw: &str) -> Result<Value, DecodeError> {
    if raw.is_empty() {
        Err(DecodeError::MissingPayload)
    } else {
        parse_json(raw)
    }
}

/// Splits an event payload `["event", ...args]` into its name and arguments.
fn split_event(payload: Value) -> Result<(String, Vec<Value>), DecodeError> {
    let Value::Array(items) = payload else {
        return Err(DecodeError::InvalidPayload);
    };
    let mut items = items.into_iter();
    match items.next() {
        Some(Value::String(event)) => {
            if RESERVED_EVENTS.contains(&event.as_str()) {
                Err(DecodeError::ReservedEventName(event))
            } else {
                Ok((event, items.collect()))
            }
        }
        _ => Err(DecodeError::InvalidEventName),
    }
}

/// Returns the elements of an ack payload, which must be an array.
fn ack_args(payload: Value) -> Result<Vec<Value>, DecodeError> {
    match payload {
        Value::Array(args) => Ok(args),
        _ => Err(DecodeError::InvalidPayload),
    }
}

/// Checks that every placeholder object anywhere in `value` has an integer
/// `num` below `count`.
fn check_placeholders(value: &Value, count: usize) -> Result<(), DecodeError> {
    match value {
        Value::Object(map) => {
            if map.get("_placeholder") == Some(&Value::Bool(true)) {
                match map.get("num").and_then(Value::as_u64) {
                    Some(num) if num < count as u64 => Ok(()),
                    _ => Err(DecodeError::InvalidPlaceholder),
                }
            } else {
                map.values().try_for_each(|v| check_placeholders(v, count))
            }
        }
        Value::Array(items) => items.iter().try_for_each(|v| check_placeholders(v, count)),
        _ => Ok(()),
    }
}

/// Decodes one text packet; returns it with the number of attachments still
/// to receive (0 for non-binary packets).
fn decode_str(s: &str) -> Result<(Packet, usize), DecodeError> {
    let mut chars = s.chars();
    let ty = chars.next().ok_or(DecodeError::Empty)?;
    if !('0'..='6').contains(&ty) {
        return Err(DecodeError::UnknownPacketType(ty));
    }
    let mut rest = chars.as_str();

    // Attachment count of binary packets: digits, then '-'.
    let mut attachments = 0;
    if ty == '5' || ty == '6' {
        let (digits, after) = split_digits(rest);
        let after = after
            .strip_prefix('-')
            .ok_or(DecodeError::InvalidAttachmentCount)?;
        attachments = digits
            .parse::<usize>()
            .map_err(|_| DecodeError::InvalidAttachmentCount)?;
        if !(1..=MAX_ATTACHMENTS).contains(&attachments) {
            return Err(DecodeError::InvalidAttachmentCount);
        }
        rest = after;
    }

    // Namespace: from '/' up to ',' or the end.
    let mut nsp = DEFAULT_NSP;
    if rest.starts_with('/') {
        (nsp, rest) = rest.split_once(',').unwrap_or((rest, ""));
    }
    let nsp = nsp.to_owned();

    // Ack id: the digits right before the payload.
    let (digits, raw) = split_digits(rest);
    let id = if digits.is_empty() {
        None
    } else {
        Some(
            digits
                .parse::<u64>()
                .map_err(|_| DecodeError::InvalidAckId)?,
        )
    };
    let no_id = || match id {
        Some(_) => Err(DecodeError::UnexpectedAckId),
        None => Ok(()),
    };
    let need_id = || id.ok_or(DecodeError::MissingAckId);

    let data = match ty {
        '0' => {
            no_id()?;
            if raw.is_empty() {
                PacketData::Connect(None)
            } else {
                match parse_json(raw)? {
                    obj @ Value::Object(_) => PacketData::Connect(Some(obj)),
                    _ => return Err(DecodeError::InvalidPayload),
                }
            }
        }
        '1' => {
            no_id()?;
            if !raw.is_empty() {
                return Err(DecodeError::UnexpectedPayload);
            }
            PacketData::Disconnect
        }
        '2' => {
            let (event, args) = split_event(required_json(raw)?)?;
            PacketData::Event { event, args, id }
        }
        '3' => {
            let id = need_id()?;
            let args = ack_args(required_json(raw)?)?;
            PacketData::Ack { args, id }
        }
        '4' => {
            no_id()?;
            match required_json(raw)? {
                v @ (Value::Object(_) | Value::String(_)) => PacketData::ConnectError(v),
                _ => return Err(DecodeError::InvalidPayload),
            }
        }
        '5' => {
            let payload = required_json(raw)?;
            check_placeholders(&payload, attachments)?;
            let (event, args) = split_event(payload)?;
            PacketData::BinaryEvent {
                event,
                args,
                id,
                attachments: Vec::new(),
            }
        }
        _ => {
            // '6', the only type digit left.
            let id = need_id()?;
            let payload = required_json(raw)?;
            check_placeholders(&payload, attachments)?;
            PacketData::BinaryAck {
                args: ack_args(payload)?,
                id,
                attachments: Vec::new(),
            }
        }
    };
    Ok((Packet { nsp, data }, attachments))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engineio::packet as engineio;

    #[test]
    fn frames_of_pre_encoded_arguments() {
        assert_eq!(
            event_frame("/", "message_sent", &[r#"{"a":1}"#, "2"]),
            r#"42["message_sent",{"a":1},2]"#
        );
        assert_eq!(event_frame("/admin", "x\"y", &[]), r#"42/admin,["x\"y"]"#);
        assert_eq!(
            ack_frame("/", 7, &[r#"{"ok":true}"#]),
            r#"437[{"ok":true}]"#
        );
        assert_eq!(
            ack_frame("/custom", 12, &["1", "[]"]),
            r#"43/custom,12[1,[]]"#
        );
        assert_eq!(ack_frame("/", 0, &[]), "430[]");
        // The same as encoding the packet and framing it for Engine.IO.
        let packet = Packet {
            nsp: "/".into(),
            data: PacketData::Event {
                event: "e".into(),
                args: vec![serde_json::json!({"k": "v"})],
                id: None,
            },
        };
        assert_eq!(
            event_frame("/", "e", &[r#"{"k":"v"}"#]),
            crate::engineio::packet::message_frame(&packet.encode().0)
        );
    }
    use serde_json::json;

    /// The full wire string (Engine.IO message framing included) of `packet`.
    fn wire(packet: &Packet) -> (String, Vec<Bytes>) {
        let (text, attachments) = packet.encode();
        (engineio::Packet::Message(text).encode(), attachments)
    }

    /// Decodes a full wire string (Engine.IO message framing included).
    fn from_wire(decoder: &mut Decoder, s: &str) -> Result<Decoded, DecodeError> {
        match engineio::Packet::decode_text(s) {
            Ok(engineio::Packet::Message(m)) => decoder.decode_text(&m),
            other => panic!("not an Engine.IO message: {other:?}"),
        }
    }

    /// Decodes a complete (non-binary) packet from a full wire string.
    fn decode_wire(s: &str) -> Result<Packet, DecodeError> {
        match from_wire(&mut Decoder::new(), s)? {
            Decoded::Packet(p) => Ok(p),
            Decoded::Incomplete => panic!("unexpectedly incomplete: {s}"),
        }
    }

    /// Asserts `packet` encodes to the wire string `s` and back.
    fn round_trip(packet: Packet, s: &str) {
        let (text, attachments) = wire(&packet);
        assert_eq!(text, s);
        assert!(attachments.is_empty());
        assert_eq!(decode_wire(s), Ok(packet));
    }

    fn event(nsp: &str, event: &str, args: Vec<Value>, id: Option<u64>) -> Packet {
        Packet::new(
            nsp,
            PacketData::Event {
                event: event.to_owned(),
                args,
                id,
            },
        )
    }

    #[test]
    fn socketio_level_connect() {
        let p = Packet::new("/", PacketData::Connect(None));
        assert_eq!(p.encode(), ("0".to_owned(), vec![]));
        assert_eq!(Decoder::new().decode_text("0"), Ok(Decoded::Packet(p)));
    }

    #[test]
    fn connect() {
        round_trip(Packet::new("/", PacketData::Connect(None)), "40");
        round_trip(
            Packet::new("/", PacketData::Connect(Some(json!({"token": "abc"})))),
            r#"40{"token":"abc"}"#,
        );
        round_trip(
            Packet::new(
                "/custom",
                PacketData::Connect(Some(json!({"token": "abc"}))),
            ),
            r#"40/custom,{"token":"abc"}"#,
        );
        // Without the comma on decode; always with it on encode.
        let custom = Packet::new("/custom", PacketData::Connect(None));
        assert_eq!(decode_wire("40/custom"), Ok(custom.clone()));
        round_trip(custom, "40/custom,");
        // Server answer.
        round_trip(
            Packet::new("/", PacketData::Connect(Some(json!({"sid": "abc"})))),
            r#"40{"sid":"abc"}"#,
        );
    }

    #[test]
    fn disconnect() {
        round_trip(Packet::new("/", PacketData::Disconnect), "41");
        round_trip(Packet::new("/custom", PacketData::Disconnect), "41/custom,");
        assert_eq!(
            decode_wire("41/custom"),
            Ok(Packet::new("/custom", PacketData::Disconnect))
        );
    }

    #[test]
    fn events() {
        round_trip(event("/", "ev", vec![json!(1)], None), r#"42["ev",1]"#);
        round_trip(
            event("/", "ev", vec![json!(1)], Some(123)),
            r#"42123["ev",1]"#,
        );
        round_trip(event("/chat", "ev", vec![], Some(7)), r#"42/chat,7["ev"]"#);
        round_trip(
            event("/", "ev", vec![json!({"a": [1, "x"]}), json!(null)], None),
            r#"42["ev",{"a":[1,"x"]},null]"#,
        );
        round_trip(event("/", "quo\"te", vec![], Some(0)), r#"420["quo\"te"]"#);
        round_trip(
            event("/", "ev", vec![], Some(u64::MAX)),
            r#"4218446744073709551615["ev"]"#,
        );
        // Whitespace around the JSON is accepted, as by JSON.parse.
        assert_eq!(
            decode_wire(r#"42 ["ev"] "#),
            Ok(event("/", "ev", vec![], None))
        );
    }

    #[test]
    fn floats_round_trip_exactly() {
        // Found by the socketio_decoder fuzz target: serde_json without its `float_roundtrip`
        // feature parses this (the shortest form of a double) as the next double, so an
        // argument echoed back to a client came back changed.
        let s = r#"42["ev",-6.538675300763526e-245]"#;
        round_trip(
            event("/", "ev", vec![json!(-6.538675300763526e-245)], None),
            s,
        );
    }

    #[test]
    fn acks() {
        round_trip(
            Packet::new(
                "/",
                PacketData::Ack {
                    args: vec![json!("ok")],
                    id: 456,
                },
            ),
            r#"43456["ok"]"#,
        );
        round_trip(
            Packet::new(
                "/chat",
                PacketData::Ack {
                    args: vec![],
                    id: 1,
                },
            ),
            "43/chat,1[]",
        );
    }

    #[test]
    fn connect_errors() {
        round_trip(
            Packet::new(
                "/",
                PacketData::ConnectError(json!({"message": "Authentication error: No token"})),
            ),
            r#"44{"message":"Authentication error: No token"}"#,
        );
        round_trip(
            Packet::new(
                "/random",
                PacketData::ConnectError(json!({"message": "Invalid namespace"})),
            ),
            r#"44/random,{"message":"Invalid namespace"}"#,
        );
        round_trip(
            Packet::new("/", PacketData::ConnectError(json!("legacy"))),
            r#"44"legacy""#,
        );
    }

    #[test]
    fn binary_event() {
        let att = Bytes::from_static(&[1, 2, 3]);
        let packet = Packet::new(
            "/",
            PacketData::BinaryEvent {
                event: "ev".to_owned(),
                args: vec![placeholder(0)],
                id: None,
                attachments: vec![att.clone()],
            },
        );
        let s = r#"451-["ev",{"_placeholder":true,"num":0}]"#;
        assert_eq!(wire(&packet), (s.to_owned(), vec![att.clone()]));

        let mut decoder = Decoder::new();
        assert_eq!(from_wire(&mut decoder, s), Ok(Decoded::Incomplete));
        assert!(decoder.is_waiting());
        assert_eq!(decoder.decode_binary(att), Ok(Decoded::Packet(packet)));
        assert!(!decoder.is_waiting());
    }

    #[test]
    fn binary_ack() {
        let att = Bytes::from_static(b"\xff\x00");
        let packet = Packet::new(
            "/custom",
            PacketData::BinaryAck {
                args: vec![placeholder(0)],
                id: 12,
                attachments: vec![att.clone()],
            },
        );
        let s = r#"461-/custom,12[{"_placeholder":true,"num":0}]"#;
        assert_eq!(wire(&packet), (s.to_owned(), vec![att.clone()]));

        let mut decoder = Decoder::new();
        assert_eq!(from_wire(&mut decoder, s), Ok(Decoded::Incomplete));
        assert_eq!(decoder.decode_binary(att), Ok(Decoded::Packet(packet)));
    }

    #[test]
    fn binary_event_several_attachments_nested() {
        let a = Bytes::from_static(b"a");
        let b = Bytes::from_static(b"b");
        let packet = Packet::new(
            "/chat",
            PacketData::BinaryEvent {
                event: "upload".to_owned(),
                args: vec![json!({"files": [placeholder(1), {"x": placeholder(0)}]})],
                id: Some(3),
                attachments: vec![a.clone(), b.clone()],
            },
        );
        let (text, atts) = packet.encode();
        assert_eq!(
            text,
            r#"52-/chat,3["upload",{"files":[{"_placeholder":true,"num":1},{"x":{"_placeholder":true,"num":0}}]}]"#
        );
        let mut decoder = Decoder::new();
        assert_eq!(decoder.decode_text(&text), Ok(Decoded::Incomplete));
        assert_eq!(
            decoder.decode_binary(atts[0].clone()),
            Ok(Decoded::Incomplete)
        );
        assert!(decoder.is_waiting());
        assert_eq!(decoder.decode_binary(b), Ok(Decoded::Packet(packet)));
        assert!(!decoder.is_waiting());
        // The decoder is usable again afterwards.
        assert_eq!(
            decoder.decode_text(r#"2["ev"]"#),
            Ok(Decoded::Packet(event("/", "ev", vec![], None)))
        );
    }

    #[test]
    fn decoder_state_errors() {
        let mut decoder = Decoder::new();
        assert_eq!(
            decoder.decode_binary(Bytes::from_static(b"x")),
            Err(DecodeError::UnexpectedBinary)
        );
        assert_eq!(
            decoder.decode_text(r#"51-["ev",{"_placeholder":true,"num":0}]"#),
            Ok(Decoded::Incomplete)
        );
        assert_eq!(
            decoder.decode_text(r#"2["ev"]"#),
            Err(DecodeError::UnexpectedText)
        );
        // The partial packet was discarded.
        assert!(!decoder.is_waiting());
        assert_eq!(
            decoder.decode_binary(Bytes::from_static(b"x")),
            Err(DecodeError::UnexpectedBinary)
        );
        // An invalid header leaves nothing pending.
        assert!(decoder
            .decode_text(r#"51-["ev",{"_placeholder":true,"num":1}]"#)
            .is_err());
        assert!(!decoder.is_waiting());
    }

    fn err(s: &str) -> DecodeError {
        match Decoder::new().decode_text(s) {
            Err(e) => e,
            Ok(d) => panic!("{s:?} decoded to {d:?}"),
        }
    }

    fn err_wire(s: &str) -> DecodeError {
        match from_wire(&mut Decoder::new(), s) {
            Err(e) => e,
            Ok(d) => panic!("{s:?} decoded to {d:?}"),
        }
    }

    #[test]
    fn invalid_events() {
        assert_eq!(err_wire("42{}"), DecodeError::InvalidPayload);
        assert_eq!(err_wire("42[]"), DecodeError::InvalidEventName);
        assert_eq!(err_wire("42[1]"), DecodeError::InvalidEventName);
        assert_eq!(err_wire("42[null]"), DecodeError::InvalidEventName);
        assert!(matches!(
            err_wire(r#"42abc["x"]"#),
            DecodeError::InvalidJson(_)
        ));
        assert_eq!(err_wire("42"), DecodeError::MissingPayload);
        assert_eq!(err_wire("42/chat,"), DecodeError::MissingPayload);
        assert_eq!(err_wire("4212"), DecodeError::MissingPayload);
        // Without a comma, the namespace runs to the end.
        assert_eq!(err_wire(r#"42/chat["ev"]"#), DecodeError::MissingPayload);
        assert!(matches!(
            err_wire(r#"42["ev"]x"#),
            DecodeError::InvalidJson(_)
        ));
        assert!(matches!(
            err_wire(r#"42["ev""#),
            DecodeError::InvalidJson(_)
        ));
        assert_eq!(
            err_wire(r#"4218446744073709551616["ev"]"#),
            DecodeError::InvalidAckId
        );
        for name in RESERVED_EVENTS {
            assert_eq!(
                err(&format!(r#"2["{name}",1]"#)),
                DecodeError::ReservedEventName(name.to_owned())
            );
            assert_eq!(
                err(&format!(r#"51-["{name}",{{"_placeholder":true,"num":0}}]"#)),
                DecodeError::ReservedEventName(name.to_owned())
            );
        }
    }

    #[test]
    fn invalid_acks() {
        assert_eq!(err(r#"3["ok"]"#), DecodeError::MissingAckId);
        assert_eq!(err("31{}"), DecodeError::InvalidPayload);
        assert_eq!(err(r#"31"ok""#), DecodeError::InvalidPayload);
        assert_eq!(err("31"), DecodeError::MissingPayload);
        assert_eq!(
            err(r#"61-[{"_placeholder":true,"num":0}]"#),
            DecodeError::MissingAckId
        );
        assert_eq!(err("61-1{}"), DecodeError::InvalidPayload);
    }

    #[test]
    fn invalid_connect_disconnect_error() {
        assert_eq!(err(r#"0"x""#), DecodeError::InvalidPayload);
        assert_eq!(err("0[1]"), DecodeError::InvalidPayload);
        assert_eq!(err("0null"), DecodeError::InvalidPayload);
        assert_eq!(err("0123"), DecodeError::UnexpectedAckId);
        assert!(matches!(err("0{"), DecodeError::InvalidJson(_)));
        assert!(matches!(err("0{}x"), DecodeError::InvalidJson(_)));
        assert_eq!(err("1{}"), DecodeError::UnexpectedPayload);
        assert_eq!(err("1x"), DecodeError::UnexpectedPayload);
        assert_eq!(err("1/a,5"), DecodeError::UnexpectedAckId);
        assert_eq!(err("4"), DecodeError::MissingPayload);
        assert_eq!(err("4[]"), DecodeError::InvalidPayload);
        assert_eq!(err("41"), DecodeError::UnexpectedAckId);
        assert_eq!(err("41{}"), DecodeError::UnexpectedAckId);
    }

    #[test]
    fn invalid_type_and_empty() {
        assert_eq!(err(""), DecodeError::Empty);
        assert_eq!(err("7"), DecodeError::UnknownPacketType('7'));
        assert_eq!(err("x[]"), DecodeError::UnknownPacketType('x'));
        assert_eq!(err("é"), DecodeError::UnknownPacketType('é'));
    }

    #[test]
    fn invalid_attachments() {
        let ph = r#"{"_placeholder":true,"num":0}"#;
        for header in [
            "5-",
            "50-",
            "511-",
            "51",
            "5x-",
            "5-1-",
            "599999999999999999999999-",
        ] {
            assert_eq!(
                err(&format!(r#"{header}["ev",{ph}]"#)),
                DecodeError::InvalidAttachmentCount,
                "{header}"
            );
        }
        assert_eq!(err("6"), DecodeError::InvalidAttachmentCount);
        for bad in [
            r#"{"_placeholder":true,"num":1}"#,
            r#"{"_placeholder":true,"num":-1}"#,
            r#"{"_placeholder":true,"num":0.5}"#,
            r#"{"_placeholder":true,"num":"0"}"#,
            r#"{"_placeholder":true}"#,
            r#"{"a":[{"_placeholder":true,"num":7}]}"#,
        ] {
            assert_eq!(
                err(&format!(r#"51-["ev",{bad}]"#)),
                DecodeError::InvalidPlaceholder,
                "{bad}"
            );
        }
        // The maximum is accepted.
        assert_eq!(
            Decoder::new().decode_text(r#"510-["ev",{"_placeholder":true,"num":9}]"#),
            Ok(Decoded::Incomplete)
        );
        // `_placeholder` other than `true` is plain data.
        assert_eq!(
            Decoder::new().decode_text(r#"51-["ev",{"_placeholder":false,"num":9}]"#),
            Ok(Decoded::Incomplete)
        );
    }

    #[test]
    fn placeholder_shape() {
        assert_eq!(
            placeholder(3).to_string(),
            r#"{"_placeholder":true,"num":3}"#
        );
    }

    #[test]
    fn error_display() {
        let e: Box<dyn std::error::Error> =
            Box::new(DecodeError::ReservedEventName("error".into()));
        assert_eq!(e.to_string(), "reserved event name \"error\"");
    }

    /// Feeds `s` to every decoder of both layers; only checks nothing panics.
    fn feed_all(decoder: &mut Decoder, bytes: &[u8]) {
        let s = String::from_utf8_lossy(bytes);
        let _ = decoder.decode_text(&s);
        let _ = Decoder::new().decode_text(&s);
        let _ = engineio::Packet::decode_text(&s);
        let _ = engineio::decode_payload(&s);
        let _ = decoder.decode_binary(Bytes::copy_from_slice(bytes));
        let _ = engineio::Packet::from_binary(Bytes::copy_from_slice(bytes)).encode();
    }

    #[test]
    fn no_panic_on_short_strings() {
        const ALPHABET: &[u8] = b"0123456/,[]{}\"ab-_";
        let mut decoder = Decoder::new();
        let mut current: Vec<Vec<u8>> = vec![Vec::new()];
        feed_all(&mut decoder, b"");
        for _ in 0..5 {
            let mut next = Vec::with_capacity(current.len() * ALPHABET.len());
            for prefix in &current {
                for &c in ALPHABET {
                    let mut s = prefix.clone();
                    s.push(c);
                    let text = String::from_utf8_lossy(&s);
                    let _ = decoder.decode_text(&text);
                    let _ = engineio::Packet::decode_text(&text);
                    let _ = engineio::decode_payload(&text);
                    next.push(s);
                }
            }
            current = next;
        }
    }

    #[test]
    fn no_panic_on_random_bytes() {
        const PIECES: &[&str] = &[
            "0",
            "1",
            "2",
            "3",
            "4",
            "5",
            "6",
            "b",
            "/",
            ",",
            "-",
            "[",
            "]",
            "{",
            "}",
            "\"",
            "\x1e",
            "é",
            "✓",
            "9",
            "1-",
            "/chat,",
            "[\"ev\"",
            "{\"_placeholder\":true,\"num\":",
            "18446744073709551616",
            "null",
            ":",
            "AQID",
            "=",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        let mut decoder = Decoder::new();
        for _ in 0..20_000 {
            let len = next() % 48;
            let mut bytes = Vec::with_capacity(len);
            if next() % 2 == 0 {
                for _ in 0..len {
                    bytes.push((next() % 256) as u8);
                }
            } else {
                for _ in 0..len / 4 {
                    let piece = PIECES.get(next() % PIECES.len()).copied().unwrap_or("");
                    bytes.extend_from_slice(piece.as_bytes());
                }
            }
            feed_all(&mut decoder, &bytes);
        }
    }
}
