//! Room shards: where each conversation's room lives, and the membership check in front of
//! it.
//!
//! Conversations are spread over several [`RoomShard`] actors, one per chat thread, by a
//! hash of the connection id ([`Rooms`] finds the shard); a conversation's room runs on its
//! shard's thread. A socket sends every request for a conversation to the shard ([`Route`]),
//! which
//!
//! - forwards it to the room if the user is one of the connection's members (requests from
//!   one socket keep their order: one mailbox all the way);
//! - refuses it if not (`You are not part of this connection.`), or if the connection does
//!   not exist (`Connection is not active.`);
//! - otherwise reads the connection once, holding the conversation's requests meanwhile,
//!   and starts the room only if one of them came from a member. A socket cannot make rooms
//!   for ids it is not a member of; unknown ids and other users' connections are remembered
//!   for `UNKNOWN_TTL` (at most `MAX_REMEMBERED` per shard), so a flood of made-up ids
//!   costs no database read each.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, WrapFuture};
use log::{debug, error};

use super::actor::{ChatError, ChatRoom, RoomDeps, RoomIdle, RoomRequest, StopRoom};
use crate::db::connections::find_connection;
use crate::db::retry::retrying;
use crate::ids::shard_of;

/// How long a connection id that does not exist, or whose members are others, is
/// remembered as such.
pub(crate) const UNKNOWN_TTL: Duration = Duration::from_secs(10);

/// Most connection ids a shard remembers as unknown or foreign.
pub(crate) const MAX_REMEMBERED: usize = 10_000;

/// A request from `user` for the room of `connection_id`.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Route {
    pub connection_id: Arc<str>,
    pub user: Arc<str>,
    pub request: Box<dyn RoomRequest>,
}

enum Entry {
    /// The connection is being read; these requests wait for it.
    Loading(Vec<Route>),
    /// The conversation's room.
    Room {
        addr: Addr<ChatRoom>,
        key: u64,
        members: [Arc<str>; 2],
        forwarded: u64,
    },
    /// No such connection (until the instant).
    Unknown(Instant),
    /// A connection of these two users (until the instant); no room was needed.
    Foreign([Arc<str>; 2], Instant),
}

/// The connection as read: its members, or `None` if it does not exist.
#[derive(Message)]
#[rtype(result = "()")]
struct Loaded {
    connection_id: Arc<str>,
    members: Result<Option<[Arc<str>; 2]>, ()>,
}

/// One shard.
pub struct RoomShard {
    deps: RoomDeps,
    entries: HashMap<Arc<str>, Entry>,
    /// Entries that are `Unknown` or `Foreign`.
    remembered: usize,
    next_key: u64,
    index: u64,
}

impl RoomShard {
    /// Shard number `index`; its rooms use `deps`.
    pub fn new(index: usize, deps: RoomDeps) -> Self {
        RoomShard {
            deps,
            entries: HashMap::new(),
            remembered: 0,
            next_key: 0,
            index: index as u64,
        }
    }

    fn forward(&mut self, route: Route, ctx: &mut Context<Self>) {
        match self.entries.get_mut(&route.connection_id) {
            Some(Entry::Room {
                addr,
                members,
                forwarded,
                ..
            }) => {
                if members.contains(&route.user) {
                    *forwarded += 1;
                    route.request.forward(addr);
                } else {
                    route
                        .request
                        .refuse(ChatError::NotMember, &self.deps.metrics);
                }
            }
            Some(Entry::Loading(waiting)) => waiting.push(route),
            Some(Entry::Unknown(until)) if Instant::now() < *until => route
                .request
                .refuse(ChatError::NotActive, &self.deps.metrics),
            Some(Entry::Foreign(members, until))
                if Instant::now() < *until && !members.contains(&route.user) =>
            {
                route
                    .request
                    .refuse(ChatError::NotMember, &self.deps.metrics)
            }
            Some(Entry::Foreign(members, until)) if Instant::now() < *until => {
                // A member after all: the room is started without reading again.
                let members = members.clone();
                self.forget(&route.connection_id);
                self.settle(
                    route.connection_id.clone(),
                    Ok(Some(members)),
                    vec![route],
                    ctx,
                );
            }
            _ => {
                let connection_id = route.connection_id.clone();
                self.forget(&connection_id);
                self.entries
                    .insert(connection_id.clone(), Entry::Loading(vec![route]));
                self.load(connection_id, ctx);
            }
        }
    }

    /// Removes an entry, keeping count of the remembered ones.
    fn forget(&mut self, connection_id: &Arc<str>) -> Option<Entry> {
        let entry = self.entries.remove(connection_id);
        if matches!(entry, Some(Entry::Unknown(_) | Entry::Foreign(..))) {
            self.remembered -= 1;
        }
        entry
    }

    /// Remembers `entry` (unknown or foreign) if there is room for it.
    fn remember(&mut self, connection_id: Arc<str>, entry: Entry) {
        if self.remembered >= MAX_REMEMBERED {
            let now = Instant::now();
            let before = self.entries.len();
            self.entries.retain(|_, e| match e {
                Entry::Unknown(until) | Entry::Foreign(_, until) => *until > now,
                _ => true,
            });
            self.remembered -= before - self.entries.len();
        }
        if self.remembered < MAX_REMEMBERED {
            self.remembered += 1;
            self.entries.insert(connection_id, entry);
        }
    }

    fn load(&mut self, connection_id: Arc<str>, ctx: &mut Context<Self>) {
        let db = self.deps.db.clone();
        let retry_for = self.deps.retry_for;
        let id = connection_id.clone();
        let read = async move {
            match retrying(retry_for, || find_connection(&db, &id)).await {
                Ok(found) => Ok(found.map(|c| [Arc::from(c.user1_id), Arc::from(c.user2_id)])),
                Err(e) => {
                    error!("reading connection {id} failed: {e}");
                    Err(())
                }
            }
        };
        ctx.spawn(read.into_actor(self).map(move |members, _shard, ctx| {
            ctx.notify(Loaded {
                connection_id,
                members,
            });
        }));
    }

    /// The connection was read: start its room for the members' requests, refuse the rest.
    fn settle(
        &mut self,
        connection_id: Arc<str>,
        members: Result<Option<[Arc<str>; 2]>, ()>,
        waiting: Vec<Route>,
        ctx: &mut Context<Self>,
    ) {
        let members = match members {
            Err(()) => {
                for route in waiting {
                    route.request.refuse(ChatError::Failed, &self.deps.metrics);
                }
                return;
            }
            Ok(None) => {
                for route in waiting {
                    route
                        .request
                        .refuse(ChatError::NotActive, &self.deps.metrics);
                }
                self.remember(connection_id, Entry::Unknown(Instant::now() + UNKNOWN_TTL));
                return;
            }
            Ok(Some(members)) => members,
        };
        // A connection of a user with themself has nobody to talk to.
        let is_member = |user: &Arc<str>| members[0] != members[1] && members.contains(user);
        if !waiting.iter().any(|route| is_member(&route.user)) {
            for route in waiting {
                route
                    .request
                    .refuse(ChatError::NotMember, &self.deps.metrics);
            }
            self.remember(
                connection_id,
                Entry::Foreign(members, Instant::now() + UNKNOWN_TTL),
            );
            return;
        }
        self.next_key += 1;
        let key = (self.index << 48) | self.next_key;
        debug!("room {connection_id} starting");
        let addr = ChatRoom::new(
            connection_id.clone(),
            members.clone(),
            key,
            self.deps.clone(),
            ctx.address().recipient(),
        )
        .start();
        self.entries.insert(
            connection_id.clone(),
            Entry::Room {
                addr,
                key,
                members,
                forwarded: 0,
            },
        );
        for route in waiting {
            self.forward(route, ctx);
        }
    }
}

impl Actor for RoomShard {
    type Context = Context<Self>;
}

impl Handler<Route> for RoomShard {
    type Result = ();

    fn handle(&mut self, route: Route, ctx: &mut Self::Context) {
        self.forward(route, ctx);
    }
}

impl Handler<Loaded> for RoomShard {
    type Result = ();

    fn handle(&mut self, msg: Loaded, ctx: &mut Self::Context) {
        let waiting = match self.entries.remove(&msg.connection_id) {
            Some(Entry::Loading(waiting)) => waiting,
            Some(other) => {
                // Cannot happen (only one read per id at a time); keep what is there.
                self.entries.insert(msg.connection_id, other);
                return;
            }
            None => return,
        };
        self.settle(msg.connection_id, msg.members, waiting, ctx);
    }
}

impl Handler<RoomIdle> for RoomShard {
    type Result = ();

    fn handle(&mut self, msg: RoomIdle, _ctx: &mut Self::Context) {
        if let Some(Entry::Room { key, forwarded, .. }) = self.entries.get(&msg.connection_id) {
            // Only if the room has handled everything forwarded to it: requests sent since
            // it reported would otherwise be lost with it.
            if *key == msg.room && *forwarded == msg.received {
                if let Some(Entry::Room { addr, .. }) = self.entries.remove(&msg.connection_id) {
                    debug!("room {} idle, stopping", msg.connection_id);
                    addr.do_send(StopRoom);
                }
            }
        }
    }
}

/// How many rooms a shard runs (for tests and metrics).
#[derive(Debug, Clone, Message)]
#[rtype(result = "usize")]
pub(crate) struct RoomCount;

impl Handler<RoomCount> for RoomShard {
    type Result = usize;

    fn handle(&mut self, _msg: RoomCount, _ctx: &mut Self::Context) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e, Entry::Room { .. }))
            .count()
    }
}

/// The room shards: finds the shard of a conversation.
#[derive(Clone)]
pub struct Rooms {
    shards: Arc<[Addr<RoomShard>]>,
}

impl Rooms {
    /// Rooms over `shards` (at least one).
    pub fn new(shards: Vec<Addr<RoomShard>>) -> Self {
        Rooms {
            shards: shards.into(),
        }
    }

    /// Sends `request` from `user` to the room of `connection_id`.
    pub fn route(&self, connection_id: Arc<str>, user: Arc<str>, request: Box<dyn RoomRequest>) {
        let shard = &self.shards[shard_of(&connection_id, self.shards.len())];
        shard.do_send(Route {
            connection_id,
            user,
            request,
        });
    }

    /// How many rooms are running on every shard.
    pub async fn count(&self) -> usize {
        let mut total = 0;
        for shard in self.shards.iter() {
            total += shard.send(RoomCount).await.unwrap_or(0);
        }
        total
    }
}
