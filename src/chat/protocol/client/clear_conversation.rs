//! `clear_conversation({connectionId})`: a member cleared the conversation (through the
//! app's REST API) and tells the other member.
//!
//! Members only, and only while the connection is ACTIVE (read afresh; otherwise `error`
//! "Connection is not active."); the room delivers `conversation_cleared` `{connectionId,
//! clearedBy}` to every socket of the other member. Under the per-user rate limit of
//! `send_message` (`chat.rate_limit`) when it is on. Ack (if asked): `{ok: true}`.

use serde_json::Value;

use super::args::{connection_id, object, ArgError, INVALID_PAYLOAD};

/// The arguments of `clear_conversation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClearConversation {
    pub connection_id: String,
}

/// Parses `clear_conversation`: `{connectionId}`.
pub fn parse(args: &[Value]) -> Result<ClearConversation, ArgError> {
    let obj = object(args, INVALID_PAYLOAD)?;
    Ok(ClearConversation {
        connection_id: connection_id(obj)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_connection_id() {
        assert_eq!(
            parse(&[json!({"connectionId": "c1", "x": 1})])
                .unwrap()
                .connection_id,
            "c1"
        );
        assert_eq!(
            parse(&[json!({})]).unwrap_err().message(),
            "Invalid connection id."
        );
        assert_eq!(parse(&[]).unwrap_err().message(), "Invalid payload.");
    }
}
