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
pub const CANNOT_MARK_READ: &str = "You cannot mark this message as read.";
/// The `error` event's message when a mark-read fails in the database.
pub const MARK_READ_FAILED: &str = "Failed to mark message as read.";

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

#[cfg(not(fuzzing))]
pub use handling::MarkRequest;

#[cfg(not(fuzzing))]
mod handling {
    use std::sync::Arc;

    use actix::{Addr, Handler, Message};
    use serde_json::json;
    use tokio::sync::OwnedSemaphorePermit;

    use super::{parse, CANNOT_MARK_READ, MARK_READ_FAILED};
    use crate::chat::persistence::{MarkOutcome, WriteOp, WriteResult};
    use crate::chat::push::{event, Caller, Mark};
    use crate::chat::recovery::{millis, StreamKey};
    use crate::chat::room::{ChatError, ChatRoom, RoomRequest};
    use crate::chat::socket::{fail, ChatSocket};
    use crate::chat::sql::MarkReadRow;
    use crate::chat::ChatMetrics;
    use crate::socketio::{Event, SocketIo};

    /// A mark-read for the room.
    #[derive(Debug, Message)]
    #[rtype(result = "()")]
    pub struct MarkRequest {
        pub caller: Caller,
        pub reader: Arc<str>,
        pub message_id: String,
        pub permit: Option<OwnedSemaphorePermit>,
    }

    impl RoomRequest for MarkRequest {
        fn forward(self: Box<Self>, room: &Addr<ChatRoom>) {
            room.do_send(*self);
        }

        fn refuse(self: Box<Self>, error: ChatError, _metrics: &ChatMetrics) {
            self.caller.fail(match error {
                ChatError::Failed => MARK_READ_FAILED,
                ChatError::NotActive | ChatError::NotMember => CANNOT_MARK_READ,
            });
        }
    }

    impl ChatSocket {
        /// The event from the client.
        pub(in crate::chat) fn mark_message_read(
            &mut self,
            event: Event,
            io: &mut SocketIo<'_, '_, Self>,
        ) {
            let request = match parse(&event.args) {
                Ok(request) => request,
                Err(e) => return fail(io, event.ack, e.message()),
            };
            let Some((reader, caller)) = self.caller(event.ack, io) else {
                return;
            };
            let connection_id: Arc<str> = request.connection_id.into();
            let message_id = request.message_id;
            self.submit(
                connection_id,
                true,
                move |permit| {
                    Box::new(MarkRequest {
                        caller,
                        reader,
                        message_id,
                        permit,
                    })
                },
                io,
            );
        }
    }

    impl Handler<MarkRequest> for ChatRoom {
        type Result = ();

        fn handle(&mut self, msg: MarkRequest, ctx: &mut Self::Context) {
            let Some(msg) = self.unless_loading(msg, ctx) else {
                return;
            };
            self.note_request();
            let MarkRequest {
                caller,
                reader,
                message_id,
                permit,
            } = msg;
            let row = MarkReadRow {
                message_id,
                connection_id: self.connection_id().to_string(),
                reader: reader.to_string(),
                now: self.next_stamp(),
            };
            let mark = Mark {
                conversation: self.connection_id().clone(),
                at: millis(&row.now),
                key: StreamKey::read(&row.message_id),
            };
            let notice = json!({
                "messageId": row.message_id,
                "connectionId": row.connection_id,
                "readBy": row.reader,
            })
            .to_string();
            self.persist(
                WriteOp::MarkRead(row),
                permit,
                Box::new(move |room, result| marked(room, caller, &notice, &mark, result)),
                ctx,
            );
        }
    }

    /// The mark's turn has come: tell the sender's sockets, answer the reader.
    fn marked(room: &mut ChatRoom, caller: Caller, notice: &str, mark: &Mark, result: WriteResult) {
        match result {
            WriteResult::Mark(MarkOutcome::Marked { sender }) => {
                room.deps().metrics.read_receipt();
                room.deliver_marked(&sender, &event("message_read", &[notice]), mark);
                caller.done(None, notice);
            }
            WriteResult::Mark(MarkOutcome::AlreadyRead) => caller.done(None, notice),
            WriteResult::Mark(MarkOutcome::NotAllowed) => caller.fail(CANNOT_MARK_READ),
            WriteResult::Mark(MarkOutcome::NotActive) => {
                caller.fail(ChatError::NotActive.message())
            }
            _ => caller.fail(MARK_READ_FAILED),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fmt;

    fn err<T: fmt::Debug>(r: Result<T, ArgError>) -> String {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.message().to_owned(),
        }
    }

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
            assert_eq!(err(mark_message_read(&args)), "Invalid payload.");
        }
        assert_eq!(
            err(mark_message_read(&[json!({"connectionId": "c1"})])),
            "Invalid message id."
        );
        assert_eq!(
            err(mark_message_read(&[
                json!({"messageId": "", "connectionId": "c1"})
            ])),
            "Invalid message id."
        );
        assert_eq!(
            err(mark_message_read(&[
                json!({"messageId": "m", "connectionId": 3})
            ])),
            "Invalid connection id."
        );
        assert_eq!(
            err(mark_message_read(&[
                json!({"messageId": "m", "connectionId": "a".repeat(129)})
            ])),
            "Invalid connection id."
        );
    }
}
