//! The HTTP server's settings (`[server]`: the public listener; `[metrics]`: the operators'
//! port) and their checks.

use serde::Deserialize;

use crate::engineio::IpNet;
use crate::setting::{invalid, positive, Checked};

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

/// Whether the server's settings can be used.
pub(crate) fn validate(server: &ServerSettings, metrics: &MetricsSettings) -> Checked {
    positive(&[("metrics.ready_timeout", metrics.ready_timeout)])?;
    if metrics.enabled {
        use std::net::ToSocketAddrs;
        if metrics
            .bind
            .to_socket_addrs()
            .map_or(true, |mut a| a.next().is_none())
        {
            return Err(invalid(
                "metrics.bind",
                format!(
                    "{:?} is not an address to listen on (host:port, e.g. 127.0.0.1:9464)",
                    metrics.bind
                ),
            ));
        }
    }
    if let Some(e) = server
        .trusted_proxies
        .iter()
        .find_map(|p| p.parse::<IpNet>().err())
    {
        return Err(invalid("server.trusted_proxies", e));
    }
    if server.host.trim().is_empty() {
        return Err(invalid("server.host", "must not be empty"));
    }
    Ok(())
}
