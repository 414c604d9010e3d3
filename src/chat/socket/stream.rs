//! [`Stream`]: a socket's recovery stream: its offset (sent with every conversation event),
//! the stamp that vouches for it, the live events held while a replay is read, what a replay
//! sent, and where the catch-up after the link to the other nodes was down starts.
//! `chat::socket::replay` is what the socket does with it.

use std::collections::HashSet;
use std::sync::Arc;

use crate::chat::push::ChatPush;
use crate::chat::recovery::{Offset, StreamKey};

/// A socket's recovery stream.
#[derive(Default)]
pub struct Stream {
    /// Where the socket is in its stream (connection state recovery on).
    pub(super) offset: Option<Offset>,
    /// The recovery stream (its pid's nonce) this socket carries in the node's pid records.
    pub(super) carried: Option<Arc<str>>,
    /// When the client last got its offset (milliseconds since the epoch): the stamp that
    /// vouches for the stream being live, refreshed on a pong when older than a quarter of
    /// `recovery.max_disconnection`.
    pub(super) stamped: i64,
    /// Live events held while a replay is read.
    pub(super) replaying: Option<Vec<ChatPush>>,
    /// What the last replay sent: a live event of one of these writes (committed before the
    /// replay's query, delivered by its room only afterwards) is not sent again. Kept for
    /// [`REPLAYED_KEPT`].
    pub(super) replayed: Option<(HashSet<StreamKey>, std::time::Instant)>,
    /// Where the socket was when the link to the other nodes went down, and what it got
    /// since: when the link is back, the rest is read from the database.
    pub(super) catch_up: Option<Box<CatchUp>>,
}

/// A socket's position when the link to the other nodes went down, and the events it got
/// since (not sent again by the catch-up).
pub(super) struct CatchUp {
    pub(super) from: Offset,
    pub(super) delivered: HashSet<StreamKey>,
    /// More events since than a replay gives: the catch-up gives up.
    pub(super) overflowed: bool,
}

/// Most live events held while a replay is read, besides the replay's own limit; past it
/// the socket is closed (it would be a slow client).
pub(super) const MAX_HELD: usize = 10_000;

/// How long after a replay its writes' live events are recognised: a write committed
/// before the replay's query is delivered by its room within moments of the commit.
pub(super) const REPLAYED_KEPT: std::time::Duration = std::time::Duration::from_secs(60);
