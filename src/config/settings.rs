//! [`Settings`]: every layer's settings composed (each layer owns its section's type and
//! its checks), what only the whole can check (production's rules, one layer's setting
//! against another's), and what the binary asks of them.

use serde::Deserialize;

use super::error::SettingsError;
use super::layers::{deployer_source_of, source_of, Layer};
use crate::admin::settings::AdminSettings;
use crate::auth::AuthSettings;
use crate::chat::settings::{ChatSettings, PresenceSettings, RecoverySettings};
use crate::cluster::RedisSettings;
use crate::db::settings::DatabaseSettings;
use crate::engineio::settings::{CorsSettings, EngineIoSettings};
use crate::http::settings::{MetricsSettings, ServerSettings};
use crate::setting::{Checked, Invalid};
use crate::socketio::settings::SocketIoSettings;

/// The defaults, compiled in.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

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

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
}

impl Settings {
    /// Whether `COURIER_ENV=production`.
    pub(crate) fn is_production(&self) -> bool {
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
    pub(crate) fn database_is_default(&self) -> bool {
        self.database_url_source.is_none()
    }

    /// Whether the built-in development secret is in use.
    pub(crate) fn uses_development_secret(&self) -> bool {
        self.auth.secret == DEVELOPMENT_SECRET
    }

    /// The interface to bind: `server.host`, except with the development secret, when
    /// anyone could forge tokens: then loopback only (`::1` if `server.host` is IPv6,
    /// `127.0.0.1` otherwise), whatever `server.host` says.
    pub(crate) fn bind_host(&self) -> &str {
        if !self.uses_development_secret() {
            return &self.server.host;
        }
        if self.server.host.contains(':') {
            "::1"
        } else {
            "127.0.0.1"
        }
    }

    /// Whether the settings can be used: each layer's own checks, then what only the whole
    /// can tell (production's rules, what one layer's setting means for another's).
    pub(super) fn validate(&self, layers: &[Layer]) -> Result<(), SettingsError> {
        let fail = |key: &str, message: String| SettingsError {
            key: Some(key.to_string()),
            source: source_of(key, layers),
            message,
        };
        let layer =
            |checked: Checked| checked.map_err(|Invalid { key, message }| fail(&key, message));
        layer(self.auth.validate())?;
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
        layer(self.engineio.validate())?;
        layer(self.socketio.validate())?;
        layer(crate::chat::settings::validate(
            &self.chat,
            &self.presence,
            &self.recovery,
        ))?;
        layer(self.database.validate())?;
        layer(crate::http::settings::validate(&self.server, &self.metrics))?;
        layer(self.redis.validate())?;
        layer(self.cors.validate())?;
        layer(self.admin.validate())?;
        self.validate_origins(&fail)
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

    /// The admin UI's origins are its own: none is also one of `cors.origins` (the chat's).
    fn validate_origins(
        &self,
        fail: &dyn Fn(&str, String) -> SettingsError,
    ) -> Result<(), SettingsError> {
        let same = |a: &String, b: &String| {
            a.trim_end_matches('/')
                .eq_ignore_ascii_case(b.trim_end_matches('/'))
        };
        if let Some(origin) = self
            .admin
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
        Ok(())
    }
}
