//! `mark_message_read({messageId, connectionId})`: the receiver read a message.
//!
//! Only the message's receiver may mark it, only on an `ACTIVE` connection, and only once:
//! the room hands the mark to `Persistence` in its conversation's order, and when it is
//! committed `message_read` `{messageId, connectionId, readBy}` goes to every socket of the
//! sender (and is the ack, if asked). A repeat changes nothing (no second `message_read`,
//! no new `updatedAt`) and is still acknowledged.

use serde_json::Value;

use super::args::{
    connection_id, id_string, object, ArgError, INVALID_MESSAGE_ID, INVALID_PAYLOAD,
};

/// The `error` event's message when a mark-read is refused.
pub(crate) const CANNOT_MARK_READ: &str = "You cannot mark this message as read.";
/// The `error` event's message when a mark-read fails in the database.
pub(crate) const MARK_READ_FAILED: &str = "Failed to mark message as read.";

/// The arguments of `mark_message_read`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkRead {
    /// The message to mark as read.
    pub message_id: String,
    /// The connection the message belongs to.
    pub connection_id: String,
}

/// Parses `mark_message_read`: `{messageId, connectionId}`.
pub fn parse(args: &[Value]) -> Result<MarkRead, ArgError> {
    let obj = object(args, INVALID_PAYLOAD)?;
    let message_id = id_string(obj.get("messageId")).ok_or(ArgError::fixed(INVALID_MESSAGE_ID))?;
    let connection_id = connection_id(obj)?;
    Ok(MarkRead {
        message_id,
        connection_id,
    })
}

#[cfg(test)]
mod tests {
    use super::super::args::refusal;
    use super::*;
    use serde_json::json;

    fn mark_message_read(args: &[Value]) -> Result<MarkRead, ArgError> {
        parse(args)
    }

    #[test]
    fn mark_message_read_parses() {
        let r =
            mark_message_read(&[json!({"messageId": "m1", "connectionId": "c1", "x": 0})]).unwrap();
        assert_eq!(
            r,
            MarkRead {
                message_id: "m1".into(),
                connection_id: "c1".into()
            }
        );
        for args in [vec![], vec![json!("m1")], vec![json!(null)]] {
            assert_eq!(refusal(mark_message_read(&args)), "Invalid payload.");
        }
        assert_eq!(
            refusal(mark_message_read(&[json!({"connectionId": "c1"})])),
            "Invalid message id."
        );
        assert_eq!(
            refusal(mark_message_read(&[
                json!({"messageId": "", "connectionId": "c1"})
            ])),
            "Invalid message id."
        );
        assert_eq!(
            refusal(mark_message_read(&[
                json!({"messageId": "m", "connectionId": 3})
            ])),
            "Invalid connection id."
        );
        assert_eq!(
            refusal(mark_message_read(&[
                json!({"messageId": "m", "connectionId": "a".repeat(129)})
            ])),
            "Invalid connection id."
        );
    }
}
