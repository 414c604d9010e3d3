//! Pure (no I/O) wire codec for Courier's two protocol layers.
//!
//! - [`engineio`] is the transport layer (Engine.IO protocol v4): the
//!   handshake, heartbeats (ping/pong), upgrades, and framing of text and
//!   binary messages, either one packet per WebSocket frame or several packets
//!   joined by `'\x1e'` in an HTTP long-polling payload. It knows nothing of
//!   Socket.IO: a message is an opaque string or byte buffer to it.
//! - [`socketio`] is the application layer (Socket.IO protocol v5), carried
//!   inside Engine.IO messages: namespaces, connect/disconnect, events,
//!   acknowledgements, and binary packets whose attachments follow the text
//!   header as separate Engine.IO binary messages.
//!
//! So the wire string `42["ev",1]` is the Engine.IO message `4` whose data,
//! `2["ev",1]`, is a Socket.IO event. Both layers decode into typed packets
//! and report malformed input as typed errors; no input may panic.

pub mod engineio;
pub mod socketio;
