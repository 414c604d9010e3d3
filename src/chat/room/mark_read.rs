//! A message marked read by its receiver: the room gives the receipt its place (its
//! `updatedAt`), hands it to `Persistence`, and once committed, in order, tells the sender's
//! sockets `message_read` and answers the reader.

use std::sync::Arc;

use actix::{Handler, Message};
use tokio::sync::OwnedSemaphorePermit;

use super::actor::{ChatError, ChatRoom, Refuse};
use crate::chat::metrics::ChatMetrics;
use crate::chat::persistence::{MarkOutcome, WriteOp, WriteResult};
use crate::chat::protocol::mark_read::{CANNOT_MARK_READ, MARK_READ_FAILED};
use crate::chat::protocol::server::{self, ServerEvent};
use crate::chat::push::{Caller, Mark};
use crate::chat::recovery::{millis, StreamKey};
use crate::db::messages::MarkReadRow;

/// A mark-read for the room.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct MarkRequest {
    pub caller: Caller,
    pub reader: Arc<str>,
    pub message_id: String,
    pub permit: Option<OwnedSemaphorePermit>,
}

impl Refuse for MarkRequest {
    fn refuse(self, error: ChatError, _metrics: &ChatMetrics) {
        self.caller.fail(match error {
            ChatError::Failed => MARK_READ_FAILED,
            ChatError::NotActive | ChatError::NotMember => CANNOT_MARK_READ,
        });
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
        let notice = server::read_notice(&row.message_id, &row.connection_id, &row.reader);
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
            let frame = ServerEvent::MessageRead { notice }.frame();
            room.deliver_marked(&sender, &frame, mark);
            caller.done(None, notice);
        }
        WriteResult::Mark(MarkOutcome::AlreadyRead) => caller.done(None, notice),
        WriteResult::Mark(MarkOutcome::NotAllowed) => caller.fail(CANNOT_MARK_READ),
        WriteResult::Mark(MarkOutcome::NotActive) => caller.fail(ChatError::NotActive.message()),
        _ => caller.fail(MARK_READ_FAILED),
    }
}
