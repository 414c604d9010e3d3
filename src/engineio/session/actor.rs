//! [`EngineSession`], the session actor: what it holds and how it is built ([`Start`]: on
//! a WebSocket or on long-polling; [`Stage`]: following the endpoint's shutdown). What it
//! does is in [`super::lifecycle`], [`super::inbound`] and [`super::upgrade`].

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::watch;

use crate::engineio::queue as mpsc;

use super::flow::Flow;
use super::polling::Polling;
use super::state::{Burst, Core, EngineConfig, Transport};
use crate::engineio::admission::Ticket;
use crate::engineio::client::ClientInfo;
use crate::engineio::metrics::EngineMetrics;
use crate::engineio::transport::{Inbound, Kill, Outbound, SessionLink};

/// Where the endpoint is in its life; sessions follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Serving.
    Running,
    /// Shutting down: sessions read nothing more from their clients and close once their
    /// handlers have finished what they were given
    /// ([`EngineHandler::on_drain`](super::handler::EngineHandler::on_drain)).
    Draining,
    /// Every session closes now.
    Closing,
}

/// How a new session starts.
pub enum Start {
    /// On a WebSocket.
    WebSocket {
        /// The WebSocket's transport id.
        id: u64,
        /// Its outbound queue.
        outbound: mpsc::Sender<Outbound>,
        /// Ends it at once.
        kill: Kill,
    },
    /// On HTTP long-polling.
    Polling {
        /// Most packets buffered for the client before it counts as not reading.
        buffer_limit: usize,
        /// The upgrades offered in the handshake (`["websocket"]` or none).
        upgrades: Vec<String>,
    },
}

/// An Engine.IO session; `H` is the protocol carried inside.
pub struct EngineSession<H> {
    pub(super) core: Core,
    pub(super) handler: H,
    pub(super) inbound: Option<mpsc::Receiver<Inbound>>,
    pub(super) upgrades: Vec<String>,
    pub(super) on_stop: Option<Box<dyn FnOnce()>>,
    pub(super) closing: Option<watch::Receiver<Stage>>,
    /// The handler was told the session closed.
    pub(super) close_notified: bool,
}

impl<H> EngineSession<H> {
    /// A WebSocket session with id `sid` over `link`; start it with
    /// [`Actor::start`](actix::Actor::start).
    pub fn new(sid: String, config: EngineConfig, link: SessionLink, handler: H) -> Self {
        Self::with_transport(
            sid,
            config,
            link.inbound,
            Start::WebSocket {
                id: link.id,
                outbound: link.outbound,
                kill: link.kill,
            },
            handler,
        )
    }

    /// A session with id `sid` fed by `inbound`, starting on the transport `start` says.
    pub(crate) fn with_transport(
        sid: String,
        config: EngineConfig,
        inbound: mpsc::Receiver<Inbound>,
        start: Start,
        handler: H,
    ) -> Self {
        let (transport, upgrades) = match start {
            Start::WebSocket { id, outbound, kill } => (
                Transport::WebSocket {
                    id,
                    out: outbound,
                    kill,
                },
                Vec::new(),
            ),
            Start::Polling {
                buffer_limit,
                upgrades,
            } => (
                Transport::Polling(Box::new(Polling::new(buffer_limit))),
                upgrades,
            ),
        };
        EngineSession {
            core: Core {
                sid: sid.into(),
                config,
                transport,
                pong_deadline: None,
                pong_due: None,
                flow: Flow::default(),
                held: VecDeque::new(),
                resume_scheduled: false,
                draining: false,
                client: ClientInfo::default(),
                ticket: None,
                metrics: None,
                burst: Burst::default(),
                counted: None,
                closed: None,
            },
            handler,
            inbound: Some(inbound),
            upgrades,
            on_stop: None,
            closing: None,
            close_notified: false,
        }
    }

    /// Follows the endpoint's `stage`: drains, then closes, as the server shuts down.
    pub(crate) fn closing_on(mut self, closing: watch::Receiver<Stage>) -> Self {
        self.closing = Some(closing);
        self
    }

    /// What the request that opened the session tells about the client, and the
    /// session's place among the endpoint's sessions.
    pub fn client(mut self, client: ClientInfo, ticket: Ticket) -> Self {
        self.core.client = client;
        self.core.ticket = Some(ticket);
        self
    }

    /// Lets the handler queue up to `packets` past the buffer's limit in a burst it announces
    /// ([`EngineIo::allow_burst`](super::EngineIo::allow_burst)); a WebSocket's queue must
    /// hold that many more.
    pub(crate) fn burst(mut self, packets: usize) -> Self {
        self.core.burst.cap = packets;
        self
    }

    /// Counts the session in `metrics`.
    pub fn metrics(mut self, metrics: Option<Arc<EngineMetrics>>) -> Self {
        self.core.metrics = metrics;
        self
    }

    /// Runs `f` once the session has stopped (e.g. to forget it in a registry).
    pub(crate) fn on_stop(mut self, f: impl FnOnce() + 'static) -> Self {
        self.on_stop = Some(Box::new(f));
        self
    }
}
