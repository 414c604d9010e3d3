//! A socket's CONNECT: its token, its user's socket slot, its registration, and connection
//! state recovery (a pid that stands in for an expired token, the replay).

use std::collections::HashSet;
use std::sync::Arc;

use log::debug;
use serde_json::{json, Value};

use super::chat_socket::ChatSocket;
use super::chat_socket::TOO_MANY_CONNECTIONS;
use super::replay::replay_frame;
use crate::chat::pids::PidState;
use crate::chat::protocol::server::CHAT_NAMESPACE;
use crate::chat::push::ChatPush;
use crate::chat::recovery::{self, millis, Offset, Pid};
use crate::db::retry::retrying;
use crate::socketio::{SocketHandler, SocketIo};

/// A recovery the client asked for: its pid (and the token it came as), its offset, and when
/// Courier last vouched for its stream being live (its signed offset's stamp).
pub(super) struct Attempt {
    pub(super) pid: Pid,
    pub(super) token: String,
    pub(super) offset: Offset,
    pub(super) live: Option<i64>,
}

impl ChatSocket {
    /// The recovery `auth` asks for, if it carries a pid Courier signed and an offset of
    /// that pid's stream (or none).
    pub(super) fn attempt(&self, auth: Option<&Value>) -> Option<Attempt> {
        let auth = auth?;
        let token = auth.get("pid")?.as_str()?;
        let pid = Pid::verify(token, &self.ctx.pid_key)?;
        let max = self.ctx.recovery.max_conversations;
        let (offset, live) = match auth.get("offset") {
            None | Some(Value::Null) => (Offset::start(&pid), None),
            Some(Value::String(text)) => Offset::decode(text, &pid, max, &self.ctx.pid_key)?,
            Some(_) => return None,
        };
        Some(Attempt {
            token: token.to_string(),
            pid,
            offset,
            live,
        })
    }

    /// Connects the authenticated `user`, who has `elsewhere` sockets on the other nodes:
    /// a recovery (`attempt`) or a fresh connection. `Ok(true)`: the CONNECT is answered
    /// later (a recovery reads what was missed first).
    pub(super) fn connect_as(
        &mut self,
        user: Arc<str>,
        attempt: Option<Attempt>,
        expired: bool,
        elsewhere: usize,
        io: &mut SocketIo<'_, '_, Self>,
    ) -> Result<bool, Value> {
        match attempt {
            Some(attempt) => {
                if expired && !self.stands_in(&user, &attempt) {
                    debug!(
                        "session {}: expired token, and the pid's session disconnected too long \
                         ago to recover",
                        io.engine_sid()
                    );
                    self.ctx
                        .refusals
                        .refused(crate::auth::INVALID_TOKEN, io.client().address);
                    return Err(json!({ "message": crate::auth::INVALID_TOKEN }));
                }
                io.defer_connect();
                self.replay(user, attempt, elsewhere, io);
                Ok(true)
            }
            None => {
                self.register(user.clone(), elsewhere, io)?;
                self.fresh_stream(&user, millis(&entity::now_utc_ms()), io);
                Ok(false)
            }
        }
    }

    /// Takes one of `user`'s socket slots (`elsewhere`: their sockets on the other nodes)
    /// and registers the socket with the user registry.
    pub(super) fn register(
        &mut self,
        user: Arc<str>,
        elsewhere: usize,
        io: &mut SocketIo<'_, '_, Self>,
    ) -> Result<(), Value> {
        if self.slot.as_ref() != Some(&user) {
            // A session that connected as another user before gives that user's slot back.
            if let Some(previous) = self.slot.take() {
                self.ctx.socket_slots.give_back(&previous);
            }
            if !self.ctx.socket_slots.take(&user, elsewhere) {
                self.ctx
                    .refusals
                    .refused("too many sockets for one user", io.client().address);
                return Err(json!({ "message": TOO_MANY_CONNECTIONS }));
            }
            self.slot = Some(user.clone());
        }
        let sid: Arc<str> = Arc::from(io.engine_sid());
        if let Some(index) = self.ctx.users.index() {
            // In a cluster the other servers reach the socket by its Socket.IO id and its
            // rooms, from now on (a recovery's replay holds what they send meanwhile).
            let id: Arc<str> = Arc::from(io.reserve_socket_id(CHAT_NAMESPACE));
            index.add(&id, &user, io.recipient());
            self.indexed = Some(id);
        }
        self.ctx
            .users
            .register(&user, &sid, io.recipient(), io.client().clone());
        self.me = Some((user, sid));
        Ok(())
    }

    /// A new stream for `user` starting now: its pid goes into the CONNECT answer.
    pub(super) fn fresh_stream(&mut self, user: &str, base: i64, io: &mut SocketIo<'_, '_, Self>) {
        if !self.ctx.recovery.enabled {
            return;
        }
        let pid = Pid::fresh(user, base);
        io.set_pid(pid.sign(&self.ctx.pid_key));
        self.carry(&pid.nonce, false, io);
        self.stream.offset = Some(Offset::start(&pid));
        self.stream.stamped = base;
        self.link_changed(false);
    }

    /// This socket carries the stream `nonce` from now on; another socket that still did
    /// (the same client's old transport, not yet timed out) is closed: one pid never has two
    /// live sockets.
    /// `recovering`: the pid is a client's (on another node a socket may still carry it).
    pub(super) fn carry(&mut self, nonce: &str, recovering: bool, io: &mut SocketIo<'_, '_, Self>) {
        let Some((user, sid)) = &self.me else {
            return;
        };
        let pids = self.ctx.users.pids();
        if let Some(previous) = self.stream.carried.replace(Arc::from(nonce)) {
            pids.disconnected(&previous, sid);
        }
        if let Some(old) = pids.carry(nonce, user, sid, io.recipient()) {
            debug!(
                "session {}: took its pid's stream over from a live session",
                io.engine_sid()
            );
            old.do_send(ChatPush::TakenOver);
        }
        if let Some(remote) = self.ctx.users.remote().filter(|_| recovering) {
            remote.pid_taken(nonce);
        }
    }

    /// Whether `attempt`'s pid stands in for an expired token of `user`: while its session
    /// is live (a network switch), and within `recovery.max_disconnection` after that
    /// session disconnected, as this node recorded it, or else (after a restart, on another
    /// node) as the stamp of the offset Courier last gave the client vouches (at worst the
    /// pid's start), never the user's activity on other sockets.
    pub(super) fn stands_in(&self, user: &str, attempt: &Attempt) -> bool {
        let max = self.ctx.recovery.max_disconnection;
        match self.ctx.users.pids().state(&attempt.pid.nonce, user) {
            PidState::Live => true,
            PidState::Gone(ago) => ago <= max,
            PidState::Unknown => {
                let vouched = attempt
                    .live
                    .unwrap_or(attempt.pid.base)
                    .max(attempt.pid.base);
                let now = millis(&entity::now_utc_ms());
                now.saturating_sub(vouched) <= max.as_millis() as i64
            }
        }
    }

    /// Registers the socket (live events are held from now on), then reads the replay.
    pub(super) fn replay(
        &mut self,
        user: Arc<str>,
        attempt: Attempt,
        elsewhere: usize,
        io: &mut SocketIo<'_, '_, Self>,
    ) {
        if let Err(refusal) = self.register(user.clone(), elsewhere, io) {
            return io.refuse_connect(CHAT_NAMESPACE, refusal);
        }
        let registered = millis(&entity::now_utc_ms());
        self.carry(&attempt.pid.nonce, true, io);
        self.stream.replaying = Some(Vec::new());
        let users = self.ctx.users.clone();
        let db = self.ctx.db.clone();
        let retry_for = self.ctx.retry_for;
        let max = self.ctx.recovery.max_replay;
        let offset = attempt.offset.clone();
        let read = async move {
            // Once the registry has the socket, every room that completes a write from now
            // on delivers to it: what the query does not see is held, not missed.
            users.socket_count(&user).await;
            retrying(retry_for, || recovery::replay(&db, &user, &offset, max)).await
        };
        io.spawn(read, move |me, io, read| {
            let held = me.stream.replaying.take().unwrap_or_default();
            let Some((user, _)) = me.me.clone() else {
                return;
            };
            // All at once, past the session's buffer limit: the client is not slow for it
            // (one that was cut off for being slow missed at least that buffer).
            let replayed = read.as_ref().map_or(0, |r| r.as_ref().map_or(0, Vec::len));
            io.allow_burst(replayed + held.len() + 2);
            match read {
                Ok(Some(events)) => {
                    io.set_pid(attempt.token);
                    me.stream.offset = Some(attempt.offset);
                    me.stream.stamped = attempt.live.unwrap_or(attempt.pid.base);
                    me.link_changed(false);
                    io.accept_connect(CHAT_NAMESPACE);
                    debug!(
                        "session {}: recovered, {} events replayed",
                        io.engine_sid(),
                        events.len()
                    );
                    let mut replayed = HashSet::with_capacity(events.len());
                    for replay in events {
                        replayed.insert(replay.key());
                        let (frame, mark) = replay_frame(replay);
                        me.send_marked(frame, &mark, io);
                    }
                    // The live events of replayed writes are dropped, now (held) and later
                    // (committed before the query, delivered after it).
                    me.keep_replayed(replayed, io);
                    for push in held {
                        me.on_push(push, io);
                    }
                }
                other => {
                    let reason = match other {
                        Ok(_) => {
                            debug!(
                                "session {}: more than {max} missed events, not recovered",
                                io.engine_sid()
                            );
                            "missed events"
                        }
                        Err(e) => {
                            log::warn!(
                                "session {}: the replay could not be read ({e}); not recovered",
                                io.engine_sid()
                            );
                            "replay failed"
                        }
                    };
                    // Not recovered: the pid's stream ends here, a new one starts, and the
                    // client is told before anything else.
                    me.fresh_stream(&user, registered, io);
                    io.accept_connect(CHAT_NAMESPACE);
                    me.tell_not_recovered(reason, io);
                    for push in held {
                        me.on_push(push, io);
                    }
                }
            }
        });
    }
}
