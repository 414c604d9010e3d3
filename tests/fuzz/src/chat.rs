//! Courier's `chat::protocol::client`: the events' argument checks, pure code included from
//! Courier's own source folder (`src/chat/protocol/client/`).

#[path = "../../../src/chat/protocol/client/mod.rs"]
pub mod client;

pub use client::{
    args, call, clear_conversation, delete_messages, fetch_messages, join_chat, mark_read,
    send_message,
};
