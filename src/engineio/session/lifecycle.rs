//! The session actor's life: it starts (the handshake, the first ping, following the
//! endpoint's shutdown), runs its handler ([`EngineSession::with_handler`]) for what comes
//! in and for pushes from other actors, and stops (the handler is told once).

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler};
use log::debug;

use super::actor::{EngineSession, Stage};
use super::close::SessionClose;
use super::flow::GatedInbound;
use super::handler::{EngineHandler, EngineIo};
use super::state::{Core, CoreOwner, Transport};
use crate::engineio::packet::{Handshake, Packet};
use crate::engineio::transport::{Outbound, PollReply};

impl<H: EngineHandler> EngineSession<H> {
    /// Runs `f` with the handler and its [`EngineIo`], then handles what the handler's
    /// resuming released.
    pub(super) fn with_handler<R>(
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
}

impl<H: EngineHandler> CoreOwner for EngineSession<H> {
    fn core(&mut self) -> &mut Core {
        &mut self.core
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
        // However it stopped, a stopped session is counted nowhere.
        self.core.transport = Transport::Closed;
        self.core.recount();
        self.notify_close();
        if let Some(on_stop) = self.on_stop.take() {
            on_stop();
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
