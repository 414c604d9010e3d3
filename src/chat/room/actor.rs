//! The [`ChatRoom`] actor: its state, the conversation's order (sequence numbers, stamps,
//! completions in sequence order), delivery to the members' sockets, and its life (started
//! by its shard, stopped when idle). The requests it takes are in the sibling files.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient,
    WrapFuture,
};
use chrono::NaiveDateTime;
use log::debug;
use sea_orm::DatabaseConnection;
use tokio::sync::OwnedSemaphorePermit;

use crate::chat::metrics::ChatMetrics;
use crate::chat::persistence::{Write, WriteOp, WriteResult, Written};
use crate::chat::push::{ChatPush, Frame, Mark};
use crate::chat::users::{MemberChange, MemberUpdate, Users};

/// Why a request was refused; [`ChatError::message`] is what the client sees for a
/// message or a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatError {
    /// The connection does not exist, or is ENDED or BLOCKED.
    NotActive,
    /// The user is not one of the connection's two members.
    NotMember,
    /// The database failed (or Courier is shutting down).
    Failed,
}

impl ChatError {
    /// The client-facing message (the Node server's strings).
    pub fn message(self) -> &'static str {
        match self {
            ChatError::NotActive => "Connection is not active.",
            ChatError::NotMember => "You are not part of this connection.",
            ChatError::Failed => "Message failed to send.",
        }
    }
}

/// A request for a conversation's room, as the shard sees it: forwarded to the room, or
/// refused (answering the socket that asked). Every message a room handles for a socket is
/// one, through [`Refuse`].
pub trait RoomRequest: Send + 'static {
    /// Sends the request to its room.
    fn forward(self: Box<Self>, room: &actix::Addr<ChatRoom>);
    /// Answers the socket that asked with `error`.
    fn refuse(self: Box<Self>, error: ChatError, metrics: &ChatMetrics);
}

/// A room's request: how it is answered when the shard refuses it.
pub trait Refuse: actix::Message<Result = ()> + Send + 'static {
    /// Answers the socket that asked with `error`.
    fn refuse(self, error: ChatError, metrics: &ChatMetrics);
}

impl<M: Refuse> RoomRequest for M
where
    ChatRoom: Handler<M>,
{
    fn forward(self: Box<Self>, room: &actix::Addr<ChatRoom>) {
        room.do_send(*self);
    }

    fn refuse(self: Box<Self>, error: ChatError, metrics: &ChatMetrics) {
        Refuse::refuse(*self, error, metrics)
    }
}

/// What rooms need from the rest of the system.
#[derive(Clone)]
pub struct RoomDeps {
    /// Writes.
    pub persistence: Recipient<Write>,
    /// Members' sockets.
    pub users: Users,
    /// Fresh reads (a join reads the connection's status).
    pub db: DatabaseConnection,
    /// A room with no joined sockets and nothing in flight stops after this long.
    pub idle_timeout: Duration,
    /// How long a failed database connection is retried before a read fails.
    pub retry_for: Duration,
    /// What the chat counts.
    pub metrics: Arc<ChatMetrics>,
}

/// A room asks its shard to stop it: nothing joined, nothing in flight, `received`
/// requests handled so far.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct RoomIdle {
    pub connection_id: Arc<str>,
    pub room: u64,
    pub received: u64,
}

/// The shard's answer to [`RoomIdle`] when nothing was forwarded meanwhile.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct StopRoom;

/// What a room does once a write is committed (or failed), in sequence order.
pub(crate) type Completion = Box<dyn FnOnce(&mut ChatRoom, WriteResult)>;

/// Something a room does in its turn.
type Turn = Box<dyn FnOnce(&mut ChatRoom)>;

/// A step of the conversation's order.
enum Step {
    /// A write: completed with its result.
    Write(Completion),
    /// A read, and what to do with its result once it is in (`None` until then).
    Read(Option<Turn>),
}

pub(super) struct Pending {
    result: Option<WriteResult>,
    step: Step,
}

/// Something held until the room's clock is read.
type Held = Box<dyn FnOnce(&mut ChatRoom, &mut Context<ChatRoom>)>;

/// One conversation.
pub struct ChatRoom {
    pub(super) connection_id: Arc<str>,
    key: u64,
    members: [Arc<str>; 2],
    pub(super) deps: RoomDeps,
    shard: Recipient<RoomIdle>,
    /// Each member's connected sockets, from the user registry.
    sockets: [HashMap<Arc<str>, Recipient<ChatPush>>; 2],
    /// Whether each member's sockets are known (the registry's first answer arrived).
    synced: [bool; 2],
    /// Sockets that joined the conversation (`join_chat`), by sid.
    pub(super) joined: HashMap<Arc<str>, Recipient<ChatPush>>,
    /// The last stamp given.
    last_created: Option<NaiveDateTime>,
    /// Requests that stamp, held until the newest stamp in the database is read (`None`
    /// once it is).
    loading: Option<Vec<Held>>,
    /// Writes handed to persistence, in sequence order, the oldest first.
    pending: VecDeque<Pending>,
    /// The sequence number of `pending`'s first entry.
    first_seq: u64,
    /// Requests the shard forwarded so far.
    received: u64,
    /// Joins whose status read is under way.
    pub(super) reading: usize,
    last_activity: Instant,
}

impl ChatRoom {
    /// The room of `connection_id`, whose members are `members`; `key` tells this room
    /// apart from any other (also from a later room of the same conversation).
    pub fn new(
        connection_id: Arc<str>,
        members: [Arc<str>; 2],
        key: u64,
        deps: RoomDeps,
        shard: Recipient<RoomIdle>,
    ) -> Self {
        ChatRoom {
            connection_id,
            key,
            members,
            deps,
            shard,
            sockets: [HashMap::new(), HashMap::new()],
            synced: [false, false],
            joined: HashMap::new(),
            last_created: None,
            loading: Some(Vec::new()),
            pending: VecDeque::new(),
            first_seq: 0,
            received: 0,
            reading: 0,
            last_activity: Instant::now(),
        }
    }

    /// The conversation's connection id.
    pub fn connection_id(&self) -> &Arc<str> {
        &self.connection_id
    }

    /// The member who is not `user`.
    pub(crate) fn other_member(&self, user: &str) -> &Arc<str> {
        if *self.members[0] == *user {
            &self.members[1]
        } else {
            &self.members[0]
        }
    }

    /// What rooms share.
    pub(crate) fn deps(&self) -> &RoomDeps {
        &self.deps
    }

    /// Counts a request from the shard (see [`RoomIdle`]).
    pub(super) fn note_request(&mut self) {
        self.received += 1;
        self.note_activity();
    }

    /// `msg` back if the room's clock is ready; otherwise it is held and handled once the
    /// clock is read, in the order it came.
    pub(crate) fn unless_loading<M>(&mut self, msg: M, _ctx: &mut Context<Self>) -> Option<M>
    where
        M: actix::Message<Result = ()> + 'static,
        Self: Handler<M>,
    {
        match &mut self.loading {
            None => Some(msg),
            Some(held) => {
                held.push(Box::new(move |room, ctx| {
                    <ChatRoom as Handler<M>>::handle(room, msg, ctx);
                }));
                None
            }
        }
    }

    /// The stamp for the next write (a message's `createdAt`, a receipt's `updatedAt`):
    /// now, or one millisecond after the previous one if the clock has not moved past it.
    pub(crate) fn next_stamp(&mut self) -> NaiveDateTime {
        let now = entity::now_utc_ms();
        let at = match self.last_created {
            Some(last) if now <= last => last + chrono::Duration::milliseconds(1),
            _ => now,
        };
        self.last_created = Some(at);
        at
    }

    /// Hands `op` to persistence with the next sequence number; `complete` runs when its
    /// result and every earlier one are in.
    pub(crate) fn persist(
        &mut self,
        op: WriteOp,
        permit: Option<OwnedSemaphorePermit>,
        complete: Completion,
        ctx: &mut Context<Self>,
    ) {
        let seq = self.first_seq + self.pending.len() as u64;
        self.pending.push_back(Pending {
            result: None,
            step: Step::Write(complete),
        });
        self.deps.persistence.do_send(Write {
            room: self.key,
            reply: ctx.address().recipient(),
            seq,
            op,
            permit,
        });
    }

    /// Runs `read` now and `then` with its result once every step before it is done (the
    /// steps after it wait for it).
    pub(crate) fn after_read<T: 'static>(
        &mut self,
        read: impl std::future::Future<Output = T> + 'static,
        then: impl FnOnce(&mut ChatRoom, T) + 'static,
        ctx: &mut Context<Self>,
    ) {
        let seq = self.first_seq + self.pending.len() as u64;
        self.pending.push_back(Pending {
            result: None,
            step: Step::Read(None),
        });
        ctx.spawn(read.into_actor(self).map(move |out, room, _ctx| {
            let Some(index) = seq.checked_sub(room.first_seq) else {
                return;
            };
            if let Some(pending) = room.pending.get_mut(index as usize) {
                pending.step = Step::Read(Some(Box::new(move |room| then(room, out))));
            }
            room.complete_ready();
        }));
    }

    /// Runs the completions whose turn has come: in sequence order, once both members'
    /// sockets are known.
    pub(super) fn complete_ready(&mut self) {
        if !(self.synced[0] && self.synced[1]) {
            return;
        }
        while let Some(front) = self.pending.front() {
            let ready = match &front.step {
                Step::Write(_) => front.result.is_some(),
                Step::Read(done) => done.is_some(),
            };
            if !ready {
                break;
            }
            let Some(Pending { result, step }) = self.pending.pop_front() else {
                break;
            };
            self.first_seq += 1;
            match (step, result) {
                (Step::Write(complete), Some(result)) => complete(self, result),
                (Step::Read(Some(then)), _) => then(self),
                (Step::Write(_), None) | (Step::Read(None), _) => {}
            }
        }
        self.last_activity = Instant::now();
    }

    /// Delivers `frame`, an event of the conversation's stream, to every connected socket of
    /// `user`, on every node (the mark crosses with it).
    pub(crate) fn deliver_marked(&self, user: &str, frame: &Frame, mark: &Mark) {
        self.deps.users.to_remote_user(user, frame, Some(mark));
        if let Some(i) = self.member_index(user) {
            for push in self.sockets[i].values() {
                push.do_send(ChatPush::Stream(frame.clone(), mark.clone()));
            }
        }
    }

    /// Delivers `frame` to every connected socket of `user`, on every node.
    pub(crate) fn deliver(&self, user: &str, frame: &Frame) {
        self.deps.users.to_remote_user(user, frame, None);
        if let Some(i) = self.member_index(user) {
            for push in self.sockets[i].values() {
                push.do_send(ChatPush::Deliver(frame.clone()));
            }
        }
    }

    pub(super) fn member_index(&self, user: &str) -> Option<usize> {
        self.members.iter().position(|m| **m == *user)
    }

    /// Something happened: the room is not idle.
    pub(super) fn note_activity(&mut self) {
        self.last_activity = Instant::now();
    }
}

impl Actor for ChatRoom {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.deps.metrics.room_alive(true);
        for member in &self.members {
            self.deps
                .users
                .subscribe(member, self.key, ctx.address().recipient());
        }
        // The clock starts above the newest stamp in the database.
        let db = self.deps.db.clone();
        let retry_for = self.deps.retry_for;
        let id = self.connection_id.clone();
        let read = async move {
            crate::db::retry::retrying(retry_for, || crate::db::messages::newest_stamp(&db, &id))
                .await
        };
        ctx.spawn(read.into_actor(self).map(|newest, room, ctx| {
            match newest {
                Ok(newest) => room.last_created = room.last_created.max(newest),
                Err(e) => log::warn!(
                    "room {}: the newest stamp could not be read ({e}); stamping from the clock",
                    room.connection_id
                ),
            }
            for held in room.loading.take().unwrap_or_default() {
                held(room, ctx);
            }
        }));
        let every = (self.deps.idle_timeout / 2).max(Duration::from_millis(10));
        ctx.run_interval(every, |room, _ctx| {
            // A socket that died without leaving must not keep the room alive.
            room.joined.retain(|_, push| push.connected());
            if room.joined.is_empty()
                && room.loading.is_none()
                && room.pending.is_empty()
                && room.reading == 0
                && room.last_activity.elapsed() >= room.deps.idle_timeout
            {
                room.shard.do_send(RoomIdle {
                    connection_id: room.connection_id.clone(),
                    room: room.key,
                    received: room.received,
                });
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        debug!("room {} stopped", self.connection_id);
        self.deps.metrics.room_alive(false);
        for member in &self.members {
            self.deps.users.unsubscribe(member, self.key);
        }
    }
}

impl Handler<Written> for ChatRoom {
    type Result = ();

    fn handle(&mut self, msg: Written, _ctx: &mut Self::Context) {
        for (seq, result) in msg.0 {
            let Some(index) = seq.checked_sub(self.first_seq) else {
                continue;
            };
            if let Some(pending) = self.pending.get_mut(index as usize) {
                pending.result = Some(result);
            }
        }
        self.complete_ready();
    }
}

impl Handler<MemberUpdate> for ChatRoom {
    type Result = ();

    fn handle(&mut self, msg: MemberUpdate, _ctx: &mut Self::Context) {
        let Some(i) = self.member_index(&msg.user) else {
            return;
        };
        match msg.change {
            MemberChange::Snapshot(sockets) => {
                self.sockets[i] = sockets.into_iter().collect();
                self.synced[i] = true;
                if *self.members[0] == *self.members[1] {
                    self.synced = [true, true];
                }
            }
            MemberChange::Added((sid, push)) => {
                self.sockets[i].insert(sid, push);
            }
            MemberChange::Removed(sid) => {
                self.sockets[i].remove(&sid);
                self.joined.remove(&sid);
            }
        }
        self.complete_ready();
    }
}

impl Handler<StopRoom> for ChatRoom {
    type Result = ();

    fn handle(&mut self, _msg: StopRoom, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
