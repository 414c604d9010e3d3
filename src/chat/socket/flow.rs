//! The flow of a socket's requests: each one goes to its room as one of the socket's requests
//! in flight (a write first takes a permit of the database's write queue); checks that come
//! back later (the cluster's rate count) run in the client's order; reading from the client
//! pauses while the window ([`super::window::Window`]) is full, and goes on as answers come
//! back. A busy server slows clients down; it never refuses their messages.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::chat_socket::{ChatSocket, Then};
use super::events::fail;
use crate::chat::room::actor::RoomRequest;
use crate::socketio::SocketIo;

/// A request that waits for a write permit before it goes to its room.
pub(super) struct Blocked {
    connection_id: Arc<str>,
    request: Box<dyn FnOnce(Option<OwnedSemaphorePermit>) -> Box<dyn RoomRequest>>,
}

/// What runs once a request passed its check.
pub(super) type Go = Box<dyn FnOnce(&mut ChatSocket, &mut SocketIo<'_, '_, ChatSocket>)>;

impl ChatSocket {
    /// Sends `request` to the room of `connection_id` as one of the socket's requests in
    /// flight; a request that writes (`writes`) first takes a write permit. Reading pauses
    /// while the window is full or the permit is awaited.
    pub(super) fn submit<F>(
        &mut self,
        connection_id: Arc<str>,
        writes: bool,
        request: F,
        io: &mut SocketIo<'_, '_, Self>,
    ) where
        F: FnOnce(Option<OwnedSemaphorePermit>) -> Box<dyn RoomRequest> + 'static,
    {
        let Some((user, _)) = self.me.clone() else {
            return;
        };
        self.window.in_flight += 1;
        if !writes {
            self.ctx.rooms.route(connection_id, user, request(None));
        } else {
            match self.ctx.write_permits.clone().try_acquire_owned() {
                Ok(permit) => self
                    .ctx
                    .rooms
                    .route(connection_id, user, request(Some(permit))),
                Err(_) => {
                    // The database's queue is full: wait for a permit, reading nothing more.
                    self.window.blocked = true;
                    let blocked = Blocked {
                        connection_id,
                        request: Box::new(request),
                    };
                    let permits = self.ctx.write_permits.clone();
                    io.spawn(permits.acquire_owned(), move |me, io, permit| {
                        me.window.blocked = false;
                        if let Some((user, _)) = me.me.clone() {
                            let request = (blocked.request)(permit.ok());
                            me.ctx.rooms.route(blocked.connection_id, user, request);
                        }
                        me.update_flow(io);
                    });
                }
            }
        }
        self.update_flow(io);
    }

    /// Runs `then` once `check` is back, after every request given here before it: the
    /// request counts in the socket's window meanwhile.
    pub(super) fn in_order(
        &mut self,
        check: futures_util::future::BoxFuture<'static, bool>,
        then: Then,
        io: &mut SocketIo<'_, '_, Self>,
    ) {
        let number = self.window.queue(then);
        self.update_flow(io);
        io.spawn(check, move |me, io, passed| {
            me.window.checked(number, passed);
            me.run_ordered(io);
        });
    }

    /// Runs `go` if `user` is within `chat.rate_limit` (in a cluster once the count is back,
    /// in the order the client sent its requests); else `error` "You are sending messages
    /// too fast." and the failed ack (a refused `send_message` counts as a refused message
    /// too).
    pub(super) fn rate_limited(
        &mut self,
        user: &Arc<str>,
        ack: Option<u64>,
        message: bool,
        go: Go,
        io: &mut SocketIo<'_, '_, Self>,
    ) {
        let then: Then = Box::new(move |me, io, allowed| {
            if allowed {
                return go(me, io);
            }
            if message {
                me.ctx
                    .metrics
                    .refused(crate::chat::metrics::Refusal::RateLimited);
            }
            me.ctx
                .metrics
                .rate_limited(crate::chat::metrics::Limited::Message);
            fail(io, ack, crate::chat::rate_limit::TOO_FAST);
        });
        match self.ctx.rate_limit.check(user) {
            crate::chat::rate_limit::RateCheck::Allowed => then(self, io, true),
            crate::chat::rate_limit::RateCheck::Refused => then(self, io, false),
            crate::chat::rate_limit::RateCheck::Counting(count) => self.in_order(count, then, io),
        }
    }

    /// Runs the waiting requests whose checks are back, in order, up to the first still out.
    pub(super) fn run_ordered(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        while let Some((passed, then)) = self.window.next_checked() {
            if self.me.is_some() {
                then(self, io, passed);
            }
        }
        self.update_flow(io);
        if self.window.drained() {
            self.close_drained(io);
        }
    }

    /// Counts a request that is not a room's (its answer is a [`ChatPush::Done`] too).
    pub(super) fn begin(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        self.window.in_flight += 1;
        self.update_flow(io);
    }

    /// Pauses or resumes reading from the client as the window and the permit allow.
    pub(super) fn update_flow(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        if self.window.is_full(self.ctx.send_window) {
            io.pause_reading();
        } else {
            io.resume_reading();
        }
    }
}

/// A semaphore with `n` permits for the database's write queue.
pub fn write_permits(n: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(n.clamp(1, Semaphore::MAX_PERMITS)))
}
