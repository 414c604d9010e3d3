//! The chat's wire protocol: every event name and payload, in one place (nothing outside this
//! folder spells an event name).
//!
//! - [`client`]: [`ClientEvent`], what a client sends, parsed and checked in one place; each
//!   event's arguments in a file of their own (`client/send_message.rs`, …), with the checks
//!   they share in `client/args.rs`.
//! - [`server`]: [`ServerEvent`], everything the chat sends, encoded in one place (frames
//!   built once for all their recipients; a stream event's recovery offset appended there);
//!   [`message_json`]: the saved message as the Node server emits it.
//!
//! Pure code: no I/O, no actors (the fuzz targets build `client/` on its own).

pub mod client;
pub mod message_json;
pub mod server;

pub use client::{args, call, fetch_messages, mark_read, send_message};
pub use client::{ClientEvent, Invalid, Limits};
pub use server::{Frame, ServerEvent, CHAT_NAMESPACE};
