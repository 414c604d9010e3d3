//! What arrives on the session's inbound channel: WebSocket frames, long-polling GETs and
//! POSTs, a WebSocket that asks to take the session over ([`super::upgrade`]), and the
//! Engine.IO packets they carry.
//!
//! Long-polling: one GET may be pending at a time (a second one is refused with 400 and
//! closes the session, the first being answered with a close packet). A POST is answered
//! `ok` once all its packets have been taken; while the handler has paused reading, the rest
//! of a POST's packets are held, and so is its answer, so that the client sends nothing
//! more. A client's close packet answers the pending GET with a noop; when no GET is
//! pending, the first GET that arrives within a short while gets the noop (the client may
//! send its GET and its close at the same moment), later ones get 400.

use actix::{ActorContext, Context, StreamHandler};
use bytes::Bytes;
use tokio::sync::oneshot;

use super::actor::EngineSession;
use super::close::SessionClose;
use super::handler::{EngineHandler, EngineMessage};
use super::polling::drain_payload;
use super::state::{CoreOwner, Transport};
use super::upgrade::schedule_upgrade_noop;
use crate::engineio::packet::{decode_payload, Packet};
use crate::engineio::transport::{CloseReason, Inbound, Outbound, PollReply, WsEvent};

impl<H: EngineHandler> StreamHandler<Inbound> for EngineSession<H> {
    fn handle(&mut self, item: Inbound, ctx: &mut Self::Context) {
        // A ping answered too late is a timeout, even if its timer has not fired yet.
        if self.pong_overdue() {
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
    /// One Engine.IO packet from the client, whichever transport carried it.
    pub(super) fn on_packet(&mut self, packet: Packet, ctx: &mut Context<Self>) {
        match packet {
            Packet::Message(body) => {
                self.with_handler(ctx, |h, io| h.on_message(EngineMessage::Text(body), io))
            }
            Packet::Binary(data) => {
                self.with_handler(ctx, |h, io| h.on_message(EngineMessage::Binary(data), io))
            }
            Packet::Pong(_) => {
                self.pong_received(ctx);
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

    fn on_poll_get(&mut self, reply: oneshot::Sender<PollReply>, ctx: &mut Context<Self>) {
        let Transport::Polling(polling) = &mut self.core.transport else {
            let _ = reply.send(PollReply::BadRequest);
            return;
        };
        if polling.get.as_ref().is_some_and(|get| get.is_closed()) {
            // The previous GET's client went away (its notice is on its way): a cancelled
            // long-poll closes the session, as Engine.IO specifies.
            polling.get = None;
            let _ = reply.send(PollReply::BadRequest);
            self.core.close(
                SessionClose::TransportError("polling request cancelled".into()),
                ctx,
            );
            return;
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
        let packets = match packets {
            Ok(packets) => packets,
            Err(e) => {
                // An undecodable body: refused, and the session is gone at once (no last
                // packets kept for a client that does not speak the protocol).
                let _ = reply.send(PollReply::BadRequest);
                self.core.close(
                    SessionClose::TransportError(format!("bad payload: {e}")),
                    ctx,
                );
                return;
            }
        };
        if let Transport::Polling(polling) = &mut self.core.transport {
            polling.held_reply = Some(reply);
        }
        self.core.held.extend(packets);
        self.drain_held(ctx);
    }

    /// The client's close packet.
    fn on_client_close(&mut self, ctx: &mut Context<Self>) {
        let Transport::Polling(polling) = &mut self.core.transport else {
            self.core.close(SessionClose::TransportClose, ctx);
            return;
        };
        if let Some(reply) = polling.held_reply.take() {
            // The POST that carried the close is answered; nothing after the close counts.
            let _ = reply.send(PollReply::Ok("ok".into()));
        }
        self.core.held.clear();
        match polling.take_live_get() {
            Some(get) => {
                let _ = get.send(PollReply::Ok("6".into()));
                self.core.close(SessionClose::TransportClose, ctx);
            }
            None => {
                // The client's GET may be on its way: the first one gets the noop.
                if let Some(probe) = polling.probe.take() {
                    probe.abandon();
                }
                self.core
                    .drain("6".to_string(), SessionClose::TransportClose, ctx);
            }
        }
    }

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
