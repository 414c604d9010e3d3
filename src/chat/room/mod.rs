//! `ChatRoom`: one actor per conversation (connection), the one sequencer and router of it.
//!
//! Every request for a conversation, from whichever member's socket, reaches its room
//! through the room shard ([`shard`]), which checked that the user is a member. The room
//!
//! 1. gives each write its place: a sequence number and a stamp (a message's `createdAt`, a
//!    read receipt's `updatedAt`) that strictly increases in that order (two in the same
//!    millisecond get consecutive milliseconds) and starts above the newest stamp of the
//!    conversation in the database (read when the room starts; writes wait for it), so the
//!    conversation's order `ORDER BY "createdAt", "id"` is the order the room delivers,
//!    whatever the clocks of other writers, and the stamps are the stream positions of
//!    connection state recovery (`chat::recovery`);
//! 2. hands it to `Persistence`, which commits writes in groups;
//! 3. when the commits confirm, completes them **in sequence order** (a result that comes
//!    early waits for the ones before it): delivers to the members' sockets and answers the
//!    socket that asked.
//!
//! The room knows its members' connected sockets from the user registry (it subscribes when
//! it starts), so it delivers to every socket of a member, joined or not. Each request the
//! room takes has its file, with what the room does with it: [`post`] (`send_message`: where a
//! message is ordered, saved and delivered), [`mark_read`], [`join`], [`notice`] (deletion and
//! clearing notices); this file holds the actor and what they share.
//!
//! A room with no joined socket and nothing in flight for `chat.room_idle_timeout` asks its
//! shard to stop it; the shard does so only if nothing was forwarded to it meanwhile, so a
//! conversation never has two rooms at once.

pub mod actor;
pub mod join;
pub mod mark_read;
pub mod notice;
pub mod post;
pub mod shard;

pub use actor::{ChatError, ChatRoom, Refuse, RoomDeps, RoomRequest};
pub use join::Join;
pub use mark_read::MarkRequest;
pub use notice::{Notice, Told};
pub use post::Post;
pub use shard::{RoomShard, Rooms};
