//! The Engine.IO session actor.
//!
//! One [`EngineSession`] per Engine.IO connection. It owns the heartbeat, the Engine.IO
//! packet framing and the transport link, and knows nothing of Socket.IO: everything carried
//! in `message` packets goes to its [`EngineHandler`], which answers through [`EngineIo`].
//!
//! Heartbeat (Engine.IO v4): the server queues a ping (`2`) every `ping_interval`; when no
//! pong (`3`) arrives within `ping_timeout` of queuing it, the session closes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient,
    SpawnHandle, StreamHandler,
};
use bytes::Bytes;
use bytestring::ByteString;
use log::{debug, info, warn};
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::protocol::engineio::{Handshake, Packet};
use crate::transport::{
    CloseReason, Inbound, Outbound, SessionLink, CLOSE_NORMAL, CLOSE_POLICY, CLOSE_PROTOCOL,
    CLOSE_TOO_BIG,
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

struct Core {
    sid: Arc<str>,
    config: EngineConfig,
    outbound: Option<mpsc::Sender<Outbound>>,
    pong_deadline: Option<SpawnHandle>,
    closed: Option<SessionClose>,
}

/// An Engine.IO session; `H` is the protocol carried inside.
pub struct EngineSession<H: EngineHandler> {
    core: Core,
    handler: H,
    inbound: Option<mpsc::Receiver<Inbound>>,
}

impl<H: EngineHandler> EngineSession<H> {
    /// A session with id `sid` over `link`; start it with [`Actor::start`].
    pub fn new(sid: String, config: EngineConfig, link: SessionLink, handler: H) -> Self {
        EngineSession {
            core: Core {
                sid: sid.into(),
                config,
                outbound: Some(link.outbound),
                pong_deadline: None,
                closed: None,
            },
            handler,
            inbound: Some(link.inbound),
        }
    }

    fn io<'a>(core: &'a mut Core, ctx: &'a mut Context<Self>) -> EngineIo<'a, H> {
        EngineIo { core, ctx }
    }

    fn schedule_ping(&mut self, ctx: &mut Context<Self>) {
        ctx.run_later(self.core.config.ping_interval, |act, ctx| {
            if act.core.closed.is_some() {
                return;
            }
            act.core
                .queue(Outbound::Text(ByteString::from_static("2")), ctx);
            let timeout = act.core.config.ping_timeout;
            act.core.pong_deadline = Some(ctx.run_later(timeout, |act, ctx| {
                debug!("session {}: no pong within ping_timeout", act.core.sid);
                act.core.close(SessionClose::PingTimeout, ctx);
            }));
        });
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        match Packet::decode_text(text) {
            Ok(Packet::Message(body)) => {
                let mut io = Self::io(&mut self.core, ctx);
                self.handler.on_message(EngineMessage::Text(body), &mut io);
            }
            Ok(Packet::Pong(_)) => {
                if let Some(deadline) = self.core.pong_deadline.take() {
                    ctx.cancel_future(deadline);
                    self.schedule_ping(ctx);
                }
            }
            Ok(Packet::Ping(data)) => {
                // Clients only ping with "probe" while upgrading; answer it in kind.
                let pong = Packet::Pong(data).encode();
                self.core.queue(Outbound::Text(pong.into()), ctx);
            }
            Ok(Packet::Close) => self.core.close(SessionClose::TransportClose, ctx),
            Ok(Packet::Noop) | Ok(Packet::Upgrade) => {}
            Ok(other) => self.core.close(
                SessionClose::ProtocolError(format!("unexpected packet {:?}", kind(&other))),
                ctx,
            ),
            Err(e) => self
                .core
                .close(SessionClose::ProtocolError(e.to_string()), ctx),
        }
    }
}

fn kind(packet: &Packet) -> &'static str {
    match packet {
        Packet::Open(_) => "open",
        Packet::Close => "close",
        Packet::Ping(_) => "ping",
        Packet::Pong(_) => "pong",
        Packet::Message(_) => "message",
        Packet::Binary(_) => "binary",
        Packet::Upgrade => "upgrade",
        Packet::Noop => "noop",
    }
}

impl Core {
    /// Queues an item for the transport; a full queue means the client stopped reading.
    fn queue<H: EngineHandler>(&mut self, item: Outbound, ctx: &mut Context<EngineSession<H>>) {
        let Some(outbound) = &self.outbound else {
            return;
        };
        match outbound.try_send(item) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                warn!("session {}: outgoing queue full, disconnecting", self.sid);
                self.close(SessionClose::SlowClient, ctx);
            }
            Err(TrySendError::Closed(_)) => {
                self.close(SessionClose::TransportClose, ctx);
            }
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
        if let Some(outbound) = self.outbound.take() {
            // Best effort: after what is queued, close with a code that says why.
            let _ = outbound.try_send(Outbound::Close(reason.close_code()));
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
            upgrades: Vec::new(),
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
    }
}

impl<H: EngineHandler> StreamHandler<Inbound> for EngineSession<H> {
    fn handle(&mut self, item: Inbound, ctx: &mut Self::Context) {
        if self.core.closed.is_some() {
            return;
        }
        match item {
            Inbound::Text(text) => self.on_text(&text, ctx),
            Inbound::Binary(data) => {
                let mut io = Self::io(&mut self.core, ctx);
                self.handler
                    .on_message(EngineMessage::Binary(data), &mut io);
            }
            Inbound::Closed(CloseReason::ClientClosed) => {
                self.core.close(SessionClose::TransportClose, ctx)
            }
            Inbound::Closed(CloseReason::TooLarge) => self.core.close(SessionClose::TooLarge, ctx),
            Inbound::Closed(CloseReason::TransportError(e)) => {
                self.core.close(SessionClose::TransportError(e), ctx)
            }
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

    /// Whether the session is closing.
    pub fn is_closed(&self) -> bool {
        self.core.closed.is_some()
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
