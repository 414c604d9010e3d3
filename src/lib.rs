//! Courier: a Socket.IO v4 compatible chat server on actix.
//!
//! # Layout
//!
//! Each module is one layer; dependencies point down this list.
//!
//! - [`config`]: layered settings (built-in TOML, files, `COURIER__*`, the Node server's
//!   plain variables).
//! - [`http`]: actix-web routes: the Engine.IO endpoint (`/socket.io/`) and `/healthz`.
//! - [`transport`]: byte pipes under a session: WebSocket over actix-ws, feeding bounded
//!   channels.
//! - [`actors`]: the Engine.IO session actor (heartbeat, framing), the Socket.IO layer that
//!   runs inside it, and the chat application on top.
//! - [`protocol`]: the pure codec: Engine.IO v4 packets and payloads, Socket.IO v5 packets
//!   with binary reassembly. No I/O.
//! - [`auth`]: JWT verification (HS256, `userId`, `exp`).
//! - [`ids`]: session ids from the OS CSPRNG.
//! - [`app`]: [`app::Application::build`] wires it all and binds the listener.
//! - [`cli`]: the command line of the `courier` binary, which stays thin.
//!
//! A connection's path: `http::engineio::handle` upgrades the request, `transport::websocket`
//! pumps frames into a `transport::SessionLink`, `actors::session::EngineSession` decodes
//! Engine.IO packets and passes messages to `actors::socket::SocketLayer`, which decodes
//! Socket.IO packets and hands CONNECTs and events to `actors::chat::ChatSocket`.

pub mod actors;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod db;
pub mod http;
pub mod ids;
pub mod protocol;
pub mod transport;
