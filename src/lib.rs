//! Courier: a Socket.IO v4 compatible chat server on actix.
//!
//! # Layout
//!
//! One folder per protocol layer, one for the application, one for the store; each part
//! uses only the parts below it in this table (`tests/layout.rs` checks it, with no import
//! cycle between any two files and no file over 700 lines):
//!
//! | part | what it is | may use |
//! |---|---|---|
//! | [`setting`], [`ids`] | what every layer's settings share; session ids and cuids | nothing |
//! | [`rate`] | token buckets | ids, setting |
//! | [`auth`] | JWT verification (HS256, `userId`, `exp`) and its settings | setting |
//! | [`engineio`] | Engine.IO v4: the pure codec, the session actor (heartbeat, long-polling, WebSocket, the upgrade), the HTTP endpoint; knows nothing of Socket.IO | ids, rate, setting |
//! | [`socketio`] | Socket.IO v5: the pure codec with binary reassembly, the socket layer (namespaces, CONNECT, events, acks) and its [`socketio::SocketHandler`] trait; knows nothing of the chat | engineio, ids, setting |
//! | [`db`] | the one store: connecting, migrating, every query (one file per table) | ids, setting |
//! | [`chat`] | the application: the wire ([`chat::protocol`]), the socket, the rooms, the users, persistence, recovery; defines the seam a cluster implements ([`chat::remote`]) | auth, db, engineio, ids, rate, setting, socketio |
//! | [`cluster`] | many nodes over Redis on `@socket.io/redis-adapter`'s protocol (classic, Sentinel, sharded), behind the chat's seam | chat, ids, rate, setting, socketio |
//! | [`admin`] | the Socket.IO Admin UI's `/admin`, mounted beside the chat | engineio, ids, rate, setting, socketio |
//! | [`http`] | the routes besides Engine.IO's: `/healthz`, the demo, `/metrics` and `/readyz` | auth, chat, db, engineio, setting |
//! | [`config`] | layered settings: loads and composes each part's own settings | admin, auth, chat, cluster, db, engineio, http, rate, setting, socketio |
//! | [`app`], [`cli`] | [`app::Application::build`] wires it all; the command line | everything |
//!
//! A connection's path: `engineio::endpoint` accepts the request, `engineio::websocket`
//! pumps frames into the session's channel, the `engineio::session` actor decodes
//! Engine.IO packets and passes messages to `socketio::SocketLayer`, which decodes
//! Socket.IO packets and hands CONNECTs and events to `chat::ChatSocket`, whose dispatcher
//! (`chat/socket/events.rs`) turns each `chat::protocol::ClientEvent` into a request for the
//! actor that owns what it changes.

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
pub mod setting;
pub mod socketio;
