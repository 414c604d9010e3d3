//! The session's state below its handler: its parameters ([`EngineConfig`]) and [`Core`]
//! (the transport it sends through, the heartbeat's deadline, whether reading is paused,
//! who the client is, how it is counted), and what is done to it whatever the transport:
//! queuing output, pausing and resuming reading, closing.
//!
//! The core does not know the handler: what its timers come back to is the [`CoreOwner`],
//! the session actor.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engineio::queue::{self as mpsc, TrySendError};
use actix::{Actor, ActorContext, AsyncContext, Context, SpawnHandle};
use log::{debug, info, warn};

use super::close::{SessionClose, KILL_GRACE};
use super::flow::Flow;
use super::polling::{Polling, Pushed};
use crate::engineio::admission::Ticket;
use crate::engineio::client::ClientInfo;
use crate::engineio::metrics::EngineMetrics;
use crate::engineio::packet::Packet;
use crate::engineio::transport::{Kill, Outbound, TransportKind};

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

/// The transport a session currently sends through.
pub(super) enum Transport {
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

/// What a session is, below its handler.
pub(super) struct Core {
    pub(super) sid: Arc<str>,
    pub(super) config: EngineConfig,
    pub(super) transport: Transport,
    pub(super) pong_deadline: Option<SpawnHandle>,
    /// When the outstanding ping times out, counted from when it was due (timers fire a
    /// little late; the deadline does not move with them).
    pub(super) pong_due: Option<Instant>,
    pub(super) flow: Flow,
    /// Packets the client sent that wait for reading to resume, oldest first (the rest of
    /// a long-polling POST).
    pub(super) held: VecDeque<Packet>,
    /// Held packets are to be handled at the end of the current turn (reading resumed).
    pub(super) resume_scheduled: bool,
    /// The server is shutting down: reading stays paused.
    pub(super) draining: bool,
    /// Who the client is.
    pub(super) client: ClientInfo,
    /// The session's place among the endpoint's sessions (given back when it stops).
    pub(super) ticket: Option<Ticket>,
    /// Where the session is counted, if anywhere.
    pub(super) metrics: Option<Arc<EngineMetrics>>,
    /// Packets the handler may queue past the buffer's limit.
    pub(super) burst: Burst,
    /// The transport this session is counted on as established.
    pub(super) counted: Option<TransportKind>,
    pub(super) closed: Option<SessionClose>,
}

/// Bursts of output the handler announced (a replay of what the client missed), which may
/// go past the buffer's limit: the client is not slow for not having taken them yet, and
/// what it is sent after one gets the buffer's whole room beyond what is left of it.
#[derive(Debug, Default)]
pub(crate) struct Burst {
    /// Most packets past the limit (a WebSocket's queue holds that many more).
    pub(crate) cap: usize,
    /// Packets of the announced burst not queued yet.
    pub(crate) left: usize,
    /// Packets of bursts that may still be in the buffer.
    owed: usize,
}

impl Burst {
    /// How many packets past its limit the buffer may hold for the next one, with `queued`
    /// held now: the whole cap within an announced burst, else what may be left of earlier
    /// ones (their packets leave the buffer before those queued after them).
    fn room(&mut self, queued: usize) -> usize {
        self.owed = self.owed.min(queued);
        if self.left > 0 {
            self.cap
        } else {
            self.owed.min(self.cap)
        }
    }

    /// A packet was queued.
    fn queued(&mut self) {
        if self.left > 0 {
            self.left -= 1;
            self.owed += 1;
        }
    }
}

/// How long a closed polling session keeps its last answer for the client's next GET.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// The actor that owns a [`Core`] (the session): what the core's timers come back to.
pub(super) trait CoreOwner: Actor<Context = Context<Self>> {
    /// The owner's core.
    fn core(&mut self) -> &mut Core;

    /// Handles what was held while reading was paused, until it is paused again; a held
    /// long-polling POST is answered once all its packets are taken.
    fn drain_held(&mut self, ctx: &mut Context<Self>);

    /// Once the session has closed: the handler learns of it (at once, even while a
    /// long-polling session waits for its client's last GET).
    fn notify_close(&mut self);
}

impl Core {
    /// Queues an item for the client; a full queue means the client stopped reading (past
    /// its limit only within an announced burst).
    pub(super) fn queue<A: CoreOwner>(&mut self, item: Outbound, ctx: &mut Context<A>) {
        let queued = match &self.transport {
            Transport::WebSocket { out, .. } => out.len(),
            Transport::Polling(polling) => polling.buffer.len(),
            Transport::Draining(_) | Transport::Closed => 0,
        };
        let past_limit = self.burst.room(queued);
        match &mut self.transport {
            Transport::WebSocket { out, .. } => {
                match try_queue(out, item, past_limit, self.burst.cap) {
                    Ok(()) => self.burst.queued(),
                    Err(TrySendError::Full(_)) => {
                        warn!("session {}: outgoing queue full, disconnecting", self.sid);
                        if let Some(m) = &self.metrics {
                            m.slow_clients.inc();
                        }
                        self.close(SessionClose::SlowClient, ctx);
                    }
                    Err(TrySendError::Closed(_)) => self.close(SessionClose::TransportClose, ctx),
                }
            }
            Transport::Polling(polling) => match polling.push(item, past_limit) {
                Pushed::Buffered => self.burst.queued(),
                Pushed::FlushDue => {
                    self.burst.queued();
                    // Flush at the end of this turn, so packets queued together go together.
                    ctx.run_later(Duration::ZERO, |act, _ctx| {
                        if let Transport::Polling(polling) = &mut act.core().transport {
                            polling.flush();
                        }
                    });
                }
                Pushed::Full => {
                    warn!("session {}: polling buffer full, disconnecting", self.sid);
                    if let Some(m) = &self.metrics {
                        m.slow_clients.inc();
                    }
                    self.close(SessionClose::SlowClient, ctx);
                }
            },
            Transport::Draining(_) | Transport::Closed => {}
        }
    }

    /// Whether the client's pong may be unread through no fault of its own: reading is
    /// paused, or a long-polling POST is held (the client sends nothing more until it is
    /// answered).
    pub(super) fn pong_may_wait(&self) -> bool {
        self.flow.paused
            || matches!(&self.transport, Transport::Polling(p) if p.held_reply.is_some())
    }

    /// The inbound stream is held back while a WebSocket session is paused or still has
    /// held packets to handle first; long-polling requests always get through (GETs must
    /// take output; POSTs are held by the session itself).
    pub(super) fn update_gate(&self) {
        let hold = matches!(self.transport, Transport::WebSocket { .. })
            && (self.flow.paused || !self.held.is_empty());
        self.flow.gate.set_closed(hold);
    }

    pub(super) fn pause(&mut self) {
        if !self.flow.paused {
            if let Some(m) = &self.metrics {
                m.pauses.inc();
            }
        }
        self.flow.paused = true;
        self.update_gate();
    }

    /// The transport the session is on, if it is open.
    pub(super) fn transport_kind(&self) -> Option<TransportKind> {
        match self.transport {
            Transport::WebSocket { .. } => Some(TransportKind::Websocket),
            Transport::Polling(_) => Some(TransportKind::Polling),
            Transport::Draining(_) | Transport::Closed => None,
        }
    }

    /// The session is established: counted on its transport (once).
    pub(super) fn count_established(&mut self) {
        if self.counted.is_some() {
            return;
        }
        if let (Some(m), Some(kind)) = (&self.metrics, self.transport_kind()) {
            m.sockets_on(kind).inc();
            self.counted = Some(kind);
        }
    }

    /// Moves the session's count to the transport it is on now (none once it closed).
    pub(super) fn recount(&mut self) {
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

    pub(super) fn resume<A: CoreOwner>(&mut self, ctx: &mut Context<A>) {
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

    pub(super) fn close<A: CoreOwner>(&mut self, reason: SessionClose, ctx: &mut Context<A>) {
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
                if reason != SessionClose::SlowClient
                    && out.try_send(Outbound::Close(reason.close_code())).is_ok()
                {
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
    pub(super) fn drain<A: CoreOwner>(
        &mut self,
        payload: String,
        reason: SessionClose,
        ctx: &mut Context<A>,
    ) {
        self.transport = Transport::Draining(payload);
        // No longer counted on its transport (the client's close comes here directly).
        self.recount();
        self.update_gate();
        self.closed = Some(reason);
        ctx.run_later(Duration::ZERO, |act, _ctx| act.notify_close());
        ctx.run_later(DRAIN_WAIT, |_act, ctx| ctx.stop());
    }
}

/// Queues `item` on a WebSocket's queue, which holds `cap` packets past its limit for a
/// burst: `Full` past the limit (plus `past_limit` within a burst).
fn try_queue(
    out: &mpsc::Sender<Outbound>,
    item: Outbound,
    past_limit: usize,
    cap: usize,
) -> Result<(), TrySendError<Outbound>> {
    let limit = out.max_capacity().saturating_sub(cap) + past_limit;
    out.try_send_within(item, limit)
}

#[cfg(test)]
mod tests {
    use super::Burst;

    #[test]
    fn a_burst_may_go_past_the_limit_and_what_follows_gets_the_whole_room_beyond_it() {
        let mut burst = Burst {
            cap: 100,
            left: 0,
            owed: 0,
        };
        assert_eq!(burst.room(0), 0, "no burst: the limit");
        burst.left = 60;
        for queued in 0..60 {
            assert_eq!(burst.room(queued), 100);
            burst.queued();
        }
        // The burst is queued: what follows may go past the limit by what is left of it.
        assert_eq!(burst.room(60), 60);
        burst.queued();
        // The client took 50 of the 61 packets: at most 11 of the burst's are left.
        assert_eq!(burst.room(11), 11);
        assert_eq!(burst.room(40), 11, "it does not grow back");
        assert_eq!(burst.room(0), 0, "all taken: the limit again");
    }

    #[test]
    fn past_the_limit_by_the_cap_at_most() {
        let mut burst = Burst {
            cap: 10,
            left: 50,
            owed: 0,
        };
        for queued in 0..50 {
            assert_eq!(burst.room(queued), 10);
            burst.queued();
        }
        assert_eq!(burst.room(50), 10);
    }
}
