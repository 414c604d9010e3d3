//! A member tells the other member that they deleted messages (`messages_deleted`) or cleared
//! the conversation (`conversation_cleared`), through the app's REST API. Only while the
//! connection is ACTIVE (read afresh: the app changes statuses through its own API), in the
//! conversation's order; a deletion's ids of messages still in the conversation that the
//! sender did not send were not deleted, and are left out (none left: nobody is told). The
//! sender's ack is `{ok: true}`.

use std::sync::Arc;

use actix::{Handler, Message};

use super::actor::{ChatError, ChatRoom, Refuse};
use crate::chat::metrics::ChatMetrics;
use crate::chat::protocol::server::{ack, ServerEvent};
use crate::chat::push::Caller;
use crate::db::messages::notice_check;
use crate::db::retry::retrying;

/// What a notice tells.
#[derive(Debug)]
pub enum Told {
    /// The messages with these ids were deleted.
    Deleted(Vec<String>),
    /// The conversation was cleared.
    Cleared,
}

/// A notice from `from` for the other member.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Notice {
    pub caller: Caller,
    pub from: Arc<str>,
    pub told: Told,
}

impl Refuse for Notice {
    fn refuse(self, error: ChatError, _metrics: &ChatMetrics) {
        self.caller.fail(error.message());
    }
}

impl Handler<Notice> for ChatRoom {
    type Result = ();

    fn handle(&mut self, msg: Notice, ctx: &mut Self::Context) {
        let Some(msg) = self.unless_loading(msg, ctx) else {
            return;
        };
        self.note_request();
        let other = self.other_member(&msg.from).clone();
        let db = self.deps.db.clone();
        let retry_for = self.deps.retry_for;
        let (id, from) = (self.connection_id.clone(), msg.from.clone());
        let deleted = match &msg.told {
            Told::Deleted(ids) => Some(ids.clone()),
            Told::Cleared => None,
        };
        let read = async move {
            retrying(retry_for, || {
                notice_check(&db, &id, &from, deleted.as_deref())
            })
            .await
        };
        // After the writes before it, so that the other member hears in order.
        self.after_read(
            read,
            move |room, checked| match checked {
                Ok(Some(ids)) => {
                    let connection_id = room.connection_id.clone();
                    let event = match msg.told {
                        Told::Deleted(_) if ids.is_empty() => None,
                        Told::Deleted(_) => Some(ServerEvent::MessagesDeleted {
                            connection_id: &connection_id,
                            message_ids: &ids,
                            deleted_by: &msg.from,
                        }),
                        Told::Cleared => Some(ServerEvent::ConversationCleared {
                            connection_id: &connection_id,
                            cleared_by: &msg.from,
                        }),
                    };
                    if let Some(event) = event {
                        room.deliver(&other, &event.frame());
                    }
                    msg.caller.done(None, ack::OK);
                }
                Ok(None) => msg.caller.fail(ChatError::NotActive.message()),
                Err(e) => {
                    log::error!("room {}: a notice's check failed: {e}", room.connection_id);
                    msg.caller.fail(ChatError::Failed.message());
                }
            },
            ctx,
        );
    }
}
