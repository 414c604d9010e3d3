//! `heartbeat`: the client says it is alive (the app's hook sends it every 30 seconds).
//!
//! It keeps the user's `"lastHeartbeatAt"` fresh, as Engine.IO pongs do: the socket tells
//! its user shard that the user was heard from (at most every [`HEARD_EVERY`]), and the
//! shard writes `"lastHeartbeatAt"` for every user heard from in one batch every
//! `presence.heartbeat_flush` (`chat::presence`). No answer; an ack, if asked, is `{ok:
//! true}`.

use std::time::{Duration, Instant};

use serde_json::json;

use super::presence::Heard;
use super::push::CHAT_NAMESPACE;
use super::socket::ChatSocket;
use crate::socketio::{Event, SocketIo};

/// A socket tells its user's shard at most this often that the user is alive.
pub const HEARD_EVERY: Duration = Duration::from_secs(5);

impl ChatSocket {
    /// The event from the client.
    pub(super) fn heartbeat(&mut self, event: Event, io: &mut SocketIo<'_, '_, Self>) {
        self.heard();
        if let Some(id) = event.ack {
            io.ack(CHAT_NAMESPACE, id, vec![json!({ "ok": true })]);
        }
    }

    /// The user was heard from (a `heartbeat`, an Engine.IO pong).
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
