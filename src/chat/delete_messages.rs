//! `delete_messages({connectionId, messageIds})`: a member deleted messages (through the
//! app's REST API) and tells the other member.
//!
//! Members only, whatever the connection's status (deleting an ended conversation's
//! history is legitimate); the room delivers `messages_deleted` `{connectionId, messageIds,
//! deletedBy}` to every socket of the other member, in the conversation's order. Courier
//! deletes nothing itself: the app did. `messageIds` is a non-empty array of at most
//! [`MAX_MESSAGE_IDS`] message ids. Ack (if asked): `{ok: true}`.

use serde_json::Value;

use super::args::{connection_id, id_string, object, ArgError, INVALID_PAYLOAD};

/// Most message ids in one `delete_messages`.
pub const MAX_MESSAGE_IDS: usize = 10_000;

const INVALID_MESSAGE_IDS: &str =
    "messageIds must be a non-empty array of at most 10000 message ids.";

/// The arguments of `delete_messages`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteMessages {
    pub connection_id: String,
    pub message_ids: Vec<String>,
}

/// Parses `delete_messages`: `{connectionId, messageIds}` (other fields, such as the
/// client's own `deletedBy`, are ignored).
pub fn parse(args: &[Value]) -> Result<DeleteMessages, ArgError> {
    let obj = object(args, INVALID_PAYLOAD)?;
    let connection_id = connection_id(obj)?;
    let Some(Value::Array(ids)) = obj.get("messageIds") else {
        return Err(ArgError::fixed(INVALID_MESSAGE_IDS));
    };
    if ids.is_empty() || ids.len() > MAX_MESSAGE_IDS {
        return Err(ArgError::fixed(INVALID_MESSAGE_IDS));
    }
    let message_ids = ids
        .iter()
        .map(|id| id_string(Some(id)))
        .collect::<Option<Vec<String>>>()
        .ok_or(ArgError::fixed(INVALID_MESSAGE_IDS))?;
    Ok(DeleteMessages {
        connection_id,
        message_ids,
    })
}

#[cfg(not(fuzzing))]
mod handling {
    use std::sync::Arc;

    use serde_json::json;

    use super::parse;
    use crate::chat::room::Notice;
    use crate::chat::socket::{fail, ChatSocket};
    use crate::socketio::{Event, SocketIo};

    impl ChatSocket {
        /// The event from the client.
        pub(in crate::chat) fn delete_messages(
            &mut self,
            event: Event,
            io: &mut SocketIo<'_, '_, Self>,
        ) {
            let request = match parse(&event.args) {
                Ok(request) => request,
                Err(e) => return fail(io, event.ack, e.message()),
            };
            let Some((user, caller)) = self.caller(event.ack, io) else {
                return;
            };
            let body = json!({
                "connectionId": request.connection_id,
                "messageIds": request.message_ids,
                "deletedBy": &*user,
            });
            let connection_id: Arc<str> = request.connection_id.into();
            self.submit(
                connection_id,
                false,
                move |_| Box::new(Notice::new(caller, user, "messages_deleted", &body)),
                io,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_ids_and_ignores_the_clients_deleted_by() {
        let d =
            parse(&[json!({"connectionId": "c1", "messageIds": ["m1", "m2"], "deletedBy": "x"})])
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
            let e = parse(&[json!({"connectionId": "c1", "messageIds": ids})]).unwrap_err();
            assert_eq!(e.message(), bad);
        }
        assert!(
            parse(&[json!({"connectionId": "c1", "messageIds": vec!["m"; MAX_MESSAGE_IDS]})])
                .is_ok()
        );
        assert_eq!(
            parse(&[json!({"messageIds": ["m"]})])
                .unwrap_err()
                .message(),
            "Invalid connection id."
        );
        assert_eq!(
            parse(&[json!("c1")]).unwrap_err().message(),
            "Invalid payload."
        );
    }
}
