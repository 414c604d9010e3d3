//! What the Engine.IO layer counts, for `/metrics` (the application registers it).

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::transport::TransportKind;

/// Engine.IO's series.
#[derive(Clone)]
pub struct EngineMetrics {
    /// Established sessions (the layer above accepted the client) by current transport.
    pub sockets: IntGaugeVec,
    /// Sessions not established yet (set at scrape time).
    pub pending: IntGauge,
    /// Sessions closed because the client stopped reading.
    pub slow_clients: IntCounter,
    /// Connections cut off because they were still open `engineio.close_timeout` after their
    /// transport ended, by transport.
    pub forced_closes: IntCounterVec,
    /// Times a session stopped reading from its client (back-pressure).
    pub pauses: IntCounter,
    /// Handshakes refused, by cause.
    pub refused: IntCounterVec,
}

impl EngineMetrics {
    /// The series, registered in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let m = EngineMetrics {
            sockets: IntGaugeVec::new(
                Opts::new(
                    "courier_sockets",
                    "Connected sockets (Socket.IO CONNECT accepted), by transport",
                ),
                &["transport"],
            )?,
            pending: IntGauge::new(
                "courier_sessions_pending",
                "Engine.IO sessions that have not completed a Socket.IO CONNECT",
            )?,
            slow_clients: IntCounter::new(
                "courier_slow_clients_total",
                "Sessions closed because the client stopped reading its output",
            )?,
            forced_closes: IntCounterVec::new(
                Opts::new(
                    "courier_forced_closes_total",
                    "Connections reset because they were still open engineio.close_timeout after \
                     their session or transport ended (a client that does not read what is \
                     still being written to it), by transport",
                ),
                &["transport"],
            )?,
            pauses: IntCounter::new(
                "courier_backpressure_pauses_total",
                "Times Courier stopped reading from a client until its requests were answered",
            )?,
            refused: IntCounterVec::new(
                Opts::new(
                    "courier_handshakes_refused_total",
                    "Handshakes refused with 503 Server busy, by cause (max_sessions, \
                     max_pending_sessions, max_pending_per_address, handshake_rate, fd_reserve, \
                     shutting_down)",
                ),
                &["cause"],
            )?,
        };
        registry.register(Box::new(m.sockets.clone()))?;
        registry.register(Box::new(m.pending.clone()))?;
        registry.register(Box::new(m.slow_clients.clone()))?;
        registry.register(Box::new(m.forced_closes.clone()))?;
        registry.register(Box::new(m.pauses.clone()))?;
        registry.register(Box::new(m.refused.clone()))?;
        for transport in [TransportKind::Polling, TransportKind::Websocket] {
            m.sockets.with_label_values(&[transport.as_str()]).set(0);
            m.forced_closes
                .with_label_values(&[transport.as_str()])
                .reset();
        }
        for cause in [
            "max_sessions",
            "max_pending_sessions",
            "max_pending_per_address",
            "handshake_rate",
            "fd_reserve",
            "shutting_down",
        ] {
            m.refused.with_label_values(&[cause]).reset();
        }
        Ok(m)
    }

    /// The counter of connections of `transport` cut off.
    pub(crate) fn forced_closes_on(&self, transport: TransportKind) -> IntCounter {
        self.forced_closes.with_label_values(&[transport.as_str()])
    }

    /// The gauge of established sessions on `transport`.
    pub(crate) fn sockets_on(&self, transport: TransportKind) -> IntGauge {
        self.sockets.with_label_values(&[transport.as_str()])
    }
}

impl std::fmt::Debug for EngineMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineMetrics")
    }
}
