//! Decoding one text packet ([`decode_str`]), and why it may fail ([`DecodeError`]).

use std::fmt;

use serde_json::Value;

use super::data::{Packet, PacketData, DEFAULT_NSP, MAX_ATTACHMENTS, RESERVED_EVENTS};

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
pub(super) fn decode_str(s: &str) -> Result<(Packet, usize), DecodeError> {
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
