//! The server side of the Socket.IO Admin UI (`@socket.io/admin-ui` 0.5): the `/admin`
//! namespace, mounted beside the chat on the socket layer ([`crate::socketio::Mount`]).
//!
//! - [`socket`]: one admin socket: the login (a bcrypt password checked off the actix
//!   threads, rate-limited per client address, then a session id for reloads), `config`,
//!   `server_stats`, `all_sockets`, the live events, and the UI's actions (only when
//!   `admin.readonly` is false).
//! - [`hub`]: what the UI is told: the observer of every socket, counting, tracking (in
//!   development mode) and redacting.
//! - [`sessions`]: the login sessions (`admin.session_ttl`, `admin.max_sessions`).
//!
//! Off by default (`admin.enabled`). The UI's origins (`admin.origins`) get credentialed CORS
//! from the Engine.IO endpoint, which marks their sessions restricted: the socket layer lets
//! them CONNECT to `/admin` only.

pub mod app;
pub(crate) mod hub;
pub mod login;
pub mod mount;
pub mod protocol;
pub mod sessions;
pub mod settings;
pub mod socket;

pub use app::Admin;
pub use hub::{EngineStats, Hub};
pub use mount::layer_ext;
pub use protocol::{ADMIN_NAMESPACE, INVALID_CREDENTIALS, TOO_MANY_ADMINS, TOO_MANY_ATTEMPTS};
pub use sessions::Sessions;
