//! HTTP long-polling: output waits in a buffer for the client's GET; POSTs bring packets.
//!
//! One GET may be pending at a time (a second one is refused with 400 and closes the
//! session, the first being answered with a close packet). A POST is answered `ok` once all
//! its packets have been taken; while the handler has paused reading, the rest of a POST's
//! packets are held, and so is its answer, so that the client sends nothing more.
//!
//! A client's close packet answers the pending GET with a noop; when no GET is pending, the
//! first GET that arrives within a short while gets the noop (the client may send its GET
//! and its close at the same moment), later ones get 400.

use std::collections::VecDeque;
use std::time::Duration;

use actix::{AsyncContext, Context};
use bytes::Bytes;
use tokio::sync::oneshot;

use super::upgrade::{schedule_upgrade_noop, Probe};
use super::{EngineHandler, EngineSession, SessionClose, Transport};
use crate::engineio::packet::{decode_payload, Packet, RECORD_SEPARATOR};
use crate::engineio::transport::{Outbound, PollReply};

/// Long-polling state.
pub(super) struct Polling {
    /// Output waiting for a GET, oldest first.
    buffer: VecDeque<Outbound>,
    /// Most packets `buffer` may hold before the client counts as not reading.
    limit: usize,
    /// The pending GET, if any.
    pub(super) get: Option<oneshot::Sender<PollReply>>,
    /// A flush of `buffer` into `get` is scheduled for the end of this turn.
    flush_scheduled: bool,
    /// A WebSocket probing an upgrade.
    pub(super) probe: Option<Probe>,
    /// The answer to a POST whose packets are not all taken yet (reading is paused).
    pub(super) held_reply: Option<oneshot::Sender<PollReply>>,
}

impl Polling {
    pub(super) fn new(limit: usize) -> Self {
        Polling {
            buffer: VecDeque::new(),
            limit: limit.max(1),
            get: None,
            flush_scheduled: false,
            probe: None,
            held_reply: None,
        }
    }

    /// Buffers `item` (and schedules a flush into a pending GET); `false` when the buffer
    /// is full (the client is not reading).
    pub(super) fn push<H: EngineHandler>(
        &mut self,
        item: Outbound,
        ctx: &mut Context<EngineSession<H>>,
    ) -> bool {
        if self.buffer.len() >= self.limit {
            return false;
        }
        self.buffer.push_back(item);
        if self.get.as_ref().is_some_and(|get| !get.is_closed()) && !self.flush_scheduled {
            // Flush at the end of this turn, so packets queued together go together.
            self.flush_scheduled = true;
            ctx.run_later(Duration::ZERO, |act, _ctx| {
                if let Transport::Polling(polling) = &mut act.core.transport {
                    polling.flush_scheduled = false;
                    if !polling.buffer.is_empty() {
                        if let Some(get) = polling.get.take() {
                            let _ = get.send(PollReply::Ok(drain_payload(&mut polling.buffer)));
                        }
                    }
                }
            });
        }
        true
    }

    /// The pending GET, unless its client went away.
    fn take_live_get(&mut self) -> Option<oneshot::Sender<PollReply>> {
        self.get.take().filter(|get| !get.is_closed())
    }

    /// The session closes with `code`: the probe is abandoned, a held POST answered (as
    /// Node does when a packet of the POST closed the session), the pending GET answered
    /// with what is buffered and the close packet. Returns that answer when no GET was there
    /// to take it.
    pub(super) fn close(mut self, code: u16) -> Option<String> {
        if let Some(probe) = self.probe.take() {
            probe.abandon();
        }
        if let Some(reply) = self.held_reply.take() {
            let _ = reply.send(PollReply::Ok("ok".into()));
        }
        self.buffer.push_back(Outbound::Close(code));
        let payload = drain_payload(&mut self.buffer);
        match self.take_live_get() {
            Some(get) => {
                let _ = get.send(PollReply::Ok(payload));
                None
            }
            None => Some(payload),
        }
    }

    /// Everything buffered, for the WebSocket that takes the session over.
    pub(super) fn take_buffer(&mut self) -> VecDeque<Outbound> {
        std::mem::take(&mut self.buffer)
    }
}

impl<H: EngineHandler> EngineSession<H> {
    pub(super) fn on_poll_get(
        &mut self,
        reply: oneshot::Sender<PollReply>,
        ctx: &mut Context<Self>,
    ) {
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

    pub(super) fn on_poll_post(
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
    pub(super) fn on_client_close(&mut self, ctx: &mut Context<Self>) {
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
}

/// The polling payload for everything buffered: packets joined by the record separator,
/// binary ones as `b` + base64.
pub(super) fn drain_payload(buffer: &mut VecDeque<Outbound>) -> String {
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
