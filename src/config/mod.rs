//! Layered settings: [`Settings`], loaded from layers, each layer's section checked by
//! the layer that owns it (`engineio::settings`, `chat::settings`, …); this folder only
//! loads ([`load`]), composes and checks what only the whole can ([`settings`]), and reports
//! ([`error`]).
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

pub mod error;
pub(crate) mod layers;
pub mod load;
pub mod settings;

pub use error::SettingsError;
pub use load::LoadOptions;
pub use settings::{LogSettings, Settings, DEFAULT_TOML, DEVELOPMENT_SECRET, MIN_SECRET_BYTES};

// Each section's type, where the layer that owns it keeps it (for those who compose).
pub use crate::admin::settings::{AdminMode, AdminSettings};
pub use crate::auth::AuthSettings;
pub use crate::chat::settings::{ChatSettings, PresenceScope, PresenceSettings, RecoverySettings};
pub use crate::cluster::RedisSettings;
pub use crate::db::settings::{DatabaseSettings, MigrateSetting};
pub use crate::engineio::settings::{CorsSettings, EngineIoSettings};
pub use crate::engineio::{IpNet, TransportKind};
pub use crate::http::settings::{MetricsSettings, ServerSettings};
pub use crate::rate::RateSettings;
pub use crate::setting::redact_url;
pub use crate::socketio::settings::SocketIoSettings;

#[cfg(test)]
mod tests;
