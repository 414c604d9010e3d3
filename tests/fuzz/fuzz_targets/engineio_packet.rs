//! Engine.IO packet codec: `Packet::decode_text` (a WebSocket text frame), `decode_payload`
//! (a polling request body) and binary packets, on arbitrary input.
//!
//! Beyond "no panic", it checks what the codec promises: a decoded packet encodes to a text
//! that decodes to the same packet; a ping, pong or message encodes back to the very text
//! it came from; a decoded payload re-encodes to a payload with the same packets; any bytes
//! survive a binary packet's trip through a polling payload.

#![no_main]

use bytes::Bytes;
use courier_fuzz::engineio::packet::{
    decode_payload, encode_payload, DecodeError, Packet, RECORD_SEPARATOR,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Text frames and polling bodies are UTF-8 by the time they reach the codec; invalid
    // input still exercises it through the replacement characters.
    let text = String::from_utf8_lossy(data);
    text_frame(&text);
    polling_payload(&text);
    binary(data);
});

/// A WebSocket text frame.
fn text_frame(s: &str) {
    match Packet::decode_text(s) {
        Ok(packet) => {
            assert!(
                !matches!(packet, Packet::Binary(_)),
                "text frame {s:?} decoded to a binary packet"
            );
            let encoded = packet.encode();
            assert_eq!(
                Packet::decode_text(&encoded).as_ref(),
                Ok(&packet),
                "{s:?} decoded to {packet:?}, which encodes to {encoded:?}"
            );
            // Data after the type character is kept verbatim for these.
            if matches!(
                packet,
                Packet::Ping(_) | Packet::Pong(_) | Packet::Message(_)
            ) {
                assert_eq!(encoded, s);
            }
        }
        Err(err) => {
            let first = s.chars().next();
            match &err {
                DecodeError::Empty => assert_eq!(first, None),
                DecodeError::UnknownPacketType(c) => assert_eq!(first, Some(*c)),
                DecodeError::InvalidHandshake(_) => assert_eq!(first, Some('0')),
                DecodeError::InvalidBase64 => panic!("text frame {s:?}: {err:?}"),
            }
            let _ = err.to_string();
        }
    }
}

/// A polling request body.
fn polling_payload(body: &str) {
    match decode_payload(body) {
        Ok(packets) => {
            assert_eq!(packets.len(), body.split(RECORD_SEPARATOR).count());
            let encoded = encode_payload(&packets);
            assert_eq!(
                decode_payload(&encoded).as_ref(),
                Ok(&packets),
                "{body:?} decoded to {packets:?}, which encodes to {encoded:?}"
            );
        }
        Err(err) => {
            if body.is_empty() {
                assert_eq!(err, DecodeError::Empty);
            }
            let _ = err.to_string();
        }
    }
}

/// A binary message: a WebSocket binary frame, sent on as `b<base64>` in a polling payload,
/// alone or after a text packet.
fn binary(data: &[u8]) {
    let packet = Packet::from_binary(Bytes::copy_from_slice(data));
    assert_eq!(packet, Packet::Binary(Bytes::copy_from_slice(data)));
    let alone = encode_payload(std::slice::from_ref(&packet));
    assert!(!alone.contains(RECORD_SEPARATOR));
    assert_eq!(decode_payload(&alone), Ok(vec![packet.clone()]));

    let packets = vec![Packet::Message("x".to_owned()), packet, Packet::Noop];
    assert_eq!(decode_payload(&encode_payload(&packets)), Ok(packets));
}
