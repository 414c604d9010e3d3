//! A socket joins its conversation: the room reads the connection's status afresh (joining
//! is rare and must be exact) and, while it is ACTIVE, counts the socket among its joined ones
//! (`{ok: true, connectionId}`).

use actix::{ActorFutureExt, AsyncContext, Handler, Message, WrapFuture};

use super::actor::{ChatError, ChatRoom, Refuse};
use crate::chat::metrics::ChatMetrics;
use crate::chat::protocol::server::ack;
use crate::chat::push::{Caller, ChatPush};
use crate::db::connections::{find_connection, is_active};
use crate::db::retry::retrying;

/// A socket joins the conversation.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Join {
    pub caller: Caller,
}

impl Refuse for Join {
    fn refuse(self, error: ChatError, _metrics: &ChatMetrics) {
        self.caller.fail(error.message());
    }
}

impl Handler<Join> for ChatRoom {
    type Result = ();

    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) {
        self.note_request();
        self.reading += 1;
        let db = self.deps.db.clone();
        let retry_for = self.deps.retry_for;
        let id = self.connection_id.clone();
        let read = async move { retrying(retry_for, || find_connection(&db, &id)).await };
        ctx.spawn(read.into_actor(self).map(move |read, room, _ctx| {
            room.reading = room.reading.saturating_sub(1);
            room.note_activity();
            let caller = msg.caller;
            match read {
                Ok(Some(connection)) if is_active(&connection) => {
                    room.joined.insert(caller.sid.clone(), caller.push.clone());
                    caller
                        .push
                        .do_send(ChatPush::Joined(room.connection_id.clone()));
                    caller.done(None, &ack::joined(&connection.id));
                }
                Ok(_) => caller.fail(ChatError::NotActive.message()),
                Err(e) => {
                    log::error!("reading connection {} failed: {e}", room.connection_id);
                    caller.fail(ChatError::Failed.message());
                }
            }
        }));
    }
}
