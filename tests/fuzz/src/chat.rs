//! Courier's `chat` module, reduced to its argument checks: `args.rs` and each event's file,
//! whose handling (actix, the database) is left out under `cfg(fuzzing)`, which cargo fuzz
//! sets.

#[path = "../../../src/chat/args.rs"]
pub mod args;
#[path = "../../../src/chat/call.rs"]
pub mod call;
#[path = "../../../src/chat/clear_conversation.rs"]
pub mod clear_conversation;
#[path = "../../../src/chat/delete_messages.rs"]
pub mod delete_messages;
#[path = "../../../src/chat/fetch_messages.rs"]
pub mod fetch_messages;
#[path = "../../../src/chat/join_chat.rs"]
pub mod join_chat;
#[path = "../../../src/chat/mark_message_read.rs"]
pub mod mark_message_read;
#[path = "../../../src/chat/send_message.rs"]
pub mod send_message;
