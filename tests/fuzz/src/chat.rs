//! Courier's `chat::protocol::client`: the events' argument checks, pure code included from
//! Courier's own source folder (`src/chat/protocol/client/`).

// What only Courier's server uses (its failure messages, the names it dispatches on) is not
// used here.
#[allow(dead_code)]
#[path = "../../../src/chat/protocol/client/mod.rs"]
pub mod client;

pub use client::{
    args, call, clear_conversation, delete_messages, fetch_messages, join_chat, mark_read,
    send_message,
};
