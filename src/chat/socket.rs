//! [`ChatSocket`]: the chat as one browser socket sees it, the [`SocketHandler`] of every
//! connection to Courier's `/socket.io/` endpoint.
//!
//! It accepts CONNECTs to `/` carrying a valid `auth.token` (other namespaces are refused,
//! as the Node server does), registers the socket with the user registry, and hands each
//! event to its file (`join_chat.rs`, `send_message.rs`, `mark_message_read.rs`); unknown
//! events are ignored.
//!
//! Back-pressure: every request that goes to a room takes a slot of the socket's window
//! (`chat.send_window`) until its answer comes back ([`ChatPush::Done`]); a request that
//! writes also takes a permit of the database's write queue (`database.write_queue`, shared
//! by all sockets). While the window is full or a permit is awaited, the socket stops
//! reading from its client (the Engine.IO session pauses the WebSocket or holds the
//! long-polling POST); it reads on as answers come back. A busy server slows clients down;
//! it never refuses their messages.

use std::sync::Arc;

use log::debug;
use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::push::{ChatPush, CHAT_NAMESPACE};
use super::room::RoomRequest;
use super::ChatContext;
use crate::rate::TokenBucket;
use crate::socketio::{Event, SocketHandler, SocketIo};

/// The `connect_error` message past `chat.max_sockets_per_user`.
pub const TOO_MANY_CONNECTIONS: &str = "Too many connections";

/// A request that waits for a write permit before it goes to its room.
struct Blocked {
    connection_id: Arc<str>,
    request: Box<dyn FnOnce(Option<OwnedSemaphorePermit>) -> Box<dyn RoomRequest>>,
}

/// One browser socket of the chat.
pub struct ChatSocket {
    pub(super) ctx: Arc<ChatContext>,
    /// The authenticated user and the socket's session id, once connected to `/`.
    pub(super) me: Option<(Arc<str>, Arc<str>)>,
    /// Requests sent to rooms and not answered yet.
    in_flight: usize,
    /// A request waiting for a write permit (at most one: reading is paused meanwhile).
    blocked: bool,
    /// When the user's shard was last told the user is alive.
    pub(super) last_heard: Option<std::time::Instant>,
    /// The socket's share of `chat.call_rate`.
    pub(super) call_bucket: TokenBucket,
    /// The server is shutting down: close once nothing is in flight.
    draining: bool,
}

impl ChatSocket {
    /// A socket that has not authenticated yet.
    pub fn new(ctx: Arc<ChatContext>) -> Self {
        ChatSocket {
            call_bucket: TokenBucket::full(ctx.call_rate),
            ctx,
            me: None,
            in_flight: 0,
            blocked: false,
            last_heard: None,
            draining: false,
        }
    }

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
        self.in_flight += 1;
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
                    self.blocked = true;
                    let blocked = Blocked {
                        connection_id,
                        request: Box::new(request),
                    };
                    let permits = self.ctx.write_permits.clone();
                    io.spawn(permits.acquire_owned(), move |me, io, permit| {
                        me.blocked = false;
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

    /// Counts a request that is not a room's (its answer is a [`ChatPush::Done`] too).
    pub(super) fn begin(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        self.in_flight += 1;
        self.update_flow(io);
    }

    /// Pauses or resumes reading from the client as the window and the permit allow.
    fn update_flow(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        if self.blocked || self.in_flight >= self.ctx.send_window {
            io.pause_reading();
        } else {
            io.resume_reading();
        }
    }

    /// The user, the socket's session id and where its answers go.
    pub(super) fn caller(
        &self,
        ack: Option<u64>,
        io: &SocketIo<'_, '_, Self>,
    ) -> Option<(Arc<str>, super::push::Caller)> {
        let (user, sid) = self.me.clone()?;
        Some((
            user,
            super::push::Caller {
                sid,
                push: io.recipient(),
                ack,
            },
        ))
    }
}

/// An `error` event `{message}`, and an ack `{error}` if one was asked for: the answer to
/// bad arguments, given at once (no request goes anywhere).
pub(super) fn fail(io: &mut SocketIo<'_, '_, ChatSocket>, ack: Option<u64>, message: &str) {
    io.emit(CHAT_NAMESPACE, "error", vec![json!({ "message": message })]);
    if let Some(id) = ack {
        io.ack(CHAT_NAMESPACE, id, vec![json!({ "error": message })]);
    }
}

impl SocketHandler for ChatSocket {
    type Push = ChatPush;

    fn on_connect(
        &mut self,
        nsp: &str,
        auth: Option<&Value>,
        io: &mut SocketIo<'_, '_, Self>,
    ) -> Result<(), Value> {
        if nsp != CHAT_NAMESPACE {
            return Err(json!({ "message": "Invalid namespace" }));
        }
        match self.ctx.auth.authenticate(auth) {
            Ok(user_id) => {
                debug!("session {}: authenticated as {user_id}", io.engine_sid());
                let user: Arc<str> = user_id.into();
                if !self.ctx.socket_slots.take(&user) {
                    self.ctx
                        .refusals
                        .refused("too many sockets for one user", io.client().address);
                    return Err(json!({ "message": TOO_MANY_CONNECTIONS }));
                }
                let sid: Arc<str> = Arc::from(io.engine_sid());
                self.ctx
                    .users
                    .register(&user, &sid, io.recipient(), io.client().clone());
                self.me = Some((user, sid));
                Ok(())
            }
            Err(e) => {
                debug!("session {}: authentication refused: {e:?}", io.engine_sid());
                self.ctx
                    .refusals
                    .refused(e.client_message(), io.client().address);
                Err(json!({ "message": e.client_message() }))
            }
        }
    }

    fn on_event(&mut self, nsp: &str, event: Event, io: &mut SocketIo<'_, '_, Self>) {
        self.ctx.metrics.event(&event.name);
        match event.name.as_str() {
            "join_chat" => self.join_chat(event, io),
            "send_message" => self.send_message(event, io),
            "mark_message_read" => self.mark_message_read(event, io),
            "heartbeat" => self.heartbeat(event, io),
            "delete_messages" => self.delete_messages(event, io),
            "clear_conversation" => self.clear_conversation(event, io),
            name if name.starts_with("call:") && self.call_event(&event, io) => {}
            other => debug!(
                "session {}: unknown event {other:?} on {nsp} ignored",
                io.engine_sid()
            ),
        }
    }

    fn on_push(&mut self, push: ChatPush, io: &mut SocketIo<'_, '_, Self>) {
        match push {
            ChatPush::Deliver(frame) => {
                if self.me.is_some() {
                    io.send_framed(frame);
                }
            }
            ChatPush::Joined(connection_id) => {
                if self.me.is_some() {
                    io.joined_room(CHAT_NAMESPACE, &connection_id);
                }
            }
            ChatPush::Done { event, ack } => {
                self.in_flight = self.in_flight.saturating_sub(1);
                // A socket that left the namespace meanwhile is not answered there.
                if self.me.is_some() {
                    if let Some(frame) = event {
                        io.send_framed(frame);
                    }
                    if let Some(frame) = ack {
                        io.send_framed(frame);
                    }
                }
                self.update_flow(io);
                if self.draining && self.in_flight == 0 {
                    io.close();
                }
            }
        }
    }

    fn on_drain(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        // What the client sent before is finished first: saved, then answered.
        self.draining = true;
        if self.in_flight == 0 {
            io.close();
        }
    }

    fn on_pong(&mut self, _io: &mut SocketIo<'_, '_, Self>) {
        self.heard();
    }

    fn on_disconnect(&mut self, _nsp: &str, _reason: &str) {
        if let Some((user, sid)) = self.me.take() {
            // The rooms learn it from the registry (and forget the socket as joined).
            self.ctx.users.unregister(&user, &sid);
            self.ctx.socket_slots.give_back(&user);
        }
    }
}

/// A semaphore with `n` permits for the database's write queue.
pub fn write_permits(n: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(n.clamp(1, Semaphore::MAX_PERMITS)))
}
