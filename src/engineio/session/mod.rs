//! The Engine.IO session actor.
//!
//! One [`EngineSession`] per Engine.IO connection. It owns the heartbeat, the Engine.IO
//! packet framing and the transport link, and knows nothing of Socket.IO: everything carried
//! in `message` packets goes to its [`EngineHandler`], which answers through [`EngineIo`].
//!
//! Transports: a session starts on WebSocket, or on HTTP long-polling (output buffered until
//! a GET takes it, input from POSTs). A polling session may be upgraded: a WebSocket with its
//! sid becomes the probe (`2probe` → `3probe`, a pending GET is answered with a noop so the
//! client pauses polling), `5` completes the upgrade and everything still buffered is
//! flushed over the WebSocket in order. The actor is the same before and after: only the
//! transport underneath changes.
//!
//! Files, each using only those above it:
//! - [`close`]: [`SessionClose`], why a session ends, and its close code;
//! - [`flow`]: pausing reading (the gate on the inbound stream);
//! - [`polling`]: long-polling's state (the output buffer, the pending GET, the probe);
//! - [`state`]: [`EngineConfig`] and the `Core` below the handler: queuing output, pausing,
//!   closing, whatever the transport;
//! - [`actor`]: [`EngineSession`] and how it is built ([`Start`], [`Stage`]);
//! - [`handler`]: the [`EngineHandler`] trait and [`EngineIo`], the seam to the layer above;
//! - [`heartbeat`]: pings and their pong deadlines;
//! - [`upgrade`]: the probe and upgrade of a polling session to WebSocket;
//! - [`inbound`]: what arrives (WebSocket frames, long-polling GETs and POSTs, packets);
//! - [`lifecycle`]: the actor's start, pushes from other actors, and stop.

mod actor;
mod close;
mod flow;
pub mod handler;
mod heartbeat;
mod inbound;
mod lifecycle;
mod polling;
mod state;
mod upgrade;

pub use actor::{EngineSession, Stage, Start};
pub use close::SessionClose;
pub use handler::{EngineHandler, EngineIo, EngineMessage};
pub use state::EngineConfig;
