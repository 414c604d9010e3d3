//! The user registry: which sockets each online user has, and fan-out to them.
//!
//! Like the Node server's per-user rooms, a message for a user goes to every socket that
//! user has open, whatever chat each tab has joined (the app filters by `connectionId`).

use std::collections::HashMap;
use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, MessageResult, Recipient};
use log::debug;

use super::ChatPush;

/// A socket of `user_id` came online.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct RegisterSocket {
    pub user_id: String,
    pub sid: Arc<str>,
    pub recipient: Recipient<ChatPush>,
}

/// A socket went away.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct UnregisterSocket {
    pub user_id: String,
    pub sid: Arc<str>,
}

/// Deliver `push` to every socket of `user_id` except `except`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ToUser {
    pub user_id: String,
    pub except: Option<Arc<str>>,
    pub push: ChatPush,
}

/// How many sockets `user_id` has online.
#[derive(Debug, Clone, Message)]
#[rtype(result = "usize")]
pub struct SocketCount(pub String);

/// The user registry actor.
#[derive(Default)]
pub struct UserRegistry {
    users: HashMap<String, HashMap<Arc<str>, Recipient<ChatPush>>>,
}

impl Actor for UserRegistry {
    type Context = Context<Self>;
}

impl Handler<RegisterSocket> for UserRegistry {
    type Result = ();

    fn handle(&mut self, msg: RegisterSocket, _ctx: &mut Self::Context) {
        self.users
            .entry(msg.user_id)
            .or_default()
            .insert(msg.sid, msg.recipient);
    }
}

impl Handler<UnregisterSocket> for UserRegistry {
    type Result = ();

    fn handle(&mut self, msg: UnregisterSocket, _ctx: &mut Self::Context) {
        if let Some(sockets) = self.users.get_mut(&msg.user_id) {
            sockets.remove(&msg.sid);
            if sockets.is_empty() {
                self.users.remove(&msg.user_id);
                debug!("user {} went offline", msg.user_id);
            }
        }
    }
}

impl Handler<ToUser> for UserRegistry {
    type Result = ();

    fn handle(&mut self, msg: ToUser, _ctx: &mut Self::Context) {
        let Some(sockets) = self.users.get(&msg.user_id) else {
            return;
        };
        for (sid, recipient) in sockets {
            if msg.except.as_ref() != Some(sid) {
                recipient.do_send(msg.push.clone());
            }
        }
    }
}

impl Handler<SocketCount> for UserRegistry {
    type Result = MessageResult<SocketCount>;

    fn handle(&mut self, msg: SocketCount, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.users.get(&msg.0).map_or(0, HashMap::len))
    }
}
