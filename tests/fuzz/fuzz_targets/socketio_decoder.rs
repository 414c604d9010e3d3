//! Socket.IO packet decoder with binary reassembly: one `Decoder` fed a sequence of text and
//! binary messages, as one connection would feed it.
//!
//! Beyond "no panic", it checks the decoder against a model of reassembly (a header that
//! announces N attachments yields its packet with the next N binary messages, in order;
//! text while attachments are awaited, or binary while none are, is an error and leaves
//! nothing pending), and that every packet decoded re-encodes to messages that a fresh
//! decoder turns back into the same packet, and that the pre-encoded `event_frame` and
//! `ack_frame` give the same frames as encoding the packet.

#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use courier_fuzz::engineio::packet::message_frame;
use courier_fuzz::socketio::packet::{
    ack_frame, event_frame, DecodeError, Decoded, Decoder, Packet, PacketData,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// One message of a connection, as the Engine.IO layer hands it to Socket.IO.
#[derive(Debug, Arbitrary)]
enum Message {
    /// Any text.
    Text(String),
    /// A text put together from the parts of a packet, so that most of them get past the
    /// header (and many are valid) without the fuzzer having to find the syntax first.
    Built(Built),
    /// A binary message: an attachment, or an unexpected one.
    Binary(Vec<u8>),
}

/// `<type>[<attachments>-][<nsp>,][<id>][<payload>]`, each part present or not, and free
/// to be wrong.
#[derive(Debug, Arbitrary)]
struct Built {
    /// `'0'` + this, modulo 8 (so `'7'`, an unknown type, too).
    ty: u8,
    /// Written as `<n % 12>-` (0 and 11 are out of range).
    attachments: Option<u8>,
    /// Written as `/<name>`, followed by `,` if the flag is set.
    nsp: Option<(String, bool)>,
    id: Option<u64>,
    payload: Option<Payload>,
}

#[derive(Debug, Arbitrary)]
enum Payload {
    /// `["<event>", ...args]`.
    Event(String, Vec<Json>),
    /// Any JSON (or not quite).
    Any(Json),
}

/// A JSON value to render, or some raw text in its place.
#[derive(Debug, Arbitrary)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// `{"_placeholder":true,"num":<n % 12>}`.
    Placeholder(u8),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
    Raw(String),
}

impl Built {
    fn render(&self) -> String {
        let mut out = String::new();
        out.push(char::from(b'0' + self.ty % 8));
        if let Some(n) = self.attachments {
            out.push_str(&(n % 12).to_string());
            out.push('-');
        }
        if let Some((name, comma)) = &self.nsp {
            out.push('/');
            out.push_str(name);
            if *comma {
                out.push(',');
            }
        }
        if let Some(id) = self.id {
            out.push_str(&id.to_string());
        }
        match &self.payload {
            None => {}
            Some(Payload::Event(event, args)) => {
                out.push('[');
                out.push_str(&Value::from(event.as_str()).to_string());
                for arg in args {
                    out.push(',');
                    arg.render(&mut out);
                }
                out.push(']');
            }
            Some(Payload::Any(json)) => json.render(&mut out),
        }
        out
    }
}

impl Json {
    fn render(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => out.push_str(&i.to_string()),
            Json::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => out.push_str(&n.to_string()),
                // Out of range for JSON numbers as serde_json reads them.
                None => out.push_str("1e999"),
            },
            Json::Str(s) => out.push_str(&Value::from(s.as_str()).to_string()),
            Json::Placeholder(n) => {
                out.push_str(r#"{"_placeholder":true,"num":"#);
                out.push_str(&(n % 12).to_string());
                out.push('}');
            }
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.render(out);
                }
                out.push(']');
            }
            Json::Object(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::from(key.as_str()).to_string());
                    out.push(':');
                    value.render(out);
                }
                out.push('}');
            }
            Json::Raw(raw) => out.push_str(raw),
        }
    }
}

/// A binary packet whose attachments the model expects.
struct Pending {
    expected: usize,
    received: Vec<Bytes>,
}

fuzz_target!(|messages: Vec<Message>| {
    let mut decoder = Decoder::new();
    let mut pending: Option<Pending> = None;
    for message in messages {
        assert_eq!(decoder.is_waiting(), pending.is_some());
        match message {
            Message::Text(text) => text_message(&mut decoder, &mut pending, &text),
            Message::Built(built) => text_message(&mut decoder, &mut pending, &built.render()),
            Message::Binary(bytes) => binary_message(&mut decoder, &mut pending, bytes.into()),
        }
        assert_eq!(decoder.is_waiting(), pending.is_some());
    }
});

fn text_message(decoder: &mut Decoder, pending: &mut Option<Pending>, text: &str) {
    let result = decoder.decode_text(text);
    if pending.take().is_some() {
        assert_eq!(result, Err(DecodeError::UnexpectedText), "{text:?}");
        return;
    }
    match result {
        Ok(Decoded::Packet(packet)) => {
            assert!(
                !is_binary(&packet.data),
                "{text:?} decoded to a binary packet with no attachment: {packet:?}"
            );
            check_packet(&packet);
        }
        Ok(Decoded::Incomplete) => {
            // A binary header: its type digit, then the attachment count.
            let count: String = text
                .chars()
                .skip(1)
                .take_while(char::is_ascii_digit)
                .collect();
            let expected = count.parse().expect("a binary header's attachment count");
            assert!(
                (1..=10).contains(&expected),
                "{text:?} awaits {expected} attachments"
            );
            *pending = Some(Pending {
                expected,
                received: Vec::new(),
            });
        }
        Err(err) => {
            assert!(
                !matches!(
                    err,
                    DecodeError::UnexpectedText | DecodeError::UnexpectedBinary
                ),
                "{text:?} with nothing pending: {err:?}"
            );
            let _ = err.to_string();
        }
    }
}

fn binary_message(decoder: &mut Decoder, pending: &mut Option<Pending>, bytes: Bytes) {
    let result = decoder.decode_binary(bytes.clone());
    let Some(mut partial) = pending.take() else {
        assert_eq!(result, Err(DecodeError::UnexpectedBinary));
        return;
    };
    partial.received.push(bytes);
    if partial.received.len() < partial.expected {
        assert_eq!(result, Ok(Decoded::Incomplete));
        *pending = Some(partial);
        return;
    }
    let Ok(Decoded::Packet(packet)) = result else {
        panic!("last attachment of {} gave {result:?}", partial.expected);
    };
    match &packet.data {
        PacketData::BinaryEvent { attachments, .. } | PacketData::BinaryAck { attachments, .. } => {
            assert_eq!(attachments, &partial.received);
        }
        _ => panic!("attachments completed a non-binary packet: {packet:?}"),
    }
    check_packet(&packet);
}

fn is_binary(data: &PacketData) -> bool {
    matches!(
        data,
        PacketData::BinaryEvent { .. } | PacketData::BinaryAck { .. }
    )
}

/// Checks what the codec promises of a packet it decoded.
fn check_packet(packet: &Packet) {
    assert!(!packet.nsp.contains(','), "{packet:?}");

    // Encoding then decoding gives the same packet.
    let (text, attachments) = packet.encode();
    let mut decoder = Decoder::new();
    let mut result = decoder.decode_text(&text);
    for (i, attachment) in attachments.iter().enumerate() {
        assert_eq!(
            result,
            Ok(Decoded::Incomplete),
            "{packet:?} encoded to {text:?}, attachment {i}"
        );
        result = decoder.decode_binary(attachment.clone());
    }
    assert_eq!(
        result.as_ref(),
        Ok(&Decoded::Packet(packet.clone())),
        "{packet:?} encoded to {text:?}"
    );
    assert!(!decoder.is_waiting());

    // The frames built from pre-encoded arguments are those of the packet.
    let json = |args: &[Value]| args.iter().map(Value::to_string).collect::<Vec<_>>();
    match &packet.data {
        PacketData::Event {
            event,
            args,
            id: None,
        } => {
            let args = json(args);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            assert_eq!(event_frame(&packet.nsp, event, &args), message_frame(&text));
        }
        PacketData::Ack { args, id } => {
            let args = json(args);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            assert_eq!(ack_frame(&packet.nsp, *id, &args), message_frame(&text));
        }
        _ => {}
    }
}
