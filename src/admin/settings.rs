//! The admin UI's settings (`[admin]`) and their checks.

use std::fmt;

use serde::Deserialize;

use crate::rate::RateSettings;
use crate::setting::{http_origins, invalid, positive, Checked};

/// What the admin UI is shown (`admin.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminMode {
    /// Server statistics only.
    Production,
    /// Also every socket, its rooms and its events (names and sizes).
    Development,
}

/// `[admin]`: the Socket.IO Admin UI's `/admin` namespace.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    pub enabled: bool,
    pub username: String,
    /// A bcrypt hash (`courier hash-password`).
    pub password_hash: String,
    pub mode: AdminMode,
    pub readonly: bool,
    /// The UI's origins: credentialed CORS, for the `/admin` namespace only.
    pub origins: Vec<String>,
    /// Seconds a login session lasts.
    pub session_ttl: u64,
    /// Login sessions kept at most.
    pub max_sessions: usize,
    /// Admin sockets connected at once, at most.
    pub max_connections: usize,
    /// Logins (CONNECTs with a password) per client address.
    pub login_rate: RateSettings,
    /// Password checks (bcrypt) running at once, all addresses together.
    pub login_concurrency: usize,
    /// Logins waiting for a password check beyond `login_concurrency`, at most.
    pub login_queue: usize,
    /// Failed logins from all addresses together before every check backs off.
    pub login_failures: RateSettings,
    /// Milliseconds of backoff at most.
    pub login_backoff_max: u64,
    /// Milliseconds between `server_stats`.
    pub stats_interval: u64,
    /// Events buffered for the admin sockets; a socket that falls further behind loses some.
    pub event_buffer: usize,
    /// Sockets described at most in `all_sockets` (and tracked, in development mode).
    pub max_sockets: usize,
}

impl fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminSettings")
            .field("enabled", &self.enabled)
            .field("username", &self.username)
            .field("password_hash", &"<redacted>")
            .field("mode", &self.mode)
            .field("readonly", &self.readonly)
            .field("origins", &self.origins)
            .field("session_ttl", &self.session_ttl)
            .field("max_sessions", &self.max_sessions)
            .field("max_connections", &self.max_connections)
            .field("login_rate", &self.login_rate)
            .field("login_concurrency", &self.login_concurrency)
            .field("login_queue", &self.login_queue)
            .field("login_failures", &self.login_failures)
            .field("login_backoff_max", &self.login_backoff_max)
            .field("stats_interval", &self.stats_interval)
            .field("event_buffer", &self.event_buffer)
            .field("max_sockets", &self.max_sockets)
            .finish()
    }
}

impl AdminSettings {
    /// Whether every value can be used (when the admin UI is on, its login too).
    pub(crate) fn validate(&self) -> Checked {
        positive(&[
            ("admin.session_ttl", self.session_ttl),
            ("admin.max_sessions", self.max_sessions as u64),
            ("admin.max_connections", self.max_connections as u64),
            ("admin.login_concurrency", self.login_concurrency as u64),
            ("admin.stats_interval", self.stats_interval),
            ("admin.event_buffer", self.event_buffer as u64),
            ("admin.max_sockets", self.max_sockets as u64),
        ])?;
        self.login_rate.check("admin.login_rate")?;
        self.login_failures.check("admin.login_failures")?;
        http_origins("admin.origins", &self.origins)?;
        if !self.enabled {
            return Ok(());
        }
        if self.username.is_empty() {
            return Err(invalid("admin.username", "must not be empty"));
        }
        if self.password_hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(invalid(
                "admin.password_hash",
                "must be a bcrypt hash (make one with `courier hash-password`)",
            ));
        }
        Ok(())
    }
}
