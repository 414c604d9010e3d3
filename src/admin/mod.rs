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

pub mod hub;
pub mod login;
pub mod sessions;
pub mod socket;

use std::net::IpAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::config::{AdminMode, AdminSettings};
use crate::rate::KeyedLimiter;
use crate::socketio::{LayerExt, Mount, Namespace};

pub use hub::{EngineStats, Hub};
pub use sessions::Sessions;

/// The admin UI's namespace.
pub const ADMIN_NAMESPACE: &str = "/admin";

/// The `connect_error` message of a refused login, the one the UI recognizes.
pub const INVALID_CREDENTIALS: &str = "invalid credentials";

/// The `connect_error` message past `admin.login_rate`.
pub const TOO_MANY_ATTEMPTS: &str = "too many login attempts, try again later";

/// The `connect_error` message past `admin.max_connections`.
pub const TOO_MANY_ADMINS: &str = "too many admin connections";

/// The admin application: settings, login state and the hub.
pub struct Admin {
    pub(crate) username: String,
    pub(crate) password_hash: Arc<str>,
    pub(crate) readonly: bool,
    pub(crate) development: bool,
    pub(crate) max_connections: usize,
    pub(crate) connections: Arc<AtomicUsize>,
    pub(crate) sessions: Sessions,
    pub(crate) logins: KeyedLimiter<Option<IpAddr>>,
    pub(crate) gate: login::LoginGate,
    pub hub: Arc<Hub>,
}

impl Admin {
    /// The admin application of `settings`; `engine` reads the Engine.IO numbers.
    pub fn new(settings: &AdminSettings, engine: EngineStats) -> Arc<Admin> {
        let development = settings.mode == AdminMode::Development;
        Arc::new(Admin {
            username: settings.username.clone(),
            password_hash: settings.password_hash.as_str().into(),
            readonly: settings.readonly,
            development,
            max_connections: settings.max_connections,
            connections: Arc::default(),
            sessions: Sessions::new(
                Duration::from_secs(settings.session_ttl),
                settings.max_sessions,
            ),
            logins: KeyedLimiter::new(settings.login_rate),
            gate: login::LoginGate::new(
                settings.login_concurrency,
                settings.login_queue,
                settings.login_failures,
                Duration::from_millis(settings.login_backoff_max),
            ),
            hub: Arc::new(Hub::new(
                development,
                settings.max_sockets,
                settings.event_buffer,
                engine,
            )),
        })
    }

    /// Starts sending `server_stats` every `interval` (on the current actix system), for as
    /// long as the admin application exists.
    pub fn start_stats(self: &Arc<Self>, interval: Duration) {
        let admin: Weak<Admin> = Arc::downgrade(self);
        actix_web::rt::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(admin) = admin.upgrade() else {
                    break;
                };
                admin.hub.tick();
            }
        });
    }

    /// The socket layer's extension: `/admin` mounted, the hub observing.
    pub fn layer_ext(self: &Arc<Self>) -> Arc<LayerExt> {
        Arc::new(LayerExt {
            mount: Some(Arc::new(AdminMount(self.clone()))),
            observer: Some(self.hub.clone()),
        })
    }

    /// The admin UI's features: its actions only when not read-only (and in development
    /// mode, where the sockets they address are known).
    pub fn features(&self) -> Vec<&'static str> {
        let mut features = Vec::new();
        if !self.readonly && self.development {
            features.extend([
                "EMIT",
                "JOIN",
                "LEAVE",
                "DISCONNECT",
                "MJOIN",
                "MLEAVE",
                "MDISCONNECT",
            ]);
        }
        features.push("AGGREGATED_EVENTS");
        if self.development {
            features.push("ALL_EVENTS");
        }
        features
    }
}

/// `/admin` on the socket layer.
struct AdminMount(Arc<Admin>);

impl Mount for AdminMount {
    fn namespace(&self) -> &str {
        ADMIN_NAMESPACE
    }

    fn socket(&self) -> Box<dyn Namespace> {
        Box::new(socket::AdminSocket::new(self.0.clone()))
    }
}
