//! The heartbeat (Engine.IO v4): the server queues a ping (`2`) every `ping_interval`; when
//! no pong (`3`) arrives within `ping_timeout` of queuing it, the session closes.
//!
//! While the handler has paused reading (or holds a long-polling POST, which keeps the
//! client from sending anything), the client's pong may be waiting unread, so a deadline
//! that passes then closes nothing: pings go on at their usual pace (the client takes a
//! silent server for a dead one), and the first ping after reading resumes has its deadline
//! again.

use std::time::{Duration, Instant};

use actix::{AsyncContext, Context};
use bytestring::ByteString;
use log::debug;

use super::actor::EngineSession;
use super::close::SessionClose;
use super::handler::EngineHandler;
use crate::engineio::transport::Outbound;

impl<H: EngineHandler> EngineSession<H> {
    /// Sends the next ping after `ping_interval`.
    pub(super) fn schedule_ping(&mut self, ctx: &mut Context<Self>) {
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
            act.arm_pong_deadline(ping_at + act.core.config.ping_timeout, ctx);
        });
    }

    /// Starts the pong deadline of a ping; it fires at `due` unless reading is paused then.
    fn arm_pong_deadline(&mut self, due: Instant, ctx: &mut Context<Self>) {
        self.core.pong_due = Some(due);
        let timeout = due.saturating_duration_since(Instant::now());
        self.core.pong_deadline = Some(ctx.run_later(timeout, |act, ctx| {
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

    /// The client's pong: its deadline is off, and the next ping is due `ping_interval`
    /// from now.
    pub(super) fn pong_received(&mut self, ctx: &mut Context<Self>) {
        self.core.pong_due = None;
        if let Some(deadline) = self.core.pong_deadline.take() {
            ctx.cancel_future(deadline);
            self.schedule_ping(ctx);
        }
    }

    /// Whether the outstanding ping was due and is still unanswered, though the client
    /// could have answered it: a pong that comes now is too late, even if the deadline's
    /// timer has not fired yet.
    pub(super) fn pong_overdue(&self) -> bool {
        self.core.closed.is_none()
            && !self.core.pong_may_wait()
            && self.core.pong_due.is_some_and(|due| Instant::now() >= due)
    }
}
