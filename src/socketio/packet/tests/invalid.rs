//! Input the decoders must refuse, with the right [`DecodeError`], and never panic on.

use super::*;

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
