//! [`SocketSlots`]: how many sockets each user holds on this node (`chat.max_sockets_per_user`).

use std::collections::HashMap;
use std::sync::Arc;

use crate::chat::remote::RemoteNodes;
use crate::ids::shard_of;

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
    pub(crate) fn give_back(&self, user: &Arc<str>) {
        let mut map = self.map(user);
        if let Some(n) = map.get_mut(user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(user);
            }
        }
    }
}
