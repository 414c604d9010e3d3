//! [`UserShard`]: one shard of the user registry, an actor holding the entries of the users
//! whose id hashes to it: each user's sockets on this node, the rooms that want to know of
//! them, their presence and relations. Its handlers for the registry are here; presence,
//! relations and calls have files of their own.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use actix::{
    Actor, Addr, AsyncContext, Context, Handler, Message, MessageResult, Recipient, SpawnHandle,
};
use log::debug;
use sea_orm::DatabaseConnection;

use super::state::{Change, Presence, PresenceOptions, Relations};
use crate::chat::persistence::Write;
use crate::chat::push::{ChatPush, Frame, Mark};
use crate::chat::remote::{Reached, RemoteNodes, SocketIndex};
use crate::engineio::ClientInfo;
use crate::ids::shard_of;

/// A socket of a user.
pub type SocketSlot = (Arc<str>, Recipient<ChatPush>);

/// A socket of `user` connected.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct RegisterSocket {
    pub user: Arc<str>,
    pub sid: Arc<str>,
    pub push: Recipient<ChatPush>,
    pub client: ClientInfo,
}

/// A socket went away.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct UnregisterSocket {
    pub user: Arc<str>,
    pub sid: Arc<str>,
}

/// Deliver `frame` to every socket of `user`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct ToUser {
    pub user: Arc<str>,
    pub frame: Frame,
}

/// Deliver `frame` to every socket on this shard.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct Broadcast(pub Frame);

/// A room wants `user`'s sockets, now and as they change.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct Subscribe {
    pub user: Arc<str>,
    pub room: u64,
    pub updates: Recipient<MemberUpdate>,
}

/// A room no longer wants `user`'s sockets.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct Unsubscribe {
    pub user: Arc<str>,
    pub room: u64,
}

/// How many sockets `user` has connected.
#[derive(Debug, Clone, Message)]
#[rtype(result = "usize")]
pub(crate) struct SocketCount(pub Arc<str>);

/// Whether a user is online as their peers were told: a socket on this node, or the last
/// one gone within `presence.offline_grace`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub(crate) struct IsOnline(pub Arc<str>);

/// What changed in a member's sockets.
#[derive(Debug, Clone)]
pub enum MemberChange {
    /// All of them (the answer to [`Subscribe`]).
    Snapshot(Vec<SocketSlot>),
    /// One more.
    Added(SocketSlot),
    /// One gone.
    Removed(Arc<str>),
}

/// For a room: `user`'s sockets changed.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct MemberUpdate {
    pub user: Arc<str>,
    pub change: MemberChange,
}

/// One user, on their shard.
#[derive(Default)]
pub(crate) struct UserEntry {
    pub(super) sockets: HashMap<Arc<str>, Recipient<ChatPush>>,
    pub(super) rooms: HashMap<u64, Recipient<MemberUpdate>>,
    pub(super) presence: Presence,
    /// Presence changes not written yet, oldest first; `changing` while one is.
    pub(super) changes: VecDeque<Change>,
    pub(super) changing: bool,
    /// The client of the user's latest socket (for the presence history).
    pub(super) client: ClientInfo,
    /// Heard from (a heartbeat, a pong) since the last flush.
    pub(super) heard: bool,
    pub(super) relations: Option<Arc<Relations>>,
    pub(super) waiting: Option<Vec<RelationsWaiter>>,
    /// The users this user is in a call with (a `call:initiate` that passed its check), and
    /// since when: the call's relays rely on that check (`chat::call`).
    pub(super) calls: Vec<(Arc<str>, Instant)>,
}

impl UserEntry {
    fn is_idle(&self) -> bool {
        self.sockets.is_empty()
            && self.rooms.is_empty()
            && matches!(self.presence, Presence::Offline)
            && self.changes.is_empty()
            && !self.changing
            && self.waiting.is_none()
    }

    fn tell_rooms(&self, user: &Arc<str>, change: &MemberChange) {
        for room in self.rooms.values() {
            room.do_send(MemberUpdate {
                user: user.clone(),
                change: change.clone(),
            });
        }
    }
}

/// What a shard needs besides its users.
#[derive(Clone)]
pub struct ShardDeps {
    /// Reads (relations, the presence sweep).
    pub db: DatabaseConnection,
    /// Writes (presence, heartbeats).
    pub persistence: Recipient<Write>,
    /// How presence works.
    pub presence: PresenceOptions,
    /// What the chat counts.
    pub metrics: Arc<crate::chat::metrics::ChatMetrics>,
}

/// A presence change being written: its user, the change, the user's relations.
pub(super) type ChangeWriting = (Arc<str>, Change, Option<Arc<Relations>>);

/// One shard of the registry.
pub struct UserShard {
    pub(super) index: usize,
    pub(super) users: HashMap<Arc<str>, UserEntry>,
    pub(super) deps: ShardDeps,
    /// The whole registry (wired after every shard started).
    pub(super) all: Option<Users>,
    /// Presence writes under way: their user and change.
    pub(super) writing: HashMap<u64, ChangeWriting>,
    pub(super) next_seq: u64,
}

/// Gives a shard the whole registry (it needs the other shards to reach users there).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Wire(pub Users);

impl UserShard {
    /// Shard number `index`.
    pub fn new(index: usize, deps: ShardDeps) -> Self {
        UserShard {
            index,
            users: HashMap::new(),
            deps,
            all: None,
            writing: HashMap::new(),
            next_seq: 0,
        }
    }

    /// Forgets `user` if nothing keeps their entry.
    pub(super) fn forget_if_idle(&mut self, user: &Arc<str>) {
        if self.users.get(user).is_some_and(UserEntry::is_idle) {
            self.users.remove(user);
        }
    }

    /// Delivers `frame` to every socket of `user` on this shard.
    pub(super) fn deliver_here(&self, user: &str, frame: &Frame) -> usize {
        match self.users.get(user) {
            Some(entry) => {
                for push in entry.sockets.values() {
                    push.do_send(ChatPush::Deliver(frame.clone()));
                }
                entry.sockets.len()
            }
            None => 0,
        }
    }
}

impl Actor for UserShard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.start_presence_timers(ctx);
    }
}

impl Handler<Wire> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: Wire, _ctx: &mut Self::Context) {
        self.all = Some(msg.0);
    }
}

impl Handler<RegisterSocket> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: RegisterSocket, ctx: &mut Self::Context) {
        let entry = self.users.entry(msg.user.clone()).or_default();
        if entry.sockets.is_empty() {
            self.deps.metrics.user_online(true);
        }
        entry.sockets.insert(msg.sid.clone(), msg.push.clone());
        entry.client = msg.client;
        if let Some(remote) = self.all.as_ref().and_then(Users::remote) {
            remote.local_count(&msg.user, entry.sockets.len());
        }
        entry.tell_rooms(&msg.user, &MemberChange::Added((msg.sid, msg.push)));
        self.socket_came(&msg.user, ctx);
    }
}

impl Handler<UnregisterSocket> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: UnregisterSocket, ctx: &mut Self::Context) {
        let Some(entry) = self.users.get_mut(&msg.user) else {
            return;
        };
        if entry.sockets.remove(&msg.sid).is_some() {
            if let Some(remote) = self.all.as_ref().and_then(Users::remote) {
                remote.local_count(&msg.user, entry.sockets.len());
            }
            entry.tell_rooms(&msg.user, &MemberChange::Removed(msg.sid));
            if entry.sockets.is_empty() {
                debug!("user {} has no socket left", msg.user);
                self.deps.metrics.user_online(false);
            }
            self.socket_went(&msg.user, ctx);
        }
        self.forget_if_idle(&msg.user);
    }
}

impl Handler<ToUser> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: ToUser, _ctx: &mut Self::Context) {
        self.deliver_here(&msg.user, &msg.frame);
    }
}

impl Handler<Broadcast> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: Broadcast, _ctx: &mut Self::Context) {
        for entry in self.users.values() {
            for push in entry.sockets.values() {
                push.do_send(ChatPush::Deliver(msg.0.clone()));
            }
        }
    }
}

impl Handler<Subscribe> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Self::Context) {
        let entry = self.users.entry(msg.user.clone()).or_default();
        let snapshot = entry
            .sockets
            .iter()
            .map(|(sid, push)| (sid.clone(), push.clone()))
            .collect();
        msg.updates.do_send(MemberUpdate {
            user: msg.user,
            change: MemberChange::Snapshot(snapshot),
        });
        entry.rooms.insert(msg.room, msg.updates);
    }
}

impl Handler<Unsubscribe> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, _ctx: &mut Self::Context) {
        if let Some(entry) = self.users.get_mut(&msg.user) {
            entry.rooms.remove(&msg.room);
        }
        self.forget_if_idle(&msg.user);
    }
}

impl Handler<SocketCount> for UserShard {
    type Result = MessageResult<SocketCount>;

    fn handle(&mut self, msg: SocketCount, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.users.get(&msg.0).map_or(0, |e| e.sockets.len()))
    }
}

/// Cancels a timer of a shard.
pub(super) fn cancel(ctx: &mut Context<UserShard>, handle: SpawnHandle) {
    ctx.cancel_future(handle);
}

/// Something to do with a user's relations once they are read (`None`: the read failed).
pub(crate) type RelationsWaiter =
    Box<dyn FnOnce(&mut UserShard, &Arc<str>, Option<Arc<Relations>>, &mut Context<UserShard>)>;

impl Handler<IsOnline> for UserShard {
    type Result = MessageResult<IsOnline>;

    fn handle(&mut self, msg: IsOnline, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.users
                .get(&msg.0)
                .is_some_and(|e| !matches!(e.presence, Presence::Offline)),
        )
    }
}

/// The registry: finds the shard of a user.
#[derive(Clone)]
pub struct Users {
    shards: Arc<[Addr<UserShard>]>,
    /// The other nodes of the cluster, if any.
    remote: Option<Arc<dyn RemoteNodes>>,
    /// The link to the other nodes is down (deliveries from them are being missed).
    link_down: Arc<std::sync::atomic::AtomicBool>,
    /// This node's sockets and their rooms, for the other servers (in a cluster).
    index: Option<Arc<SocketIndex>>,
    /// The recovery pids this node's sockets carry, and when the others disconnected.
    pids: Arc<crate::chat::pids::PidSessions>,
}

impl Users {
    /// A registry over `shards` (at least one), reaching the sockets on the other nodes
    /// through `remote`; each shard is given the registry.
    pub fn new(
        shards: Vec<Addr<UserShard>>,
        remote: Option<Arc<dyn RemoteNodes>>,
        pids: Arc<crate::chat::pids::PidSessions>,
    ) -> Self {
        let index = remote
            .as_ref()
            .map(|r| Arc::new(SocketIndex::new(r.max_rooms_per_socket())));
        let users = Users {
            shards: shards.into(),
            remote,
            link_down: Arc::default(),
            index,
            pids,
        };
        for shard in users.shards.iter() {
            shard.do_send(Wire(users.clone()));
        }
        users
    }

    /// The recovery pids of this node's sockets.
    pub(crate) fn pids(&self) -> &Arc<crate::chat::pids::PidSessions> {
        &self.pids
    }

    /// Another node's socket took the stream `nonce` over: the socket here that carried it,
    /// if any, is closed.
    pub(crate) fn pid_taken_elsewhere(&self, nonce: &str) {
        if let Some(old) = self.pids.taken_elsewhere(nonce) {
            old.do_send(ChatPush::TakenOver);
        }
    }

    /// The other nodes of the cluster (`None` on a single node).
    pub fn remote(&self) -> Option<&Arc<dyn RemoteNodes>> {
        self.remote.as_ref()
    }

    /// This node lost (`up == false`) or got back its link to the other nodes: every
    /// socket here is told ([`ChatPush::RemoteLink`]). Called by the task that delivers what
    /// the other nodes send, so each socket gets it in order with those deliveries.
    pub(crate) fn remote_link(&self, up: bool) {
        use std::sync::atomic::Ordering;
        if self.link_down.swap(!up, Ordering::SeqCst) != up {
            return;
        }
        for socket in self.local_sockets(&[], &[]) {
            socket.push.do_send(ChatPush::RemoteLink(up));
        }
    }

    /// This node's sockets and their rooms as the other servers see them (in a cluster).
    pub fn index(&self) -> Option<&SocketIndex> {
        self.index.as_deref()
    }

    /// Whether the link to the other nodes is down now.
    pub(crate) fn remote_link_down(&self) -> bool {
        self.link_down.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The shard holding `user`.
    pub fn shard(&self, user: &str) -> &Addr<UserShard> {
        &self.shards[shard_of(user, self.shards.len())]
    }

    /// A socket of `user` connected from `client`.
    pub fn register(
        &self,
        user: &Arc<str>,
        sid: &Arc<str>,
        push: Recipient<ChatPush>,
        client: ClientInfo,
    ) {
        self.shard(user).do_send(RegisterSocket {
            user: user.clone(),
            sid: sid.clone(),
            push,
            client,
        });
    }

    /// A socket of `user` went away.
    pub fn unregister(&self, user: &Arc<str>, sid: &Arc<str>) {
        self.shard(user).do_send(UnregisterSocket {
            user: user.clone(),
            sid: sid.clone(),
        });
    }

    /// Delivers `frame` to every socket of `user`, on every node.
    pub(crate) fn to_user(&self, user: &Arc<str>, frame: Frame) {
        self.to_remote_user(user, &frame, None);
        self.shard(user).do_send(ToUser {
            user: user.clone(),
            frame,
        });
    }

    /// Delivers `frame` to every socket of `user` on the other nodes (none on a single node);
    /// `mark`: where it stands in its conversation's stream.
    pub(crate) fn to_remote_user(&self, user: &str, frame: &Frame, mark: Option<&Mark>) {
        if let Some(remote) = &self.remote {
            remote.to_user(user, frame, mark);
        }
    }

    /// Delivers `frame` to every socket, on every node.
    pub fn broadcast(&self, frame: Frame) {
        if let Some(remote) = &self.remote {
            remote.broadcast(&frame);
        }
        for shard in self.shards.iter() {
            shard.do_send(Broadcast(frame.clone()));
        }
    }

    /// Sends `user`'s sockets to `updates`, now and whenever they change.
    pub fn subscribe(&self, user: &Arc<str>, room: u64, updates: Recipient<MemberUpdate>) {
        self.shard(user).do_send(Subscribe {
            user: user.clone(),
            room,
            updates,
        });
    }

    /// Stops what [`Users::subscribe`] started.
    pub(crate) fn unsubscribe(&self, user: &Arc<str>, room: u64) {
        self.shard(user).do_send(Unsubscribe {
            user: user.clone(),
            room,
        });
    }

    /// How many sockets `user` has connected (0 if the registry is gone).
    pub async fn socket_count(&self, user: &str) -> usize {
        self.shard(user)
            .send(SocketCount(user.into()))
            .await
            .unwrap_or(0)
    }

    /// Whether `user` is online on this node as their peers were told (see [`IsOnline`]);
    /// `false` if the registry is gone.
    pub async fn is_online(&self, user: &str) -> bool {
        self.shard(user)
            .send(IsOnline(user.into()))
            .await
            .unwrap_or(false)
    }
}

impl Users {
    /// Delivers a broadcast from another node to this node's sockets in `rooms` (every socket
    /// when empty) and not in `except`; `mark`: where it stands in its conversation's stream
    /// (a Node server's `receive_message` has it in the saved message it carries). The
    /// number of sockets reached.
    pub(crate) fn deliver_local(
        &self,
        rooms: &[Arc<str>],
        except: &[Arc<str>],
        frame: Frame,
        mark: Option<Mark>,
    ) -> usize {
        let Some(index) = self.index() else {
            return 0;
        };
        let mark = mark.or_else(|| crate::chat::recovery::mark_of_remote(&frame));
        let reached = index.reach(rooms, except);
        for socket in &reached {
            socket.push.do_send(match &mark {
                Some(mark) => ChatPush::Stream(frame.clone(), mark.clone()),
                None => ChatPush::Deliver(frame.clone()),
            });
        }
        reached.len()
    }

    /// Delivers a packet from another server that is not a text event (a binary event) to
    /// this node's sockets in `rooms` (every socket when empty) and not in `except`.
    pub(crate) fn deliver_packet(
        &self,
        rooms: &[Arc<str>],
        except: &[Arc<str>],
        packet: crate::socketio::Packet,
    ) -> usize {
        let Some(index) = self.index() else {
            return 0;
        };
        let packet = Arc::new(packet);
        let reached = index.reach(rooms, except);
        for socket in &reached {
            socket.push.do_send(ChatPush::Packet(packet.clone()));
        }
        reached.len()
    }

    /// This node's sockets in `rooms` (all when empty) and not in `except`.
    pub(crate) fn local_sockets(&self, rooms: &[Arc<str>], except: &[Arc<str>]) -> Vec<Reached> {
        self.index()
            .map_or_else(Vec::new, |index| index.reach(rooms, except))
    }
}
