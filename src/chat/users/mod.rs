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
//!   `presence.peers_ttl`), for presence and call signalling.
//!
//! Files: [`shard`] (the actor, its registry handlers, and the [`Users`] handle), [`state`]
//! (a user's presence and relations, as data), [`presence`], [`relations`], [`calls`] (the
//! actor's handlers for each), [`slots`] (sockets per user).

pub mod calls;
pub mod presence;
pub(crate) mod relations;
pub mod shard;
pub mod slots;
pub mod state;

pub use shard::{MemberChange, MemberUpdate, ShardDeps, SocketSlot, UserShard, Users};
pub use slots::SocketSlots;
pub use state::{PresenceOptions, Relations};
