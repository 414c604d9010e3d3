//! The Engine.IO layer's settings (`[engineio]`, and `[cors]`, the browser origins its
//! endpoint admits) and their checks.

use std::time::Duration;

use serde::Deserialize;

use super::transport::TransportKind;
use crate::rate::RateSettings;
use crate::setting::{http_origins, invalid, positive, Checked};

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
    pub close_timeout: u64,
    pub fd_reserve: usize,
}

impl EngineIoSettings {
    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval)
    }
    pub fn ping_timeout(&self) -> Duration {
        Duration::from_millis(self.ping_timeout)
    }
    pub fn close_timeout(&self) -> Duration {
        Duration::from_millis(self.close_timeout)
    }
}

impl EngineIoSettings {
    /// Whether every value can be used.
    pub(crate) fn validate(&self) -> Checked {
        if self.transports.is_empty() {
            return Err(invalid(
                "engineio.transports",
                "at least one of \"polling\", \"websocket\" is needed",
            ));
        }
        positive(&[
            ("engineio.ping_interval", self.ping_interval),
            ("engineio.ping_timeout", self.ping_timeout),
            ("engineio.max_payload", self.max_payload as u64),
            (
                "engineio.max_buffered_packets",
                self.max_buffered_packets as u64,
            ),
            ("engineio.max_sessions", self.max_sessions as u64),
            (
                "engineio.max_pending_sessions",
                self.max_pending_sessions as u64,
            ),
            (
                "engineio.max_pending_per_address",
                self.max_pending_per_address as u64,
            ),
            ("engineio.request_timeout", self.request_timeout),
            ("engineio.fragment_timeout", self.fragment_timeout),
            ("engineio.close_timeout", self.close_timeout),
        ])?;
        self.handshake_rate.check("engineio.handshake_rate")
    }
}

/// `[cors]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    pub origins: Vec<String>,
}

impl CorsSettings {
    /// Whether every origin is one.
    pub(crate) fn validate(&self) -> Checked {
        http_origins("cors.origins", &self.origins)
    }
}
