//! The user registry: which sockets each user has connected to this node, and which rooms
//! want to know.
//!
//! Users are spread over several [`UserShard`] actors (one per chat thread) by a hash of
//! the user id; [`Users`] is the handle that finds the shard. A room subscribes to its two
//! members ([`Subscribe`]): it gets their sockets at once and every change after, so it
//! delivers to them directly. [`ToUser`] reaches every socket of a user (like the Node
//! server's per-user rooms, `io.to(userId)`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use actix::{Actor, Addr, Context, Handler, Message, MessageResult, Recipient};
use log::debug;

use super::push::{ChatPush, Frame};

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

#[derive(Default)]
struct UserEntry {
    sockets: HashMap<Arc<str>, Recipient<ChatPush>>,
    rooms: HashMap<u64, Recipient<MemberUpdate>>,
}

impl UserEntry {
    fn is_empty(&self) -> bool {
        self.sockets.is_empty() && self.rooms.is_empty()
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

/// One shard of the registry.
#[derive(Default)]
pub struct UserShard {
    users: HashMap<Arc<str>, UserEntry>,
}

impl Actor for UserShard {
    type Context = Context<Self>;
}

impl UserShard {
    fn forget_if_empty(&mut self, user: &Arc<str>) {
        if self.users.get(user).is_some_and(UserEntry::is_empty) {
            self.users.remove(user);
        }
    }
}

impl Handler<RegisterSocket> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: RegisterSocket, _ctx: &mut Self::Context) {
        let entry = self.users.entry(msg.user.clone()).or_default();
        entry.sockets.insert(msg.sid.clone(), msg.push.clone());
        entry.tell_rooms(&msg.user, &MemberChange::Added((msg.sid, msg.push)));
    }
}

impl Handler<UnregisterSocket> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: UnregisterSocket, _ctx: &mut Self::Context) {
        let Some(entry) = self.users.get_mut(&msg.user) else {
            return;
        };
        if entry.sockets.remove(&msg.sid).is_some() {
            entry.tell_rooms(&msg.user, &MemberChange::Removed(msg.sid));
            if entry.sockets.is_empty() {
                debug!("user {} has no socket left", msg.user);
            }
        }
        self.forget_if_empty(&msg.user);
    }
}

impl Handler<ToUser> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: ToUser, _ctx: &mut Self::Context) {
        if let Some(entry) = self.users.get(&msg.user) {
            for push in entry.sockets.values() {
                push.do_send(ChatPush::Deliver(msg.frame.clone()));
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
        self.forget_if_empty(&msg.user);
    }
}

impl Handler<SocketCount> for UserShard {
    type Result = MessageResult<SocketCount>;

    fn handle(&mut self, msg: SocketCount, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.users.get(&msg.0).map_or(0, |e| e.sockets.len()))
    }
}

/// The registry: finds the shard of a user.
#[derive(Clone)]
pub struct Users {
    shards: Arc<[Addr<UserShard>]>,
}

impl Users {
    /// A registry over `shards` (at least one).
    pub fn new(shards: Vec<Addr<UserShard>>) -> Self {
        Users {
            shards: shards.into(),
        }
    }

    /// The shard holding `user`.
    pub fn shard(&self, user: &str) -> &Addr<UserShard> {
        &self.shards[shard_of(user, self.shards.len())]
    }

    /// A socket of `user` connected.
    pub fn register(&self, user: &Arc<str>, sid: &Arc<str>, push: Recipient<ChatPush>) {
        self.shard(user).do_send(RegisterSocket {
            user: user.clone(),
            sid: sid.clone(),
            push,
        });
    }

    /// A socket of `user` went away.
    pub fn unregister(&self, user: &Arc<str>, sid: &Arc<str>) {
        self.shard(user).do_send(UnregisterSocket {
            user: user.clone(),
            sid: sid.clone(),
        });
    }

    /// Delivers `frame` to every socket of `user`.
    pub fn to_user(&self, user: &Arc<str>, frame: Frame) {
        self.shard(user).do_send(ToUser {
            user: user.clone(),
            frame,
        });
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
}
