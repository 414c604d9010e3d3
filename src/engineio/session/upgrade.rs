//! The upgrade of a long-polling session to WebSocket.
//!
//! A WebSocket opened with a polling session's sid becomes its probe: `2probe` is answered
//! `3probe` and the pending GET a noop shortly after (so the client pauses polling); `5`
//! completes the upgrade, and what polling still buffered goes out over the WebSocket first,
//! in order. A probe that does not complete within [`UPGRADE_TIMEOUT`] is dropped and the
//! session stays on polling.

use std::time::Duration;

use actix::{AsyncContext, Context};
use bytestring::ByteString;
use log::debug;
use tokio::sync::oneshot;

use crate::engineio::queue as mpsc;

use super::actor::EngineSession;
use super::handler::EngineHandler;
use super::polling::Probe;
use super::state::Transport;
use crate::engineio::transport::{Kill, Outbound, PollReply, WsEvent};

/// How long a probing WebSocket may take to complete the upgrade (Engine.IO's default
/// `upgradeTimeout`).
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// Node's interval for answering a paused polling client during an upgrade.
const UPGRADE_NOOP_DELAY: Duration = Duration::from_millis(100);

impl<H: EngineHandler> EngineSession<H> {
    /// A WebSocket asks to take this session over.
    pub(super) fn on_probe_request(
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

    /// An event of a WebSocket that is not (or no longer) the session's transport.
    pub(super) fn on_probe_event(&mut self, id: u64, event: WsEvent, ctx: &mut Context<Self>) {
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
        self.core.recount();
        for item in polling.take_buffer() {
            self.core.queue(item, ctx);
        }
        // Packets of a POST held by a pause stay held: they are handled in order once
        // reading resumes, before anything read from the WebSocket.
        if let Some(reply) = polling.held_reply.take() {
            let _ = reply.send(PollReply::Ok("ok".into()));
        }
        self.core.update_gate();
        self.with_handler(ctx, |handler, io| handler.on_upgrade(io));
    }
}

/// Answers a GET held during an upgrade with a noop after [`UPGRADE_NOOP_DELAY`], unless the
/// upgrade has completed (or was abandoned) by then.
pub(super) fn schedule_upgrade_noop<H: EngineHandler>(ctx: &mut Context<EngineSession<H>>) {
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
