//! Courier's `engineio` module, reduced to its pure codec.

#[path = "../../../src/engineio/packet.rs"]
pub mod packet;
