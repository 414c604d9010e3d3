//! Long-polling's state: output waiting in a buffer for the client's GET, the pending GET,
//! the answer of a POST whose packets are held, and a WebSocket probing an upgrade
//! ([`Probe`]). What requests do with it is in [`super::inbound`] and [`super::upgrade`].

use std::collections::VecDeque;

use tokio::sync::oneshot;

use crate::engineio::queue as mpsc;

use super::close::KILL_GRACE;
use crate::engineio::packet::{Packet, RECORD_SEPARATOR};
use crate::engineio::transport::{Kill, Outbound, PollReply, CLOSE_PROTOCOL};

/// Long-polling state.
pub(super) struct Polling {
    /// Output waiting for a GET, oldest first.
    pub(super) buffer: VecDeque<Outbound>,
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

/// What [`Polling::push`] did with an item.
pub(super) enum Pushed {
    /// Buffered.
    Buffered,
    /// Buffered, and a GET is waiting: the caller schedules [`Polling::flush`] for the end
    /// of this turn.
    FlushDue,
    /// The buffer is full (the client is not reading); nothing was buffered.
    Full,
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

    /// Buffers `item`, unless the buffer is full (`past_limit`: packets it may hold past its
    /// limit, in a burst).
    pub(super) fn push(&mut self, item: Outbound, past_limit: usize) -> Pushed {
        if self.buffer.len() >= self.limit + past_limit {
            return Pushed::Full;
        }
        self.buffer.push_back(item);
        if self.get.as_ref().is_some_and(|get| !get.is_closed()) && !self.flush_scheduled {
            self.flush_scheduled = true;
            return Pushed::FlushDue;
        }
        Pushed::Buffered
    }

    /// The scheduled flush: what is buffered goes to the pending GET.
    pub(super) fn flush(&mut self) {
        self.flush_scheduled = false;
        if !self.buffer.is_empty() {
            if let Some(get) = self.get.take() {
                let _ = get.send(PollReply::Ok(drain_payload(&mut self.buffer)));
            }
        }
    }

    /// The pending GET, unless its client went away.
    pub(super) fn take_live_get(&mut self) -> Option<oneshot::Sender<PollReply>> {
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

/// A WebSocket that asked to take a polling session over.
pub(super) struct Probe {
    pub(super) id: u64,
    pub(super) out: mpsc::Sender<Outbound>,
    pub(super) kill: Kill,
    /// `2probe` was answered.
    pub(super) probed: bool,
}

impl Probe {
    /// Ends the probe's WebSocket (the session stays on polling).
    pub(super) fn abandon(self) {
        let _ = self.out.try_send(Outbound::Close(CLOSE_PROTOCOL));
        self.kill.fire_after(KILL_GRACE);
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
