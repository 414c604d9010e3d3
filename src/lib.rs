//! Courier: a Socket.IO v4 compatible chat server on actix.
//!
//! # Layout
//!
//! One folder per protocol layer and one for the application; each layer knows only the
//! ones below it.
//!
//! - [`engineio`]: Engine.IO v4, the transport layer: the pure packet codec, the session
//!   actor (heartbeat, long-polling, WebSocket, the upgrade), the HTTP endpoint. Knows
//!   nothing of Socket.IO.
//! - [`socketio`]: Socket.IO v5 on top: the pure packet codec with binary reassembly, and
//!   the socket layer (namespaces, CONNECT, events, acks). Knows nothing of the chat.
//! - [`chat`]: the application: one file per event (its parsing and handling), the
//!   `ChatRoom` actors that order and deliver each conversation, the user registry, the
//!   `Persistence` actor and the chat's SQL.
//! - [`cluster`]: many nodes as one service over Redis, on the wire protocol of
//!   `@socket.io/redis-adapter` (on with `redis.url`); the chat reaches it through
//!   `chat::remote::RemoteNodes` only, and `engineio`/`socketio` know nothing of it.
//! - [`config`]: layered settings (built-in TOML, files, `COURIER__*`, the Node server's
//!   plain variables).
//! - [`auth`]: JWT verification (HS256, `userId`, `exp`).
//! - [`db`]: connecting, the migration policy, `seed-demo`.
//! - [`http`]: the routes besides Engine.IO (`/healthz`).
//! - [`ids`]: session ids and cuids; [`rate`]: token buckets.
//! - [`admin`]: the server side of the Socket.IO Admin UI (`/admin`, off by default),
//!   mounted on the socket layer beside the chat; it reads the engine's numbers through a
//!   closure and sees sockets through the socket layer's observer.
//! - [`app`]: [`app::Application::build`] wires it all and binds the listener.
//! - [`cli`]: the command line of the `courier` binary, which stays thin.
//!
//! A connection's path: `engineio::endpoint` accepts the request, `engineio::websocket`
//! pumps frames into the session's channel, `engineio::session::EngineSession` decodes
//! Engine.IO packets and passes messages to `socketio::SocketLayer`, which decodes
//! Socket.IO packets and hands CONNECTs and events to `chat::ChatSocket`.

pub mod admin;
pub mod app;
pub mod auth;
pub mod chat;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod db;
pub mod engineio;
pub mod http;
pub mod ids;
pub mod rate;
pub mod socketio;
