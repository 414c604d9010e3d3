//! The chat application: what one authenticated browser socket can do.
//!
//! [`ChatSocket`] is the [`SocketHandler`] of every connection to Courier's `/socket.io/`
//! endpoint. It accepts CONNECTs to `/` carrying a valid `auth.token` and refuses every
//! other namespace, as the Node socket server does.

use std::sync::Arc;

use actix::Message;
use log::debug;
use serde_json::{json, Value};

use super::socket::{Event, SocketHandler, SocketIo};
use crate::auth::Authenticator;

/// The only namespace the chat serves.
pub const CHAT_NAMESPACE: &str = "/";

/// What every chat socket shares.
#[derive(Debug, Clone)]
pub struct ChatContext {
    /// Verifies handshake tokens.
    pub auth: Arc<Authenticator>,
}

/// A message for a chat socket from another actor.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum ChatPush {
    /// Emit `event` with one argument.
    Emit { event: &'static str, payload: Value },
}

/// One browser socket of the chat.
pub struct ChatSocket {
    ctx: ChatContext,
    user_id: Option<String>,
}

impl ChatSocket {
    /// A socket that has not authenticated yet.
    pub fn new(ctx: ChatContext) -> Self {
        ChatSocket { ctx, user_id: None }
    }

    /// The authenticated user, once connected.
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
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
                self.user_id = Some(user_id);
                Ok(())
            }
            Err(e) => {
                debug!("session {}: authentication refused: {e:?}", io.engine_sid());
                Err(json!({ "message": e.client_message() }))
            }
        }
    }

    fn on_event(&mut self, nsp: &str, event: Event, io: &mut SocketIo<'_, '_, Self>) {
        debug!(
            "session {}: unknown event {:?} on {nsp} ignored",
            io.engine_sid(),
            event.name
        );
    }

    fn on_push(&mut self, push: ChatPush, io: &mut SocketIo<'_, '_, Self>) {
        match push {
            ChatPush::Emit { event, payload } => io.emit(CHAT_NAMESPACE, event, vec![payload]),
        }
    }

    fn on_disconnect(&mut self, _nsp: &str, _reason: &str) {
        self.user_id = None;
    }
}
