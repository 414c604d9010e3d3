//! `delete_messages({connectionId, messageIds})`: a member deleted messages (through the
//! app's REST API) and tells the other member.
//!
//! Members only, and only while the connection is ACTIVE (read afresh; otherwise `error`
//! "Connection is not active."); the room delivers `messages_deleted` `{connectionId,
//! messageIds, deletedBy}` to every socket of the other member, in the conversation's order.
//! Courier deletes nothing itself: the app did, before it emits, so the ids of messages
//! still in the conversation that the sender did not send are left out of the notice (they
//! were not deleted); with none left, nobody is told. `messageIds` is a non-empty array of
//! at most `chat.max_notice_ids` message ids. Under the per-user rate limit of
//! `send_message` (`chat.rate_limit`) when it is on. Ack (if asked): `{ok: true}`.

use serde_json::Value;

use super::args::{connection_id, id_string, object, ArgError, INVALID_PAYLOAD};

/// The default of `chat.max_notice_ids`.
pub const MAX_MESSAGE_IDS: usize = 10_000;

/// The arguments of `delete_messages`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteMessages {
    pub connection_id: String,
    pub message_ids: Vec<String>,
}

/// Parses `delete_messages`: `{connectionId, messageIds}` with at most `max_ids` ids
/// (other fields, such as the client's own `deletedBy`, are ignored).
pub fn parse(args: &[Value], max_ids: usize) -> Result<DeleteMessages, ArgError> {
    let obj = object(args, INVALID_PAYLOAD)?;
    let connection_id = connection_id(obj)?;
    let invalid = || {
        ArgError::owned(format!(
            "messageIds must be a non-empty array of at most {max_ids} message ids."
        ))
    };
    let Some(Value::Array(ids)) = obj.get("messageIds") else {
        return Err(invalid());
    };
    if ids.is_empty() || ids.len() > max_ids {
        return Err(invalid());
    }
    let message_ids = ids
        .iter()
        .map(|id| id_string(Some(id)))
        .collect::<Option<Vec<String>>>()
        .ok_or_else(invalid)?;
    Ok(DeleteMessages {
        connection_id,
        message_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_ids_and_ignores_the_clients_deleted_by() {
        let d = parse(
            &[json!({"connectionId": "c1", "messageIds": ["m1", "m2"], "deletedBy": "x"})],
            MAX_MESSAGE_IDS,
        )
        .unwrap();
        assert_eq!(d.connection_id, "c1");
        assert_eq!(d.message_ids, vec!["m1".to_string(), "m2".to_string()]);
    }

    #[test]
    fn refuses_bad_ids() {
        let bad = "messageIds must be a non-empty array of at most 10000 message ids.";
        for ids in [
            json!([]),
            json!("m1"),
            json!(null),
            json!([1]),
            json!([""]),
            json!(["ok", null]),
            json!(["a".repeat(129)]),
            json!(vec!["m"; MAX_MESSAGE_IDS + 1]),
        ] {
            let e = parse(
                &[json!({"connectionId": "c1", "messageIds": ids})],
                MAX_MESSAGE_IDS,
            )
            .unwrap_err();
            assert_eq!(e.message(), bad);
        }
        assert!(parse(
            &[json!({"connectionId": "c1", "messageIds": vec!["m"; MAX_MESSAGE_IDS]})],
            MAX_MESSAGE_IDS
        )
        .is_ok());
        // The bound is chat.max_notice_ids.
        assert_eq!(
            parse(
                &[json!({"connectionId": "c1", "messageIds": ["a", "b", "c"]})],
                2
            )
            .unwrap_err()
            .message(),
            "messageIds must be a non-empty array of at most 2 message ids."
        );
        assert_eq!(
            parse(&[json!({"messageIds": ["m"]})], MAX_MESSAGE_IDS)
                .unwrap_err()
                .message(),
            "Invalid connection id."
        );
        assert_eq!(
            parse(&[json!("c1")], MAX_MESSAGE_IDS)
                .unwrap_err()
                .message(),
            "Invalid payload."
        );
    }
}
