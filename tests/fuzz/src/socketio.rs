//! Courier's `socketio` module, reduced to its pure codec.

#[path = "../../../src/socketio/packet.rs"]
pub mod packet;
