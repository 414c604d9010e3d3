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
//!
//! Files, each using only those above it:
//! - [`data`]: [`Packet`], [`PacketData`], the protocol's limits and reserved names, and
//!   [`placeholder`];
//! - [`encode`]: encoding a packet ([`Packet::encode`]);
//! - [`frame`]: frames encoded once from pre-encoded arguments ([`event_frame`],
//!   [`ack_frame`]);
//! - [`decode`]: decoding one text packet, and [`DecodeError`];
//! - [`decoder`]: [`Decoder`], binary reassembly for one connection.

mod data;
mod decode;
mod decoder;
mod encode;
mod frame;

pub use data::{placeholder, Packet, PacketData, DEFAULT_NSP, MAX_ATTACHMENTS, RESERVED_EVENTS};
pub use decode::DecodeError;
pub use decoder::{Decoded, Decoder};
pub use frame::{ack_frame, event_frame};

#[cfg(test)]
mod tests;
