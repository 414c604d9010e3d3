//! Sharded pub/sub on a Redis Cluster (`redis+cluster://`): the protocol of
//! `@socket.io/redis-adapter` 8.3's `createShardedAdapter` (its `lib/sharded-adapter.ts`, on
//! `socket.io-adapter` 2.5's `ClusterAdapter`), with its defaults (`channelPrefix` =
//! `redis.key`, `subscriptionMode: "dynamic"`).
//!
//! - **Channels** (`SSUBSCRIBE`/`SPUBLISH`, each on the shard of its hash slot):
//!   `<key>#/#` for what goes to every server, `<key>#/#<uid>#` for the answers to server
//!   `uid`'s requests, and one channel per room, `<key>#/#<room>#`, which a server subscribes
//!   to while it has a socket in the room (not the sockets' own rooms). A broadcast to one
//!   room goes to the room's channel, unless it asks for acks or the room looks like a
//!   socket id (20 characters): then to `<key>#/#`.
//! - **Messages**: `{uid, nsp, type, data}`, JSON, or MessagePack when they carry binary:
//!   `BROADCAST` (3: `{packet, opts: {rooms, except, flags}, requestId?}`), `SOCKETS_JOIN`
//!   (4), `SOCKETS_LEAVE` (5), `DISCONNECT_SOCKETS` (6), `FETCH_SOCKETS` (7) and its
//!   `FETCH_SOCKETS_RESPONSE` (8), `SERVER_SIDE_EMIT` (9) and its response (10),
//!   `BROADCAST_CLIENT_COUNT` (11) and `BROADCAST_ACK` (12) for a broadcast with acks.
//! - **How many servers** there are (what a request waits for): `PUBSUB SHARDNUMSUB <key>#/#`
//!   summed over the cluster's nodes.
//!
//! What the classic protocol has and this one does not: `allRooms()` (`ALL_ROOMS`) and
//! `SOCKETS` requests, the one-socket `remoteJoin`/`remoteLeave`/`remoteDisconnect` by id,
//! and one order across channels (each channel is ordered, a user's deliveries all go to
//! their room's channel; broadcasts to everyone may arrive before or after them).

pub(crate) mod subscriber;
pub(crate) mod wire;
