//! The names of the presence keys in Redis, and node ids.

/// The Node server's set of online users.
pub const ONLINE_USERS: &str = "online_users";

/// The names of the presence keys.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    pub(super) prefix: String,
}

impl Keys {
    pub(super) fn node(&self, uid: &str) -> String {
        format!("{}:node:{uid}", self.prefix)
    }
    pub(super) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
    pub(super) fn sockets(&self, user: &str) -> String {
        format!("{}:sockets:{user}", self.prefix)
    }
    pub(super) fn node_users(&self, uid: &str) -> String {
        format!("{}:node-users:{uid}", self.prefix)
    }
}

/// A node id as the adapter makes them (`uid2(6)`: 6 characters of `[A-Za-z0-9]`); ours
/// are longer, to tell Courier nodes apart in logs, and still unique per process.
pub(super) fn node_uid() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes).unwrap_or_default();
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}
