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
//!
//! Connection state recovery (`chat::recovery`): a fresh CONNECT is answered `{sid, pid}`;
//! a CONNECT carrying a valid `pid` of the same user (and its `offset`) is answered once the
//! missed events are read: the same `pid`, then the replay, then the live events held
//! meanwhile. Every conversation event the socket sends carries its offset.

use std::collections::HashSet;
use std::sync::Arc;

use log::debug;
use serde_json::{json, Value};

use super::asks::{Asked, MAX_ASKED};
use super::stream::{CatchUp, Stream, MAX_HELD};
use super::window::Window;
use crate::chat::context::ChatContext;
use crate::chat::protocol::server::CHAT_NAMESPACE;
use crate::chat::push::{AckReply, ChatPush};
use crate::chat::recovery::millis;
use crate::rate::TokenBucket;
use crate::socketio::{Event, SocketHandler, SocketIo};

/// The `connect_error` message past `chat.max_sockets_per_user`.
pub const TOO_MANY_CONNECTIONS: &str = "Too many connections";

/// What runs once a request's check is back: `true` if it passed.
pub type Then = Box<dyn FnOnce(&mut ChatSocket, &mut SocketIo<'_, '_, ChatSocket>, bool)>;

/// One browser socket of the chat.
pub struct ChatSocket {
    pub(super) ctx: Arc<ChatContext>,
    /// The authenticated user and the socket's session id, once connected to `/`.
    pub(super) me: Option<(Arc<str>, Arc<str>)>,
    /// The requests in flight and what they wait for (back-pressure).
    pub(super) window: Window<Then>,
    /// The recovery stream (connection state recovery).
    pub(super) stream: Stream,
    /// Events another server sent asking for the client's acknowledgement: where each
    /// acknowledgement goes, by the event's id.
    pub(super) asked: Option<Box<Asked>>,
    /// When the user's shard was last told the user is alive.
    pub(super) last_heard: Option<std::time::Instant>,
    /// The socket's share of `chat.call_rate`.
    pub(super) call_bucket: TokenBucket,
    /// The socket's Socket.IO id, once it is in the cluster's index of sockets and rooms.
    pub(super) indexed: Option<Arc<str>>,
    /// The user whose `chat.max_sockets_per_user` slot this Engine.IO session holds: taken at
    /// the first CONNECT, kept while the session lasts (also after the client left the
    /// namespace: the session is still the user's), given back when it closes.
    pub(super) slot: Option<Arc<str>>,
}

impl ChatSocket {
    /// A socket that has not authenticated yet.
    pub fn new(ctx: Arc<ChatContext>) -> Self {
        ChatSocket {
            call_bucket: TokenBucket::full(ctx.call_rate),
            ctx,
            me: None,
            window: Window::default(),
            stream: Stream::default(),
            asked: None,
            last_heard: None,
            indexed: None,
            slot: None,
        }
    }

    /// The user, the socket's session id and where its answers go.
    pub(super) fn caller(
        &self,
        ack: Option<u64>,
        io: &SocketIo<'_, '_, Self>,
    ) -> Option<(Arc<str>, crate::chat::push::Caller)> {
        let (user, sid) = self.me.clone()?;
        Some((
            user,
            crate::chat::push::Caller {
                sid,
                push: io.recipient(),
                ack,
            },
        ))
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
        let attempt = if self.ctx.recovery.enabled {
            self.attempt(auth)
        } else {
            None
        };
        let authenticated = match &attempt {
            Some(_) => self.ctx.auth.authenticate_allowing_expiry(auth),
            None => self.ctx.auth.authenticate(auth).map(|user| (user, false)),
        };
        match authenticated {
            Ok((user_id, expired)) => {
                debug!("session {}: authenticated as {user_id}", io.engine_sid());
                // A pid of another user is no recovery: a fresh connection (or, with an
                // expired token, none).
                let attempt = attempt.filter(|a| a.pid.user == user_id);
                let user: Arc<str> = user_id.into();
                if attempt.is_none() && expired {
                    self.ctx
                        .refusals
                        .refused(crate::auth::INVALID_TOKEN, io.client().address);
                    return Err(json!({ "message": crate::auth::INVALID_TOKEN }));
                }
                let Some(count) = self.ctx.socket_slots.counting(&user) else {
                    return self.connect_as(user, attempt, expired, 0, io).map(|_| ());
                };
                // In a cluster the user's sockets on the other nodes count against
                // `chat.max_sockets_per_user` too: the CONNECT is answered once they are read.
                io.defer_connect();
                io.spawn(count, move |me, io, elsewhere| {
                    match me.connect_as(user, attempt, expired, elsewhere, io) {
                        Ok(true) => {}
                        Ok(false) => {
                            io.accept_connect(CHAT_NAMESPACE);
                        }
                        Err(refusal) => io.refuse_connect(CHAT_NAMESPACE, refusal),
                    }
                });
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

    fn on_event(&mut self, _nsp: &str, event: Event, io: &mut SocketIo<'_, '_, Self>) {
        self.ctx.metrics.event(&event.name);
        self.on_client_event(event, io);
    }

    fn on_push(&mut self, push: ChatPush, io: &mut SocketIo<'_, '_, Self>) {
        if let Some(held) = &mut self.stream.replaying {
            if held.len() >= self.ctx.recovery.max_replay + MAX_HELD {
                debug!(
                    "session {}: too many events held during a replay",
                    io.engine_sid()
                );
                return io.close();
            }
            held.push(push);
            return;
        }
        match push {
            ChatPush::Deliver(frame) => {
                if self.me.is_some() {
                    io.send_framed(frame);
                }
            }
            ChatPush::Joined(room) => {
                if self.me.is_some() {
                    if let (Some(index), Some(id)) = (self.ctx.users.index(), &self.indexed) {
                        index.join(id, &room);
                    }
                    io.joined_room(CHAT_NAMESPACE, &room);
                }
            }
            ChatPush::RemoteLink(up) => {
                if let Some(from) = self.link_changed(up) {
                    self.catch_up(*from, io);
                }
            }
            ChatPush::CatchUp => {
                // With the link down, its coming back catches up anyway.
                if self.stream.catch_up.is_none() {
                    if let Some(stream) = self.stream.offset.as_ref().filter(|s| !s.overflow) {
                        let from = CatchUp {
                            from: stream.clone(),
                            delivered: HashSet::new(),
                            overflowed: false,
                        };
                        self.catch_up(from, io);
                    }
                }
            }
            ChatPush::Packet(packet) => {
                if self.me.is_some() {
                    io.send(&packet);
                }
            }
            ChatPush::Ask {
                packet,
                reply,
                timeout,
            } => {
                if self.me.is_some() {
                    self.ask(&packet, reply, timeout, io);
                }
            }
            ChatPush::Disconnect { close } => {
                if self.me.is_some() {
                    io.disconnect(CHAT_NAMESPACE, close);
                }
            }
            ChatPush::TakenOver => io.close(),
            ChatPush::Stream(frame, mark) => {
                let again = self
                    .stream
                    .replayed
                    .as_mut()
                    .is_some_and(|(replayed, _)| replayed.remove(&mark.key));
                if self.me.is_some() && !again {
                    self.send_marked(frame, &mark, io);
                }
            }
            ChatPush::Done { event, ack, mark } => {
                self.window.in_flight = self.window.in_flight.saturating_sub(1);
                // A socket that left the namespace meanwhile is not answered there.
                if self.me.is_some() {
                    match (event, mark) {
                        (Some(frame), Some(mark)) => self.send_marked(frame, &mark, io),
                        (Some(frame), None) => io.send_framed(frame),
                        (None, _) => {}
                    }
                    if let Some(frame) = ack {
                        io.send_framed(frame);
                    }
                }
                self.update_flow(io);
                if self.window.draining && self.window.in_flight == 0 {
                    self.close_drained(io);
                }
            }
        }
    }

    fn on_ack(
        &mut self,
        _nsp: &str,
        id: u64,
        args: Vec<Value>,
        attachments: Vec<bytes::Bytes>,
        _io: &mut SocketIo<'_, '_, Self>,
    ) {
        if let Some(reply) = self.asked.as_mut().and_then(|asked| asked.take(id)) {
            (reply.0)(args, attachments);
        }
    }

    fn on_drain(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        // What the client sent before is finished first: saved, then answered.
        self.window.draining = true;
        if self.window.in_flight == 0 {
            self.close_drained(io);
        }
    }

    fn on_pong(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        self.heard();
        let every = self.ctx.recovery.max_disconnection.as_millis() as i64 / 4;
        if millis(&entity::now_utc_ms()) - self.stream.stamped >= every {
            self.send_offset(io);
        }
    }

    fn on_disconnect(&mut self, _nsp: &str, _reason: &str) {
        if let (Some(index), Some(id)) = (self.ctx.users.index(), self.indexed.take()) {
            index.remove(&id);
        }
        if let Some((user, sid)) = self.me.take() {
            // The rooms learn it from the registry (and forget the socket as joined).
            self.ctx.users.unregister(&user, &sid);
            self.stream.offset = None;
            if let Some(nonce) = self.stream.carried.take() {
                self.ctx.users.pids().disconnected(&nonce, &sid);
            }
        }
    }

    fn on_close(&mut self) {
        if let Some(user) = self.slot.take() {
            self.ctx.socket_slots.give_back(&user);
        }
    }
}

impl ChatSocket {
    /// Sends `packet` asking for the client's acknowledgement, which goes to `reply` if it
    /// comes within `timeout`.
    pub(super) fn ask(
        &mut self,
        packet: &crate::socketio::Packet,
        reply: AckReply,
        timeout: std::time::Duration,
        io: &mut SocketIo<'_, '_, Self>,
    ) {
        let asked = self.asked.get_or_insert_with(Box::default);
        if asked.is_full() {
            debug!(
                "session {}: {MAX_ASKED} acknowledgements awaited already; sent without asking",
                io.engine_sid()
            );
            return io.send(packet);
        }
        let id = io.ask(packet.clone());
        asked.insert(id, reply);
        io.spawn(tokio::time::sleep(timeout), move |me, _, ()| {
            if let Some(asked) = &mut me.asked {
                asked.take(id);
                if asked.is_empty() {
                    me.asked = None;
                }
            }
        });
    }
}
