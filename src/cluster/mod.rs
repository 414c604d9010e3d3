//! Many Courier nodes (and Node servers with `@socket.io/redis-adapter` 8.x) as one service,
//! over Redis pub/sub, on the adapter's own wire protocol ([`wire`]).
//!
//! On when `redis.url` is set. [`Cluster`] is the chat's [`RemoteNodes`]:
//!
//! - **Out**: what the chat delivers to a user (`io.to(userId)`) or to everyone (`io.emit`)
//!   is also published as the adapter's broadcast, on `<key>#/#<userId>#` or `<key>#/#`.
//!   Everything this node writes to Redis goes through one queue and one connection, in
//!   order, pipelined: a room's deliveries reach the other nodes in the room's order. A
//!   publish that fails (Redis down, the queue full) is counted
//!   (`courier_cluster_publish_failed_total`) and logged, never retried (a retry would
//!   reorder).
//! - **In**: one subscriber connection per node: `PSUBSCRIBE <key>#/#*` (broadcasts, its own
//!   ignored by `uid`), `SUBSCRIBE <key>-request#/#` (Node counts the servers with
//!   `PUBSUB NUMSUB` on it and waits for one answer from each) and the response channels
//!   (`<key>-response#/#`, and `<key>-response#/#<uid>#`) for the answers to its own
//!   requests. Broadcasts go to this node's sockets in the Socket.IO rooms they name (a
//!   socket's id, its user's id, the conversations it joined, rooms joined by request: the
//!   chat's [`crate::chat::remote::SocketIndex`]), binary ones as binary packets; requests
//!   are answered on `<key>-response#/#` ([`requests`]). When the connection drops the
//!   subscriber connects and subscribes again by itself, and the chat's sockets catch up on
//!   what they missed meanwhile (`Users::remote_link`).
//! - **Presence**: how many sockets a user has on the other servers is asked as the
//!   adapter's `fetchSockets()` asks it (a `REMOTE_FETCH` request, one answer awaited from
//!   each server `PUBSUB NUMSUB` counts, Courier nodes and Node servers alike, within
//!   `redis.request_timeout`). Each node also keeps in Redis how many sockets each of its
//!   users has (the hash `courier:<key>:sockets:<userId>`, one field per node: the fallback
//!   when not every server answered) and that it is alive (the key
//!   `courier:<key>:node:<uid>`, which expires `redis.presence_ttl` after the node's last
//!   refresh); a count only counts while its node is alive. Every `redis.refresh` the node
//!   writes all of it again (so a restarted Redis has it back within one refresh) and looks
//!   for nodes that died: the one node that claims a dead node (`SREM` of the set
//!   `courier:<key>:nodes`) settles the presence of the dead node's users. The Node server's
//!   set `online_users` is kept too (users with a socket on a Courier node are added; a user
//!   who goes offline is removed).

mod elsewhere;
mod flags;
mod keys;
pub mod link;
pub mod metrics;
mod node;
mod presence;
mod publish;
mod remote;
mod requests;
mod settings;
mod sharded;
mod start;
mod subscriber;
pub(crate) mod wire;

pub use flags::{MARK_FLAG, MISSED_FLAG, MISSED_ROOM};
pub use keys::ONLINE_USERS;
pub use metrics::ClusterMetrics;
pub use node::{Cluster, ClusterError};
pub use settings::RedisSettings;
