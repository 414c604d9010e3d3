//! Actors and the handlers that run inside them.
//!
//! - [`session`]: the Engine.IO session actor (heartbeat, framing, transport link) and the
//!   [`session::EngineHandler`] trait, the seam between Engine.IO and what it carries.
//! - [`socket`]: the Socket.IO layer, an `EngineHandler` that hands namespaces, CONNECTs and
//!   events to a [`socket::SocketHandler`].
//! - [`chat`]: the chat application, the `SocketHandler` of Courier's sockets: payload
//!   validation and the Node server's events.
//! - [`room`]: `ChatRoom`, one actor per conversation, and the `RoomRegistry` that starts them.
//! - [`registry`]: the user registry, online users' sockets and fan-out to them.
//! - [`persistence`]: the `Persistence` actor, the single serialized writer to the database.

pub mod chat;
pub mod persistence;
pub mod registry;
pub mod room;
pub mod session;
pub mod socket;
