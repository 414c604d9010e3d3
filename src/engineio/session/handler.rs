//! The seam between Engine.IO and the layer it carries: the [`EngineHandler`] trait, and
//! [`EngineIo`], what a handler can do with its session.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::{ActorFutureExt, AsyncContext, Context, Message, Recipient, SpawnHandle};
use bytes::Bytes;
use bytestring::ByteString;

use super::actor::EngineSession;
use super::close::SessionClose;
use super::state::Core;
use crate::engineio::client::ClientInfo;
use crate::engineio::packet::message_frame;
use crate::engineio::transport::{Outbound, TransportKind};

/// A message carried by Engine.IO `message` packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineMessage {
    /// A text message (`4...`).
    Text(String),
    /// A binary message.
    Binary(Bytes),
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

    /// The client answered a ping: it is alive.
    fn on_pong(&mut self, _io: &mut EngineIo<'_, Self>) {}

    /// The session moved from long-polling to its WebSocket.
    fn on_upgrade(&mut self, _io: &mut EngineIo<'_, Self>) {}

    /// The server is shutting down: nothing more is read from the client. The handler
    /// closes the session once it has finished what it was given (by default at once); the
    /// endpoint closes what is left when its shutdown time is up.
    fn on_drain(&mut self, io: &mut EngineIo<'_, Self>) {
        io.close(SessionClose::ServerClose("server shutting down"));
    }

    /// The session is closing; nothing more can be sent.
    fn on_close(&mut self, _reason: &SessionClose) {}
}

/// What a handler can do with its session.
pub struct EngineIo<'a, H: EngineHandler> {
    pub(super) core: &'a mut Core,
    pub(super) ctx: &'a mut Context<EngineSession<H>>,
}

impl<H: EngineHandler> EngineIo<'_, H> {
    /// The Engine.IO session id.
    pub fn sid(&self) -> &Arc<str> {
        &self.core.sid
    }

    /// What the request that opened the session tells about the client.
    pub fn client(&self) -> &ClientInfo {
        &self.core.client
    }

    /// The session is established (the layer above accepted the client, e.g. its token): it
    /// no longer counts against the bounds on sessions that are not.
    pub(crate) fn established(&mut self) {
        if let Some(ticket) = &mut self.core.ticket {
            ticket.established();
        }
        self.core.count_established();
    }

    /// Sends a text message (`4` + `text`).
    pub fn send_text(&mut self, text: &str) {
        self.core
            .queue(Outbound::Text(message_frame(text).into()), self.ctx);
    }

    /// Sends a text message already framed as an Engine.IO packet (`4...`, see
    /// [`message_frame`]), e.g. one encoded once for many sessions.
    pub(crate) fn send_framed(&mut self, frame: ByteString) {
        self.core.queue(Outbound::Text(frame), self.ctx);
    }

    /// The next `packets` sent may go past the session's buffer limit (up to the endpoint's
    /// burst allowance): a burst the client did not fall behind on, such as a replay of what
    /// it missed, does not make it a slow client.
    pub(crate) fn allow_burst(&mut self, packets: usize) {
        self.core.burst.left = packets;
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: Bytes) {
        self.core.queue(Outbound::Binary(data), self.ctx);
    }

    /// Closes the session (after what is queued).
    pub fn close(&mut self, reason: SessionClose) {
        self.core.close(reason, self.ctx);
    }

    /// Stops taking messages from the client until [`EngineIo::resume_reading`]: the
    /// WebSocket is not read any further (TCP pushes back on the client), a long-polling
    /// POST is answered only once its packets have all been taken. Output, pings and
    /// long-polling GETs go on; a paused client cannot time out on its pongs.
    pub(crate) fn pause_reading(&mut self) {
        self.core.pause();
    }

    /// Takes messages from the client again (what was held is handled first, in order).
    pub(crate) fn resume_reading(&mut self) {
        self.core.resume(self.ctx);
    }

    /// Runs `f` on the handler after `delay`, unless the session has closed by then.
    pub(crate) fn run_later<F>(&mut self, delay: Duration, f: F) -> SpawnHandle
    where
        F: FnOnce(&mut H, &mut EngineIo<'_, H>) + 'static,
    {
        self.ctx.run_later(delay, move |act, ctx| {
            if act.core.closed.is_some() {
                return;
            }
            act.with_handler(ctx, f);
        })
    }

    /// Cancels something scheduled with [`EngineIo::run_later`].
    pub(crate) fn cancel(&mut self, handle: SpawnHandle) {
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
            act.with_handler(ctx, move |handler, io| then(handler, io, out));
        }));
    }

    /// A recipient for pushes to this session.
    pub fn recipient(&self) -> Recipient<H::Push> {
        self.ctx.address().recipient()
    }

    /// The transport the session is on now (none once it closed).
    pub fn transport(&self) -> Option<TransportKind> {
        self.core.transport_kind()
    }
}
