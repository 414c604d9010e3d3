//! [`Decoder`], one connection's stateful decoder: it reassembles a binary packet from its
//! text header and the binary attachments that follow it.

use bytes::Bytes;

use super::data::Packet;
use super::decode::{decode_str, DecodeError};

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
