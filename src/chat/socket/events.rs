//! The dispatcher: every event a client sends goes through [`ChatSocket::on_client_event`]
//! once: parsed ([`ClientEvent::parse`]), authorized (the socket is connected as a user; the
//! per-user and per-socket rate limits), handled (turned into its request for the actor that
//! owns what it changes: the conversation's room, the user's shard, or a read), and answered
//! (the actor answers through the request's [`Caller`]; bad arguments and refusals here are
//! answered at once with `error` and the failed ack, or `call:failed` for a call event).

use std::sync::Arc;
use std::time::Instant;

use log::debug;

use super::chat_socket::ChatSocket;
use crate::chat::keys::message_id;
use crate::chat::metrics::{Limited, Refusal};
use crate::chat::protocol::call::{Call, RATE_LIMITED};
use crate::chat::protocol::fetch_messages::Cursor;
use crate::chat::protocol::fetch_messages::{FetchMessages, NEEDS_ACK};
use crate::chat::protocol::message_json::MessageJson;
use crate::chat::protocol::server::{ack, ack_of, error_frames, ServerEvent};
use crate::chat::protocol::{ClientEvent, Invalid};
use crate::chat::push::Caller;
use crate::chat::recovery::millis;
use crate::chat::room::{ChatError, Join, MarkRequest, Notice, Post, Told};
use crate::chat::users::calls::CallRequest;
use crate::chat::users::presence::Heard;
use crate::db::messages::history_page;
use crate::db::retry::retrying;
use crate::socketio::{Event, SocketIo};

/// A socket tells its user's shard at most this often that the user is alive (a
/// `heartbeat`, an Engine.IO pong keep `"lastHeartbeatAt"` fresh, in batches).
pub(crate) const HEARD_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The message of a history read that failed.
const READ_FAILED: &str = "Messages could not be read.";

impl ChatSocket {
    /// An event from the client on the chat's namespace.
    pub(super) fn on_client_event(&mut self, event: Event, io: &mut SocketIo<'_, '_, Self>) {
        let accepted = Instant::now();
        let parsed = ClientEvent::parse(&event.name, &event.args, &self.ctx.limits);
        let parsed = match parsed {
            None => {
                return debug!(
                    "session {}: unknown event {:?} ignored",
                    io.engine_sid(),
                    event.name
                )
            }
            Some(Err(invalid)) => return self.invalid(invalid, event.ack, io),
            Some(Ok(parsed)) => parsed,
        };
        let Some((user, caller)) = self.caller(event.ack, io) else {
            return;
        };
        match parsed {
            ClientEvent::JoinChat(join) => {
                let connection_id: Arc<str> = join.connection_id.into();
                self.submit(connection_id, false, move |_| Box::new(Join { caller }), io);
            }
            ClientEvent::SendMessage(message) => {
                let sender = user.clone();
                let go = move |me: &mut ChatSocket, io: &mut SocketIo<'_, '_, ChatSocket>| {
                    // The message gets its id now, once: a retry makes the same id.
                    let id = message_id(&me.ctx.message_ids, &user, &message);
                    let connection_id: Arc<str> = message.connection_id.as_str().into();
                    let post = move |permit| -> Box<dyn crate::chat::room::RoomRequest> {
                        Box::new(Post {
                            caller,
                            sender: user,
                            id,
                            message,
                            permit,
                            accepted,
                        })
                    };
                    me.submit(connection_id, true, post, io);
                };
                self.rate_limited(&sender, event.ack, true, Box::new(go), io);
            }
            ClientEvent::MarkMessageRead(read) => {
                let connection_id: Arc<str> = read.connection_id.into();
                let message_id = read.message_id;
                let request = move |permit| -> Box<dyn crate::chat::room::RoomRequest> {
                    Box::new(MarkRequest {
                        caller,
                        reader: user,
                        message_id,
                        permit,
                    })
                };
                self.submit(connection_id, true, request, io);
            }
            ClientEvent::FetchMessages(fetch) => self.fetch_messages(fetch, user, caller, io),
            ClientEvent::DeleteMessages(delete) => {
                let told = Told::Deleted(delete.message_ids);
                self.notice(delete.connection_id, told, user, caller, io);
            }
            ClientEvent::ClearConversation(clear) => {
                self.notice(clear.connection_id, Told::Cleared, user, caller, io);
            }
            ClientEvent::Heartbeat => {
                self.heard();
                if let Some(id) = caller.ack {
                    io.send_framed(ack_of(id, ack::OK));
                }
            }
            ClientEvent::Call(call) => self.call(call, user, caller, io),
        }
    }

    /// Arguments that did not pass their checks: answered at once.
    pub(super) fn invalid(
        &mut self,
        invalid: Invalid,
        ack: Option<u64>,
        io: &mut SocketIo<'_, '_, Self>,
    ) {
        if invalid.message {
            self.ctx.metrics.refused(Refusal::Invalid);
        }
        if invalid.call {
            return answer_now(io, crate::chat::protocol::call::INVALID, ack);
        }
        fail(io, ack, invalid.error.message());
    }

    /// A deletion or clearing notice for the other member of `connection_id`, under the
    /// per-user rate limit of messages.
    pub(super) fn notice(
        &mut self,
        connection_id: String,
        told: Told,
        user: Arc<str>,
        caller: Caller,
        io: &mut SocketIo<'_, '_, Self>,
    ) {
        let ack = caller.ack;
        let connection_id: Arc<str> = connection_id.into();
        let from = user.clone();
        let go = move |me: &mut ChatSocket, io: &mut SocketIo<'_, '_, ChatSocket>| {
            let notice = move |_| -> Box<dyn crate::chat::room::RoomRequest> {
                Box::new(Notice { caller, from, told })
            };
            me.submit(connection_id, false, notice, io)
        };
        self.rate_limited(&user, ack, false, Box::new(go), io);
    }

    /// A page of a conversation's history, read here (members only) and answered as the
    /// acknowledgement `{messages, nextCursor}`.
    pub(super) fn fetch_messages(
        &mut self,
        fetch: FetchMessages,
        user: Arc<str>,
        caller: Caller,
        io: &mut SocketIo<'_, '_, Self>,
    ) {
        if caller.ack.is_none() {
            return fail(io, None, NEEDS_ACK);
        }
        // One of the socket's requests in flight: its answer comes as a `Done`.
        self.begin(io);
        let db = self.ctx.db.clone();
        let retry_for = self.ctx.retry_for;
        let page = async move {
            let before = fetch.before.as_ref().map(|c| (c.at, c.id.as_str()));
            let read = || history_page(&db, &user, &fetch.connection_id, before, fetch.limit);
            match retrying(retry_for, read).await {
                Ok(Some((rows, more))) => {
                    // The next page starts before the oldest message of this one.
                    let next = rows.last().filter(|_| more).map(|m| {
                        Cursor {
                            at: millis(&m.created_at),
                            id: m.id.clone(),
                        }
                        .encode()
                    });
                    let rows: Vec<String> =
                        rows.iter().map(|m| MessageJson(m).to_string()).collect();
                    caller.done(None, &ack::page(&rows, next.as_deref()));
                }
                Ok(None) => caller.fail(ChatError::NotMember.message()),
                Err(e) => {
                    log::error!("fetch_messages: reading failed: {e}");
                    caller.fail(READ_FAILED);
                }
            }
        };
        io.spawn(page, |_, _, ()| {});
    }

    /// A call event: under the socket's `chat.call_rate`, to the sender's user shard.
    pub(super) fn call(
        &mut self,
        call: Call,
        from: Arc<str>,
        caller: Caller,
        io: &mut SocketIo<'_, '_, Self>,
    ) {
        if !self.call_bucket.take(self.ctx.call_rate, Instant::now()) {
            self.ctx.metrics.rate_limited(Limited::Call);
            return answer_now(io, RATE_LIMITED, caller.ack);
        }
        let shard = self.ctx.users.shard(&from).clone();
        self.begin(io);
        shard.do_send(CallRequest { from, caller, call });
    }

    /// The user was heard from (a `heartbeat`, an Engine.IO pong): their shard is told, at
    /// most every [`HEARD_EVERY`].
    pub(super) fn heard(&mut self) {
        let Some((user, _)) = &self.me else {
            return;
        };
        if self.last_heard.is_some_and(|at| at.elapsed() < HEARD_EVERY) {
            return;
        }
        self.last_heard = Some(Instant::now());
        self.ctx.users.shard(user).do_send(Heard(user.clone()));
    }
}

/// `call:failed` with `why`, and the failed ack: the answer to a call event refused here.
fn answer_now(
    io: &mut SocketIo<'_, '_, ChatSocket>,
    why: crate::chat::protocol::call::Failure,
    ack: Option<u64>,
) {
    io.send_framed(ServerEvent::from(why).frame());
    if let Some(id) = ack {
        io.send_framed(ack_of(id, &ack::error(why.reason)));
    }
}

/// An `error` event `{message}`, and an ack `{error}` if one was asked for: the answer to
/// bad arguments, given at once (no request goes anywhere).
pub(super) fn fail(io: &mut SocketIo<'_, '_, ChatSocket>, ack: Option<u64>, message: &str) {
    let (event, ack) = error_frames(message, ack);
    io.send_framed(event);
    if let Some(ack) = ack {
        io.send_framed(ack);
    }
}
