//! The Socket.IO layer's settings (`[socketio]`) and their checks.

use std::time::Duration;

use serde::Deserialize;

use crate::setting::{positive, Checked};

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

impl SocketIoSettings {
    /// Whether every value can be used.
    pub(crate) fn validate(&self) -> Checked {
        positive(&[
            ("socketio.connect_timeout", self.connect_timeout),
            ("socketio.attachment_timeout", self.attachment_timeout),
        ])
    }
}
