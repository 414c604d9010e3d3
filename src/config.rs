//! Layered settings.
//!
//! Layers, later wins:
//! 1. `config/default.toml` as compiled into the binary (so `courier` runs from any directory);
//! 2. `config/default.toml` on disk, if present;
//! 3. `config/{COURIER_ENV}.toml` (optional);
//! 4. `config/local.toml` (optional, git-ignored);
//! 5. the file given with `--config PATH` (must exist);
//! 6. environment variables `COURIER__SECTION__KEY` (`COURIER__SERVER__PORT=4001`);
//! 7. the Node server's plain variables, for drop-in use: `PORT`, `DATABASE_URL`,
//!    `SOCKET_SECRET`, `NEXTJS_URL` (a comma-separated list of allowed origins), `REDIS_URL`.
//!
//! Every layer is kept apart so that a bad value can be reported with the layer it came from.
//!
//! With `COURIER_ENV=production`, `database.url` and `auth.secret` must be set by the
//! deployer: by the environment or by a file the repository does not ship (`config/{env}.toml`,
//! `config/local.toml`, `--config PATH`). The repository's `config/default.toml`, compiled in
//! or on disk, holds development defaults only and never counts as such a setting, wherever
//! Courier is started from.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat, Map, Value, ValueKind};
use serde::{Deserialize, Deserializer};

pub use crate::engineio::{IpNet, TransportKind};
pub use crate::rate::RateSettings;

/// The defaults, compiled in.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// The name of the compiled-in defaults' layer.
const BUILT_IN: &str = "built-in defaults";

/// The development secret shipped in `config/default.toml`.
pub const DEVELOPMENT_SECRET: &str = "courier-development-secret-do-not-use-in-production";

/// The shortest `auth.secret` production accepts, in bytes: an HS256 key shorter than the
/// hash can be brute-forced offline from any token it signed.
pub const MIN_SECRET_BYTES: usize = 32;

/// All of Courier's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub engineio: EngineIoSettings,
    pub socketio: SocketIoSettings,
    pub auth: AuthSettings,
    pub database: DatabaseSettings,
    pub chat: ChatSettings,
    pub presence: PresenceSettings,
    pub cors: CorsSettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub redis: RedisSettings,
    pub admin: AdminSettings,
    pub recovery: RecoverySettings,
    /// The value of `COURIER_ENV` (not a file key).
    #[serde(skip)]
    pub environment: Option<String>,
    /// Where `database.url` came from (a layer's name, e.g. `environment variable
    /// DATABASE_URL`), for error messages; `None` when it is `config/default.toml`'s own
    /// (the embedded SQLite file nobody chose).
    #[serde(skip)]
    pub database_url_source: Option<String>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub workers: usize,
    pub shutdown_timeout: u64,
    pub trusted_proxies: Vec<String>,
}

impl ServerSettings {
    /// `trusted_proxies` parsed (validated when the settings load).
    pub fn trusted_proxies(&self) -> Vec<IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

/// `[engineio]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineIoSettings {
    pub ping_interval: u64,
    pub ping_timeout: u64,
    pub max_payload: usize,
    pub transports: Vec<TransportKind>,
    pub max_buffered_packets: usize,
    pub max_sessions: usize,
    pub max_pending_sessions: usize,
    pub max_pending_per_address: usize,
    pub handshake_rate: RateSettings,
    pub exempt_loopback: bool,
    pub request_timeout: u64,
    pub fragment_timeout: u64,
}

impl EngineIoSettings {
    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval)
    }
    pub fn ping_timeout(&self) -> Duration {
        Duration::from_millis(self.ping_timeout)
    }
}

/// `[socketio]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketIoSettings {
    pub connect_timeout: u64,
    pub attachment_timeout: u64,
}

impl SocketIoSettings {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout)
    }
}

/// `[auth]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub secret: String,
    pub leeway: u64,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("secret", &"<redacted>")
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// When migrations run at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateSetting {
    /// Migrate unless the database is managed by Prisma (has `_prisma_migrations`).
    Auto,
    /// Always migrate.
    Always,
    /// Never migrate.
    Never,
}

impl<'de> Deserialize<'de> for MigrateSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(MigrateSetting::Always),
            Raw::Bool(false) => Ok(MigrateSetting::Never),
            Raw::Text(s) => match s.to_ascii_lowercase().as_str() {
                "auto" => Ok(MigrateSetting::Auto),
                "true" => Ok(MigrateSetting::Always),
                "false" => Ok(MigrateSetting::Never),
                other => Err(serde::de::Error::custom(format!(
                    "expected \"auto\", true or false, found {other:?}"
                ))),
            },
        }
    }
}

/// `[database]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub migrate: MigrateSetting,
    pub write_queue: usize,
    pub batch_max: usize,
    pub writers: usize,
    pub retry_for: u64,
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("migrate", &self.migrate)
            .field("write_queue", &self.write_queue)
            .field("batch_max", &self.batch_max)
            .field("writers", &self.writers)
            .field("retry_for", &self.retry_for)
            .finish()
    }
}

/// Hides the password part of a database URL for logging.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// `[chat]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSettings {
    pub max_content_chars: usize,
    pub send_window: usize,
    pub room_idle_timeout: u64,
    pub shards: usize,
    pub max_sockets_per_user: usize,
    pub max_notice_ids: usize,
    pub rate_limit: RateSettings,
    pub call_rate: RateSettings,
    /// Replaced by `send_window`: read only to warn about it.
    #[serde(default)]
    pub max_pending_sends: Option<u64>,
}

/// Who is told of a user's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceScope {
    /// The users who share an ACTIVE connection with them.
    Peers,
    /// Every socket (the Node server's behaviour).
    All,
}

/// `[presence]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceSettings {
    pub offline_grace: u64,
    pub legacy_events: bool,
    pub scope: PresenceScope,
    pub peers_ttl: u64,
    pub stale_after: u64,
    pub heartbeat_flush: u64,
}

/// `[cors]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    pub origins: Vec<String>,
}

/// `[metrics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `/metrics` and `/readyz` (and count).
    pub enabled: bool,
    /// Where they listen (`host:port`), apart from the public port.
    pub bind: String,
    /// Milliseconds `/readyz` waits for the database (and Redis) to answer.
    pub ready_timeout: u64,
}

/// `[redis]`: clustering over Redis, on the wire protocol of `@socket.io/redis-adapter`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://`, `rediss://`, `redis+sentinel://` or `redis+cluster://` URL
    /// (`crate::cluster::link`); empty: a single node, no Redis.
    pub url: String,
    /// The adapter's channel prefix (`socket.io`).
    pub key: String,
    /// Milliseconds a node's presence keys live unless it refreshes them.
    pub presence_ttl: u64,
    /// Milliseconds between two refreshes of this node's keys.
    pub refresh: u64,
    /// Milliseconds a request to the other nodes waits for their answers.
    pub request_timeout: u64,
    /// Most Socket.IO rooms a socket is in besides its own id and its user's (conversations
    /// joined, rooms other servers made it join).
    pub max_rooms_per_socket: usize,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("RedisSettings")
            .field("url", &crate::cluster::link::redacted(&self.url))
            .field("key", &self.key)
            .field("presence_ttl", &self.presence_ttl)
            .field("refresh", &self.refresh)
            .field("request_timeout", &self.request_timeout)
            .field("max_rooms_per_socket", &self.max_rooms_per_socket)
            .finish()
    }
}

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

impl RedisSettings {
    /// The URL, when clustering is on.
    pub fn url(&self) -> Option<&str> {
        Some(self.url.trim()).filter(|u| !u.is_empty())
    }
}

/// `[recovery]`: connection state recovery, replayed from the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySettings {
    /// CONNECT answers `{sid, pid}` and conversation events carry offsets.
    pub enabled: bool,
    /// Milliseconds after a disconnect during which a valid `pid` stands in for an expired
    /// (but genuine) token.
    pub max_disconnection: u64,
    /// Most missed events replayed; past it the client is not recovered.
    pub max_replay: usize,
    /// Most conversations one socket's offset tracks; past it the socket's offset no longer
    /// recovers (the client refetches).
    pub max_conversations: usize,
    /// Disconnected sessions' pid records kept at most.
    pub max_records: usize,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
}

/// Where to look for settings; `from_process` reads the real environment.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Directory holding `default.toml`, `{env}.toml`, `local.toml`. Default `config`.
    pub config_dir: Option<PathBuf>,
    /// The `--config PATH` file.
    pub config_file: Option<PathBuf>,
    /// The environment variables to consult.
    pub env: HashMap<String, String>,
}

impl LoadOptions {
    /// Options reading the process environment and `./config`.
    pub fn from_process(config_file: Option<PathBuf>) -> Self {
        LoadOptions {
            config_dir: None,
            config_file,
            env: std::env::vars().collect(),
        }
    }
}

/// A setting that could not be used: one line naming the key and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The offending key (`server.port`), when known.
    pub key: Option<String>,
    /// The layer it came from (`environment variable PORT`, `config/local.toml`, ...).
    pub source: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(
                f,
                "invalid setting `{key}` (from {}): {}",
                self.source, self.message
            ),
            None => write!(
                f,
                "invalid settings (from {}): {}",
                self.source, self.message
            ),
        }
    }
}

impl std::error::Error for SettingsError {}

/// The Node server's plain variables and the key each one sets.
const PLAIN_VARIABLES: [(&str, &str); 5] = [
    ("PORT", "server.port"),
    ("DATABASE_URL", "database.url"),
    ("SOCKET_SECRET", "auth.secret"),
    ("NEXTJS_URL", "cors.origins"),
    ("REDIS_URL", "redis.url"),
];

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: [&str; 4] = [
    "engineio.transports",
    "cors.origins",
    "server.trusted_proxies",
    "admin.origins",
];

struct Layer {
    name: String,
    config: Config,
    /// Set by the deployer (the environment, or a file the repository does not ship), as
    /// opposed to `config/default.toml`, compiled in or on disk.
    deployer: bool,
}

impl Settings {
    /// Loads and validates the layered settings.
    pub fn load(options: &LoadOptions) -> Result<Settings, SettingsError> {
        let layers = collect_layers(options)?;
        let mut builder = Config::builder();
        for layer in &layers {
            builder = builder.add_source(layer.config.clone());
        }
        let merged = builder.build().map_err(|e| from_config_error(e, &layers))?;
        let mut settings: Settings = merged
            .try_deserialize()
            .map_err(|e| from_config_error(e, &layers))?;
        settings.environment = options
            .env
            .get("COURIER_ENV")
            .filter(|v| !v.is_empty())
            .cloned();
        settings.database_url_source = deployer_source_of("database.url", &layers);
        settings.validate(&layers)?;
        Ok(settings)
    }

    /// Whether `COURIER_ENV=production`.
    pub fn is_production(&self) -> bool {
        self.environment.as_deref() == Some("production")
    }

    /// Warnings about settings that are accepted but should change (one line each).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.chat.max_pending_sends.is_some() {
            warnings.push(
                "chat.max_pending_sends is no longer used: a busy server slows a client \
                 down instead of refusing its messages; set chat.send_window instead"
                    .to_string(),
            );
        }
        if !self.is_production()
            && !self.uses_development_secret()
            && self.auth.secret.len() < MIN_SECRET_BYTES
        {
            warnings.push(format!(
                "auth.secret is {} bytes, shorter than {MIN_SECRET_BYTES}: it can be brute-forced \
                 offline from any token it signed; COURIER_ENV=production refuses it",
                self.auth.secret.len()
            ));
        }
        if self.is_production() && self.redis.url().is_none() {
            warnings.push(
                "redis.url is not set: this node is a cluster of one (no Redis); several \
                 nodes behind one load balancer would not deliver between each other"
                    .to_string(),
            );
        }
        warnings
    }

    /// Whether `database.url` is `config/default.toml`'s (the embedded SQLite file), set by
    /// no deployer.
    pub fn database_is_default(&self) -> bool {
        self.database_url_source.is_none()
    }

    /// Whether the built-in development secret is in use.
    pub fn uses_development_secret(&self) -> bool {
        self.auth.secret == DEVELOPMENT_SECRET
    }

    /// The interface to bind: `server.host`, except with the development secret, when
    /// anyone could forge tokens: then loopback only (`::1` if `server.host` is IPv6,
    /// `127.0.0.1` otherwise), whatever `server.host` says.
    pub fn bind_host(&self) -> &str {
        if !self.uses_development_secret() {
            return &self.server.host;
        }
        if self.server.host.contains(':') {
            "::1"
        } else {
            "127.0.0.1"
        }
    }

    fn validate(&self, layers: &[Layer]) -> Result<(), SettingsError> {
        let fail = |key: &str, message: String| SettingsError {
            key: Some(key.to_string()),
            source: source_of(key, layers),
            message,
        };
        if self.auth.secret.trim().is_empty() {
            return Err(fail("auth.secret", "must not be empty".into()));
        }
        if self.is_production() && self.uses_development_secret() {
            return Err(fail(
                "auth.secret",
                "the built-in development secret is refused with COURIER_ENV=production; \
                 set SOCKET_SECRET"
                    .into(),
            ));
        }
        if self.is_production() {
            self.validate_production(layers, &fail)?;
        }
        if self.engineio.transports.is_empty() {
            return Err(fail(
                "engineio.transports",
                "at least one of \"polling\", \"websocket\" is needed".into(),
            ));
        }
        for (key, value) in [
            ("engineio.ping_interval", self.engineio.ping_interval),
            ("engineio.ping_timeout", self.engineio.ping_timeout),
            ("socketio.connect_timeout", self.socketio.connect_timeout),
            ("engineio.max_payload", self.engineio.max_payload as u64),
            (
                "engineio.max_buffered_packets",
                self.engineio.max_buffered_packets as u64,
            ),
            ("chat.max_content_chars", self.chat.max_content_chars as u64),
            ("chat.max_notice_ids", self.chat.max_notice_ids as u64),
            ("chat.send_window", self.chat.send_window as u64),
            ("chat.room_idle_timeout", self.chat.room_idle_timeout),
            ("database.write_queue", self.database.write_queue as u64),
            ("database.batch_max", self.database.batch_max as u64),
            ("database.writers", self.database.writers as u64),
            ("presence.peers_ttl", self.presence.peers_ttl),
            ("engineio.max_sessions", self.engineio.max_sessions as u64),
            (
                "engineio.max_pending_sessions",
                self.engineio.max_pending_sessions as u64,
            ),
            (
                "engineio.max_pending_per_address",
                self.engineio.max_pending_per_address as u64,
            ),
            ("engineio.request_timeout", self.engineio.request_timeout),
            ("engineio.fragment_timeout", self.engineio.fragment_timeout),
            (
                "socketio.attachment_timeout",
                self.socketio.attachment_timeout,
            ),
            (
                "chat.max_sockets_per_user",
                self.chat.max_sockets_per_user as u64,
            ),
            ("presence.stale_after", self.presence.stale_after),
            ("presence.heartbeat_flush", self.presence.heartbeat_flush),
            ("metrics.ready_timeout", self.metrics.ready_timeout),
            ("redis.presence_ttl", self.redis.presence_ttl),
            ("redis.refresh", self.redis.refresh),
            ("redis.request_timeout", self.redis.request_timeout),
            (
                "redis.max_rooms_per_socket",
                self.redis.max_rooms_per_socket as u64,
            ),
            ("admin.session_ttl", self.admin.session_ttl),
            ("admin.max_sessions", self.admin.max_sessions as u64),
            ("admin.max_connections", self.admin.max_connections as u64),
            (
                "admin.login_concurrency",
                self.admin.login_concurrency as u64,
            ),
            ("admin.stats_interval", self.admin.stats_interval),
            ("admin.event_buffer", self.admin.event_buffer as u64),
            ("admin.max_sockets", self.admin.max_sockets as u64),
            ("recovery.max_replay", self.recovery.max_replay as u64),
            ("recovery.max_records", self.recovery.max_records as u64),
            (
                "recovery.max_conversations",
                self.recovery.max_conversations as u64,
            ),
        ] {
            if value == 0 {
                return Err(fail(key, "must be greater than 0".into()));
            }
        }
        for (key, rate) in [
            ("chat.rate_limit", self.chat.rate_limit),
            ("chat.call_rate", self.chat.call_rate),
            ("engineio.handshake_rate", self.engineio.handshake_rate),
            ("admin.login_rate", self.admin.login_rate),
        ] {
            if !rate.per_second.is_finite() || rate.per_second < 0.0 {
                return Err(fail(key, "per_second must be a number >= 0".into()));
            }
            if rate.per_second > 0.0 && rate.burst == 0 {
                return Err(fail(
                    key,
                    "burst must be at least 1 when the limit is on".into(),
                ));
            }
        }
        if self.metrics.enabled {
            use std::net::ToSocketAddrs;
            if self
                .metrics
                .bind
                .to_socket_addrs()
                .map_or(true, |mut a| a.next().is_none())
            {
                return Err(fail(
                    "metrics.bind",
                    format!(
                        "{:?} is not an address to listen on (host:port, e.g. 127.0.0.1:9464)",
                        self.metrics.bind
                    ),
                ));
            }
        }
        if self.presence.heartbeat_flush >= self.presence.stale_after {
            return Err(fail(
                "presence.heartbeat_flush",
                "must be shorter than presence.stale_after, or online users would look stale"
                    .into(),
            ));
        }
        if self.database.batch_max > crate::chat::persistence::MAX_BATCH {
            return Err(fail(
                "database.batch_max",
                format!(
                    "must be at most {} (the databases' limit on statement parameters)",
                    crate::chat::persistence::MAX_BATCH
                ),
            ));
        }
        if let Some(e) = self
            .server
            .trusted_proxies
            .iter()
            .find_map(|p| p.parse::<IpNet>().err())
        {
            return Err(fail("server.trusted_proxies", e));
        }
        if self.server.host.trim().is_empty() {
            return Err(fail("server.host", "must not be empty".into()));
        }
        if let Some(url) = self.redis.url() {
            if let Err(e) = crate::cluster::link::Target::parse(url) {
                return Err(fail("redis.url", e));
            }
        }
        if self.redis.url().is_some() && self.redis.key.is_empty() {
            return Err(fail("redis.key", "must not be empty".into()));
        }
        if self.redis.refresh >= self.redis.presence_ttl {
            return Err(fail(
                "redis.refresh",
                "must be shorter than redis.presence_ttl, or live nodes' keys would expire".into(),
            ));
        }
        if self.database.url.trim().is_empty() {
            return Err(fail("database.url", "must not be empty".into()));
        }
        if let Some(origin) = self
            .cors
            .origins
            .iter()
            .find(|o| !(o.starts_with("http://") || o.starts_with("https://")))
        {
            return Err(fail(
                "cors.origins",
                format!("{origin:?} is not an http(s) origin"),
            ));
        }
        self.validate_admin(&fail)?;
        Ok(())
    }

    /// What `COURIER_ENV=production` requires beyond the rest: the database and the secret
    /// set by the deployer (see the module's documentation), and a secret of at least
    /// [`MIN_SECRET_BYTES`].
    fn validate_production(
        &self,
        layers: &[Layer],
        fail: &dyn Fn(&str, String) -> SettingsError,
    ) -> Result<(), SettingsError> {
        const NAMED: &str = "config/production.toml, config/local.toml or --config FILE";
        if deployer_source_of("auth.secret", layers).is_none() {
            return Err(fail(
                "auth.secret",
                format!(
                    "COURIER_ENV=production needs the secret set by the deployer: SOCKET_SECRET \
                     (or auth.secret in {NAMED}), not config/default.toml"
                ),
            ));
        }
        if self.auth.secret.len() < MIN_SECRET_BYTES {
            return Err(fail(
                "auth.secret",
                format!(
                    "is {} bytes; COURIER_ENV=production needs at least {MIN_SECRET_BYTES} (a \
                     shorter HS256 secret can be brute-forced offline from any token); use the \
                     app's SOCKET_SECRET, made e.g. with `openssl rand -base64 48`",
                    self.auth.secret.len()
                ),
            ));
        }
        if self.database_url_source.is_none() {
            return Err(fail(
                "database.url",
                format!(
                    "COURIER_ENV=production needs the database set by the deployer: \
                     DATABASE_URL (or database.url in {NAMED}), not config/default.toml's \
                     SQLite file"
                ),
            ));
        }
        Ok(())
    }

    fn validate_admin(
        &self,
        fail: &dyn Fn(&str, String) -> SettingsError,
    ) -> Result<(), SettingsError> {
        let admin = &self.admin;
        if let Some(origin) = admin
            .origins
            .iter()
            .find(|o| !(o.starts_with("http://") || o.starts_with("https://")))
        {
            return Err(fail(
                "admin.origins",
                format!("{origin:?} is not an http(s) origin"),
            ));
        }
        let same = |a: &String, b: &String| {
            a.trim_end_matches('/')
                .eq_ignore_ascii_case(b.trim_end_matches('/'))
        };
        if let Some(origin) = admin
            .origins
            .iter()
            .find(|o| self.cors.origins.iter().any(|c| same(o, c)))
        {
            return Err(fail(
                "admin.origins",
                format!(
                    "{origin:?} is in cors.origins too: the admin UI's origin must be one of \
                     its own (its sessions may connect to /admin only)"
                ),
            ));
        }
        if !admin.enabled {
            return Ok(());
        }
        if admin.username.is_empty() {
            return Err(fail("admin.username", "must not be empty".into()));
        }
        if admin.password_hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(fail(
                "admin.password_hash",
                "must be a bcrypt hash (make one with `courier hash-password`)".into(),
            ));
        }
        Ok(())
    }
}

fn file_layer<S>(name: String, source: S, deployer: bool) -> Result<Layer, SettingsError>
where
    S: config::Source + Send + Sync + 'static,
{
    let config = Config::builder()
        .add_source(source)
        .build()
        .map_err(|e| SettingsError {
            key: None,
            source: name.clone(),
            message: e.to_string(),
        })?;
    Ok(Layer {
        name,
        config,
        deployer,
    })
}

fn collect_layers(options: &LoadOptions) -> Result<Vec<Layer>, SettingsError> {
    let dir = options
        .config_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("config"));
    let mut layers = Vec::new();
    layers.push(file_layer(
        BUILT_IN.into(),
        File::from_str(DEFAULT_TOML, FileFormat::Toml),
        false,
    )?);
    // The repository's own defaults on disk count as defaults, not as the deployer's choice.
    let mut optional = vec![(dir.join("default.toml"), false)];
    if let Some(env) = options.env.get("COURIER_ENV").filter(|v| !v.is_empty()) {
        optional.push((dir.join(format!("{env}.toml")), true));
    }
    optional.push((dir.join("local.toml"), true));
    for (path, deployer) in optional {
        if path.is_file() {
            layers.push(file_layer(
                path.display().to_string(),
                File::from(path.clone()).format(FileFormat::Toml),
                deployer,
            )?);
        }
    }
    if let Some(path) = &options.config_file {
        if !path.is_file() {
            return Err(SettingsError {
                key: None,
                source: format!("--config {}", path.display()),
                message: "file not found".into(),
            });
        }
        layers.push(file_layer(
            path.display().to_string(),
            File::from(path.clone()).format(FileFormat::Toml),
            true,
        )?);
    }

    // COURIER__SECTION__KEY
    let mut env_source = Environment::with_prefix("COURIER")
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .source(Some(options.env.clone()));
    for key in LIST_KEYS {
        env_source = env_source.with_list_parse_key(key);
    }
    let env_config = Config::builder()
        .add_source(env_source)
        .build()
        .map_err(|e| SettingsError {
            key: None,
            source: "environment (COURIER__*)".into(),
            message: e.to_string(),
        })?;
    layers.push(Layer {
        name: "environment (COURIER__*)".into(),
        config: env_config,
        deployer: true,
    });

    // The Node server's plain variables, each its own layer.
    for (var, key) in PLAIN_VARIABLES {
        let Some(raw) = options.env.get(var) else {
            continue;
        };
        let origin = format!("environment variable {var}");
        let value = if LIST_KEYS.contains(&key) {
            let items: Vec<Value> = raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::new(Some(&origin), s))
                .collect();
            Value::new(Some(&origin), ValueKind::Array(items))
        } else {
            Value::new(Some(&origin), raw.as_str())
        };
        let config = Config::builder()
            .set_override(key, value)
            .and_then(|b| b.build())
            .map_err(|e| SettingsError {
                key: Some(key.into()),
                source: origin.clone(),
                message: e.to_string(),
            })?;
        layers.push(Layer {
            name: origin,
            config,
            deployer: true,
        });
    }
    Ok(layers)
}

/// The last layer that sets `key`.
fn layer_of<'a>(key: &str, layers: &'a [Layer]) -> Option<&'a Layer> {
    layers
        .iter()
        .rev()
        .find(|layer| layer.config.get::<Value>(key).is_ok())
}

/// The name of a layer for a human, as the source of `key`.
fn layer_name(key: &str, layer: &Layer) -> String {
    if layer.name.starts_with("environment (") {
        return format!(
            "environment variable COURIER__{}",
            key.to_ascii_uppercase().replace('.', "__")
        );
    }
    layer.name.clone()
}

/// The last layer that sets `key`, named for a human.
fn source_of(key: &str, layers: &[Layer]) -> String {
    layer_of(key, layers).map_or_else(|| "unknown source".into(), |l| layer_name(key, l))
}

/// The source of `key`, when the deployer set it (not `config/default.toml`).
fn deployer_source_of(key: &str, layers: &[Layer]) -> Option<String> {
    layer_of(key, layers)
        .filter(|layer| layer.deployer)
        .map(|layer| layer_name(key, layer))
}

fn from_config_error(error: config::ConfigError, layers: &[Layer]) -> SettingsError {
    let text = error.to_string();
    // config-rs names the key as "for key `a.b`" in its messages.
    let key = field_in(&text, "for key `");
    let message = text
        .split_once(" for key `")
        .map(|(head, _)| head.to_string())
        .unwrap_or_else(|| text.clone());
    // A list element is reported as `list[i]`: name the list.
    let key = key.map(|k| match k.split_once('[') {
        Some((list, _)) => list.to_string(),
        None => k,
    });
    // An unknown key (deny_unknown_fields) is reported on its section; name the field.
    let key = match (key, field_in(&text, "unknown field `")) {
        (Some(section), Some(field)) => Some(format!("{section}.{field}")),
        (None, Some(_)) => unknown_field_key(&text, layers),
        (key, None) => key,
    };
    let source = match &key {
        Some(key) => source_of(key, layers),
        None => "settings".into(),
    };
    SettingsError {
        key,
        source,
        message,
    }
}

/// The backquoted name after `marker` in an error text.
fn field_in(text: &str, marker: &str) -> Option<String> {
    text.split_once(marker)
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(f, _)| f.to_string())
}

/// Finds the full key of an `unknown field `x`` error by looking for it in the layers.
fn unknown_field_key(text: &str, layers: &[Layer]) -> Option<String> {
    let field = field_in(text, "unknown field `")?;
    for layer in layers.iter().rev() {
        if let Ok(table) = layer.config.clone().try_deserialize::<Map<String, Value>>() {
            if table.contains_key(&field) {
                return Some(field);
            }
            for (section, value) in table {
                if let Ok(inner) = value.into_table() {
                    if inner.contains_key(&field) {
                        return Some(format!("{section}.{field}"));
                    }
                }
            }
        }
    }
    Some(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret long enough for production.
    const LONG: &str = "a-production-secret-of-forty-bytes-0123";

    fn load(env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        Settings::load(&LoadOptions {
            config_dir: Some(PathBuf::from("/nonexistent-courier-config")),
            config_file: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    #[test]
    fn the_old_max_pending_sends_is_accepted_with_a_warning_naming_its_replacement() {
        assert!(load(&[]).unwrap().warnings().is_empty());
        let s = load(&[("COURIER__CHAT__MAX_PENDING_SENDS", "64")]).unwrap();
        let warnings = s.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("chat.max_pending_sends"),
            "{}",
            warnings[0]
        );
        assert!(warnings[0].contains("chat.send_window"), "{}", warnings[0]);
        assert!(!warnings[0].contains('\n'), "one line");
        assert_eq!(s.chat.send_window, 32, "the default window applies");
    }

    #[test]
    fn batch_max_is_bounded_by_the_statement_parameter_limit() {
        assert_eq!(load(&[]).unwrap().database.batch_max, 512);
        let e = load(&[("COURIER__DATABASE__BATCH_MAX", "5000")]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("database.batch_max"));
        assert!(load(&[("COURIER__DATABASE__BATCH_MAX", "2978")]).is_ok());
        let e = load(&[("COURIER__CHAT__SEND_WINDOW", "0")]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("chat.send_window"));
    }

    #[test]
    fn the_development_secret_binds_loopback_only() {
        let dev = load(&[("COURIER__SERVER__HOST", "0.0.0.0")]).unwrap();
        assert!(dev.uses_development_secret());
        assert_eq!(dev.bind_host(), "127.0.0.1");
        let dev6 = load(&[("COURIER__SERVER__HOST", "::")]).unwrap();
        assert_eq!(dev6.bind_host(), "::1");
        let real = load(&[
            ("COURIER__SERVER__HOST", "0.0.0.0"),
            ("SOCKET_SECRET", "a-real-secret"),
        ])
        .unwrap();
        assert_eq!(real.bind_host(), "0.0.0.0");
    }

    #[test]
    fn production_needs_an_explicit_database() {
        let e = load(&[("COURIER_ENV", "production"), ("SOCKET_SECRET", LONG)]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("database.url"));
        assert!(e.message.contains("DATABASE_URL"), "{e}");
        let s = load(&[
            ("COURIER_ENV", "production"),
            ("SOCKET_SECRET", LONG),
            ("DATABASE_URL", "postgres://u@h/db"),
        ])
        .unwrap();
        assert_eq!(
            s.database_url_source.as_deref(),
            Some("environment variable DATABASE_URL")
        );
        // Outside production the built-in SQLite file is fine.
        let s = load(&[("SOCKET_SECRET", LONG)]).unwrap();
        assert!(s.database_is_default());
    }

    /// The repository's config/default.toml on disk is not the deployer's choice, whatever it
    /// says; config/{env}.toml, config/local.toml, --config and the environment are.
    #[test]
    fn production_does_not_count_the_repositorys_default_toml() {
        let dir = std::env::temp_dir().join(format!("courier-prod-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("default.toml"),
            format!("[auth]\nsecret = \"{LONG}\"\n[database]\nurl = \"postgres://u@h/db\"\n"),
        )
        .unwrap();
        let load_in = |env: &[(&str, &str)], file: Option<PathBuf>| {
            Settings::load(&LoadOptions {
                config_dir: Some(dir.clone()),
                config_file: file,
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })
        };
        let production = ("COURIER_ENV", "production");
        let e = load_in(&[production], None).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("auth.secret"), "{e}");
        assert!(e.message.contains("SOCKET_SECRET"), "{e}");
        let e = load_in(&[production, ("SOCKET_SECRET", LONG)], None).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("database.url"), "{e}");
        // Outside production the file applies as any layer.
        let s = load_in(&[], None).unwrap();
        assert_eq!(s.database.url, "postgres://u@h/db");
        assert!(s.database_is_default());
        // Files the deployer adds count.
        let named = format!("[auth]\nsecret = \"{LONG}\"\n[database]\nurl = \"sqlite::memory:\"\n");
        std::fs::write(dir.join("production.toml"), &named).unwrap();
        let s = load_in(&[production], None).unwrap();
        assert_eq!(s.database.url, "sqlite::memory:");
        std::fs::remove_file(dir.join("production.toml")).unwrap();
        std::fs::write(dir.join("local.toml"), &named).unwrap();
        assert!(load_in(&[production], None).is_ok());
        std::fs::remove_file(dir.join("local.toml")).unwrap();
        let extra = dir.join("deploy.toml");
        std::fs::write(&extra, &named).unwrap();
        assert!(load_in(&[production], Some(extra)).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn production_refuses_a_short_secret_and_development_warns() {
        let short = &LONG[..MIN_SECRET_BYTES - 1];
        let e = load(&[
            ("COURIER_ENV", "production"),
            ("SOCKET_SECRET", short),
            ("DATABASE_URL", "postgres://u@h/db"),
        ])
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("auth.secret"));
        assert_eq!(e.source, "environment variable SOCKET_SECRET");
        assert!(
            e.message.contains("31 bytes") && e.message.contains("32"),
            "{e}"
        );
        assert!(load(&[
            ("COURIER_ENV", "production"),
            ("SOCKET_SECRET", &LONG[..MIN_SECRET_BYTES]),
            ("DATABASE_URL", "postgres://u@h/db"),
        ])
        .is_ok());
        // Development: accepted, with one warning naming the setting.
        let warnings = load(&[("SOCKET_SECRET", short)]).unwrap().warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("auth.secret"), "{}", warnings[0]);
        assert!(!warnings[0].contains('\n'));
        assert!(load(&[("SOCKET_SECRET", LONG)])
            .unwrap()
            .warnings()
            .is_empty());
    }

    #[test]
    fn defaults_are_the_node_servers() {
        let s = load(&[]).unwrap();
        assert_eq!(s.server.host, "0.0.0.0");
        assert_eq!(s.server.port, 4000);
        assert_eq!(s.engineio.ping_interval, 25_000);
        assert_eq!(s.engineio.ping_timeout, 20_000);
        assert_eq!(s.engineio.max_payload, 1_000_000);
        assert_eq!(
            s.engineio.transports,
            vec![TransportKind::Polling, TransportKind::Websocket]
        );
        assert_eq!(s.socketio.connect_timeout, 45_000);
        assert_eq!(s.auth.leeway, 0);
        assert_eq!(s.database.url, "sqlite://courier.db?mode=rwc");
        assert_eq!(s.database.migrate, MigrateSetting::Auto);
        assert!(s.uses_development_secret());
    }

    #[test]
    fn nested_environment_overrides_files() {
        let s = load(&[
            ("COURIER__SERVER__PORT", "4100"),
            ("COURIER__ENGINEIO__TRANSPORTS", "websocket"),
            ("COURIER__DATABASE__MIGRATE", "false"),
        ])
        .unwrap();
        assert_eq!(s.server.port, 4100);
        assert_eq!(s.engineio.transports, vec![TransportKind::Websocket]);
        assert_eq!(s.database.migrate, MigrateSetting::Never);
    }

    #[test]
    fn plain_node_variables_win() {
        let s = load(&[
            ("COURIER__SERVER__PORT", "4100"),
            ("PORT", "4200"),
            ("SOCKET_SECRET", "s3cret"),
            ("DATABASE_URL", "postgres://u:pw@localhost/db"),
            ("NEXTJS_URL", "http://a.example, https://b.example"),
            ("REDIS_URL", "redis://:rpw@redis.example:6380/0"),
        ])
        .unwrap();
        assert_eq!(s.server.port, 4200);
        assert_eq!(s.redis.url(), Some("redis://:rpw@redis.example:6380/0"));
        assert!(!format!("{:?}", s).contains("rpw"));
        assert_eq!(s.auth.secret, "s3cret");
        assert_eq!(s.database.url, "postgres://u:pw@localhost/db");
        assert_eq!(
            s.cors.origins,
            vec!["http://a.example", "https://b.example"]
        );
        assert!(!format!("{:?}", s).contains("pw@"));
        assert!(!format!("{:?}", s).contains("s3cret"));
    }

    #[test]
    fn redis_is_off_by_default_and_checked_when_set() {
        let s = load(&[]).unwrap();
        assert_eq!(s.redis.url(), None);
        assert_eq!(s.redis.key, "socket.io");
        let e = load(&[("REDIS_URL", "http://nope")]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("redis.url"), "{e}");
        assert!(load(&[("COURIER__REDIS__URL", "rediss://u:p@h:6380")]).is_ok());
        assert!(load(&[("REDIS_URL", "redis+sentinel://h1:26379,h2:26379/mymaster")]).is_ok());
        assert!(load(&[("REDIS_URL", "redis+cluster://h1:7000,h2:7001")]).is_ok());
        let e = load(&[("REDIS_URL", "redis+sentinel://:secret@h1:26379")]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("redis.url"), "{e}");
        assert!(e.to_string().contains("master"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
        let production = [
            ("COURIER_ENV", "production"),
            ("SOCKET_SECRET", LONG),
            ("DATABASE_URL", "postgres://u@h/db"),
        ];
        let s = load(&production).unwrap();
        assert!(s.warnings().iter().any(|w| w.contains("redis.url")));
        let s = load(&[production.as_slice(), &[("REDIS_URL", "redis://h")]].concat()).unwrap();
        assert!(!s.warnings().iter().any(|w| w.contains("redis.url")));
    }

    #[test]
    fn bad_port_names_key_and_source() {
        let e = load(&[("PORT", "forty")]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("server.port"));
        assert_eq!(e.source, "environment variable PORT");
        let e = load(&[("COURIER__SERVER__PORT", "99999")]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("server.port"));
        assert_eq!(e.source, "environment variable COURIER__SERVER__PORT");
    }

    #[test]
    fn unknown_transport_is_refused() {
        let e = load(&[("COURIER__ENGINEIO__TRANSPORTS", "websocket,carrier-pigeon")]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("engineio.transports"), "{e}");
        assert!(e.to_string().contains("carrier-pigeon"), "{e}");
    }

    #[test]
    fn empty_secret_is_refused() {
        let e = load(&[("SOCKET_SECRET", "")]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("auth.secret"));
        assert_eq!(e.source, "environment variable SOCKET_SECRET");
    }

    #[test]
    fn production_refuses_development_secret() {
        let e = load(&[("COURIER_ENV", "production")]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("auth.secret"));
        let s = load(&[
            ("COURIER_ENV", "production"),
            ("SOCKET_SECRET", LONG),
            ("DATABASE_URL", "postgres://u@h/db"),
        ])
        .unwrap();
        assert!(s.is_production());
    }

    #[test]
    fn config_file_layer_and_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("courier-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("extra.toml");
        std::fs::write(&file, "[server]\nport = 4300\nprot = 1\n").unwrap();
        let e = Settings::load(&LoadOptions {
            config_dir: Some(dir.clone()),
            config_file: Some(file.clone()),
            env: HashMap::new(),
        })
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("server.prot"), "{e}");
        assert_eq!(e.source, file.display().to_string());
        std::fs::write(&file, "[server]\nport = 4300\n").unwrap();
        std::fs::write(
            dir.join("local.toml"),
            "[server]\nport = 4400\nhost = \"127.0.0.1\"\n",
        )
        .unwrap();
        let s = Settings::load(&LoadOptions {
            config_dir: Some(dir.clone()),
            config_file: Some(file),
            env: HashMap::new(),
        })
        .unwrap();
        assert_eq!(s.server.port, 4300, "--config wins over local.toml");
        assert_eq!(s.server.host, "127.0.0.1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://user:secret@host:5432/db"),
            "postgres://user:***@host:5432/db"
        );
        assert_eq!(redact_url("sqlite://courier.db"), "sqlite://courier.db");
    }
}
