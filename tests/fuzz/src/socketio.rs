//! Courier's `socketio` module, reduced to its pure codec.

#[path = "../../../src/socketio/packet/mod.rs"]
pub mod packet;
