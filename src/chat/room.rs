//! `ChatRoom`: one actor per connection (conversation), started on first use through the
//! [`RoomRegistry`] and stopped when idle.
//!
//! A room caches its connection's two members and status. Non-members are refused at once
//! from the cache; the ACTIVE check is part of the write itself (the app changes a
//! connection's status without telling Courier), and a refused write refreshes the cache.
//! After the commit, the room routes the saved message to the members' sockets through the
//! user registry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message,
    MessageResult, Recipient, ResponseActFuture, WrapFuture,
};
use entity::{connections, messages};
use log::debug;

use super::message_json::message_json;
use super::payload::SendMessage;
use super::persistence::{LoadConnection, PersistError, SaveMessage, SaveOutcome};
use super::sql;
use super::users::ToUser;
use super::ChatPush;
use crate::ids;

/// Why a room refused a request; [`ChatError::message`] is what the client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatError {
    /// The connection does not exist, or is ENDED or BLOCKED.
    NotActive,
    /// The user is not one of the connection's two members.
    NotMember,
    /// The database failed (or Courier is shutting down).
    SaveFailed,
}

impl ChatError {
    /// The client-facing message (the Node server's strings).
    pub fn message(self) -> &'static str {
        match self {
            ChatError::NotActive => "Connection is not active.",
            ChatError::NotMember => "You are not part of this connection.",
            ChatError::SaveFailed => "Message failed to send.",
        }
    }
}

/// A socket joins the conversation (after the connection checks).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), ChatError>")]
pub struct Join {
    pub user_id: String,
    pub sid: Arc<str>,
    pub recipient: Recipient<ChatPush>,
}

/// A socket leaves the conversation.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub sid: Arc<str>,
}

/// Save a message and route it to the members' sockets; replies with the saved row.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<messages::Model, ChatError>")]
pub struct PostMessage {
    pub user_id: String,
    pub sid: Arc<str>,
    pub message: SendMessage,
}

/// How many sockets joined the room (for tests and metrics).
#[derive(Debug, Clone, Message)]
#[rtype(result = "usize")]
pub struct JoinedCount;

/// What rooms need from the rest of the system.
#[derive(Clone)]
pub struct RoomDeps {
    /// Writes.
    pub save: Recipient<SaveMessage>,
    /// Reads.
    pub load: Recipient<LoadConnection>,
    /// Fan-out to users' sockets.
    pub users: Recipient<ToUser>,
    /// A room with no joined sockets and nothing in flight stops after this long.
    pub idle_timeout: Duration,
}

/// One conversation.
pub struct ChatRoom {
    connection_id: String,
    deps: RoomDeps,
    registry: Option<Recipient<RoomStopped>>,
    info: Option<connections::Model>,
    joined: HashMap<Arc<str>, (String, Recipient<ChatPush>)>,
    in_flight: usize,
    last_activity: Instant,
}

impl ChatRoom {
    /// A room for `connection_id`; `registry` is told when it stops.
    pub fn new(
        connection_id: String,
        deps: RoomDeps,
        registry: Option<Recipient<RoomStopped>>,
    ) -> Self {
        ChatRoom {
            connection_id,
            deps,
            registry,
            info: None,
            joined: HashMap::new(),
            in_flight: 0,
            last_activity: Instant::now(),
        }
    }

    fn begin(&mut self) {
        self.in_flight += 1;
        self.last_activity = Instant::now();
    }

    fn end(&mut self, info: Option<connections::Model>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.last_activity = Instant::now();
        if info.is_some() {
            self.info = info;
        }
    }
}

async fn load(
    load: &Recipient<LoadConnection>,
    id: &str,
) -> Result<Option<connections::Model>, ChatError> {
    match load.send(LoadConnection(id.to_string())).await {
        Ok(Ok(info)) => Ok(info),
        Ok(Err(PersistError::Database(e))) => {
            log::error!("loading connection {id} failed: {e}");
            Err(ChatError::SaveFailed)
        }
        _ => Err(ChatError::SaveFailed),
    }
}

/// Checks `user` against a connection: the receiver on success.
fn check(info: Option<&connections::Model>, user: &str) -> Result<String, ChatError> {
    let info = info.ok_or(ChatError::NotActive)?;
    let other = info.other_participant(user).ok_or(ChatError::NotMember)?;
    if other == user {
        // A connection of a user with themself has nobody to talk to.
        return Err(ChatError::NotMember);
    }
    if !sql::is_active(info) {
        return Err(ChatError::NotActive);
    }
    Ok(other.to_string())
}

impl Actor for ChatRoom {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let every = (self.deps.idle_timeout / 2).max(Duration::from_millis(10));
        ctx.run_interval(every, |room, ctx| {
            // A socket that died without saying Leave must not keep the room alive.
            room.joined
                .retain(|_, (_, recipient)| recipient.connected());
            if room.joined.is_empty()
                && room.in_flight == 0
                && room.last_activity.elapsed() >= room.deps.idle_timeout
            {
                debug!("room {} idle, stopping", room.connection_id);
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        if let Some(registry) = &self.registry {
            registry.do_send(RoomStopped {
                connection_id: self.connection_id.clone(),
                addr: ctx.address(),
            });
        }
    }
}

impl Handler<Join> for ChatRoom {
    type Result = ResponseActFuture<Self, Result<(), ChatError>>;

    fn handle(&mut self, msg: Join, _ctx: &mut Self::Context) -> Self::Result {
        self.begin();
        let loader = self.deps.load.clone();
        let id = self.connection_id.clone();
        // Joining always reads the connection afresh: it is rare and must be exact.
        let fut = async move { load(&loader, &id).await };
        Box::pin(fut.into_actor(self).map(move |loaded, room, _ctx| {
            let (result, info) = match loaded {
                Ok(info) => (check(info.as_ref(), &msg.user_id).map(|_| ()), info),
                Err(e) => (Err(e), None),
            };
            room.end(info);
            if result.is_ok() {
                room.joined.insert(msg.sid, (msg.user_id, msg.recipient));
            }
            result
        }))
    }
}

impl Handler<Leave> for ChatRoom {
    type Result = ();

    fn handle(&mut self, msg: Leave, _ctx: &mut Self::Context) {
        self.joined.remove(&msg.sid);
        self.last_activity = Instant::now();
    }
}

impl Handler<JoinedCount> for ChatRoom {
    type Result = MessageResult<JoinedCount>;

    fn handle(&mut self, _msg: JoinedCount, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.joined.len())
    }
}

impl Handler<PostMessage> for ChatRoom {
    type Result = ResponseActFuture<Self, Result<messages::Model, ChatError>>;

    fn handle(&mut self, msg: PostMessage, _ctx: &mut Self::Context) -> Self::Result {
        self.begin();
        // Non-members are refused from the cache; a cached non-ACTIVE status is re-read
        // (the app may have re-activated the connection).
        let cached = self.info.clone().filter(sql::is_active);
        if let Some(info) = &cached {
            if !info.has_participant(&msg.user_id) {
                self.end(None);
                return Box::pin(actix::fut::ready(Err(ChatError::NotMember)));
            }
        }
        let deps = self.deps.clone();
        let connection_id = self.connection_id.clone();
        let fut = async move {
            let mut fresh = cached.is_none();
            let mut info = match cached {
                Some(info) => Some(info),
                None => match load(&deps.load, &connection_id).await {
                    Ok(info) => info,
                    Err(e) => return (Err(e), None),
                },
            };
            loop {
                let receiver = match check(info.as_ref(), &msg.user_id) {
                    Ok(receiver) => receiver,
                    Err(e) => return (Err(e), info),
                };
                let model = new_message(&connection_id, &msg.user_id, receiver, &msg.message);
                match deps.save.send(SaveMessage(model.clone())).await {
                    Ok(Ok(SaveOutcome::Saved)) => {
                        route(&deps.users, &model, &msg.sid);
                        return (Ok(model), info);
                    }
                    Ok(Ok(SaveOutcome::Refused)) if !fresh => {
                        // The cache was stale: read the connection and decide again.
                        fresh = true;
                        info = match load(&deps.load, &connection_id).await {
                            Ok(info) => info,
                            Err(e) => return (Err(e), None),
                        };
                    }
                    Ok(Ok(SaveOutcome::Refused)) => return (Err(ChatError::NotActive), info),
                    Ok(Err(_)) | Err(_) => return (Err(ChatError::SaveFailed), info),
                }
            }
        };
        Box::pin(fut.into_actor(self).map(|(result, info), room, _ctx| {
            room.end(info);
            result
        }))
    }
}

/// The row to insert for `message`, sent by `sender` to `receiver`.
fn new_message(
    connection_id: &str,
    sender: &str,
    receiver: String,
    message: &SendMessage,
) -> messages::Model {
    let now = entity::now_utc_ms();
    messages::Model {
        id: ids::cuid(),
        connection_id: connection_id.to_string(),
        sender_id: sender.to_string(),
        receiver_id: receiver,
        content: message.content.clone(),
        is_read: false,
        created_at: now,
        updated_at: now,
        media_url: message.media.url.clone(),
        media_type: message.media.media_type.map(|t| t.as_str().to_string()),
        media_name: message.media.name.clone(),
        media_size: message.media.size,
        media_thumbnail: message.media.thumbnail.clone(),
    }
}

/// `receive_message` to every socket of the receiver and to the sender's other sockets.
fn route(users: &Recipient<ToUser>, model: &messages::Model, sender_sid: &Arc<str>) {
    let push = ChatPush::event("receive_message", message_json(model));
    users.do_send(ToUser {
        user_id: model.receiver_id.clone(),
        except: None,
        push: push.clone(),
    });
    users.do_send(ToUser {
        user_id: model.sender_id.clone(),
        except: Some(sender_sid.clone()),
        push,
    });
}

/// A room stopped (idle); the registry forgets it if it is still the one on record.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct RoomStopped {
    pub connection_id: String,
    pub addr: Addr<ChatRoom>,
}

/// The room for a connection, started if needed. `dead` is an address the caller found
/// closed: if the registry still holds it, a new room replaces it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Addr<ChatRoom>")]
pub struct GetRoom {
    pub connection_id: String,
    pub dead: Option<Addr<ChatRoom>>,
}

impl GetRoom {
    /// The room for `connection_id`.
    pub fn new(connection_id: impl Into<String>) -> Self {
        GetRoom {
            connection_id: connection_id.into(),
            dead: None,
        }
    }
}

/// How many rooms are running (for tests and metrics).
#[derive(Debug, Clone, Message)]
#[rtype(result = "usize")]
pub struct RoomCount;

/// Starts rooms on first use and forgets them when they stop.
pub struct RoomRegistry {
    deps: RoomDeps,
    rooms: HashMap<String, Addr<ChatRoom>>,
}

impl RoomRegistry {
    /// A registry whose rooms use `deps`.
    pub fn new(deps: RoomDeps) -> Self {
        RoomRegistry {
            deps,
            rooms: HashMap::new(),
        }
    }
}

impl Actor for RoomRegistry {
    type Context = Context<Self>;
}

impl Handler<GetRoom> for RoomRegistry {
    type Result = MessageResult<GetRoom>;

    fn handle(&mut self, msg: GetRoom, ctx: &mut Self::Context) -> Self::Result {
        if let Some(addr) = self.rooms.get(&msg.connection_id) {
            if addr.connected() && msg.dead.as_ref() != Some(addr) {
                return MessageResult(addr.clone());
            }
        }
        let room = ChatRoom::new(
            msg.connection_id.clone(),
            self.deps.clone(),
            Some(ctx.address().recipient()),
        )
        .start();
        self.rooms.insert(msg.connection_id, room.clone());
        MessageResult(room)
    }
}

impl Handler<RoomStopped> for RoomRegistry {
    type Result = ();

    fn handle(&mut self, msg: RoomStopped, _ctx: &mut Self::Context) {
        if self.rooms.get(&msg.connection_id) == Some(&msg.addr) {
            self.rooms.remove(&msg.connection_id);
        }
    }
}

impl Handler<RoomCount> for RoomRegistry {
    type Result = MessageResult<RoomCount>;

    fn handle(&mut self, _msg: RoomCount, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.rooms.len())
    }
}
