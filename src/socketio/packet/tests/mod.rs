//! The packet codec's tests: packets to the wire and back (here), binary reassembly
//! ([`binary`]), and input that must be refused without a panic ([`invalid`]).

use bytes::Bytes;
use serde_json::{json, Value};

use super::*;
use crate::engineio::packet as engineio;

mod binary;
mod invalid;

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
fn placeholder_shape() {
    assert_eq!(
        placeholder(3).to_string(),
        r#"{"_placeholder":true,"num":3}"#
    );
}

#[test]
fn error_display() {
    let e: Box<dyn std::error::Error> = Box::new(DecodeError::ReservedEventName("error".into()));
    assert_eq!(e.to_string(), "reserved event name \"error\"");
}
