//! Engine.IO v4: the transport layer. It knows nothing of Socket.IO: a message is an
//! opaque string or byte buffer to it, handed to an [`EngineHandler`]. It uses nothing of
//! the crate but `ids` and `rate`.
//!
//! Files and folders, each using only those above it:
//! - [`packet`]: the pure codec (packets, polling payloads). No I/O.
//! - [`transport`]: the bounded channels between a session and its transports, and
//!   [`TransportKind`].
//! - [`client`]: who the client is (address through trusted proxies, `User-Agent`).
//! - [`admission`]: bounds on sessions that have not authenticated, and on handshakes.
//! - [`metrics`]: what the layer counts for `/metrics`.
//! - [`conn`]: the TCP connection under a request, and cutting it off.
//! - [`websocket`]: the WebSocket transport over actix-ws.
//! - [`session`]: the session actor (heartbeat, framing, polling, upgrade) and the
//!   [`EngineHandler`] trait, the seam to the layer above.
//! - [`endpoint`]: the HTTP endpoint: origin checks and CORS, the handshake, long-polling
//!   requests, WebSocket sessions and upgrades.

pub mod admission;
pub mod client;
pub mod conn;
pub mod endpoint;
pub mod metrics;
pub mod packet;
pub mod queue;
pub mod session;
pub mod settings;
pub mod transport;
pub mod websocket;

pub use admission::AdmissionLimits;
pub use client::{ClientInfo, IpNet};
pub use endpoint::{mount, EndpointOptions, EngineEndpoint, SOCKET_IO_PATH};
pub use metrics::EngineMetrics;
pub use session::{
    EngineConfig, EngineHandler, EngineIo, EngineMessage, EngineSession, SessionClose,
};
pub use transport::TransportKind;
