//! What a socket does with its recovery stream ([`super::stream::Stream`]): every
//! conversation event sent with the socket's offset, the offset refreshed (`courier:offset`),
//! the catch-up from the database after the link to the other nodes was down (or
//! `courier:resync` when there is too much), and the replay's frames.

use std::collections::HashSet;
use std::sync::Arc;

use log::debug;

use super::chat_socket::ChatSocket;
use super::stream::{CatchUp, REPLAYED_KEPT};
use crate::chat::protocol::message_json::MessageJson;
use crate::chat::protocol::server::{self, ServerEvent};
use crate::chat::protocol::Frame;
use crate::chat::push::Mark;
use crate::chat::recovery::{self, millis, Replayed, StreamKey};
use crate::db::retry::retrying;
use crate::socketio::{SocketHandler, SocketIo};

impl ChatSocket {
    /// The link to the other nodes went down (`up == false`; also called when a stream
    /// starts, and then only acts if the link is down now) or came back.
    pub(super) fn link_changed(&mut self, up: bool) -> Option<Box<CatchUp>> {
        if up {
            return self.stream.catch_up.take();
        }
        if self.stream.catch_up.is_none() && self.ctx.users.remote_link_down() {
            if let Some(stream) = self.stream.offset.as_ref().filter(|s| !s.overflow) {
                self.stream.catch_up = Some(Box::new(CatchUp {
                    from: stream.clone(),
                    delivered: HashSet::new(),
                    overflowed: false,
                }));
            }
        }
        None
    }

    /// Reads from the database what the socket missed since `from` (the link to the other
    /// nodes was down) and sends it, as a recovery does: live events are held meanwhile;
    /// what the socket got since, or gets held, is not sent twice.
    pub(super) fn catch_up(&mut self, from: CatchUp, io: &mut SocketIo<'_, '_, Self>) {
        let Some((user, _)) = self.me.clone() else {
            return;
        };
        if from.overflowed {
            return self.resync(io);
        }
        self.stream.replaying = Some(Vec::new());
        let db = self.ctx.db.clone();
        let retry_for = self.ctx.retry_for;
        let max = self.ctx.recovery.max_replay;
        let CatchUp {
            from: offset,
            delivered,
            ..
        } = from;
        let read =
            async move { retrying(retry_for, || recovery::replay(&db, &user, &offset, max)).await };
        io.spawn(read, move |me, io, read| {
            let held = me.stream.replaying.take().unwrap_or_default();
            // All at once, past the session's buffer limit.
            let replayed = read.as_ref().map_or(0, |r| r.as_ref().map_or(0, Vec::len));
            io.allow_burst(replayed + held.len() + 1);
            let caught_up = match read {
                Ok(Some(events)) => {
                    let mut replayed = me
                        .stream
                        .replayed
                        .take()
                        .map(|(r, _)| r)
                        .unwrap_or_default();
                    let mut sent = 0;
                    for replay in events {
                        let key = replay.key();
                        if delivered.contains(&key) || !replayed.insert(key) {
                            continue;
                        }
                        let (frame, mark) = replay_frame(replay);
                        me.send_marked(frame, &mark, io);
                        sent += 1;
                    }
                    debug!(
                        "session {}: caught up after the link to the other nodes came back, \
                         {sent} events sent",
                        io.engine_sid()
                    );
                    me.keep_replayed(replayed, io);
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    log::warn!(
                        "session {}: the catch-up could not be read ({e})",
                        io.engine_sid()
                    );
                    false
                }
            };
            for push in held {
                me.on_push(push, io);
            }
            if !caught_up {
                me.resync(io);
            }
        });
    }

    /// Remembers what a replay (or a catch-up) sent for [`REPLAYED_KEPT`], so that their
    /// live copies are dropped: now (held) and later (committed before its read, delivered
    /// after it).
    pub(super) fn keep_replayed(
        &mut self,
        replayed: HashSet<StreamKey>,
        io: &mut SocketIo<'_, '_, Self>,
    ) {
        if replayed.is_empty() {
            return;
        }
        let until = std::time::Instant::now() + REPLAYED_KEPT;
        self.stream.replayed = Some((replayed, until));
        io.spawn(tokio::time::sleep(REPLAYED_KEPT), |me, _, ()| {
            // Unless a later replay kept them longer.
            if me
                .stream
                .replayed
                .as_ref()
                .is_some_and(|(_, until)| *until <= std::time::Instant::now())
            {
                me.stream.replayed = None;
            }
        });
    }

    /// The socket cannot be caught up: its client is told (its offset becomes `"-"`, so it
    /// reconnects fresh, `socket.recovered` false, and should refetch) and the transport is
    /// closed.
    pub(super) fn resync(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        log::info!(
            "session {}: too much missed from other nodes to catch up; closing it so that its \
             client reconnects and refetches",
            io.engine_sid()
        );
        if let Some(stream) = &mut self.stream.offset {
            stream.overflow = true;
            stream.conversations.clear();
        }
        io.send_framed(
            ServerEvent::Resync {
                reason: "missed events",
                offset: "-",
            }
            .frame(),
        );
        io.close();
    }

    /// A client that came back was not recovered (`reason`: it missed more than
    /// `recovery.max_replay`, or the replay could not be read) and its new stream has just
    /// started: it is told (`courier:resync` with its new offset), before any live event, so
    /// that it refetches. Its transport stays.
    pub(super) fn tell_not_recovered(&mut self, reason: &str, io: &mut SocketIo<'_, '_, Self>) {
        let offset = self
            .stream
            .offset
            .as_ref()
            .filter(|s| !s.overflow)
            .map(|s| s.encode(&self.ctx.pid_key, self.stream.stamped));
        io.send_framed(
            ServerEvent::Resync {
                reason,
                offset: offset.as_deref().unwrap_or("-"),
            }
            .frame(),
        );
    }

    /// The server is shutting down and what the client asked for is done: its offset, stamped
    /// now, vouches for its stream until this moment (after the restart its pid stands in for
    /// an expired token for `recovery.max_disconnection` from here), then the transport
    /// closes.
    pub(super) fn close_drained(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        self.send_offset(io);
        io.close();
    }

    /// Sends the client its offset, stamped now (`courier:offset`), if it has a stream.
    pub(super) fn send_offset(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        let Some(stream) = self.stream.offset.as_ref().filter(|s| !s.overflow) else {
            return;
        };
        if self.me.is_none() {
            return;
        }
        let now = millis(&entity::now_utc_ms());
        self.stream.stamped = now;
        let offset = stream.encode(&self.ctx.pid_key, now);
        io.send_framed(ServerEvent::Offset { offset: &offset }.frame());
    }

    /// Sends an event of a conversation's stream with the socket's offset after it.
    pub(super) fn send_marked(
        &mut self,
        frame: Frame,
        mark: &Mark,
        io: &mut SocketIo<'_, '_, Self>,
    ) {
        if let Some(catch_up) = &mut self.stream.catch_up {
            if catch_up.delivered.len() >= self.ctx.recovery.max_replay {
                catch_up.overflowed = true;
            } else if !catch_up.overflowed {
                catch_up.delivered.insert(mark.key.clone());
            }
        }
        match &mut self.stream.offset {
            Some(stream) => {
                stream.advance(
                    &mark.conversation,
                    mark.at,
                    self.ctx.recovery.max_conversations,
                );
                let now = millis(&entity::now_utc_ms());
                self.stream.stamped = now;
                io.send_framed(server::with_offset(
                    &frame,
                    &stream.encode(&self.ctx.pid_key, now),
                ));
            }
            None => io.send_framed(frame),
        }
    }
}

/// The frame of a replayed event and where it stands.
pub(super) fn replay_frame(replay: Replayed) -> (Frame, Mark) {
    let mark = Mark {
        conversation: Arc::from(match &replay {
            Replayed::Received(m) | Replayed::Read(m) => m.connection_id.as_str(),
        }),
        at: replay.at(),
        key: replay.key(),
    };
    let frame = match replay {
        Replayed::Received(m) => {
            let saved = MessageJson(&m).to_string();
            ServerEvent::ReceiveMessage { saved: &saved }.frame()
        }
        Replayed::Read(m) => {
            let notice = server::read_notice(&m.id, &m.connection_id, &m.receiver_id);
            ServerEvent::MessageRead { notice: &notice }.frame()
        }
    };
    (frame, mark)
}
