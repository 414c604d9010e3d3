//! Engine.IO protocol v4 packet codec.
//!
//! An Engine.IO packet is a single type character (`'0'`..=`'6'`) followed by
//! optional string data. Binary messages travel as raw WebSocket binary frames,
//! or, inside an HTTP long-polling payload, as `'b'` followed by the base64 of
//! the bytes. A polling payload joins several encoded packets with the ASCII
//! record separator `'\x1e'`.
//!
//! This layer is transport-agnostic and knows nothing of Socket.IO: the data
//! of a [`Packet::Message`] is an opaque string to it.

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The record separator (`\x1e`) that joins packets in a polling payload.
pub const RECORD_SEPARATOR: char = '\x1e';

/// Base64 engine for binary packets in polling payloads: standard alphabet,
/// writes padding, and accepts input with or without padding (Node's
/// `Buffer.from(s, "base64")`, which engine.io-parser uses, is lenient too).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The Engine.IO `message` packet carrying `data` as a text frame: `4` + `data`. Encoding
/// a frame once and sending it to many sessions is how fan-outs stay cheap.
pub fn message_frame(data: &str) -> String {
    let mut frame = String::with_capacity(data.len() + 1);
    frame.push('4');
    frame.push_str(data);
    frame
}

/// Body of the open packet the server sends to finish the handshake.
///
/// Serialises as `{"sid","upgrades","pingInterval","pingTimeout","maxPayload"}`
/// (camelCase, in that order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handshake {
    /// The Engine.IO session id.
    pub sid: String,
    /// Transports the client may upgrade to (e.g. `["websocket"]`).
    pub upgrades: Vec<String>,
    /// Interval between server pings, in milliseconds.
    pub ping_interval: u64,
    /// How long the server waits for a pong, in milliseconds.
    pub ping_timeout: u64,
    /// Maximum number of bytes per chunk (polling payload) or frame.
    pub max_payload: u64,
}

/// One Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0{...}`: sent by the server to open a session, with the handshake data.
    Open(Handshake),
    /// `1`: request to close the session.
    Close,
    /// `2` / `2probe`: heartbeat ping (server to client), or the upgrade probe
    /// (client to server). Holds the data after the type character.
    Ping(String),
    /// `3` / `3probe`: answer to a ping. Holds the data after the type character.
    Pong(String),
    /// `4hello`: a text message (for Socket.IO, an encoded Socket.IO packet).
    Message(String),
    /// A binary message: a raw WebSocket binary frame, or `b<base64>` inside a
    /// polling payload.
    Binary(Bytes),
    /// `5`: the client finishes an upgrade to WebSocket.
    Upgrade,
    /// `6`: no-op, used to flush a pending poll during an upgrade.
    Noop,
}

/// Why an Engine.IO packet or payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The packet (or the polling payload) was empty.
    Empty,
    /// The first character is not a known packet type.
    UnknownPacketType(char),
    /// The data of an open packet is not a valid handshake JSON object.
    InvalidHandshake(String),
    /// A `b`-prefixed polling element is not valid base64.
    InvalidBase64,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => f.write_str("empty Engine.IO packet"),
            DecodeError::UnknownPacketType(c) => {
                write!(f, "unknown Engine.IO packet type {c:?}")
            }
            DecodeError::InvalidHandshake(e) => write!(f, "invalid handshake: {e}"),
            DecodeError::InvalidBase64 => f.write_str("invalid base64 in binary packet"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl Packet {
    /// Encodes the packet in its text form, for a WebSocket text frame or a
    /// polling payload element.
    ///
    /// [`Packet::Binary`] encodes as `"b"` + base64 (standard alphabet with
    /// padding); that form is only valid inside a polling payload. Over
    /// WebSocket, send the bytes of a binary packet as a binary frame instead.
    pub fn encode(&self) -> String {
        match self {
            Packet::Open(handshake) => {
                // Serialising a struct of strings and integers cannot fail.
                let json = serde_json::to_string(handshake).unwrap_or_default();
                format!("0{json}")
            }
            Packet::Close => "1".to_owned(),
            Packet::Ping(data) => format!("2{data}"),
            Packet::Pong(data) => format!("3{data}"),
            Packet::Message(data) => message_frame(data),
            Packet::Binary(bytes) => format!("b{}", BASE64.encode(bytes)),
            Packet::Upgrade => "5".to_owned(),
            Packet::Noop => "6".to_owned(),
        }
    }

    /// Decodes one packet from a WebSocket text frame.
    ///
    /// A `b...` text is not a binary message over WebSocket: `'b'` is an
    /// unknown packet type here. As in engine.io-parser, data after the type
    /// character of a close, upgrade or noop packet is ignored.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Empty`], [`DecodeError::UnknownPacketType`], or
    /// [`DecodeError::InvalidHandshake`] for an open packet without a valid
    /// handshake object.
    pub fn decode_text(s: &str) -> Result<Packet, DecodeError> {
        let mut chars = s.chars();
        let ty = chars.next().ok_or(DecodeError::Empty)?;
        let data = chars.as_str();
        match ty {
            '0' => serde_json::from_str(data)
                .map(Packet::Open)
                .map_err(|e| DecodeError::InvalidHandshake(e.to_string())),
            '1' => Ok(Packet::Close),
            '2' => Ok(Packet::Ping(data.to_owned())),
            '3' => Ok(Packet::Pong(data.to_owned())),
            '4' => Ok(Packet::Message(data.to_owned())),
            '5' => Ok(Packet::Upgrade),
            '6' => Ok(Packet::Noop),
            other => Err(DecodeError::UnknownPacketType(other)),
        }
    }

    /// Wraps a WebSocket binary frame: it is always a binary message.
    pub fn from_binary(b: Bytes) -> Packet {
        Packet::Binary(b)
    }

    /// Decodes one element of a polling payload: `b<base64>` is a binary
    /// message, anything else is decoded as by [`Packet::decode_text`].
    fn decode_payload_element(s: &str) -> Result<Packet, DecodeError> {
        match s.strip_prefix('b') {
            Some(b64) => BASE64
                .decode(b64)
                .map(|v| Packet::Binary(Bytes::from(v)))
                .map_err(|_| DecodeError::InvalidBase64),
            None => Packet::decode_text(s),
        }
    }
}

/// Encodes packets as a polling payload: encoded packets joined by `'\x1e'`
/// (record separator), binary packets as `'b'` + base64.
pub fn encode_payload(packets: &[Packet]) -> String {
    let mut out = String::new();
    for (i, packet) in packets.iter().enumerate() {
        if i > 0 {
            out.push(RECORD_SEPARATOR);
        }
        out.push_str(&packet.encode());
    }
    out
}

/// Decodes a polling request body into its packets.
///
/// Elements prefixed with `'b'` decode from base64 into [`Packet::Binary`].
/// An empty body, or an empty element, is an error.
///
/// # Errors
///
/// The first error met while decoding an element (see
/// [`Packet::decode_text`]), or [`DecodeError::InvalidBase64`].
pub fn decode_payload(body: &str) -> Result<Vec<Packet>, DecodeError> {
    if body.is_empty() {
        return Err(DecodeError::Empty);
    }
    body.split(RECORD_SEPARATOR)
        .map(Packet::decode_payload_element)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake() -> Handshake {
        Handshake {
            sid: "lv_VI97HAXpY6yYWAAAC".to_owned(),
            upgrades: vec!["websocket".to_owned()],
            ping_interval: 25000,
            ping_timeout: 20000,
            max_payload: 1_000_000,
        }
    }

    /// Asserts `packet` encodes to `wire` and `wire` decodes back to `packet`.
    fn round_trip(packet: Packet, wire: &str) {
        assert_eq!(packet.encode(), wire);
        assert_eq!(Packet::decode_text(wire), Ok(packet));
    }

    #[test]
    fn open_packet_exact_json() {
        let wire = r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        round_trip(Packet::Open(handshake()), wire);
    }

    #[test]
    fn simple_packets() {
        round_trip(Packet::Close, "1");
        round_trip(Packet::Ping(String::new()), "2");
        round_trip(Packet::Ping("probe".to_owned()), "2probe");
        round_trip(Packet::Pong(String::new()), "3");
        round_trip(Packet::Pong("probe".to_owned()), "3probe");
        round_trip(Packet::Message("hello".to_owned()), "4hello");
        round_trip(Packet::Message(String::new()), "4");
        round_trip(Packet::Message("héllo ✓".to_owned()), "4héllo ✓");
        round_trip(Packet::Upgrade, "5");
        round_trip(Packet::Noop, "6");
    }

    #[test]
    fn trailing_data_ignored_on_close_upgrade_noop() {
        assert_eq!(Packet::decode_text("1x"), Ok(Packet::Close));
        assert_eq!(Packet::decode_text("5x"), Ok(Packet::Upgrade));
        assert_eq!(Packet::decode_text("6x"), Ok(Packet::Noop));
    }

    #[test]
    fn text_decode_errors() {
        assert_eq!(Packet::decode_text(""), Err(DecodeError::Empty));
        assert_eq!(
            Packet::decode_text("7"),
            Err(DecodeError::UnknownPacketType('7'))
        );
        assert_eq!(
            Packet::decode_text("x"),
            Err(DecodeError::UnknownPacketType('x'))
        );
        assert_eq!(
            Packet::decode_text("é4"),
            Err(DecodeError::UnknownPacketType('é'))
        );
        // Over WebSocket, 'b' is not a binary marker.
        assert_eq!(
            Packet::decode_text("bAQID"),
            Err(DecodeError::UnknownPacketType('b'))
        );
        assert!(matches!(
            Packet::decode_text("0"),
            Err(DecodeError::InvalidHandshake(_))
        ));
        assert!(matches!(
            Packet::decode_text("0{\"sid\":1}"),
            Err(DecodeError::InvalidHandshake(_))
        ));
        assert!(matches!(
            Packet::decode_text("0not json"),
            Err(DecodeError::InvalidHandshake(_))
        ));
    }

    #[test]
    fn binary_frames() {
        let b = Bytes::from_static(&[1, 2, 3]);
        assert_eq!(Packet::from_binary(b.clone()), Packet::Binary(b.clone()));
        assert_eq!(Packet::Binary(b).encode(), "bAQID");
        assert_eq!(Packet::Binary(Bytes::new()).encode(), "b");
        assert_eq!(Packet::Binary(Bytes::from_static(&[1])).encode(), "bAQ==");
    }

    #[test]
    fn payload_text() {
        let packets = vec![
            Packet::Message("hello".to_owned()),
            Packet::Message("world".to_owned()),
        ];
        assert_eq!(encode_payload(&packets), "4hello\x1e4world");
        assert_eq!(decode_payload("4hello\x1e4world"), Ok(packets));
    }

    #[test]
    fn payload_binary() {
        let bin = Packet::Binary(Bytes::from_static(&[1, 2, 3]));
        assert_eq!(encode_payload(std::slice::from_ref(&bin)), "bAQID");
        assert_eq!(decode_payload("bAQID"), Ok(vec![bin]));
        // Unpadded base64 is accepted too.
        assert_eq!(
            decode_payload("bAQ"),
            Ok(vec![Packet::Binary(Bytes::from_static(&[1]))])
        );
        assert_eq!(decode_payload("b"), Ok(vec![Packet::Binary(Bytes::new())]));
    }

    #[test]
    fn payload_mixed() {
        let packets = vec![
            Packet::Message("51-[\"ev\",{\"_placeholder\":true,\"num\":0}]".to_owned()),
            Packet::Binary(Bytes::from_static(&[1, 2, 3])),
            Packet::Ping(String::new()),
            Packet::Noop,
        ];
        let wire = "451-[\"ev\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID\x1e2\x1e6";
        assert_eq!(encode_payload(&packets), wire);
        assert_eq!(decode_payload(wire), Ok(packets));
    }

    #[test]
    fn payload_errors() {
        assert_eq!(decode_payload(""), Err(DecodeError::Empty));
        assert_eq!(decode_payload("4a\x1e\x1e4b"), Err(DecodeError::Empty));
        assert_eq!(decode_payload("4a\x1e"), Err(DecodeError::Empty));
        assert_eq!(
            decode_payload("4a\x1e9"),
            Err(DecodeError::UnknownPacketType('9'))
        );
        assert_eq!(decode_payload("b!!!"), Err(DecodeError::InvalidBase64));
        assert_eq!(decode_payload("bA"), Err(DecodeError::InvalidBase64));
    }

    #[test]
    fn error_display() {
        let e: Box<dyn std::error::Error> = Box::new(DecodeError::UnknownPacketType('x'));
        assert_eq!(e.to_string(), "unknown Engine.IO packet type 'x'");
    }
}
