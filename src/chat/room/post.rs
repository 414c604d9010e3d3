//! A message posted to its conversation: the room gives it its place (sequence and
//! `createdAt`), hands it to `Persistence`, and once it is committed, in order, delivers
//! `receive_message` to every socket of the receiver and answers the sender `message_sent`
//! (and the ack). A retry of a message saved before is answered with the saved row, and
//! delivered once.

use std::sync::Arc;
use std::time::Instant;

use actix::{Handler, Message};
use entity::messages;
use tokio::sync::OwnedSemaphorePermit;

use super::actor::{ChatError, ChatRoom, Refuse};
use crate::chat::metrics::ChatMetrics;
use crate::chat::metrics::Refusal;
use crate::chat::persistence::{InsertOutcome, WriteOp, WriteResult};
use crate::chat::protocol::message_json::MessageJson;
use crate::chat::protocol::send_message::SendMessage;
use crate::chat::protocol::server::{self, ServerEvent};
use crate::chat::push::{Caller, Mark};
use crate::chat::recovery::{millis, StreamKey};

/// A message for the room, its id made.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Post {
    pub caller: Caller,
    pub sender: Arc<str>,
    pub id: String,
    pub message: SendMessage,
    pub permit: Option<OwnedSemaphorePermit>,
    /// When the socket accepted it.
    pub accepted: Instant,
}

impl Refuse for Post {
    fn refuse(self, error: ChatError, metrics: &ChatMetrics) {
        match error {
            ChatError::NotMember => metrics.refused(Refusal::NotMember),
            ChatError::NotActive => metrics.refused(Refusal::NotActive),
            ChatError::Failed => metrics.failed(),
        }
        self.caller.fail(error.message());
    }
}

impl Handler<Post> for ChatRoom {
    type Result = ();

    fn handle(&mut self, msg: Post, ctx: &mut Self::Context) {
        let Some(msg) = self.unless_loading(msg, ctx) else {
            return;
        };
        self.note_request();
        let Post {
            caller,
            sender,
            id,
            message,
            permit,
            accepted,
        } = msg;
        let receiver = self.other_member(&sender).to_string();
        let created_at = self.next_stamp();
        let SendMessage {
            connection_id,
            content,
            temp_id,
            media,
        } = message;
        let model = messages::Model {
            id,
            connection_id,
            sender_id: sender.to_string(),
            receiver_id: receiver,
            content,
            is_read: false,
            created_at,
            updated_at: created_at,
            media_url: media.url,
            media_type: media.media_type.map(|t| t.as_str().to_string()),
            media_name: media.name,
            media_size: media.size,
            media_thumbnail: media.thumbnail,
        };
        let write = WriteOp::Insert(model.clone());
        self.persist(
            write,
            permit,
            Box::new(move |room, result| saved(room, caller, &temp_id, model, result, accepted)),
            ctx,
        );
    }
}

/// The message's turn has come: deliver it and answer the sender.
fn saved(
    room: &mut ChatRoom,
    caller: Caller,
    temp_id: &str,
    model: messages::Model,
    result: WriteResult,
    accepted: Instant,
) {
    let metrics = room.deps().metrics.clone();
    let row = match result {
        WriteResult::Insert(InsertOutcome::Inserted) => {
            metrics.saved();
            let saved = MessageJson(&model).to_string();
            let mark = mark_of(&model);
            let frame = ServerEvent::ReceiveMessage { saved: &saved }.frame();
            room.deliver_marked(&model.receiver_id, &frame, &mark);
            sent(&caller, temp_id, &saved, mark);
            return metrics.acked(accepted.elapsed());
        }
        // A retry of a message saved before: answered with that row, delivered once.
        WriteResult::Insert(InsertOutcome::Existing(row)) => {
            metrics.duplicate();
            row
        }
        WriteResult::Insert(InsertOutcome::Refused) => {
            metrics.refused(Refusal::NotActive);
            return caller.fail(ChatError::NotActive.message());
        }
        _ => {
            metrics.failed();
            return caller.fail(ChatError::Failed.message());
        }
    };
    let mark = mark_of(&row);
    sent(&caller, temp_id, &MessageJson(&row).to_string(), mark);
    metrics.acked(accepted.elapsed());
}

/// Where `message` stands in its conversation's stream.
fn mark_of(message: &messages::Model) -> Mark {
    Mark {
        conversation: Arc::from(message.connection_id.as_str()),
        at: millis(&message.created_at),
        key: StreamKey::received(&message.id),
    }
}

/// `message_sent` `{tempId, savedMessage}` to the sender, and the same as its ack.
fn sent(caller: &Caller, temp_id: &str, saved: &str, mark: Mark) {
    let body = server::sent(temp_id, saved);
    caller.done_marked(
        ServerEvent::MessageSent { body: &body }.frame(),
        mark,
        &body,
    );
}
