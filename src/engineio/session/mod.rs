//! The Engine.IO session actor.
//!
//! One [`EngineSession`] per Engine.IO connection. It owns the heartbeat, the Engine.IO
//! packet framing and the transport link, and knows nothing of Socket.IO: everything carried
//! in `message` packets goes to its [`EngineHandler`], which answers through [`EngineIo`].
//!
//! - this file: the actor, its heartbeat, reading (and pausing reading), queuing output and
//!   closing;
//! - [`handler`]: the [`EngineHandler`] trait and [`EngineIo`];
//! - [`polling`]: HTTP long-polling (GETs take buffered output, POSTs bring packets);
//! - [`upgrade`]: the probe and upgrade of a polling session to WebSocket.
//!
//! Heartbeat (Engine.IO v4): the server queues a ping (`2`) every `ping_interval`; when no
//! pong (`3`) arrives within `ping_timeout` of queuing it, the session closes. While the
//! handler has paused reading (or holds a long-polling POST, which keeps the client from
//! sending anything), the client's pong may be waiting unread, so a deadline that
//! passes then closes nothing: pings go on at their usual pace (the client takes a silent
//! server for a dead one), and the first ping after reading resumes has its deadline again.
//!
//! Transports: a session starts on WebSocket, or on HTTP long-polling (output buffered until
//! a GET takes it, input from POSTs). A polling session may be upgraded: a WebSocket with its
//! sid becomes the probe (`2probe` → `3probe`, a pending GET is answered with a noop so the
//! client pauses polling), `5` completes the upgrade and everything still buffered is
//! flushed over the WebSocket in order. The actor is the same before and after: only the
//! transport underneath changes.

pub mod handler;
mod polling;
mod upgrade;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, SpawnHandle, StreamHandler,
};
use bytestring::ByteString;
use futures_util::Stream;
use log::{debug, info, warn};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::watch;

use super::admission::Ticket;
use super::client::ClientInfo;
use super::endpoint::TransportKind;
use super::metrics::EngineMetrics;
use super::packet::{Handshake, Packet};
use super::transport::{
    CloseReason, Inbound, Kill, Outbound, PollReply, SessionLink, WsEvent, CLOSE_NORMAL,
    CLOSE_POLICY, CLOSE_PROTOCOL, CLOSE_TOO_BIG,
};
pub use handler::{EngineHandler, EngineIo, EngineMessage};
use polling::Polling;

/// Engine.IO parameters of a session.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Time between server pings.
    pub ping_interval: Duration,
    /// Time the client has to answer a ping.
    pub ping_timeout: Duration,
    /// Largest accepted message, in bytes (announced in the handshake).
    pub max_payload: usize,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionClose {
    /// The client closed the transport or sent a close packet.
    TransportClose,
    /// The transport failed.
    TransportError(String),
    /// A message above `max_payload`.
    TooLarge,
    /// No pong within `ping_timeout`.
    PingTimeout,
    /// The client broke the protocol (an undecodable or unexpected packet).
    ProtocolError(String),
    /// The client stopped reading and its outgoing queue filled up.
    SlowClient,
    /// The handler (the upper layer) closed the session.
    ServerClose(&'static str),
}

impl SessionClose {
    /// Whether a polling client may still come for its last packets (the server closed).
    fn client_may_poll_again(&self) -> bool {
        matches!(
            self,
            SessionClose::ServerClose(_) | SessionClose::ProtocolError(_) | SessionClose::TooLarge
        )
    }

    fn close_code(&self) -> u16 {
        match self {
            SessionClose::TooLarge => CLOSE_TOO_BIG,
            SessionClose::ProtocolError(_) => CLOSE_PROTOCOL,
            SessionClose::SlowClient => CLOSE_POLICY,
            _ => CLOSE_NORMAL,
        }
    }
}

/// The transport a session currently sends through.
enum Transport {
    /// A WebSocket; `id` tells its frames apart from those of any other WebSocket.
    WebSocket {
        id: u64,
        out: mpsc::Sender<Outbound>,
        kill: Kill,
    },
    /// HTTP long-polling (boxed: most sessions are WebSockets).
    Polling(Box<Polling>),
    /// Closed, with one last answer for the client's next long-polling GET (for at most
    /// [`DRAIN_WAIT`]): what was buffered and the close packet when the server closed, a
    /// noop when the client did.
    Draining(String),
    /// The session has closed.
    Closed,
}

/// How long a closing WebSocket may take to send what is queued before it is dropped.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// How long a closed polling session keeps its last answer for the client's next GET.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// Where the endpoint is in its life; sessions follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Serving.
    Running,
    /// Shutting down: sessions read nothing more from their clients and close once their
    /// handlers have finished what they were given ([`EngineHandler::on_drain`]).
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

/// Whether the session takes what the client sends.
#[derive(Default)]
struct Flow {
    /// The handler paused reading.
    paused: bool,
    /// Shared with the inbound stream: closed while a WebSocket session is paused.
    gate: Rc<Gate>,
}

/// Stops the inbound stream from yielding (so the WebSocket reader blocks on the bounded
/// channel and stops reading the socket).
#[derive(Default)]
struct Gate {
    closed: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Gate {
    fn set_closed(&self, closed: bool) {
        self.closed.set(closed);
        if !closed {
            if let Some(waker) = self.waker.borrow_mut().take() {
                waker.wake();
            }
        }
    }
}

/// The session's inbound channel as a stream that yields nothing while the gate is closed.
struct GatedInbound {
    rx: mpsc::Receiver<Inbound>,
    gate: Rc<Gate>,
}

impl Stream for GatedInbound {
    type Item = Inbound;

    fn poll_next(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Option<Inbound>> {
        let this = self.get_mut();
        if this.gate.closed.get() {
            *this.gate.waker.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        this.rx.poll_recv(cx)
    }
}

struct Core {
    sid: Arc<str>,
    config: EngineConfig,
    transport: Transport,
    pong_deadline: Option<SpawnHandle>,
    /// When the outstanding ping times out, counted from when it was due (timers fire a
    /// little late; the deadline does not move with them).
    pong_due: Option<Instant>,
    flow: Flow,
    /// Packets the client sent that wait for reading to resume, oldest first (the rest of
    /// a long-polling POST).
    held: VecDeque<Packet>,
    /// Held packets are to be handled at the end of the current turn (reading resumed).
    resume_scheduled: bool,
    /// The server is shutting down: reading stays paused.
    draining: bool,
    /// Who the client is.
    client: ClientInfo,
    /// The session's place among the endpoint's sessions (given back when it stops).
    ticket: Option<Ticket>,
    /// Where the session is counted, if anywhere.
    metrics: Option<Arc<EngineMetrics>>,
    /// The transport this session is counted on as established.
    counted: Option<TransportKind>,
    closed: Option<SessionClose>,
}

/// An Engine.IO session; `H` is the protocol carried inside.
pub struct EngineSession<H: EngineHandler> {
    core: Core,
    handler: H,
    inbound: Option<mpsc::Receiver<Inbound>>,
    upgrades: Vec<String>,
    on_stop: Option<Box<dyn FnOnce()>>,
    closing: Option<watch::Receiver<Stage>>,
    /// The handler was told the session closed.
    close_notified: bool,
}

impl<H: EngineHandler> EngineSession<H> {
    /// A WebSocket session with id `sid` over `link`; start it with [`Actor::start`].
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
    pub fn with_transport(
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
    pub fn closing_on(mut self, closing: watch::Receiver<Stage>) -> Self {
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

    /// Counts the session in `metrics`.
    pub fn metrics(mut self, metrics: Option<Arc<EngineMetrics>>) -> Self {
        self.core.metrics = metrics;
        self
    }

    /// Runs `f` once the session has stopped (e.g. to forget it in a registry).
    pub fn on_stop(mut self, f: impl FnOnce() + 'static) -> Self {
        self.on_stop = Some(Box::new(f));
        self
    }

    /// Runs `f` with the handler and its [`EngineIo`], then handles what the handler's
    /// resuming released.
    fn with_handler<R>(
        &mut self,
        ctx: &mut Context<Self>,
        f: impl FnOnce(&mut H, &mut EngineIo<'_, H>) -> R,
    ) -> R {
        let mut io = EngineIo {
            core: &mut self.core,
            ctx,
        };
        f(&mut self.handler, &mut io)
    }

    fn schedule_ping(&mut self, ctx: &mut Context<Self>) {
        self.schedule_ping_in(self.core.config.ping_interval, ctx);
    }

    /// Sends the next ping after `delay`.
    fn schedule_ping_in(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        let ping_at = Instant::now() + delay;
        ctx.run_later(delay, move |act, ctx| {
            if act.core.closed.is_some() {
                return;
            }
            act.core
                .queue(Outbound::Text(ByteString::from_static("2")), ctx);
            act.core
                .arm_pong_deadline(ping_at + act.core.config.ping_timeout, ctx);
        });
    }

    /// One Engine.IO packet from the client, whichever transport carried it.
    fn on_packet(&mut self, packet: Packet, ctx: &mut Context<Self>) {
        match packet {
            Packet::Message(body) => {
                self.with_handler(ctx, |h, io| h.on_message(EngineMessage::Text(body), io))
            }
            Packet::Binary(data) => {
                self.with_handler(ctx, |h, io| h.on_message(EngineMessage::Binary(data), io))
            }
            Packet::Pong(_) => {
                self.core.pong_due = None;
                if let Some(deadline) = self.core.pong_deadline.take() {
                    ctx.cancel_future(deadline);
                    self.schedule_ping(ctx);
                }
                self.with_handler(ctx, |h, io| h.on_pong(io));
            }
            Packet::Ping(data) => {
                let pong = Packet::Pong(data).encode();
                self.core.queue(Outbound::Text(pong.into()), ctx);
            }
            Packet::Close => self.on_client_close(ctx),
            Packet::Noop | Packet::Upgrade => {}
            Packet::Open(_) => self.core.close(
                SessionClose::ProtocolError("open packet from a client".into()),
                ctx,
            ),
        }
    }

    fn on_ws(&mut self, id: u64, event: WsEvent, ctx: &mut Context<Self>) {
        let active = matches!(&self.core.transport, Transport::WebSocket { id: current, .. } if *current == id);
        if !active {
            self.on_probe_event(id, event, ctx);
            return;
        }
        match event {
            WsEvent::Text(text) => match Packet::decode_text(&text) {
                Ok(packet) => self.on_packet(packet, ctx),
                Err(e) => self
                    .core
                    .close(SessionClose::ProtocolError(e.to_string()), ctx),
            },
            WsEvent::Binary(data) => self.on_packet(Packet::Binary(data), ctx),
            WsEvent::Closed(CloseReason::ClientClosed) => {
                self.core.close(SessionClose::TransportClose, ctx)
            }
            WsEvent::Closed(CloseReason::TooLarge) => self.core.close(SessionClose::TooLarge, ctx),
            WsEvent::Closed(CloseReason::TransportError(e)) => {
                self.core.close(SessionClose::TransportError(e), ctx)
            }
        }
    }

    /// Handles what was held while reading was paused, until it is paused again; a held
    /// long-polling POST is answered once all its packets are taken.
    fn drain_held(&mut self, ctx: &mut Context<Self>) {
        self.core.resume_scheduled = false;
        while !self.core.flow.paused && self.core.closed.is_none() {
            match self.core.held.pop_front() {
                Some(packet) => self.on_packet(packet, ctx),
                None => {
                    if let Transport::Polling(polling) = &mut self.core.transport {
                        if let Some(reply) = polling.held_reply.take() {
                            let _ = reply.send(PollReply::Ok("ok".into()));
                        }
                    }
                    break;
                }
            }
        }
        self.core.update_gate();
    }

    /// Once the session has closed: the handler learns of it (at once, even while a
    /// long-polling session waits for its client's last GET).
    fn notify_close(&mut self) {
        if let Some(reason) = self.core.closed.clone() {
            if !self.close_notified {
                self.close_notified = true;
                self.handler.on_close(&reason);
            }
        }
    }
}

impl Core {
    /// Queues an item for the client; a full queue means the client stopped reading.
    fn queue<H: EngineHandler>(&mut self, item: Outbound, ctx: &mut Context<EngineSession<H>>) {
        match &mut self.transport {
            Transport::WebSocket { out, .. } => match out.try_send(item) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    warn!("session {}: outgoing queue full, disconnecting", self.sid);
                    if let Some(m) = &self.metrics {
                        m.slow_clients.inc();
                    }
                    self.close(SessionClose::SlowClient, ctx);
                }
                Err(TrySendError::Closed(_)) => self.close(SessionClose::TransportClose, ctx),
            },
            Transport::Polling(polling) => {
                if !polling.push(item, ctx) {
                    warn!("session {}: polling buffer full, disconnecting", self.sid);
                    if let Some(m) = &self.metrics {
                        m.slow_clients.inc();
                    }
                    self.close(SessionClose::SlowClient, ctx);
                }
            }
            Transport::Draining(_) | Transport::Closed => {}
        }
    }

    /// Starts the pong deadline of a ping; it fires at `due` unless reading is paused then.
    fn arm_pong_deadline<H: EngineHandler>(
        &mut self,
        due: Instant,
        ctx: &mut Context<EngineSession<H>>,
    ) {
        self.pong_due = Some(due);
        let timeout = due.saturating_duration_since(Instant::now());
        self.pong_deadline = Some(ctx.run_later(timeout, |act, ctx| {
            if act.core.pong_may_wait() {
                // The pong may be waiting unread behind the pause: decide after resuming.
                // Pings go on at their usual pace meanwhile, or the client would take the
                // silence for a dead server.
                act.core.pong_due = None;
                act.core.pong_deadline = None;
                let config = &act.core.config;
                let next = config.ping_interval.saturating_sub(config.ping_timeout);
                act.schedule_ping_in(next, ctx);
                return;
            }
            debug!("session {}: no pong within ping_timeout", act.core.sid);
            act.core.close(SessionClose::PingTimeout, ctx);
        }));
    }

    /// Whether the client's pong may be unread through no fault of its own: reading is
    /// paused, or a long-polling POST is held (the client sends nothing more until it is
    /// answered).
    fn pong_may_wait(&self) -> bool {
        self.flow.paused
            || matches!(&self.transport, Transport::Polling(p) if p.held_reply.is_some())
    }

    /// The inbound stream is held back while a WebSocket session is paused or still has
    /// held packets to handle first; long-polling requests always get through (GETs must
    /// take output; POSTs are held by the session itself).
    fn update_gate(&self) {
        let hold = matches!(self.transport, Transport::WebSocket { .. })
            && (self.flow.paused || !self.held.is_empty());
        self.flow.gate.set_closed(hold);
    }

    fn pause(&mut self) {
        if !self.flow.paused {
            if let Some(m) = &self.metrics {
                m.pauses.inc();
            }
        }
        self.flow.paused = true;
        self.update_gate();
    }

    /// The transport the session is on, if it is open.
    fn transport_kind(&self) -> Option<TransportKind> {
        match self.transport {
            Transport::WebSocket { .. } => Some(TransportKind::Websocket),
            Transport::Polling(_) => Some(TransportKind::Polling),
            Transport::Draining(_) | Transport::Closed => None,
        }
    }

    /// The session is established: counted on its transport (once).
    fn count_established(&mut self) {
        if self.counted.is_some() {
            return;
        }
        if let (Some(m), Some(kind)) = (&self.metrics, self.transport_kind()) {
            m.sockets_on(kind).inc();
            self.counted = Some(kind);
        }
    }

    /// Moves the session's count to the transport it is on now (none once it closed).
    fn recount(&mut self) {
        let Some(was) = self.counted else {
            return;
        };
        let now = self.transport_kind();
        if now != Some(was) {
            if let Some(m) = &self.metrics {
                m.sockets_on(was).dec();
                if let Some(now) = now {
                    m.sockets_on(now).inc();
                }
            }
            self.counted = now;
        }
    }

    fn resume<H: EngineHandler>(&mut self, ctx: &mut Context<EngineSession<H>>) {
        if !self.flow.paused || self.draining {
            return;
        }
        self.flow.paused = false;
        self.update_gate();
        // Held packets are handled at the end of this turn, outside the handler's call.
        if !self.resume_scheduled {
            self.resume_scheduled = true;
            ctx.run_later(Duration::ZERO, |act, ctx| act.drain_held(ctx));
        }
    }

    fn close<H: EngineHandler>(
        &mut self,
        reason: SessionClose,
        ctx: &mut Context<EngineSession<H>>,
    ) {
        if self.closed.is_some() {
            return;
        }
        match &reason {
            SessionClose::TransportClose | SessionClose::ServerClose(_) => {
                debug!("session {} closed: {:?}", self.sid, reason)
            }
            _ => info!("session {} closed: {:?}", self.sid, reason),
        }
        let transport = std::mem::replace(&mut self.transport, Transport::Closed);
        self.recount();
        self.update_gate();
        match transport {
            Transport::WebSocket { out, kill, .. } => {
                // After what is queued, close with a code that says why; a client that does
                // not read that within the grace period (or whose queue is full) is cut off.
                if out.try_send(Outbound::Close(reason.close_code())).is_ok() {
                    kill.fire_after(KILL_GRACE);
                } else {
                    kill.fire();
                }
            }
            Transport::Polling(polling) => {
                if let Some(payload) = polling.close(reason.close_code()) {
                    if reason.client_may_poll_again() {
                        // Keep the last packets (and the close) for the client's next GET.
                        self.drain(payload, reason, ctx);
                        return;
                    }
                }
            }
            Transport::Draining(_) | Transport::Closed => {}
        }
        self.closed = Some(reason);
        ctx.stop();
    }

    /// Closed, with `payload` kept for the client's next long-polling GET.
    fn drain<H: EngineHandler>(
        &mut self,
        payload: String,
        reason: SessionClose,
        ctx: &mut Context<EngineSession<H>>,
    ) {
        self.transport = Transport::Draining(payload);
        self.update_gate();
        self.closed = Some(reason);
        ctx.run_later(Duration::ZERO, |act, _ctx| act.notify_close());
        ctx.run_later(DRAIN_WAIT, |_act, ctx| ctx.stop());
    }
}

impl<H: EngineHandler> Actor for EngineSession<H> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let open = Packet::Open(Handshake {
            sid: self.core.sid.to_string(),
            upgrades: self.upgrades.clone(),
            ping_interval: self.core.config.ping_interval.as_millis() as u64,
            ping_timeout: self.core.config.ping_timeout.as_millis() as u64,
            max_payload: self.core.config.max_payload as u64,
        });
        self.core.queue(Outbound::Text(open.encode().into()), ctx);
        if let Some(rx) = self.inbound.take() {
            ctx.add_stream(GatedInbound {
                rx,
                gate: self.core.flow.gate.clone(),
            });
        }
        self.schedule_ping(ctx);
        if let Some(mut stage) = self.closing.take() {
            // The endpoint's shutdown: first drain (read nothing more, let the handler finish
            // what it has), then close whatever is left. A gone endpoint closes too.
            let draining = async move {
                let drained = stage.wait_for(|s| *s >= Stage::Draining).await.is_err();
                (stage, drained)
            };
            ctx.spawn(actix::fut::wrap_future::<_, Self>(draining).map(
                |(mut stage, gone), act, ctx| {
                    if gone {
                        return act
                            .core
                            .close(SessionClose::ServerClose("server shutting down"), ctx);
                    }
                    act.core.draining = true;
                    act.core.pause();
                    act.with_handler(ctx, |h, io| h.on_drain(io));
                    let closing = async move {
                        let _ = stage.wait_for(|s| *s >= Stage::Closing).await;
                    };
                    ctx.spawn(
                        actix::fut::wrap_future::<_, Self>(closing).map(|_, act, ctx| {
                            act.core
                                .close(SessionClose::ServerClose("server shutting down"), ctx);
                        }),
                    );
                },
            ));
        }
        debug!("session {} opened", self.core.sid);
        self.with_handler(ctx, |h, io| h.on_open(io));
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if self.core.closed.is_none() {
            self.core.closed = Some(SessionClose::TransportClose);
        }
        self.notify_close();
        if let Some(on_stop) = self.on_stop.take() {
            on_stop();
        }
    }
}

impl<H: EngineHandler> StreamHandler<Inbound> for EngineSession<H> {
    fn handle(&mut self, item: Inbound, ctx: &mut Self::Context) {
        // A ping answered too late is a timeout, even if its timer has not fired yet.
        if self.core.closed.is_none()
            && !self.core.pong_may_wait()
            && self.core.pong_due.is_some_and(|due| Instant::now() >= due)
        {
            self.core.close(SessionClose::PingTimeout, ctx);
        }
        if self.core.closed.is_some() {
            self.after_close(item, ctx);
            return;
        }
        match item {
            Inbound::Ws { id, event } => self.on_ws(id, event, ctx),
            Inbound::PollGet(reply) => self.on_poll_get(reply, ctx),
            Inbound::PollPost(body, reply) => self.on_poll_post(body, reply, ctx),
            Inbound::PollAbort => {
                if matches!(self.core.transport, Transport::Polling(_)) {
                    self.core.close(
                        SessionClose::TransportError("polling request cancelled".into()),
                        ctx,
                    );
                }
            }
            Inbound::PollTooLarge => self.core.close(SessionClose::TooLarge, ctx),
            Inbound::PollTimeout => self.core.close(
                SessionClose::TransportError("a POST body took too long".into()),
                ctx,
            ),
            Inbound::PollConcurrentPost => self.core.close(
                SessionClose::ProtocolError("concurrent POST requests".into()),
                ctx,
            ),
            Inbound::WsProbe {
                id,
                outbound,
                kill,
                accept,
            } => self.on_probe_request(id, outbound, kill, accept, ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        self.core.close(SessionClose::TransportClose, ctx);
    }
}

impl<H: EngineHandler> EngineSession<H> {
    /// A request that reached a closed session: the first GET takes the last answer kept
    /// for it, any other request is refused.
    fn after_close(&mut self, item: Inbound, ctx: &mut Context<Self>) {
        match (item, &mut self.core.transport) {
            (Inbound::PollGet(reply), Transport::Draining(payload)) => {
                let _ = reply.send(PollReply::Ok(std::mem::take(payload)));
                self.core.transport = Transport::Closed;
                ctx.stop();
            }
            (Inbound::PollGet(reply) | Inbound::PollPost(_, reply), _) => {
                let _ = reply.send(PollReply::BadRequest);
            }
            _ => {}
        }
    }
}

impl<H: EngineHandler> Handler<H::Push> for EngineSession<H> {
    type Result = ();

    fn handle(&mut self, push: H::Push, ctx: &mut Self::Context) {
        if self.core.closed.is_some() {
            return;
        }
        self.with_handler(ctx, |h, io| h.on_push(push, io));
    }
}
