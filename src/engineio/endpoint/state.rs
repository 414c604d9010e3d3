//! [`EngineEndpoint`], one Engine.IO endpoint: its options ([`EndpointOptions`]), how it
//! makes the handler of a new session, its live long-polling sessions, its admission
//! bounds and its shutdown stage; and the query string of a request ([`EngineQuery`]).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;

use crate::engineio::queue as mpsc;

use super::error::EngineError;
use crate::engineio::admission::{Admission, AdmissionLimits, Ticket};
use crate::engineio::client::{ClientInfo, IpNet};
use crate::engineio::metrics::EngineMetrics;
use crate::engineio::session::{EngineConfig, EngineHandler, Stage};
use crate::engineio::transport::{Inbound, TransportKind};

/// The query string of an Engine.IO request.
#[derive(Debug, Deserialize)]
pub struct EngineQuery {
    #[serde(rename = "EIO")]
    pub(super) eio: Option<String>,
    pub(super) transport: Option<String>,
    pub(super) sid: Option<String>,
}

/// How an Engine.IO endpoint behaves.
#[derive(Debug, Clone)]
pub struct EndpointOptions {
    /// Engine.IO parameters of new sessions.
    pub config: EngineConfig,
    /// Enabled transports.
    pub transports: Vec<TransportKind>,
    /// Outgoing packets buffered per session.
    pub max_buffered_packets: usize,
    /// Packets a session may buffer past `max_buffered_packets` in a burst its handler
    /// announces (a replay of what the client missed).
    pub burst_packets: usize,
    /// Allowed browser origins (requests without an `Origin` header are always allowed).
    pub cors_origins: Vec<String>,
    /// Origins also allowed (with the same credentialed CORS), whose sessions are marked
    /// [`ClientInfo::restricted`]: the origin of an application that may reach only part of
    /// the layer above (the admin UI, which may connect to its own namespace only). CORS is
    /// decided per request, before anything above Engine.IO is known, so the restriction is
    /// carried by the session.
    pub restricted_origins: Vec<String>,
    /// Also allow a browser request whose `Origin` is the very host it was sent to (its
    /// `Host` header): a page this server serves itself, such as the demo page.
    pub allow_same_origin: bool,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpNet>,
    /// Bounds on sessions (see [`crate::engineio::admission`]).
    pub admission: AdmissionLimits,
    /// Longest a long-polling POST may take to arrive.
    pub request_timeout: Duration,
    /// Longest a fragmented WebSocket message may take to complete.
    pub fragment_timeout: Duration,
    /// Longest a connection stays open after its transport (or its session) ended, before it
    /// is cut off ([`crate::engineio::conn`]).
    pub close_timeout: Duration,
    /// Where sessions are counted, if anywhere.
    pub metrics: Option<Arc<EngineMetrics>>,
}

impl EndpointOptions {
    /// A WebSocket's outgoing queue: the buffer, and room for a burst.
    pub(super) fn queue_capacity(&self) -> usize {
        self.max_buffered_packets.saturating_add(self.burst_packets)
    }
}

/// The live long-polling sessions of an endpoint, by sid: how to reach each one from any
/// worker (a WebSocket upgrade may arrive on another worker than the one that created it).
#[derive(Default)]
pub(super) struct Sessions {
    map: Mutex<HashMap<String, SessionEntry>>,
}

#[derive(Clone)]
pub(super) struct SessionEntry {
    pub(super) inbound: mpsc::Sender<Inbound>,
    /// A POST is being received.
    pub(super) posting: Arc<AtomicBool>,
    /// The GETs that reached the session, counted: the watch of an answered GET learns of
    /// the next one (its answer was taken), and of the session's end (this sender dropped
    /// with the entry).
    pub(super) gets: Arc<watch::Sender<u64>>,
}

impl Sessions {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionEntry>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn get(&self, sid: &str) -> Option<SessionEntry> {
        self.lock().get(sid).cloned()
    }
}

/// One Engine.IO endpoint: its settings and how to make the handler of a new session.
pub struct EngineEndpoint<H: EngineHandler> {
    pub(super) options: EndpointOptions,
    pub(super) factory: Arc<dyn Fn() -> H + Send + Sync>,
    pub(super) sessions: Arc<Sessions>,
    /// Drains, then closes, every session of this endpoint.
    pub(super) closing: watch::Sender<Stage>,
    pub(super) admission: Arc<Admission>,
}

impl<H: EngineHandler> EngineEndpoint<H> {
    /// An endpoint whose sessions get their handler from `factory`.
    pub fn new(options: EndpointOptions, factory: impl Fn() -> H + Send + Sync + 'static) -> Self {
        EngineEndpoint {
            admission: Admission::new(options.admission),
            options,
            factory: Arc::new(factory),
            sessions: Arc::default(),
            closing: watch::Sender::new(Stage::Running),
        }
    }

    /// `(sessions, sessions not established)` now.
    pub fn load(&self) -> (usize, usize) {
        self.admission.load()
    }

    /// Whether new sessions are admitted (`false` from the start of a shutdown).
    pub fn accepting(&self) -> bool {
        *self.closing.borrow() == Stage::Running
    }

    /// A place for a new session of `client`, if there is one (see
    /// [`busy`](super::error::busy)); none while shutting down.
    pub(super) fn admit(&self, client: &ClientInfo) -> Option<Ticket> {
        let refused = |cause: &str| {
            if let Some(m) = &self.options.metrics {
                m.refused.with_label_values(&[cause]).inc();
            }
        };
        if *self.closing.borrow() != Stage::Running {
            refused("shutting_down");
            return None;
        }
        match self.admission.admit(client.address) {
            Ok(ticket) => Some(ticket),
            Err(refusal) => {
                refused(refusal.label());
                None
            }
        }
    }

    /// Drains every session (the server is shutting down): nothing more is read from the
    /// clients, each session closes once its handler has finished what it was given, and
    /// new sessions are refused (503).
    pub(crate) fn drain_all(&self) {
        self.closing.send_if_modified(|stage| {
            let changed = *stage < Stage::Draining;
            if changed {
                *stage = Stage::Draining;
            }
            changed
        });
    }

    /// Closes every session, present and future, of this endpoint (before a shutdown):
    /// WebSocket clients get a close frame, a pending long-poll GET a close packet.
    pub fn close_all(&self) {
        self.closing.send_replace(Stage::Closing);
    }

    pub(super) fn check(&self, query: &EngineQuery) -> Result<TransportKind, EngineError> {
        if query.eio.as_deref() != Some("4") {
            return Err(EngineError::UnsupportedProtocolVersion);
        }
        let transport = match query.transport.as_deref() {
            Some("websocket") => TransportKind::Websocket,
            Some("polling") => TransportKind::Polling,
            _ => return Err(EngineError::UnknownTransport),
        };
        if !self.options.transports.contains(&transport) {
            return Err(EngineError::UnknownTransport);
        }
        Ok(transport)
    }
}
