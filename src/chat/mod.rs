//! The chat application: the Node server's events on top of Socket.IO.
//!
//! Where an event goes, by folder and file:
//!
//! - [`protocol`]: the wire: every event the client sends ([`protocol::client`], each event's
//!   arguments parsed and checked in a file of its own: `protocol/client/send_message.rs` is where a
//!   message is **parsed**) and everything the chat sends ([`protocol::server`], encoded once).
//! - [`socket`]: [`ChatSocket`], one browser socket: CONNECT and recovery, the dispatcher that
//!   turns each event into a request for the actor that owns what it changes, the send window
//!   (back-pressure), the recovery stream.
//! - [`room`]: `ChatRoom`, one actor per conversation, the one sequencer and router of it, and
//!   the shard in front of it (which room serves a conversation, the membership check):
//!   `room/post.rs` is where a message is **ordered** and **delivered**.
//! - [`persistence`]: the `Persistence` actor, the one writer, committing in groups: where a
//!   message is **saved** ([`sql`] has the statements).
//! - [`users`]: the user registry (each user's sockets), presence, relations, calls, socket
//!   slots.
//! - [`recovery`] and [`pids`]: connection state recovery (pids, offsets, the replay).
//! - [`remote`]: the seam a cluster implements ([`remote::RemoteNodes`]) and this node's
//!   sockets as other servers see them.
//! - [`start`] ([`Chat::start`]), [`context`] ([`ChatContext`]), [`keys`] (message ids),
//!   [`push`] (what actors send sockets), [`rate_limit`], [`metrics`].
//!
//! Threads: the room and user shards run on `chat.shards` arbiters of their own, the
//! persistence actor on another, the sockets on actix-web's workers.

pub mod context;
pub mod keys;
pub mod metrics;
pub mod persistence;
pub(crate) mod pids;
pub mod protocol;
pub mod push;
pub mod rate_limit;
pub mod recovery;
pub mod remote;
pub mod room;
pub mod settings;
pub mod socket;
pub mod start;
pub mod users;

pub use context::ChatContext;
pub use keys::MessageIdKey;
pub use metrics::ChatMetrics;
pub use recovery::{PidKey, RecoveryOptions};
pub use socket::ChatSocket;
pub use start::{Chat, ChatOptions};
pub use users::PresenceOptions;
