//! Binary packets: a header, then its attachments, reassembled by one [`Decoder`].

use super::*;

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
