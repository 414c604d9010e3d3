//! [`Admin`]: the admin application (its settings, its login state, its [`Hub`]) and the
//! namespace it mounts on the socket layer; the messages the UI recognizes.

use std::net::IpAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::settings::{AdminMode, AdminSettings};
use crate::rate::KeyedLimiter;

use super::hub::{EngineStats, Hub};
use super::login;
use super::sessions::Sessions;

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
    pub(crate) fn start_stats(self: &Arc<Self>, interval: Duration) {
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
