//! The other nodes of a cluster, as the chat sees them: [`RemoteNodes`], which the chat calls
//! to reach sockets on other nodes (implemented by `crate::cluster` over Redis; absent on a
//! single node), and this node's sockets as the other servers see them ([`SocketIndex`]):
//! what a broadcast, a request or a remote join from another server reaches.
//!
//! Rooms are Socket.IO's, as the Node server has them: each socket is in the room of its
//! own id, in the room of its user's id (how the Node server addresses a user), in the room
//! of each conversation it joined (`join_chat`, room `<connectionId>`), and in the rooms other
//! servers made it join (`socketsJoin`, `remoteJoin`). A broadcast to rooms reaches every
//! socket in any of them, once, except those in any room of `except`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use actix::Recipient;
use futures_util::future::BoxFuture;

use super::push::{ChatPush, Frame, Mark};

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
    /// Most rooms a socket joins besides its own two (`redis.max_rooms_per_socket`).
    fn max_rooms_per_socket(&self) -> usize;
    /// A socket of this node took the recovery stream `nonce` over: a socket on another node
    /// that still carries it is closed (there, [`Users::pid_taken_elsewhere`]).
    fn pid_taken(&self, nonce: &str);
}

/// The room a `REMOTE_DISCONNECT` names to close the socket that carries a recovery stream
/// (followed by the stream's nonce): no socket is in it, so a Node server does nothing.
pub(crate) const PID_ROOM: &str = "courier#pid#";

/// A socket of this node, as the index has it.
struct Indexed {
    user: Arc<str>,
    push: Recipient<ChatPush>,
    /// The rooms it joined besides its own id and its user's.
    joined: Vec<Arc<str>>,
}

/// A socket of this node a broadcast or a request reaches: its id, its user and where its
/// events go.
#[derive(Debug, Clone)]
pub struct Reached {
    pub sid: Arc<str>,
    pub user: Arc<str>,
    pub push: Recipient<ChatPush>,
}

/// A room that got its first socket of this node (`true`) or lost its last (`false`).
pub(crate) type RoomChange = (Arc<str>, bool);

#[derive(Default)]
struct Index {
    sockets: HashMap<Arc<str>, Indexed>,
    /// Room (a user's id, a conversation, any room joined) → the sockets in it (not the
    /// sockets' own rooms: a socket id is looked up in `sockets`).
    rooms: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// Told of every room that appears or goes, in order ([`SocketIndex::watch_rooms`]).
    watch: Option<tokio::sync::mpsc::UnboundedSender<RoomChange>>,
}

impl Index {
    fn enter(&mut self, room: &Arc<str>, sid: &Arc<str>) {
        let members = self.rooms.entry(room.clone()).or_default();
        if members.is_empty() {
            if let Some(watch) = &self.watch {
                let _ = watch.send((room.clone(), true));
            }
        }
        members.insert(sid.clone());
    }

    fn exit(&mut self, room: &str, sid: &str) {
        if let Some(members) = self.rooms.get_mut(room) {
            members.remove(sid);
            if members.is_empty() {
                if let Some((room, _)) = self.rooms.remove_entry(room) {
                    if let Some(watch) = &self.watch {
                        let _ = watch.send((room, false));
                    }
                }
            }
        }
    }

    /// Whether socket `sid` is in any of `rooms`.
    fn in_any(&self, sid: &Arc<str>, socket: &Indexed, rooms: &HashSet<&str>) -> bool {
        rooms.contains(&**sid)
            || rooms.contains(&*socket.user)
            || socket.joined.iter().any(|r| rooms.contains(&**r))
    }
}

/// This node's sockets and their Socket.IO rooms, for the other servers of a cluster (kept
/// only in a cluster). Bounded: at most `max_rooms` joined rooms per socket.
pub struct SocketIndex {
    inner: Mutex<Index>,
    max_rooms: usize,
}

impl std::fmt::Debug for SocketIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIndex")
            .field("max_rooms", &self.max_rooms)
            .finish()
    }
}

impl SocketIndex {
    /// An empty index; each socket joins at most `max_rooms` rooms besides its own two.
    pub fn new(max_rooms: usize) -> Self {
        SocketIndex {
            inner: Mutex::new(Index::default()),
            max_rooms,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // No update leaves the index half done across a panic point.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A socket connected.
    pub fn add(&self, sid: &Arc<str>, user: &Arc<str>, push: Recipient<ChatPush>) {
        let mut index = self.lock();
        index.enter(user, sid);
        index.sockets.insert(
            sid.clone(),
            Indexed {
                user: user.clone(),
                push,
                joined: Vec::new(),
            },
        );
    }

    /// A socket went away: out of every room.
    pub fn remove(&self, sid: &str) {
        let mut index = self.lock();
        if let Some(socket) = index.sockets.remove(sid) {
            index.exit(&socket.user, sid);
            for room in &socket.joined {
                index.exit(room, sid);
            }
        }
    }

    /// Socket `sid` joins `room`; `false` if it is gone, was in it already, or is in as many
    /// rooms as it may be.
    pub fn join(&self, sid: &str, room: &Arc<str>) -> bool {
        let mut index = self.lock();
        let max = self.max_rooms;
        let Some((sid, socket)) = index.sockets.get_key_value(sid) else {
            return false;
        };
        if **room == **sid || *room == socket.user || socket.joined.contains(room) {
            return false;
        }
        if socket.joined.len() >= max {
            log::debug!("socket {sid} is in {max} rooms already; {room} not joined");
            return false;
        }
        let sid = sid.clone();
        if let Some(socket) = index.sockets.get_mut(&sid) {
            socket.joined.push(room.clone());
        }
        index.enter(room, &sid);
        true
    }

    /// Socket `sid` leaves `room` (not its own rooms: a socket is always in those).
    pub fn leave(&self, sid: &str, room: &str) -> bool {
        let mut index = self.lock();
        let Some(socket) = index.sockets.get_mut(sid) else {
            return false;
        };
        let before = socket.joined.len();
        socket.joined.retain(|r| **r != *room);
        if socket.joined.len() == before {
            return false;
        }
        index.exit(room, sid);
        true
    }

    /// The sockets in any of `rooms` (every socket when empty) and in none of `except`.
    pub fn reach(&self, rooms: &[Arc<str>], except: &[Arc<str>]) -> Vec<Reached> {
        let index = self.lock();
        let except: HashSet<&str> = except.iter().map(|r| &**r).collect();
        let mut out = Vec::new();
        let mut take = |sid: &Arc<str>, socket: &Indexed| {
            if except.is_empty() || !index.in_any(sid, socket, &except) {
                out.push(Reached {
                    sid: sid.clone(),
                    user: socket.user.clone(),
                    push: socket.push.clone(),
                });
            }
        };
        if rooms.is_empty() {
            for (sid, socket) in &index.sockets {
                take(sid, socket);
            }
            return out;
        }
        let mut seen: HashSet<&Arc<str>> = HashSet::new();
        for room in rooms {
            if let Some((sid, socket)) = index.sockets.get_key_value(room) {
                if seen.insert(sid) {
                    take(sid, socket);
                }
            }
            for sid in index.rooms.get(room).into_iter().flatten() {
                if let Some((sid, socket)) = index.sockets.get_key_value(sid) {
                    if seen.insert(sid) {
                        take(sid, socket);
                    }
                }
            }
        }
        out
    }

    /// Every room of socket `sid`: its id, its user's, those it joined.
    pub(crate) fn rooms_of(&self, sid: &str) -> Vec<Arc<str>> {
        let index = self.lock();
        let Some((sid, socket)) = index.sockets.get_key_value(sid) else {
            return Vec::new();
        };
        let mut rooms = vec![sid.clone(), socket.user.clone()];
        rooms.extend(socket.joined.iter().cloned());
        rooms
    }

    /// Every room that has a socket of this node.
    pub(crate) fn all_rooms(&self) -> Vec<Arc<str>> {
        let index = self.lock();
        index
            .sockets
            .keys()
            .chain(index.rooms.keys())
            .cloned()
            .collect()
    }

    /// Tells `watch` of every room (besides the sockets' own) that gets its first socket here
    /// or loses its last, in order, starting with those there are now (sharded pub/sub
    /// subscribes to each room's channel).
    pub(crate) fn watch_rooms(&self, watch: tokio::sync::mpsc::UnboundedSender<RoomChange>) {
        let mut index = self.lock();
        for room in index.rooms.keys() {
            let _ = watch.send((room.clone(), true));
        }
        index.watch = Some(watch);
    }
}

#[cfg(test)]
impl SocketIndex {
    /// Whether any socket of this node is in `room`.
    fn has_room(&self, room: &str) -> bool {
        let index = self.lock();
        index.sockets.contains_key(room) || index.rooms.contains_key(room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::push::Sink;
    use actix::Actor;

    fn sids(reached: Vec<Reached>) -> Vec<String> {
        let mut v: Vec<String> = reached.into_iter().map(|r| r.sid.to_string()).collect();
        v.sort();
        v
    }

    #[actix::test]
    async fn rooms_are_socket_io_s() {
        let push = Sink.start().recipient();
        let index = SocketIndex::new(2);
        let (s1, s2, s3): (Arc<str>, Arc<str>, Arc<str>) = ("s1".into(), "s2".into(), "s3".into());
        let (alice, bob): (Arc<str>, Arc<str>) = ("alice".into(), "bob".into());
        index.add(&s1, &alice, push.clone());
        index.add(&s2, &alice, push.clone());
        index.add(&s3, &bob, push.clone());
        let conv: Arc<str> = "conv".into();
        assert!(index.join(&s1, &conv));
        assert!(!index.join(&s1, &conv), "once");
        assert!(!index.join(&s1, &s1), "its own room");
        assert!(index.join(&s3, &conv));
        let r = |rooms: &[&str], except: &[&str]| {
            let rooms: Vec<Arc<str>> = rooms.iter().map(|r| Arc::from(*r)).collect();
            let except: Vec<Arc<str>> = except.iter().map(|r| Arc::from(*r)).collect();
            sids(index.reach(&rooms, &except))
        };
        assert_eq!(r(&["alice"], &[]), ["s1", "s2"]);
        assert_eq!(r(&["conv"], &[]), ["s1", "s3"]);
        assert_eq!(r(&["conv", "alice"], &[]), ["s1", "s2", "s3"], "each once");
        assert_eq!(r(&["s2"], &[]), ["s2"]);
        assert_eq!(r(&[], &["bob"]), ["s1", "s2"]);
        assert_eq!(r(&["alice"], &["conv"]), ["s2"]);
        assert_eq!(r(&["alice"], &["s1"]), ["s2"]);
        assert_eq!(r(&["nobody"], &[]), Vec::<String>::new());
        assert_eq!(
            index
                .rooms_of("s1")
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>(),
            ["s1", "alice", "conv"]
        );
        // Bounded.
        assert!(index.join(&s1, &"x".into()));
        assert!(!index.join(&s1, &"y".into()), "at most 2 joined rooms");
        assert!(index.leave(&s1, "conv"));
        assert!(!index.leave(&s1, "conv"));
        assert!(!index.leave(&s1, "alice"), "its user's room stays");
        assert_eq!(r(&["conv"], &[]), ["s3"]);
        index.remove(&s3);
        assert!(!index.has_room("conv"), "an empty room is gone");
        assert!(index.has_room("alice") && index.has_room("s1") && index.has_room("x"));
        let mut all: Vec<String> = index.all_rooms().iter().map(|r| r.to_string()).collect();
        all.sort();
        assert_eq!(all, ["alice", "s1", "s2", "x"]);
    }

    #[actix::test]
    async fn rooms_that_appear_and_go_are_told_in_order() {
        let push = Sink.start().recipient();
        let index = SocketIndex::new(4);
        let (s1, s2): (Arc<str>, Arc<str>) = ("s1".into(), "s2".into());
        index.add(&s1, &"alice".into(), push.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        index.watch_rooms(tx);
        index.add(&s2, &"alice".into(), push.clone());
        assert!(index.join(&s2, &"conv".into()));
        index.remove(&s1);
        index.remove(&s2);
        let mut told = Vec::new();
        while let Ok((room, up)) = rx.try_recv() {
            told.push(format!("{}{room}", if up { "+" } else { "-" }));
        }
        // Those already there first; a socket's own id is no such room; alice goes with her
        // last socket.
        assert_eq!(told, ["+alice", "+conv", "-alice", "-conv"]);
    }
}
