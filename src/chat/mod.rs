//! The chat application: what one authenticated browser socket can do.
//!
//! [`ChatSocket`] is the [`SocketHandler`] of every connection to Courier's `/socket.io/`
//! endpoint. It accepts CONNECTs to `/` carrying a valid `auth.token` (other namespaces are
//! refused, as the Node server does) and serves the Node server's events:
//!
//! - `join_chat(connectionId)`: joins the conversation's room after the connection checks;
//! - `send_message({connectionId, content, tempId, media…})`: saves the message through the
//!   room (`message_sent` and the ack after the commit; `receive_message` to the others);
//! - `mark_message_read({messageId, connectionId})`: only the receiver may; `message_read`
//!   goes to the sender's sockets.
//!
//! Bad arguments get an `error` event `{message}` and, when an acknowledgement was asked
//! for, an ack `{error}`; the socket stays up. A socket's messages are saved one after
//! another, in the order it sent them.

pub mod message_json;
pub mod payload;
pub mod persistence;
pub mod room;
pub mod sql;
pub mod users;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use actix::{Addr, MailboxError, Message, Recipient};
use bytestring::ByteString;
use entity::messages;
use log::debug;
use serde_json::{json, Value};

use self::persistence::{MarkRead, PersistError};
use self::room::{ChatError, ChatRoom, GetRoom, Join, Leave, PostMessage, RoomRegistry};
use self::users::{RegisterSocket, ToUser, UnregisterSocket};
use crate::auth::Authenticator;
use crate::socketio::packet::event_frame;
use crate::socketio::{Event, SocketHandler, SocketIo};
use message_json::message_json;

/// The only namespace the chat serves.
pub const CHAT_NAMESPACE: &str = "/";

/// The `error` event's message when a mark-read is refused.
pub const CANNOT_MARK_READ: &str = "You cannot mark this message as read.";
/// The `error` event's message when a mark-read fails in the database.
pub const MARK_READ_FAILED: &str = "Failed to mark message as read.";
/// The `error` event's message when a socket has too many messages waiting to be saved.
pub const TOO_MANY_PENDING: &str = "Too many messages waiting to be sent.";

/// What every chat socket shares.
#[derive(Clone)]
pub struct ChatContext {
    /// Verifies handshake tokens.
    pub auth: Arc<Authenticator>,
    /// Rooms by connection id.
    pub rooms: Addr<RoomRegistry>,
    /// Online users' sockets.
    pub users: Recipient<ToUser>,
    /// Socket registration.
    pub register: Recipient<RegisterSocket>,
    /// Socket deregistration.
    pub unregister: Recipient<UnregisterSocket>,
    /// Marks messages read.
    pub mark_read: Recipient<MarkRead>,
    /// Longest accepted message content, in characters.
    pub max_content_chars: usize,
    /// Most `send_message`s a socket may have waiting to be saved.
    pub max_pending_sends: usize,
}

/// A message for a chat socket from another actor: an event on `/`, already encoded as a
/// complete Engine.IO frame (`42[…]`), so that a fan-out encodes it once for every socket.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ChatPush(pub ByteString);

impl ChatPush {
    /// `event` with one argument on `/`.
    pub fn event(event: &str, payload: Value) -> Self {
        ChatPush(event_frame(CHAT_NAMESPACE, event, &[&payload.to_string()]).into())
    }
}

struct PendingSend {
    message: payload::SendMessage,
    ack: Option<u64>,
}

/// One browser socket of the chat.
pub struct ChatSocket {
    ctx: ChatContext,
    user_id: Option<String>,
    sid: Option<Arc<str>>,
    /// Rooms this socket talked to (joined or sent to).
    rooms: HashMap<String, Addr<ChatRoom>>,
    /// Rooms this socket joined.
    joined: Vec<String>,
    pending: VecDeque<PendingSend>,
    sending: bool,
}

/// At most this many room addresses are cached per socket.
const ROOM_CACHE: usize = 64;

impl ChatSocket {
    /// A socket that has not authenticated yet.
    pub fn new(ctx: ChatContext) -> Self {
        ChatSocket {
            ctx,
            user_id: None,
            sid: None,
            rooms: HashMap::new(),
            joined: Vec::new(),
            pending: VecDeque::new(),
            sending: false,
        }
    }

    fn room(&mut self, connection_id: &str) -> Option<Addr<ChatRoom>> {
        self.rooms
            .get(connection_id)
            .filter(|addr| addr.connected())
            .cloned()
    }

    fn remember_room(&mut self, connection_id: String, addr: Addr<ChatRoom>) {
        if self.rooms.len() >= ROOM_CACHE && !self.rooms.contains_key(&connection_id) {
            let joined = &self.joined;
            self.rooms.retain(|id, _| joined.contains(id));
        }
        self.rooms.insert(connection_id, addr);
    }

    fn join_chat(&mut self, event: Event, io: &mut SocketIo<'_, '_, Self>) {
        let (Some(user_id), Some(sid)) = (self.user_id.clone(), self.sid.clone()) else {
            return;
        };
        let request = match payload::join_chat(&event.args) {
            Ok(request) => request,
            Err(e) => return fail(io, event.ack, e.message()),
        };
        let connection_id = request.connection_id;
        let join_sid = sid.clone();
        let join = Join {
            user_id,
            sid,
            recipient: io.recipient(),
        };
        let cached = self.room(&connection_id);
        let rooms = self.ctx.rooms.clone();
        let id = connection_id.clone();
        let fut = async move { call_room(cached, &rooms, &id, join).await };
        io.spawn(fut, move |me, io, (result, addr)| {
            if let Some(addr) = addr {
                me.remember_room(connection_id.clone(), addr);
            }
            match result {
                Ok(()) if me.sid.is_none() => {
                    // The socket left the namespace while the join was on its way.
                    if let Some(room) = me.rooms.get(&connection_id) {
                        room.do_send(Leave { sid: join_sid });
                    }
                }
                Ok(()) => {
                    if !me.joined.contains(&connection_id) {
                        me.joined.push(connection_id.clone());
                    }
                    if let Some(id) = event.ack {
                        io.ack(
                            CHAT_NAMESPACE,
                            id,
                            vec![json!({ "ok": true, "connectionId": connection_id })],
                        );
                    }
                }
                Err(e) => fail(io, event.ack, e.message()),
            }
        });
    }

    fn send_message(&mut self, event: Event, io: &mut SocketIo<'_, '_, Self>) {
        let message = match payload::send_message(&event.args, self.ctx.max_content_chars) {
            Ok(message) => message,
            Err(e) => return fail(io, event.ack, e.message()),
        };
        if self.pending.len() >= self.ctx.max_pending_sends {
            return fail(io, event.ack, TOO_MANY_PENDING);
        }
        self.pending.push_back(PendingSend {
            message,
            ack: event.ack,
        });
        self.send_next(io);
    }

    /// Saves the next queued message unless one is being saved.
    fn send_next(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        if self.sending {
            return;
        }
        let (Some(user_id), Some(sid)) = (self.user_id.clone(), self.sid.clone()) else {
            self.pending.clear();
            return;
        };
        let Some(PendingSend { message, ack }) = self.pending.pop_front() else {
            return;
        };
        self.sending = true;
        let connection_id = message.connection_id.clone();
        let temp_id = message.temp_id.clone();
        let post = PostMessage {
            user_id,
            sid,
            message,
        };
        let cached = self.room(&connection_id);
        let rooms = self.ctx.rooms.clone();
        let id = connection_id.clone();
        let fut = async move { call_room(cached, &rooms, &id, post).await };
        io.spawn(fut, move |me, io, (result, addr)| {
            me.sending = false;
            if let Some(addr) = addr {
                me.remember_room(connection_id, addr);
            }
            // A socket that left the namespace meanwhile is not answered there.
            if me.sid.is_some() {
                match result {
                    Ok(saved) => sent(io, ack, temp_id, &saved),
                    Err(e) => fail(io, ack, e.message()),
                }
            }
            me.send_next(io);
        });
    }

    fn mark_message_read(&mut self, event: Event, io: &mut SocketIo<'_, '_, Self>) {
        let Some(reader) = self.user_id.clone() else {
            return;
        };
        let request = match payload::mark_message_read(&event.args) {
            Ok(request) => request,
            Err(e) => return fail(io, event.ack, e.message()),
        };
        let mark = MarkRead {
            message_id: request.message_id.clone(),
            connection_id: request.connection_id.clone(),
            reader: reader.clone(),
            now: entity::now_utc_ms(),
        };
        let fut = self.ctx.mark_read.send(mark);
        io.spawn(fut, move |me, io, result| match result {
            Ok(Ok(Some(sender))) => {
                let notice = json!({
                    "messageId": request.message_id,
                    "connectionId": request.connection_id,
                    "readBy": reader,
                });
                me.ctx.users.do_send(ToUser {
                    user_id: sender,
                    except: None,
                    push: ChatPush::event("message_read", notice.clone()),
                });
                if let Some(id) = event.ack {
                    io.ack(CHAT_NAMESPACE, id, vec![notice]);
                }
            }
            Ok(Ok(None)) => fail(io, event.ack, CANNOT_MARK_READ),
            Ok(Err(PersistError::Database(_) | PersistError::Unavailable)) | Err(_) => {
                fail(io, event.ack, MARK_READ_FAILED)
            }
        });
    }
}

/// Sends `msg` to the room of `connection_id` (the cached address first; if that room has
/// stopped, a fresh one from the registry). Returns the reply and the address used.
async fn call_room<M, T>(
    cached: Option<Addr<ChatRoom>>,
    rooms: &Addr<RoomRegistry>,
    connection_id: &str,
    msg: M,
) -> (Result<T, ChatError>, Option<Addr<ChatRoom>>)
where
    M: Message<Result = Result<T, ChatError>> + Clone + Send + 'static,
    T: Send + 'static,
    ChatRoom: actix::Handler<M>,
{
    let mut addr = cached;
    let mut dead = None;
    for _ in 0..3 {
        let room = match addr.take() {
            Some(room) => room,
            None => {
                let get = GetRoom {
                    connection_id: connection_id.to_string(),
                    dead: dead.take(),
                };
                match rooms.send(get).await {
                    Ok(room) => room,
                    Err(_) => return (Err(ChatError::SaveFailed), None),
                }
            }
        };
        match room.send(msg.clone()).await {
            Ok(result) => return (result, Some(room)),
            // The room stopped (idle) before taking the message: nothing was done with it,
            // so it is safe to ask the registry for a fresh one instead of that one.
            Err(MailboxError::Closed) => dead = Some(room),
            Err(MailboxError::Timeout) => return (Err(ChatError::SaveFailed), None),
        }
    }
    (Err(ChatError::SaveFailed), None)
}

/// `message_sent` to the sender, and the ack if one was asked for.
fn sent(
    io: &mut SocketIo<'_, '_, ChatSocket>,
    ack: Option<u64>,
    temp_id: String,
    saved: &messages::Model,
) {
    let body = json!({ "tempId": temp_id, "savedMessage": message_json(saved) });
    io.emit(CHAT_NAMESPACE, "message_sent", vec![body.clone()]);
    if let Some(id) = ack {
        io.ack(CHAT_NAMESPACE, id, vec![body]);
    }
}

/// An `error` event `{message}`, and an ack `{error}` if one was asked for.
fn fail(io: &mut SocketIo<'_, '_, ChatSocket>, ack: Option<u64>, message: &str) {
    io.emit(CHAT_NAMESPACE, "error", vec![json!({ "message": message })]);
    if let Some(id) = ack {
        io.ack(CHAT_NAMESPACE, id, vec![json!({ "error": message })]);
    }
}

impl SocketHandler for ChatSocket {
    type Push = ChatPush;

    fn on_connect(
        &mut self,
        nsp: &str,
        auth: Option<&Value>,
        io: &mut SocketIo<'_, '_, Self>,
    ) -> Result<(), Value> {
        if nsp != CHAT_NAMESPACE {
            return Err(json!({ "message": "Invalid namespace" }));
        }
        match self.ctx.auth.authenticate(auth) {
            Ok(user_id) => {
                debug!("session {}: authenticated as {user_id}", io.engine_sid());
                let sid: Arc<str> = Arc::from(io.engine_sid());
                self.ctx.register.do_send(RegisterSocket {
                    user_id: user_id.clone(),
                    sid: sid.clone(),
                    recipient: io.recipient(),
                });
                self.user_id = Some(user_id);
                self.sid = Some(sid);
                Ok(())
            }
            Err(e) => {
                debug!("session {}: authentication refused: {e:?}", io.engine_sid());
                Err(json!({ "message": e.client_message() }))
            }
        }
    }

    fn on_event(&mut self, nsp: &str, event: Event, io: &mut SocketIo<'_, '_, Self>) {
        match event.name.as_str() {
            "join_chat" => self.join_chat(event, io),
            "send_message" => self.send_message(event, io),
            "mark_message_read" => self.mark_message_read(event, io),
            other => debug!(
                "session {}: unknown event {other:?} on {nsp} ignored",
                io.engine_sid()
            ),
        }
    }

    fn on_push(&mut self, push: ChatPush, io: &mut SocketIo<'_, '_, Self>) {
        io.send_framed(push.0);
    }

    fn on_disconnect(&mut self, _nsp: &str, _reason: &str) {
        if let (Some(user_id), Some(sid)) = (self.user_id.take(), self.sid.take()) {
            self.ctx.unregister.do_send(UnregisterSocket {
                user_id,
                sid: sid.clone(),
            });
            for connection_id in self.joined.drain(..) {
                if let Some(room) = self.rooms.get(&connection_id) {
                    room.do_send(Leave { sid: sid.clone() });
                }
            }
        }
        self.pending.clear();
    }
}
