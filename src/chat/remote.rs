//! The other nodes of a cluster, as the chat sees them: [`RemoteNodes`], which the chat calls
//! to reach sockets on other nodes (implemented by `crate::cluster` over Redis; absent on a
//! single node), and what the cluster asks of this node's registry: deliveries from other
//! nodes ([`DeliverLocal`]) and this node's sockets in some rooms ([`LocalSockets`]).
//!
//! Rooms are Socket.IO's, as the Node server has them: each socket is in the room of its
//! user's id (how the Node server addresses a user). A broadcast to rooms reaches the sockets
//! of the users they name; `except` may name users or socket ids.

use std::sync::Arc;

use actix::{Handler, Message, MessageResult};
use futures_util::future::BoxFuture;

use super::push::{ChatPush, Frame, Mark};
use super::users::{UserShard, Users};

/// What the chat asks of the other nodes. Every call returns at once; what goes out keeps
/// the order of the calls.
pub trait RemoteNodes: Send + Sync + std::fmt::Debug + 'static {
    /// Delivers `frame` to every socket of `user` on the other nodes (`io.to(user)`);
    /// `mark`: where it stands in its conversation's stream (it crosses with it).
    fn to_user(&self, user: &str, frame: &Frame, mark: Option<&Mark>);
    /// Delivers `frame` to every socket on the other nodes (`io.emit`).
    fn broadcast(&self, frame: &Frame);
    /// How many sockets `user` has on the other servers (0 when unknown): asked of each.
    fn sockets_elsewhere(&self, user: &str) -> BoxFuture<'static, usize>;
    /// How many sockets `user` has on the other Courier nodes, as they keep it in Redis (0
    /// when unknown): cheaper than asking, for every CONNECT.
    fn sockets_counted(&self, user: &str) -> BoxFuture<'static, usize>;
    /// This node now has `count` sockets of `user` (0: none).
    fn local_count(&self, user: &str, count: usize);
    /// `user` went offline, cluster-wide.
    fn went_offline(&self, user: &str);
    /// Whether `user` has a socket on another node (a Courier node, or a Node server's).
    fn online_anywhere(&self, user: &str) -> BoxFuture<'static, bool>;
    /// Counts a message of `user` in the cluster's current rate window; the count so far in
    /// it (`None` when Redis did not answer).
    fn count_message(&self, user: &str) -> BoxFuture<'static, Option<u64>>;
    /// Counts a message of `user` as [`RemoteNodes::count_message`] does, when the count is
    /// not needed here (queued with the rest, no answer awaited).
    fn note_message(&self, user: &str);
}

/// A room of a delivery: matches a socket by its sid or its user.
fn matches(rooms: &[Arc<str>], user: &str, sid: &str) -> bool {
    rooms.iter().any(|r| **r == *user || **r == *sid)
}

/// Rooms (user ids, socket ids), shared by the shards a request goes to.
type Rooms = Arc<[Arc<str>]>;

/// Deliver `frame` to this shard's sockets of the users `rooms` names (all of them when
/// empty) and in none of `except` (a broadcast from another node).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct DeliverLocal {
    pub rooms: Arc<[Arc<str>]>,
    pub except: Arc<[Arc<str>]>,
    pub frame: Frame,
    /// Where it stands in its conversation's stream, as the sending node said.
    pub mark: Option<Mark>,
}

/// This shard's sockets in any of `rooms` (all when empty) and in none of `except`: their
/// sid and user.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Vec<(Arc<str>, Arc<str>)>")]
pub struct LocalSockets {
    pub rooms: Arc<[Arc<str>]>,
    pub except: Arc<[Arc<str>]>,
}

impl UserShard {
    /// Runs `f` on each socket here in `rooms` (all when empty) and not in `except`.
    fn each_local(
        &self,
        rooms: &[Arc<str>],
        except: &[Arc<str>],
        mut f: impl FnMut(&Arc<str>, &Arc<str>, &actix::Recipient<ChatPush>),
    ) {
        let mut visit = |user: &Arc<str>, entry: &super::users::UserEntry| {
            for (sid, push) in &entry.sockets {
                if !matches(except, user, sid) {
                    f(user, sid, push);
                }
            }
        };
        if rooms.is_empty() {
            for (user, entry) in &self.users {
                visit(user, entry);
            }
        } else {
            for room in rooms {
                if let Some((user, entry)) = self.users.get_key_value(room) {
                    visit(user, entry);
                }
            }
        }
    }
}

impl Handler<DeliverLocal> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: DeliverLocal, _ctx: &mut Self::Context) {
        // A message from another node's room keeps its place in the socket's stream (a
        // Node server's `receive_message` has it in the saved message it carries).
        let mark = msg
            .mark
            .or_else(|| super::recovery::mark_of_remote(&msg.frame));
        self.each_local(&msg.rooms, &msg.except, |_, _, push| {
            push.do_send(match &mark {
                Some(mark) => ChatPush::Stream(msg.frame.clone(), mark.clone()),
                None => ChatPush::Deliver(msg.frame.clone()),
            });
        });
    }
}

impl Handler<LocalSockets> for UserShard {
    type Result = MessageResult<LocalSockets>;

    fn handle(&mut self, msg: LocalSockets, _ctx: &mut Self::Context) -> Self::Result {
        let mut found = Vec::new();
        self.each_local(&msg.rooms, &msg.except, |user, sid, _| {
            found.push((sid.clone(), user.clone()));
        });
        MessageResult(found)
    }
}

impl Users {
    /// Delivers a broadcast from another node to this node's sockets in `rooms` (every socket
    /// when empty) and not in `except`; `mark`: where it stands in its conversation's stream.
    pub fn deliver_local(
        &self,
        rooms: Vec<Arc<str>>,
        except: Vec<Arc<str>>,
        frame: Frame,
        mark: Option<Mark>,
    ) {
        let except: Arc<[_]> = except.into();
        for (shard, rooms) in self.by_shard(rooms) {
            shard.do_send(DeliverLocal {
                rooms,
                except: except.clone(),
                frame: frame.clone(),
                mark: mark.clone(),
            });
        }
    }

    /// The shards to ask about `rooms`, each with its share (every shard when empty).
    fn by_shard(&self, rooms: Vec<Arc<str>>) -> Vec<(&actix::Addr<UserShard>, Rooms)> {
        let shards = self.shards();
        if rooms.is_empty() {
            return shards.iter().map(|s| (s, Arc::from(Vec::new()))).collect();
        }
        let mut split: Vec<Vec<Arc<str>>> = vec![Vec::new(); shards.len()];
        for room in rooms {
            split[super::users::shard_of(&room, shards.len())].push(room);
        }
        shards
            .iter()
            .zip(split)
            .filter(|(_, rooms)| !rooms.is_empty())
            .map(|(shard, rooms)| (shard, rooms.into()))
            .collect()
    }

    /// This node's sockets in `rooms` (all when empty) and not in `except`: sid and user.
    pub async fn local_sockets(
        &self,
        rooms: Vec<Arc<str>>,
        except: Vec<Arc<str>>,
    ) -> Vec<(Arc<str>, Arc<str>)> {
        let except: Arc<[_]> = except.into();
        let asks = self.by_shard(rooms).into_iter().map(|(shard, rooms)| {
            shard.send(LocalSockets {
                rooms,
                except: except.clone(),
            })
        });
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flat_map(Result::unwrap_or_default)
            .collect()
    }
}
