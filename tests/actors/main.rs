//! The chat's actors on their own (`#[actix::test]`), over real databases: the room shards,
//! `ChatRoom` (one order per conversation, delivery to every socket of the receiver), the
//! user registry, and `Persistence` (group commit, a bad row failing alone, ids made once,
//! read receipts not repeated, shutdown). Sockets are fake actors recording every push
//! ([`harness`]).

#[path = "../common/mod.rs"]
mod common;

mod harness;
mod metrics;
mod persistence;
mod presence;
mod room;
