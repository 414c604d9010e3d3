//! `join_chat(connectionId)`: a socket joins a conversation.
//!
//! The argument is the connection id as a string (the Node server's form) or
//! `{connectionId}`. The connection must exist and be `ACTIVE` and the user must be one of
//! its two members (checked by the room shard); the room then reads the connection's
//! status afresh (joining is rare and must be exact) and adds the socket to its joined
//! sockets. Ack (if asked): `{ok: true, connectionId}`. A socket does not need to join to
//! send or to receive: deliveries go to every socket of a member.

use serde_json::Value;

use super::args::{id_string, ArgError, INVALID_CONNECTION_ID};

/// The arguments of `join_chat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinChat {
    /// The connection (conversation) to join.
    pub connection_id: String,
}

/// Parses `join_chat`: the connection id as a string or as `{connectionId}`.
pub fn parse(args: &[Value]) -> Result<JoinChat, ArgError> {
    let raw = match args.first() {
        Some(Value::Object(obj)) => obj.get("connectionId"),
        other => other,
    };
    let connection_id = id_string(raw).ok_or(ArgError::fixed(INVALID_CONNECTION_ID))?;
    Ok(JoinChat { connection_id })
}

#[cfg(test)]
mod tests {
    use super::super::args::refusal;
    use super::super::args::MAX_ID_CHARS;
    use super::*;
    use serde_json::json;

    fn join_chat(args: &[Value]) -> Result<JoinChat, ArgError> {
        parse(args)
    }

    #[test]
    fn join_chat_accepts_a_string_or_an_object() {
        assert_eq!(join_chat(&[json!("conn1")]).unwrap().connection_id, "conn1");
        assert_eq!(
            join_chat(&[json!({"connectionId": "conn2", "extra": 1})])
                .unwrap()
                .connection_id,
            "conn2"
        );
        let long = "é".repeat(MAX_ID_CHARS);
        assert_eq!(join_chat(&[json!(long)]).unwrap().connection_id, long);
    }

    #[test]
    fn join_chat_refuses_bad_ids() {
        let too_long = "a".repeat(MAX_ID_CHARS + 1);
        for args in [
            vec![],
            vec![json!(null)],
            vec![json!("")],
            vec![json!(42)],
            vec![json!(too_long)],
            vec![json!({})],
            vec![json!({"connectionId": 1})],
            vec![json!({"connectionId": ""})],
            vec![json!(["conn"])],
        ] {
            assert_eq!(
                refusal(join_chat(&args)),
                "Invalid connection id.",
                "{args:?}"
            );
        }
    }
}
