//! The Engine.IO HTTP endpoint (`/socket.io/`): origin checks and CORS, query validation
//! with Engine.IO's JSON error bodies, HTTP long-polling (handshake, GET, POST), WebSocket
//! sessions, and the upgrade of a polling session to WebSocket.
//!
//! Files, each using only those above it:
//! - [`error`]: [`EngineError`], Engine.IO's HTTP errors, and the 503 past a bound;
//! - [`state`]: [`EngineEndpoint`] and its [`EndpointOptions`]: live sessions, admission,
//!   the shutdown stage;
//! - [`origin`]: allowed and restricted origins, CORS;
//! - [`polling`]: long-polling requests (the handshake, GETs, POSTs);
//! - [`websocket`]: WebSocket requests (a new session, an upgrade's probe);
//! - [`routes`]: [`handle`], every request by its query and method, and [`mount`].

mod error;
mod origin;
mod polling;
mod routes;
mod state;
mod websocket;

pub use error::{EngineError, BUSY_CODE};
pub use routes::{handle, mount, SOCKET_IO_PATH};
pub use state::{EndpointOptions, EngineEndpoint, EngineQuery};
