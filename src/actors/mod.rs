//! Actors and the handlers that run inside them.
//!
//! - [`session`]: the Engine.IO session actor (heartbeat, framing, transport link) and the
//!   [`session::EngineHandler`] trait, the seam between Engine.IO and what it carries.
//! - [`socket`]: the Socket.IO layer, an `EngineHandler` that hands namespaces, CONNECTs and
//!   events to a [`socket::SocketHandler`].
//! - [`chat`]: the chat application, the `SocketHandler` of Courier's sockets.

pub mod chat;
pub mod session;
pub mod socket;
