//! The user registry: which sockets each user has connected to this node, which rooms want
//! to know, and what each user's connections are.
//!
//! Users are spread over several [`UserShard`] actors (one per chat thread) by a hash of
//! the user id; [`Users`] is the handle that finds the shard. A user's entry lives on its
//! shard while the user has a socket, a room subscribed, presence to settle or a request
//! under way. The shard
//!
//! - tells subscribed rooms ([`Subscribe`]) of the user's sockets, at once and at every
//!   change, so rooms deliver to them directly;
//! - delivers to every socket of a user ([`ToUser`], the Node server's `io.to(userId)`) or of
//!   everyone on this node ([`Broadcast`]);
//! - keeps the user's presence (`chat::presence`) and relations: who they share a connection
//!   with, and whether it is ACTIVE ([`Relations`], read on demand and kept for
//!   `presence.peers_ttl`), for presence and call signalling (`chat::call`).

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, MessageResult, Recipient,
    SpawnHandle, WrapFuture,
};
use log::{debug, error};
use sea_orm::DatabaseConnection;

use super::persistence::Write;
use super::presence::{Change, Presence, PresenceOptions};
use super::push::{ChatPush, Frame, Mark};
use super::remote::{RemoteNodes, SocketIndex};
use super::sql;
use crate::engineio::ClientInfo;

/// A socket of a user.
pub type SocketSlot = (Arc<str>, Recipient<ChatPush>);

/// Which of `n` shards `key` belongs to (the same on every call and every thread).
pub fn shard_of(key: &str, n: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % n.max(1) as u64) as usize
}

/// A socket of `user` connected.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct RegisterSocket {
    pub user: Arc<str>,
    pub sid: Arc<str>,
    pub push: Recipient<ChatPush>,
    pub client: ClientInfo,
}

/// A socket went away.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct UnregisterSocket {
    pub user: Arc<str>,
    pub sid: Arc<str>,
}

/// Deliver `frame` to every socket of `user`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ToUser {
    pub user: Arc<str>,
    pub frame: Frame,
}

/// Deliver `frame` to every socket on this shard.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Broadcast(pub Frame);

/// A room wants `user`'s sockets, now and as they change.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub user: Arc<str>,
    pub room: u64,
    pub updates: Recipient<MemberUpdate>,
}

/// A room no longer wants `user`'s sockets.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    pub user: Arc<str>,
    pub room: u64,
}

/// How many sockets `user` has connected.
#[derive(Debug, Clone, Message)]
#[rtype(result = "usize")]
pub struct SocketCount(pub Arc<str>);

/// Whether a user is online as their peers were told: a socket on this node, or the last
/// one gone within `presence.offline_grace`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct IsOnline(pub Arc<str>);

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

/// Who a user shares a connection with, as read from `connections`, and their name and
/// image (for `call:incoming`).
#[derive(Debug, Clone, Default)]
pub struct Relations {
    /// The other member of each of the user's connections: `true` if one of their
    /// connections is ACTIVE.
    pub peers: HashMap<Arc<str>, bool>,
    /// `users.name`.
    pub name: Option<String>,
    /// `users.image`.
    pub image: Option<String>,
    loaded: Option<Instant>,
}

impl Relations {
    /// Whether the user shares an ACTIVE connection with `other`.
    pub fn active_with(&self, other: &str) -> bool {
        self.peers.get(other).copied().unwrap_or(false)
    }

    /// How long ago the relations were read.
    pub fn age(&self) -> Duration {
        self.loaded.map_or(Duration::MAX, |at| at.elapsed())
    }

    /// The users who share an ACTIVE connection with the user.
    pub fn active_peers(&self) -> impl Iterator<Item = &Arc<str>> {
        self.peers
            .iter()
            .filter(|(_, active)| **active)
            .map(|(peer, _)| peer)
    }
}

/// Something to do with a user's relations once they are read (`None`: the read failed).
pub type RelationsWaiter =
    Box<dyn FnOnce(&mut UserShard, &Arc<str>, Option<Arc<Relations>>, &mut Context<UserShard>)>;

/// One user, on their shard.
#[derive(Default)]
pub struct UserEntry {
    pub(super) sockets: HashMap<Arc<str>, Recipient<ChatPush>>,
    rooms: HashMap<u64, Recipient<MemberUpdate>>,
    pub(super) presence: Presence,
    /// Presence changes not written yet, oldest first; `changing` while one is.
    pub(super) changes: VecDeque<Change>,
    pub(super) changing: bool,
    /// The client of the user's latest socket (for the presence history).
    pub(super) client: ClientInfo,
    /// Heard from (a heartbeat, a pong) since the last flush.
    pub(super) heard: bool,
    relations: Option<Arc<Relations>>,
    waiting: Option<Vec<RelationsWaiter>>,
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
    pub metrics: Arc<super::ChatMetrics>,
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
pub struct Wire(pub Users);

/// A user's relations were read.
#[derive(Message)]
#[rtype(result = "()")]
struct RelationsRead {
    user: Arc<str>,
    relations: Option<Relations>,
}

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

    /// Runs `then` with `user`'s relations: at once if they were read within
    /// `presence.peers_ttl`, else once they are read again (one read for every waiter).
    pub fn with_relations(
        &mut self,
        user: &Arc<str>,
        then: RelationsWaiter,
        ctx: &mut Context<Self>,
    ) {
        let ttl = Duration::from_millis(self.deps.presence.peers_ttl);
        self.with_relations_within(user, ttl, then, ctx);
    }

    /// Runs `then` with `user`'s relations as read within `max_age` (zero: read now, or by
    /// the read already under way).
    pub fn with_relations_within(
        &mut self,
        user: &Arc<str>,
        max_age: Duration,
        then: RelationsWaiter,
        ctx: &mut Context<Self>,
    ) {
        let entry = self.users.entry(user.clone()).or_default();
        if let Some(relations) = entry
            .relations
            .clone()
            .filter(|r| r.loaded.is_some_and(|at| at.elapsed() < max_age))
        {
            then(self, user, Some(relations), ctx);
            return;
        }
        if let Some(waiting) = &mut entry.waiting {
            waiting.push(then);
            return;
        }
        entry.waiting = Some(vec![then]);
        let db = self.deps.db.clone();
        let id = user.clone();
        let read = async move {
            match sql::relations(&db, &id).await {
                Ok((peers, name, image)) => Some(Relations {
                    peers: peers
                        .into_iter()
                        .map(|(peer, active)| (Arc::from(peer), active))
                        .collect(),
                    name,
                    image,
                    loaded: Some(Instant::now()),
                }),
                Err(e) => {
                    error!("reading the connections of user {id} failed: {e}");
                    None
                }
            }
        };
        let user = user.clone();
        ctx.spawn(read.into_actor(self).map(move |relations, _shard, ctx| {
            ctx.notify(RelationsRead { user, relations });
        }));
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

impl Handler<RelationsRead> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: RelationsRead, ctx: &mut Self::Context) {
        let relations = msg.relations.map(Arc::new);
        let waiting = match self.users.get_mut(&msg.user) {
            Some(entry) => {
                if relations.is_some() {
                    entry.relations = relations.clone();
                }
                entry.waiting.take().unwrap_or_default()
            }
            None => Vec::new(),
        };
        for then in waiting {
            then(self, &msg.user, relations.clone(), ctx);
        }
        self.forget_if_idle(&msg.user);
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
    pids: Arc<super::pids::PidSessions>,
}

impl Users {
    /// A registry over `shards` (at least one), reaching the sockets on the other nodes
    /// through `remote`; each shard is given the registry.
    pub fn new(
        shards: Vec<Addr<UserShard>>,
        remote: Option<Arc<dyn RemoteNodes>>,
        pids: Arc<super::pids::PidSessions>,
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
    pub fn pids(&self) -> &Arc<super::pids::PidSessions> {
        &self.pids
    }

    /// Another node's socket took the stream `nonce` over: the socket here that carried it,
    /// if any, is closed.
    pub fn pid_taken_elsewhere(&self, nonce: &str) {
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
    pub fn remote_link(&self, up: bool) {
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
    pub fn remote_link_down(&self) -> bool {
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
    pub fn to_user(&self, user: &Arc<str>, frame: Frame) {
        self.to_remote_user(user, &frame, None);
        self.shard(user).do_send(ToUser {
            user: user.clone(),
            frame,
        });
    }

    /// Delivers `frame` to every socket of `user` on the other nodes (none on a single node);
    /// `mark`: where it stands in its conversation's stream.
    pub fn to_remote_user(&self, user: &str, frame: &Frame, mark: Option<&Mark>) {
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
    pub fn unsubscribe(&self, user: &Arc<str>, room: u64) {
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

/// How many sockets each user has on this node, checked when a socket connects (so it is
/// kept apart from the shards, which answer asynchronously): at most `max` per user.
///
/// In a cluster the sockets the user has on the other Courier nodes count too: each CONNECT
/// reads them from the counts the nodes keep in Redis ([`SocketSlots::counting`]) before it
/// is answered.
pub struct SocketSlots {
    max: usize,
    maps: Vec<std::sync::Mutex<HashMap<Arc<str>, usize>>>,
    remote: Option<Arc<dyn RemoteNodes>>,
}

impl SocketSlots {
    /// At most `max` sockets per user, on all nodes when `remote` is set.
    pub fn new(max: usize, remote: Option<Arc<dyn RemoteNodes>>) -> Arc<Self> {
        Arc::new(SocketSlots {
            max,
            maps: (0..16)
                .map(|_| std::sync::Mutex::new(HashMap::new()))
                .collect(),
            remote,
        })
    }

    /// In a cluster: how many sockets `user` has on the other nodes (to pass to
    /// [`SocketSlots::take`]); `None` on a single node.
    pub fn counting(&self, user: &str) -> Option<futures_util::future::BoxFuture<'static, usize>> {
        self.remote
            .as_ref()
            .map(|remote| remote.sockets_counted(user))
    }

    fn map(&self, user: &str) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, usize>> {
        // A panic while holding the lock cannot leave a count inconsistent.
        self.maps[shard_of(user, self.maps.len())]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for a new socket of `user`, who has `elsewhere` sockets on the other
    /// nodes; `false` if they have `max` already.
    pub fn take(&self, user: &Arc<str>, elsewhere: usize) -> bool {
        let mut map = self.map(user);
        let n = map.entry(user.clone()).or_default();
        if *n + elsewhere >= self.max {
            return false;
        }
        *n += 1;
        true
    }

    /// Gives back the slot of a socket of `user` that went.
    pub fn give_back(&self, user: &Arc<str>) {
        let mut map = self.map(user);
        if let Some(n) = map.get_mut(user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(user);
            }
        }
    }
}

/// Cancels a timer of a shard.
pub(super) fn cancel(ctx: &mut Context<UserShard>, handle: SpawnHandle) {
    ctx.cancel_future(handle);
}
