//! The Engine.IO session actor.
//!
//! One [`EngineSession`] per Engine.IO connection. It owns the heartbeat, the Engine.IO
//! packet framing and the transport link, and knows nothing of Socket.IO: everything carried
//! in `message` packets goes to its [`EngineHandler`], which answers through [`EngineIo`].
//!
//! Heartbeat (Engine.IO v4): the server queues a ping (`2`) every `ping_interval`; when no
//! pong (`3`) arrives within `ping_timeout` of queuing it, the session closes.
//!
//! Transports: a session starts on WebSocket, or on HTTP long-polling (output buffered until
//! a GET takes it, input from POSTs). A polling session may be upgraded: a WebSocket with its
//! sid becomes the probe (`2probe` → `3probe`, a pending GET is answered with a noop so the
//! client pauses polling), `5` completes the upgrade and everything still buffered is
//! flushed over the WebSocket in order. The actor is the same before and after: only the
//! transport underneath changes.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::VecDeque;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient,
    SpawnHandle, StreamHandler,
};
use bytes::Bytes;
use bytestring::ByteString;
use log::{debug, info, warn};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::{oneshot, watch};

use crate::protocol::engineio::{decode_payload, Handshake, Packet, RECORD_SEPARATOR};
use crate::transport::{
    CloseReason, Inbound, Kill, Outbound, PollReply, SessionLink, WsEvent, CLOSE_NORMAL,
    CLOSE_POLICY, CLOSE_PROTOCOL, CLOSE_TOO_BIG,
};

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

/// A message carried by Engine.IO `message` packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineMessage {
    /// A text message (`4...`).
    Text(String),
    /// A binary message.
    Binary(Bytes),
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
    /// The reason string Socket.IO uses for a disconnect caused by this close.
    pub fn as_disconnect_reason(&self) -> &'static str {
        match self {
            SessionClose::TransportClose => "transport close",
            SessionClose::TransportError(_) | SessionClose::TooLarge => "transport error",
            SessionClose::PingTimeout => "ping timeout",
            SessionClose::ProtocolError(_) => "parse error",
            SessionClose::SlowClient => "transport error",
            SessionClose::ServerClose(_) => "server shutting down",
        }
    }

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

/// The layer above Engine.IO (Socket.IO, or the raw echo of the conformance server).
pub trait EngineHandler: Sized + Unpin + 'static {
    /// Messages other actors send to this session (delivered to [`EngineHandler::on_push`]).
    type Push: Message<Result = ()> + Send + 'static;

    /// The handshake was queued; the session is open.
    fn on_open(&mut self, _io: &mut EngineIo<'_, Self>) {}

    /// A message from the client.
    fn on_message(&mut self, message: EngineMessage, io: &mut EngineIo<'_, Self>);

    /// A message from another actor.
    fn on_push(&mut self, push: Self::Push, io: &mut EngineIo<'_, Self>);

    /// The session is closing; nothing more can be sent.
    fn on_close(&mut self, _reason: &SessionClose) {}
}

/// The transport a session currently sends through.
enum Transport {
    /// A WebSocket; `id` tells its frames apart from those of any other WebSocket.
    WebSocket {
        id: u64,
        out: mpsc::Sender<Outbound>,
        kill: Kill,
    },
    /// HTTP long-polling.
    Polling(Polling),
    /// Closed by the server with no GET pending: what was buffered, close packet last,
    /// waits for the client's next GET (for at most `DRAIN_WAIT`).
    Draining(VecDeque<Outbound>),
    /// The session has closed.
    Closed,
}

/// Long-polling state.
struct Polling {
    /// Output waiting for a GET, oldest first.
    buffer: VecDeque<Outbound>,
    /// Most packets `buffer` may hold before the client counts as not reading.
    limit: usize,
    /// The pending GET, if any.
    get: Option<oneshot::Sender<PollReply>>,
    /// A flush of `buffer` into `get` is scheduled for the end of this turn.
    flush_scheduled: bool,
    /// A WebSocket probing an upgrade.
    probe: Option<Probe>,
}

/// A WebSocket that asked to take a polling session over.
struct Probe {
    id: u64,
    out: mpsc::Sender<Outbound>,
    kill: Kill,
    /// `2probe` was answered.
    probed: bool,
}

impl Probe {
    /// Ends the probe's WebSocket (the session stays on polling).
    fn abandon(self) {
        let _ = self.out.try_send(Outbound::Close(CLOSE_PROTOCOL));
        self.kill.fire_after(KILL_GRACE);
    }
}

/// How long a probing WebSocket may take to complete the upgrade (Engine.IO's default
/// `upgradeTimeout`).
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a closing WebSocket may take to send what is queued before it is dropped.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// How long a polling session closed by the server keeps its last packets for the client's
/// next GET.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

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

struct Core {
    sid: Arc<str>,
    config: EngineConfig,
    transport: Transport,
    pong_deadline: Option<SpawnHandle>,
    /// When the outstanding ping times out, counted from when it was due (timers fire a
    /// little late; the deadline does not move with them).
    pong_due: Option<Instant>,
    closed: Option<SessionClose>,
}

/// An Engine.IO session; `H` is the protocol carried inside.
pub struct EngineSession<H: EngineHandler> {
    core: Core,
    handler: H,
    inbound: Option<mpsc::Receiver<Inbound>>,
    upgrades: Vec<String>,
    on_stop: Option<Box<dyn FnOnce()>>,
    closing: Option<watch::Receiver<bool>>,
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
                Transport::Polling(Polling {
                    buffer: VecDeque::new(),
                    limit: buffer_limit.max(1),
                    get: None,
                    flush_scheduled: false,
                    probe: None,
                }),
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
                closed: None,
            },
            handler,
            inbound: Some(inbound),
            upgrades,
            on_stop: None,
            closing: None,
        }
    }

    /// Closes the session (as a server shutdown) once `closing` turns `true`.
    pub fn closing_on(mut self, closing: watch::Receiver<bool>) -> Self {
        self.closing = Some(closing);
        self
    }

    /// Runs `f` once the session has stopped (e.g. to forget it in a registry).
    pub fn on_stop(mut self, f: impl FnOnce() + 'static) -> Self {
        self.on_stop = Some(Box::new(f));
        self
    }

    fn io<'a>(core: &'a mut Core, ctx: &'a mut Context<Self>) -> EngineIo<'a, H> {
        EngineIo { core, ctx }
    }

    fn schedule_ping(&mut self, ctx: &mut Context<Self>) {
        let ping_at = Instant::now() + self.core.config.ping_interval;
        ctx.run_later(self.core.config.ping_interval, move |act, ctx| {
            if act.core.closed.is_some() {
                return;
            }
            act.core
                .queue(Outbound::Text(ByteString::from_static("2")), ctx);
            let due = ping_at + act.core.config.ping_timeout;
            act.core.pong_due = Some(due);
            let timeout = due.saturating_duration_since(Instant::now());
            act.core.pong_deadline = Some(ctx.run_later(timeout, |act, ctx| {
                debug!("session {}: no pong within ping_timeout", act.core.sid);
                act.core.close(SessionClose::PingTimeout, ctx);
            }));
        });
    }

    /// One Engine.IO packet from the client, whichever transport carried it.
    fn on_packet(&mut self, packet: Packet, ctx: &mut Context<Self>) {
        match packet {
            Packet::Message(body) => {
                let mut io = Self::io(&mut self.core, ctx);
                self.handler.on_message(EngineMessage::Text(body), &mut io);
            }
            Packet::Binary(data) => {
                let mut io = Self::io(&mut self.core, ctx);
                self.handler
                    .on_message(EngineMessage::Binary(data), &mut io);
            }
            Packet::Pong(_) => {
                self.core.pong_due = None;
                if let Some(deadline) = self.core.pong_deadline.take() {
                    ctx.cancel_future(deadline);
                    self.schedule_ping(ctx);
                }
            }
            Packet::Ping(data) => {
                let pong = Packet::Pong(data).encode();
                self.core.queue(Outbound::Text(pong.into()), ctx);
            }
            Packet::Close => {
                // A pending GET learns of the close with a noop; later requests get 400.
                if let Transport::Polling(polling) = &mut self.core.transport {
                    if let Some(get) = polling.get.take() {
                        let _ = get.send(PollReply::Ok("6".into()));
                    }
                }
                self.core.close(SessionClose::TransportClose, ctx);
            }
            Packet::Noop | Packet::Upgrade => {}
            Packet::Open(_) => self.core.close(
                SessionClose::ProtocolError("open packet from a client".into()),
                ctx,
            ),
        }
    }

    fn on_ws(&mut self, id: u64, event: WsEvent, ctx: &mut Context<Self>) {
        let active = matches!(&self.core.transport, Transport::WebSocket { id: current, .. } if *current == id);
        if active {
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
                WsEvent::Closed(CloseReason::TooLarge) => {
                    self.core.close(SessionClose::TooLarge, ctx)
                }
                WsEvent::Closed(CloseReason::TransportError(e)) => {
                    self.core.close(SessionClose::TransportError(e), ctx)
                }
            }
            return;
        }
        let Transport::Polling(polling) = &mut self.core.transport else {
            return;
        };
        let Some(probe) = polling.probe.as_mut().filter(|probe| probe.id == id) else {
            return;
        };
        match event {
            WsEvent::Text(text) if &*text == "2probe" => {
                probe.probed = true;
                let _ = probe
                    .out
                    .try_send(Outbound::Text(ByteString::from_static("3probe")));
                // Let the client pause polling: its pending GET gets a noop shortly (Node's
                // 100 ms upgrade check), unless the upgrade completes first.
                schedule_upgrade_noop(ctx);
            }
            WsEvent::Text(text) if &*text == "5" && probe.probed => self.complete_upgrade(ctx),
            WsEvent::Closed(_) => polling.probe = None,
            _ => {
                debug!(
                    "session {}: unexpected packet during upgrade",
                    self.core.sid
                );
                if let Some(probe) = polling.probe.take() {
                    probe.abandon();
                }
            }
        }
    }

    /// `5` on the probe: the WebSocket becomes the transport; what polling still buffered is
    /// sent over it first, in order.
    fn complete_upgrade(&mut self, ctx: &mut Context<Self>) {
        let previous = std::mem::replace(&mut self.core.transport, Transport::Closed);
        let Transport::Polling(mut polling) = previous else {
            self.core.transport = previous;
            return;
        };
        let Some(Probe { id, out, kill, .. }) = polling.probe.take() else {
            self.core.transport = Transport::Polling(polling);
            return;
        };
        if let Some(get) = polling.get.take() {
            // A GET still held when the upgrade completes is refused, as any polling request
            // after it. Answered a moment later, so that `3probe`, queued on the WebSocket
            // before, normally reaches the client first (ordering across two connections
            // cannot be guaranteed; this only makes the usual order the likely one).
            ctx.run_later(Duration::from_millis(20), move |_act, _ctx| {
                let _ = get.send(PollReply::BadRequest);
            });
        }
        debug!("session {} upgraded to websocket", self.core.sid);
        self.core.transport = Transport::WebSocket { id, out, kill };
        for item in polling.buffer.drain(..) {
            self.core.queue(item, ctx);
        }
    }

    fn on_poll_get(&mut self, reply: oneshot::Sender<PollReply>, ctx: &mut Context<Self>) {
        let Transport::Polling(polling) = &mut self.core.transport else {
            let _ = reply.send(PollReply::BadRequest);
            return;
        };
        // A GET whose client went away no longer counts.
        if polling.get.as_ref().is_some_and(|get| get.is_closed()) {
            polling.get = None;
        }
        if polling.get.is_some() {
            // Two GETs at once: the second is refused and the session closes (the first
            // is answered with a close packet).
            let _ = reply.send(PollReply::BadRequest);
            self.core.close(
                SessionClose::ProtocolError("concurrent polling requests".into()),
                ctx,
            );
            return;
        }
        if polling.probe.as_ref().is_some_and(|probe| probe.probed) {
            // Upgrading: keep the client paused (a noop shortly, or a refusal if the upgrade
            // completes first); the buffer goes out over the WebSocket.
            polling.get = Some(reply);
            schedule_upgrade_noop(ctx);
            return;
        }
        if polling.buffer.is_empty() {
            polling.get = Some(reply);
        } else {
            let _ = reply.send(PollReply::Ok(drain_payload(&mut polling.buffer)));
        }
    }

    fn on_poll_post(
        &mut self,
        body: Bytes,
        reply: oneshot::Sender<PollReply>,
        ctx: &mut Context<Self>,
    ) {
        if !matches!(self.core.transport, Transport::Polling(_)) {
            let _ = reply.send(PollReply::BadRequest);
            return;
        }
        let packets = std::str::from_utf8(&body)
            .map_err(|e| e.to_string())
            .and_then(|text| decode_payload(text).map_err(|e| e.to_string()));
        match packets {
            Ok(packets) => {
                let _ = reply.send(PollReply::Ok("ok".into()));
                for packet in packets {
                    if self.core.closed.is_some() {
                        break;
                    }
                    self.on_packet(packet, ctx);
                }
            }
            Err(e) => {
                // An undecodable body: refused, and the session is gone at once (no last
                // packets kept for a client that does not speak the protocol).
                let _ = reply.send(PollReply::BadRequest);
                self.core.close(
                    SessionClose::TransportError(format!("bad payload: {e}")),
                    ctx,
                );
            }
        }
    }

    fn on_probe_request(
        &mut self,
        id: u64,
        outbound: mpsc::Sender<Outbound>,
        kill: Kill,
        accept: oneshot::Sender<bool>,
        ctx: &mut Context<Self>,
    ) {
        let offered = !self.upgrades.is_empty();
        let Transport::Polling(polling) = &mut self.core.transport else {
            let _ = accept.send(false);
            return;
        };
        // A probe whose WebSocket never came up (or is gone) does not block a new one.
        if polling
            .probe
            .as_ref()
            .is_some_and(|probe| probe.out.is_closed())
        {
            polling.probe = None;
        }
        if !offered || polling.probe.is_some() {
            let _ = accept.send(false);
            return;
        }
        polling.probe = Some(Probe {
            id,
            out: outbound,
            kill,
            probed: false,
        });
        let _ = accept.send(true);
        ctx.run_later(UPGRADE_TIMEOUT, move |act, _ctx| {
            if let Transport::Polling(polling) = &mut act.core.transport {
                if polling.probe.as_ref().is_some_and(|probe| probe.id == id) {
                    debug!("session {}: upgrade timed out", act.core.sid);
                    if let Some(probe) = polling.probe.take() {
                        probe.abandon();
                    }
                }
            }
        });
    }
}

/// Node's interval for answering a paused polling client during an upgrade.
const UPGRADE_NOOP_DELAY: Duration = Duration::from_millis(100);

/// Answers a GET held during an upgrade with a noop after [`UPGRADE_NOOP_DELAY`], unless the
/// upgrade has completed (or was abandoned) by then.
fn schedule_upgrade_noop<H: EngineHandler>(ctx: &mut Context<EngineSession<H>>) {
    ctx.run_later(UPGRADE_NOOP_DELAY, |act, _ctx| {
        if let Transport::Polling(polling) = &mut act.core.transport {
            if polling.probe.as_ref().is_some_and(|probe| probe.probed) {
                if let Some(get) = polling.get.take() {
                    let _ = get.send(PollReply::Ok("6".into()));
                }
            }
        }
    });
}

/// The polling payload for everything buffered: packets joined by the record separator,
/// binary ones as `b` + base64.
fn drain_payload(buffer: &mut VecDeque<Outbound>) -> String {
    let mut payload = String::new();
    for item in buffer.drain(..) {
        if !payload.is_empty() {
            payload.push(RECORD_SEPARATOR);
        }
        match item {
            Outbound::Text(text) => payload.push_str(&text),
            Outbound::Binary(data) => payload.push_str(&Packet::Binary(data).encode()),
            Outbound::Close(_) => payload.push('1'),
        }
    }
    payload
}

impl Core {
    /// Queues an item for the client; a full queue means the client stopped reading.
    fn queue<H: EngineHandler>(&mut self, item: Outbound, ctx: &mut Context<EngineSession<H>>) {
        match &mut self.transport {
            Transport::WebSocket { out, .. } => match out.try_send(item) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    warn!("session {}: outgoing queue full, disconnecting", self.sid);
                    self.close(SessionClose::SlowClient, ctx);
                }
                Err(TrySendError::Closed(_)) => self.close(SessionClose::TransportClose, ctx),
            },
            Transport::Polling(polling) => {
                if polling.buffer.len() >= polling.limit {
                    warn!("session {}: polling buffer full, disconnecting", self.sid);
                    self.close(SessionClose::SlowClient, ctx);
                    return;
                }
                polling.buffer.push_back(item);
                if polling.get.as_ref().is_some_and(|get| !get.is_closed())
                    && !polling.flush_scheduled
                {
                    // Flush at the end of this turn, so packets queued together go together.
                    polling.flush_scheduled = true;
                    ctx.run_later(Duration::ZERO, |act, _ctx| {
                        if let Transport::Polling(polling) = &mut act.core.transport {
                            polling.flush_scheduled = false;
                            if !polling.buffer.is_empty() {
                                if let Some(get) = polling.get.take() {
                                    let payload = drain_payload(&mut polling.buffer);
                                    let _ = get.send(PollReply::Ok(payload));
                                }
                            }
                        }
                    });
                }
            }
            Transport::Draining(_) | Transport::Closed => {}
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
        match std::mem::replace(&mut self.transport, Transport::Closed) {
            Transport::WebSocket { out, kill, .. } => {
                // After what is queued, close with a code that says why; a client that does
                // not read that within the grace period (or whose queue is full) is cut off.
                if out.try_send(Outbound::Close(reason.close_code())).is_ok() {
                    kill.fire_after(KILL_GRACE);
                } else {
                    kill.fire();
                }
            }
            Transport::Polling(mut polling) => {
                if let Some(probe) = polling.probe.take() {
                    probe.abandon();
                }
                polling
                    .buffer
                    .push_back(Outbound::Close(reason.close_code()));
                let live_get = polling.get.take().filter(|get| !get.is_closed());
                if let Some(get) = live_get {
                    let _ = get.send(PollReply::Ok(drain_payload(&mut polling.buffer)));
                } else if reason.client_may_poll_again() {
                    // Keep the last packets (and the close) for the client's next GET.
                    self.transport = Transport::Draining(polling.buffer);
                    self.closed = Some(reason);
                    ctx.run_later(DRAIN_WAIT, |_act, ctx| ctx.stop());
                    return;
                }
            }
            Transport::Draining(_) | Transport::Closed => {}
        }
        self.closed = Some(reason);
        ctx.stop();
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
        if let Some(mut inbound) = self.inbound.take() {
            ctx.add_stream(futures_util::stream::poll_fn(move |cx| {
                inbound.poll_recv(cx)
            }));
        }
        self.schedule_ping(ctx);
        if let Some(mut closing) = self.closing.take() {
            let closed = async move {
                // An error means the endpoint is gone: close as well.
                let _ = closing.wait_for(|closing| *closing).await;
            };
            ctx.spawn(
                actix::fut::wrap_future::<_, Self>(closed).map(|_, act, ctx| {
                    act.core
                        .close(SessionClose::ServerClose("server shutting down"), ctx);
                }),
            );
        }
        debug!("session {} opened", self.core.sid);
        let mut io = Self::io(&mut self.core, ctx);
        self.handler.on_open(&mut io);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        let reason = self
            .core
            .closed
            .clone()
            .unwrap_or(SessionClose::TransportClose);
        self.handler.on_close(&reason);
        if let Some(on_stop) = self.on_stop.take() {
            on_stop();
        }
    }
}

impl<H: EngineHandler> StreamHandler<Inbound> for EngineSession<H> {
    fn handle(&mut self, item: Inbound, ctx: &mut Self::Context) {
        // A ping answered too late is a timeout, even if its timer has not fired yet.
        if self.core.closed.is_none() && self.core.pong_due.is_some_and(|due| Instant::now() >= due)
        {
            self.core.close(SessionClose::PingTimeout, ctx);
        }
        if self.core.closed.is_some() {
            match (item, &mut self.core.transport) {
                (Inbound::PollGet(reply), Transport::Draining(buffer)) => {
                    let _ = reply.send(PollReply::Ok(drain_payload(buffer)));
                    self.core.transport = Transport::Closed;
                    ctx.stop();
                }
                (Inbound::PollGet(reply) | Inbound::PollPost(_, reply), _) => {
                    let _ = reply.send(PollReply::BadRequest);
                }
                _ => {}
            }
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

impl<H: EngineHandler> Handler<H::Push> for EngineSession<H> {
    type Result = ();

    fn handle(&mut self, push: H::Push, ctx: &mut Self::Context) {
        if self.core.closed.is_some() {
            return;
        }
        let mut io = Self::io(&mut self.core, ctx);
        self.handler.on_push(push, &mut io);
    }
}

/// What a handler can do with its session.
pub struct EngineIo<'a, H: EngineHandler> {
    core: &'a mut Core,
    ctx: &'a mut Context<EngineSession<H>>,
}

impl<H: EngineHandler> EngineIo<'_, H> {
    /// The Engine.IO session id.
    pub fn sid(&self) -> &Arc<str> {
        &self.core.sid
    }

    /// Sends a text message (`4` + `text`).
    pub fn send_text(&mut self, text: &str) {
        let mut frame = String::with_capacity(text.len() + 1);
        frame.push('4');
        frame.push_str(text);
        self.core.queue(Outbound::Text(frame.into()), self.ctx);
    }

    /// Sends a text message already framed as an Engine.IO packet (`4...`).
    pub fn send_framed(&mut self, frame: ByteString) {
        self.core.queue(Outbound::Text(frame), self.ctx);
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: Bytes) {
        self.core.queue(Outbound::Binary(data), self.ctx);
    }

    /// Closes the session (after what is queued).
    pub fn close(&mut self, reason: SessionClose) {
        self.core.close(reason, self.ctx);
    }

    /// Runs `f` on the handler after `delay`, unless the session has closed by then.
    pub fn run_later<F>(&mut self, delay: Duration, f: F) -> SpawnHandle
    where
        F: FnOnce(&mut H, &mut EngineIo<'_, H>) + 'static,
    {
        self.ctx.run_later(delay, move |act, ctx| {
            if act.core.closed.is_some() {
                return;
            }
            let mut io = EngineSession::<H>::io(&mut act.core, ctx);
            f(&mut act.handler, &mut io);
        })
    }

    /// Cancels something scheduled with [`EngineIo::run_later`].
    pub fn cancel(&mut self, handle: SpawnHandle) {
        self.ctx.cancel_future(handle);
    }

    /// Runs `fut` on the session's task and hands its output to `then`, unless the session
    /// has closed by then.
    pub fn spawn<Fut, F>(&mut self, fut: Fut, then: F)
    where
        Fut: Future + 'static,
        F: FnOnce(&mut H, &mut EngineIo<'_, H>, Fut::Output) + 'static,
    {
        let wrapped = actix::fut::wrap_future::<_, EngineSession<H>>(fut);
        self.ctx.spawn(wrapped.map(move |out, act, ctx| {
            if act.core.closed.is_some() {
                return;
            }
            let mut io = EngineSession::<H>::io(&mut act.core, ctx);
            then(&mut act.handler, &mut io, out);
        }));
    }

    /// A recipient for pushes to this session.
    pub fn recipient(&self) -> Recipient<H::Push> {
        self.ctx.address().recipient()
    }
}
