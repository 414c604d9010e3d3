//! [`Event`]: an event from the client, as the application and a mounted namespace get it.

use bytes::Bytes;
use serde_json::Value;

/// An event from the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event name.
    pub name: String,
    /// The arguments after the name (binary ones as `{"_placeholder":true,"num":N}`).
    pub args: Vec<Value>,
    /// The acknowledgement id, when the client asked for one.
    pub ack: Option<u64>,
    /// Binary attachments, indexed by the placeholders' `num`.
    pub attachments: Vec<Bytes>,
}
