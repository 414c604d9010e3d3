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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use log::debug;
use serde_json::{json, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::message_json::MessageJson;
use super::persistence::retrying;
use super::pids::PidState;
use super::push::{event, with_offset, AckReply, ChatPush, Frame, Mark, CHAT_NAMESPACE};
use super::recovery::{self, millis, Offset, Pid, Replayed, StreamKey};
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
    /// Where the socket is in its stream (connection state recovery on).
    stream: Option<Offset>,
    /// The recovery stream (its pid's nonce) this socket carries in the node's pid records.
    carried: Option<Arc<str>>,
    /// When the client last got its offset (milliseconds since the epoch): the stamp that
    /// vouches for the stream being live, refreshed on a pong when older than a quarter of
    /// `recovery.max_disconnection`.
    stamped: i64,
    /// Live events held while a replay is read.
    replaying: Option<Vec<ChatPush>>,
    /// What the last replay sent: a live event of one of these writes (committed before the
    /// replay's query, delivered by its room only afterwards) is not sent again. Kept for
    /// [`REPLAYED_KEPT`].
    replayed: Option<(HashSet<StreamKey>, std::time::Instant)>,
    /// Where the socket was when the link to the other nodes went down, and what it got
    /// since: when the link is back, the rest is read from the database.
    catch_up: Option<Box<CatchUp>>,
    /// Events another server sent asking for the client's acknowledgement: where each
    /// acknowledgement goes, by the event's id.
    asked: Option<Box<Asked>>,
    /// The socket's Socket.IO id, once it is in the cluster's index of sockets and rooms.
    indexed: Option<Arc<str>>,
    /// The user whose `chat.max_sockets_per_user` slot this Engine.IO session holds: taken at
    /// the first CONNECT, kept while the session lasts (also after the client left the
    /// namespace: the session is still the user's), given back when it closes.
    slot: Option<Arc<str>>,
    /// Requests waiting for a check (the cluster's rate count), in the client's order.
    ordered: Option<Box<Ordered>>,
}

/// What runs once a request's check is back: `true` if it passed.
pub(super) type Then = Box<dyn FnOnce(&mut ChatSocket, &mut SocketIo<'_, '_, ChatSocket>, bool)>;

/// What runs once a request passed its check.
pub(super) type Go = Box<dyn FnOnce(&mut ChatSocket, &mut SocketIo<'_, '_, ChatSocket>)>;

/// Requests waiting for their checks, run in the order they came whatever order the checks
/// come back in.
#[derive(Default)]
struct Ordered {
    /// The number of the first waiting request.
    first: u64,
    slots: std::collections::VecDeque<(Option<bool>, Then)>,
}

/// The acknowledgements a socket waits on, by event id.
#[derive(Default)]
struct Asked(HashMap<u64, AckReply>);

/// Most events asking for an acknowledgement a socket waits on; past it an event is sent
/// without asking (its sender waits out its timeout, as for a client that does not answer).
const MAX_ASKED: usize = 256;

/// A socket's position when the link to the other nodes went down, and the events it got
/// since (not sent again by the catch-up).
struct CatchUp {
    from: Offset,
    delivered: HashSet<StreamKey>,
    /// More events since than a replay gives: the catch-up gives up.
    overflowed: bool,
}

/// The event that tells a client its stream could not be caught up: its last argument, the
/// offset `"-"`, makes its next reconnect a fresh connection (`socket.recovered` false).
pub const RESYNC_EVENT: &str = "courier:resync";

/// A recovery the client asked for: its pid (and the token it came as), its offset, and when
/// Courier last vouched for its stream being live (its signed offset's stamp).
struct Attempt {
    pid: Pid,
    token: String,
    offset: Offset,
    live: Option<i64>,
}

/// The event that refreshes a client's offset (its stamp) when it got no stream event for a
/// while, and before a graceful shutdown closes it; socket.io-client keeps any event's last
/// string argument as its offset, and the app has no listener for it.
pub const OFFSET_EVENT: &str = "courier:offset";

/// Most live events held while a replay is read, besides the replay's own limit; past it
/// the socket is closed (it would be a slow client).
const MAX_HELD: usize = 10_000;

/// How long after a replay its writes' live events are recognised: a write committed
/// before the replay's query is delivered by its room within moments of the commit.
const REPLAYED_KEPT: std::time::Duration = std::time::Duration::from_secs(60);

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
            stream: None,
            carried: None,
            stamped: 0,
            replaying: None,
            replayed: None,
            catch_up: None,
            asked: None,
            indexed: None,
            ordered: None,
            slot: None,
        }
    }

    /// The recovery `auth` asks for, if it carries a pid Courier signed and an offset of
    /// that pid's stream (or none).
    fn attempt(&self, auth: Option<&Value>) -> Option<Attempt> {
        let auth = auth?;
        let token = auth.get("pid")?.as_str()?;
        let pid = Pid::verify(token, &self.ctx.pid_key)?;
        let max = self.ctx.recovery.max_conversations;
        let (offset, live) = match auth.get("offset") {
            None | Some(Value::Null) => (Offset::start(&pid), None),
            Some(Value::String(text)) => Offset::decode(text, &pid, max, &self.ctx.pid_key)?,
            Some(_) => return None,
        };
        Some(Attempt {
            token: token.to_string(),
            pid,
            offset,
            live,
        })
    }

    /// Connects the authenticated `user`, who has `elsewhere` sockets on the other nodes:
    /// a recovery (`attempt`) or a fresh connection. `Ok(true)`: the CONNECT is answered
    /// later (a recovery reads what was missed first).
    fn connect_as(
        &mut self,
        user: Arc<str>,
        attempt: Option<Attempt>,
        expired: bool,
        elsewhere: usize,
        io: &mut SocketIo<'_, '_, Self>,
    ) -> Result<bool, Value> {
        match attempt {
            Some(attempt) => {
                if expired && !self.stands_in(&user, &attempt) {
                    debug!(
                        "session {}: expired token, and the pid's session disconnected too long \
                         ago to recover",
                        io.engine_sid()
                    );
                    self.ctx
                        .refusals
                        .refused(crate::auth::INVALID_TOKEN, io.client().address);
                    return Err(json!({ "message": crate::auth::INVALID_TOKEN }));
                }
                io.defer_connect();
                self.replay(user, attempt, elsewhere, io);
                Ok(true)
            }
            None => {
                self.register(user.clone(), elsewhere, io)?;
                self.fresh_stream(&user, millis(&entity::now_utc_ms()), io);
                Ok(false)
            }
        }
    }

    /// Takes one of `user`'s socket slots (`elsewhere`: their sockets on the other nodes)
    /// and registers the socket with the user registry.
    fn register(
        &mut self,
        user: Arc<str>,
        elsewhere: usize,
        io: &mut SocketIo<'_, '_, Self>,
    ) -> Result<(), Value> {
        if self.slot.as_ref() != Some(&user) {
            // A session that connected as another user before gives that user's slot back.
            if let Some(previous) = self.slot.take() {
                self.ctx.socket_slots.give_back(&previous);
            }
            if !self.ctx.socket_slots.take(&user, elsewhere) {
                self.ctx
                    .refusals
                    .refused("too many sockets for one user", io.client().address);
                return Err(json!({ "message": TOO_MANY_CONNECTIONS }));
            }
            self.slot = Some(user.clone());
        }
        let sid: Arc<str> = Arc::from(io.engine_sid());
        if let Some(index) = self.ctx.users.index() {
            // In a cluster the other servers reach the socket by its Socket.IO id and its
            // rooms, from now on (a recovery's replay holds what they send meanwhile).
            let id: Arc<str> = Arc::from(io.reserve_socket_id(CHAT_NAMESPACE));
            index.add(&id, &user, io.recipient());
            self.indexed = Some(id);
        }
        self.ctx
            .users
            .register(&user, &sid, io.recipient(), io.client().clone());
        self.me = Some((user, sid));
        Ok(())
    }

    /// A new stream for `user` starting now: its pid goes into the CONNECT answer.
    fn fresh_stream(&mut self, user: &str, base: i64, io: &mut SocketIo<'_, '_, Self>) {
        if !self.ctx.recovery.enabled {
            return;
        }
        let pid = Pid::fresh(user, base);
        io.set_pid(pid.sign(&self.ctx.pid_key));
        self.carry(&pid.nonce, false, io);
        self.stream = Some(Offset::start(&pid));
        self.stamped = base;
        self.link_changed(false);
    }

    /// This socket carries the stream `nonce` from now on; another socket that still did
    /// (the same client's old transport, not yet timed out) is closed: one pid never has two
    /// live sockets.
    /// `recovering`: the pid is a client's (on another node a socket may still carry it).
    fn carry(&mut self, nonce: &str, recovering: bool, io: &mut SocketIo<'_, '_, Self>) {
        let Some((user, sid)) = &self.me else {
            return;
        };
        let pids = self.ctx.users.pids();
        if let Some(previous) = self.carried.replace(Arc::from(nonce)) {
            pids.disconnected(&previous, sid);
        }
        if let Some(old) = pids.carry(nonce, user, sid, io.recipient()) {
            debug!(
                "session {}: took its pid's stream over from a live session",
                io.engine_sid()
            );
            old.do_send(ChatPush::TakenOver);
        }
        if let Some(remote) = self.ctx.users.remote().filter(|_| recovering) {
            remote.pid_taken(nonce);
        }
    }

    /// Whether `attempt`'s pid stands in for an expired token of `user`: while its session
    /// is live (a network switch), and within `recovery.max_disconnection` after that
    /// session disconnected, as this node recorded it, or else (after a restart, on another
    /// node) as the stamp of the offset Courier last gave the client vouches (at worst the
    /// pid's start), never the user's activity on other sockets.
    fn stands_in(&self, user: &str, attempt: &Attempt) -> bool {
        let max = self.ctx.recovery.max_disconnection;
        match self.ctx.users.pids().state(&attempt.pid.nonce, user) {
            PidState::Live => true,
            PidState::Gone(ago) => ago <= max,
            PidState::Unknown => {
                let vouched = attempt
                    .live
                    .unwrap_or(attempt.pid.base)
                    .max(attempt.pid.base);
                let now = millis(&entity::now_utc_ms());
                now.saturating_sub(vouched) <= max.as_millis() as i64
            }
        }
    }

    /// Registers the socket (live events are held from now on), then reads the replay.
    fn replay(
        &mut self,
        user: Arc<str>,
        attempt: Attempt,
        elsewhere: usize,
        io: &mut SocketIo<'_, '_, Self>,
    ) {
        if let Err(refusal) = self.register(user.clone(), elsewhere, io) {
            return io.refuse_connect(CHAT_NAMESPACE, refusal);
        }
        let registered = millis(&entity::now_utc_ms());
        self.carry(&attempt.pid.nonce, true, io);
        self.replaying = Some(Vec::new());
        let users = self.ctx.users.clone();
        let db = self.ctx.db.clone();
        let retry_for = self.ctx.retry_for;
        let max = self.ctx.recovery.max_replay;
        let offset = attempt.offset.clone();
        let read = async move {
            // Once the registry has the socket, every room that completes a write from now
            // on delivers to it: what the query does not see is held, not missed.
            users.socket_count(&user).await;
            retrying(retry_for, || recovery::replay(&db, &user, &offset, max)).await
        };
        io.spawn(read, move |me, io, read| {
            let held = me.replaying.take().unwrap_or_default();
            let Some((user, _)) = me.me.clone() else {
                return;
            };
            match read {
                Ok(Some(events)) => {
                    io.set_pid(attempt.token);
                    me.stream = Some(attempt.offset);
                    me.stamped = attempt.live.unwrap_or(attempt.pid.base);
                    me.link_changed(false);
                    io.accept_connect(CHAT_NAMESPACE);
                    debug!(
                        "session {}: recovered, {} events replayed",
                        io.engine_sid(),
                        events.len()
                    );
                    let mut replayed = HashSet::with_capacity(events.len());
                    for replay in events {
                        replayed.insert(replay.key());
                        let (frame, mark) = replay_frame(replay);
                        me.send_marked(frame, &mark, io);
                    }
                    // The live events of replayed writes are dropped, now (held) and later
                    // (committed before the query, delivered after it).
                    me.keep_replayed(replayed, io);
                    for push in held {
                        me.on_push(push, io);
                    }
                }
                other => {
                    match other {
                        Ok(_) => debug!(
                            "session {}: more than {max} missed events, not recovered",
                            io.engine_sid()
                        ),
                        Err(e) => log::warn!(
                            "session {}: the replay could not be read ({e}); not recovered",
                            io.engine_sid()
                        ),
                    }
                    // Not recovered: the pid's stream ends here, a new one starts.
                    me.fresh_stream(&user, registered, io);
                    io.accept_connect(CHAT_NAMESPACE);
                    for push in held {
                        me.on_push(push, io);
                    }
                }
            }
        });
    }

    /// The link to the other nodes went down (`up == false`; also called when a stream
    /// starts, and then only acts if the link is down now) or came back.
    fn link_changed(&mut self, up: bool) -> Option<Box<CatchUp>> {
        if up {
            return self.catch_up.take();
        }
        if self.catch_up.is_none() && self.ctx.users.remote_link_down() {
            if let Some(stream) = self.stream.as_ref().filter(|s| !s.overflow) {
                self.catch_up = Some(Box::new(CatchUp {
                    from: stream.clone(),
                    delivered: HashSet::new(),
                    overflowed: false,
                }));
            }
        }
        None
    }

    /// Reads from the database what the socket missed since `from` (the link to the other
    /// nodes was down) and sends it, as a recovery does: live events are held meanwhile;
    /// what the socket got since, or gets held, is not sent twice.
    fn catch_up(&mut self, from: CatchUp, io: &mut SocketIo<'_, '_, Self>) {
        let Some((user, _)) = self.me.clone() else {
            return;
        };
        if from.overflowed {
            return self.resync(io);
        }
        self.replaying = Some(Vec::new());
        let db = self.ctx.db.clone();
        let retry_for = self.ctx.retry_for;
        let max = self.ctx.recovery.max_replay;
        let CatchUp {
            from: offset,
            delivered,
            ..
        } = from;
        let read =
            async move { retrying(retry_for, || recovery::replay(&db, &user, &offset, max)).await };
        io.spawn(read, move |me, io, read| {
            let held = me.replaying.take().unwrap_or_default();
            let caught_up = match read {
                Ok(Some(events)) => {
                    let mut replayed = me.replayed.take().map(|(r, _)| r).unwrap_or_default();
                    let mut sent = 0;
                    for replay in events {
                        let key = replay.key();
                        if delivered.contains(&key) || !replayed.insert(key) {
                            continue;
                        }
                        let (frame, mark) = replay_frame(replay);
                        me.send_marked(frame, &mark, io);
                        sent += 1;
                    }
                    debug!(
                        "session {}: caught up after the link to the other nodes came back, \
                         {sent} events sent",
                        io.engine_sid()
                    );
                    me.keep_replayed(replayed, io);
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    log::warn!(
                        "session {}: the catch-up could not be read ({e})",
                        io.engine_sid()
                    );
                    false
                }
            };
            for push in held {
                me.on_push(push, io);
            }
            if !caught_up {
                me.resync(io);
            }
        });
    }

    /// Remembers what a replay (or a catch-up) sent for [`REPLAYED_KEPT`], so that their
    /// live copies are dropped: now (held) and later (committed before its read, delivered
    /// after it).
    fn keep_replayed(&mut self, replayed: HashSet<StreamKey>, io: &mut SocketIo<'_, '_, Self>) {
        if replayed.is_empty() {
            return;
        }
        let until = std::time::Instant::now() + REPLAYED_KEPT;
        self.replayed = Some((replayed, until));
        io.spawn(tokio::time::sleep(REPLAYED_KEPT), |me, _, ()| {
            // Unless a later replay kept them longer.
            if me
                .replayed
                .as_ref()
                .is_some_and(|(_, until)| *until <= std::time::Instant::now())
            {
                me.replayed = None;
            }
        });
    }

    /// The socket cannot be caught up: its client is told (its offset becomes `"-"`, so it
    /// reconnects fresh, `socket.recovered` false, and should refetch) and the transport is
    /// closed.
    fn resync(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        log::info!(
            "session {}: too much missed from other nodes to catch up; closing it so that its \
             client reconnects and refetches",
            io.engine_sid()
        );
        if let Some(stream) = &mut self.stream {
            stream.overflow = true;
            stream.conversations.clear();
        }
        io.emit(
            CHAT_NAMESPACE,
            RESYNC_EVENT,
            vec![json!({ "reason": "missed events" }), json!("-")],
        );
        io.close();
    }

    /// Sends `packet` asking for the client's acknowledgement, which goes to `reply` if it
    /// comes within `timeout`.
    fn ask(
        &mut self,
        packet: &crate::socketio::Packet,
        reply: AckReply,
        timeout: std::time::Duration,
        io: &mut SocketIo<'_, '_, Self>,
    ) {
        let asked = self.asked.get_or_insert_with(Box::default);
        if asked.0.len() >= MAX_ASKED {
            debug!(
                "session {}: {MAX_ASKED} acknowledgements awaited already; sent without asking",
                io.engine_sid()
            );
            return io.send(packet);
        }
        let id = io.ask(packet.clone());
        asked.0.insert(id, reply);
        io.spawn(tokio::time::sleep(timeout), move |me, _, ()| {
            if let Some(asked) = &mut me.asked {
                asked.0.remove(&id);
                if asked.0.is_empty() {
                    me.asked = None;
                }
            }
        });
    }

    /// The server is shutting down and what the client asked for is done: its offset, stamped
    /// now, vouches for its stream until this moment (after the restart its pid stands in for
    /// an expired token for `recovery.max_disconnection` from here), then the transport
    /// closes.
    fn close_drained(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        self.send_offset(io);
        io.close();
    }

    /// Sends the client its offset, stamped now (`courier:offset`), if it has a stream.
    fn send_offset(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        let Some(stream) = self.stream.as_ref().filter(|s| !s.overflow) else {
            return;
        };
        if self.me.is_none() {
            return;
        }
        let now = millis(&entity::now_utc_ms());
        self.stamped = now;
        let offset = stream.encode(&self.ctx.pid_key, now);
        io.emit(CHAT_NAMESPACE, OFFSET_EVENT, vec![Value::String(offset)]);
    }

    /// Sends an event of a conversation's stream with the socket's offset after it.
    fn send_marked(&mut self, frame: Frame, mark: &Mark, io: &mut SocketIo<'_, '_, Self>) {
        if let Some(catch_up) = &mut self.catch_up {
            if catch_up.delivered.len() >= self.ctx.recovery.max_replay {
                catch_up.overflowed = true;
            } else if !catch_up.overflowed {
                catch_up.delivered.insert(mark.key.clone());
            }
        }
        match &mut self.stream {
            Some(stream) => {
                stream.advance(
                    &mark.conversation,
                    mark.at,
                    self.ctx.recovery.max_conversations,
                );
                let now = millis(&entity::now_utc_ms());
                self.stamped = now;
                io.send_framed(with_offset(&frame, &stream.encode(&self.ctx.pid_key, now)));
            }
            None => io.send_framed(frame),
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

    /// Runs `then` once `check` is back, after every request given here before it: the
    /// request counts in the socket's window meanwhile.
    pub(super) fn in_order(
        &mut self,
        check: futures_util::future::BoxFuture<'static, bool>,
        then: Then,
        io: &mut SocketIo<'_, '_, Self>,
    ) {
        let ordered = self.ordered.get_or_insert_with(Box::default);
        let number = ordered.first + ordered.slots.len() as u64;
        ordered.slots.push_back((None, then));
        self.begin(io);
        io.spawn(check, move |me, io, passed| {
            if let Some(ordered) = &mut me.ordered {
                let at = number.wrapping_sub(ordered.first) as usize;
                if let Some(slot) = ordered.slots.get_mut(at) {
                    slot.0 = Some(passed);
                }
            }
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
                me.ctx.metrics.refused(super::metrics::Refusal::RateLimited);
            }
            me.ctx
                .metrics
                .rate_limited(super::metrics::Limited::Message);
            fail(io, ack, super::rate_limit::TOO_FAST);
        });
        match self.ctx.rate_limit.check(user) {
            super::rate_limit::RateCheck::Allowed => then(self, io, true),
            super::rate_limit::RateCheck::Refused => then(self, io, false),
            super::rate_limit::RateCheck::Counting(count) => self.in_order(count, then, io),
        }
    }

    /// Runs the waiting requests whose checks are back, in order, up to the first still out.
    fn run_ordered(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        while let Some(ordered) = self
            .ordered
            .as_mut()
            .filter(|o| matches!(o.slots.front(), Some((Some(_), _))))
        {
            let Some((Some(passed), then)) = ordered.slots.pop_front() else {
                break;
            };
            ordered.first += 1;
            if ordered.slots.is_empty() {
                self.ordered = None;
            }
            self.in_flight = self.in_flight.saturating_sub(1);
            if self.me.is_some() {
                then(self, io, passed);
            }
        }
        self.update_flow(io);
        if self.draining && self.in_flight == 0 {
            self.close_drained(io);
        }
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

    fn on_event(&mut self, nsp: &str, event: Event, io: &mut SocketIo<'_, '_, Self>) {
        self.ctx.metrics.event(&event.name);
        match event.name.as_str() {
            "join_chat" => self.join_chat(event, io),
            "send_message" => self.send_message(event, io),
            "mark_message_read" => self.mark_message_read(event, io),
            "heartbeat" => self.heartbeat(event, io),
            "fetch_messages" => self.fetch_messages(event, io),
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
        if let Some(held) = &mut self.replaying {
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
                if self.catch_up.is_none() {
                    if let Some(stream) = self.stream.as_ref().filter(|s| !s.overflow) {
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
                    .replayed
                    .as_mut()
                    .is_some_and(|(replayed, _)| replayed.remove(&mark.key));
                if self.me.is_some() && !again {
                    self.send_marked(frame, &mark, io);
                }
            }
            ChatPush::Done { event, ack, mark } => {
                self.in_flight = self.in_flight.saturating_sub(1);
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
                if self.draining && self.in_flight == 0 {
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
        if let Some(reply) = self.asked.as_mut().and_then(|asked| asked.0.remove(&id)) {
            (reply.0)(args, attachments);
        }
    }

    fn on_drain(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        // What the client sent before is finished first: saved, then answered.
        self.draining = true;
        if self.in_flight == 0 {
            self.close_drained(io);
        }
    }

    fn on_pong(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        self.heard();
        let every = self.ctx.recovery.max_disconnection.as_millis() as i64 / 4;
        if millis(&entity::now_utc_ms()) - self.stamped >= every {
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
            self.stream = None;
            if let Some(nonce) = self.carried.take() {
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

/// The frame of a replayed event and where it stands.
fn replay_frame(replay: Replayed) -> (Frame, Mark) {
    let mark = Mark {
        conversation: Arc::from(match &replay {
            Replayed::Received(m) | Replayed::Read(m) => m.connection_id.as_str(),
        }),
        at: replay.at(),
        key: replay.key(),
    };
    let frame = match replay {
        Replayed::Received(m) => event("receive_message", &[&MessageJson(&m).to_string()]),
        Replayed::Read(m) => {
            let notice = json!({
                "messageId": m.id,
                "connectionId": m.connection_id,
                "readBy": m.receiver_id,
            });
            event("message_read", &[&notice.to_string()])
        }
    };
    (frame, mark)
}

/// A semaphore with `n` permits for the database's write queue.
pub fn write_permits(n: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(n.clamp(1, Semaphore::MAX_PERMITS)))
}
