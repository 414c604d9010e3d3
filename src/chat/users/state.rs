//! The state of a user on their shard, as plain data: their presence ([`Presence`], and the
//! [`Change`]s written and told), how presence works ([`PresenceOptions`]), and their
//! [`Relations`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::SpawnHandle;
use chrono::NaiveDateTime;

use crate::chat::settings::PresenceSettings;

/// How presence works: `[presence]`, and whether presence is written to the database at
/// all (off when the app's database lacks the presence columns; the events still go out).
#[derive(Debug, Clone)]
pub struct PresenceOptions {
    pub settings: PresenceSettings,
    pub writes: bool,
}

/// A user's presence on this node.
#[derive(Debug, Default)]
pub enum Presence {
    /// No socket, and told so.
    #[default]
    Offline,
    /// At least one socket.
    Online,
    /// The last socket went; offline when the timer fires, unless one comes back.
    Leaving(SpawnHandle),
}

/// A change to write, then to tell.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// The first socket came.
    Online { count: i32, at: NaiveDateTime },
    /// The last socket went (and the grace period passed).
    Offline { at: NaiveDateTime },
    /// The number of sockets changed.
    Count { count: i32, at: NaiveDateTime },
}

impl Change {
    /// The change as the cluster sees it when the other nodes have `elsewhere` sockets of
    /// the user: going online here or offline here while they have sockets elsewhere is
    /// only a new count (the cluster's total). `None`: nothing to write.
    pub(crate) fn in_cluster(self, elsewhere: usize) -> Option<Change> {
        let more = i32::try_from(elsewhere).unwrap_or(i32::MAX);
        match self {
            Change::Online { count, at } if elsewhere > 0 => Some(Change::Count {
                count: count.saturating_add(more),
                at,
            }),
            Change::Offline { at } if elsewhere > 0 => Some(Change::Count { count: more, at }),
            Change::Count { count, at } => Some(Change::Count {
                count: count.saturating_add(more),
                at,
            }),
            change => Some(change),
        }
    }
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
    pub(super) loaded: Option<Instant>,
}

impl Relations {
    /// Whether the user shares an ACTIVE connection with `other`.
    pub(crate) fn active_with(&self, other: &str) -> bool {
        self.peers.get(other).copied().unwrap_or(false)
    }

    /// How long ago the relations were read.
    pub(crate) fn age(&self) -> Duration {
        self.loaded.map_or(Duration::MAX, |at| at.elapsed())
    }

    /// The users who share an ACTIVE connection with the user.
    pub(crate) fn active_peers(&self) -> impl Iterator<Item = &Arc<str>> {
        self.peers
            .iter()
            .filter(|(_, active)| **active)
            .map(|(peer, _)| peer)
    }
}
