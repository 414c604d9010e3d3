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

#[cfg(not(fuzzing))]
pub use handling::Join;

#[cfg(not(fuzzing))]
mod handling {
    use std::sync::Arc;

    use actix::{ActorFutureExt, Addr, AsyncContext, Handler, Message, WrapFuture};
    use serde_json::json;

    use super::parse;
    use crate::chat::persistence::retrying;
    use crate::chat::push::{Caller, ChatPush};
    use crate::chat::room::{ChatError, ChatRoom, RoomRequest};
    use crate::chat::socket::{fail, ChatSocket};
    use crate::chat::sql;
    use crate::chat::ChatMetrics;
    use crate::socketio::{Event, SocketIo};

    /// A socket joins the conversation.
    #[derive(Debug, Message)]
    #[rtype(result = "()")]
    pub struct Join {
        pub caller: Caller,
    }

    impl RoomRequest for Join {
        fn forward(self: Box<Self>, room: &Addr<ChatRoom>) {
            room.do_send(*self);
        }

        fn refuse(self: Box<Self>, error: ChatError, _metrics: &ChatMetrics) {
            self.caller.fail(error.message());
        }
    }

    impl ChatSocket {
        /// The event from the client.
        pub(in crate::chat) fn join_chat(&mut self, event: Event, io: &mut SocketIo<'_, '_, Self>) {
            let request = match parse(&event.args) {
                Ok(request) => request,
                Err(e) => return fail(io, event.ack, e.message()),
            };
            let Some((_, caller)) = self.caller(event.ack, io) else {
                return;
            };
            let connection_id: Arc<str> = request.connection_id.into();
            self.submit(connection_id, false, move |_| Box::new(Join { caller }), io);
        }
    }

    impl Handler<Join> for ChatRoom {
        type Result = ();

        fn handle(&mut self, msg: Join, ctx: &mut Self::Context) {
            self.note_request();
            self.reading(true);
            let db = self.deps().db.clone();
            let retry_for = self.deps().retry_for;
            let id = self.connection_id().clone();
            let read = async move { retrying(retry_for, || sql::find_connection(&db, &id)).await };
            ctx.spawn(read.into_actor(self).map(move |read, room, _ctx| {
                room.reading(false);
                let caller = msg.caller;
                match read {
                    Ok(Some(connection)) if sql::is_active(&connection) => {
                        room.joined()
                            .insert(caller.sid.clone(), caller.push.clone());
                        caller
                            .push
                            .do_send(ChatPush::Joined(room.connection_id().clone()));
                        let ack = json!({ "ok": true, "connectionId": connection.id });
                        caller.done(None, &ack.to_string());
                    }
                    Ok(_) => caller.fail(ChatError::NotActive.message()),
                    Err(e) => {
                        log::error!("reading connection {} failed: {e}", room.connection_id());
                        caller.fail(ChatError::Failed.message());
                    }
                }
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::args::MAX_ID_CHARS;
    use serde_json::json;
    use std::fmt;

    fn err<T: fmt::Debug>(r: Result<T, ArgError>) -> String {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.message().to_owned(),
        }
    }

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
            assert_eq!(err(join_chat(&args)), "Invalid connection id.", "{args:?}");
        }
    }
}
