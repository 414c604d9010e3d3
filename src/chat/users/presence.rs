//! Presence: who is online, in the app's tables and to the user's peers.
//!
//! A user is online while they have at least one connected socket. Each user's presence is
//! kept by their user shard (`chat::users`):
//!
//! - **First socket**: `"isOnline" = true`, `"lastSeenAt"` and `"lastHeartbeatAt"` = now,
//!   `"connectionCount"`, a `user_online_status` history row (`deviceInfo` = the
//!   `User-Agent`, `ipAddress` = the client's address), then `user_online_status`
//!   `{userId, isOnline: true, lastSeenAt, timestamp}` to the user's peers.
//! - **Last socket gone**, and none back within `presence.offline_grace`: `"isOnline" =
//!   false`, `"lastSeenAt"` = now, `"connectionCount" = 0`, a history row, then
//!   `user_offline_status` `{userId, isOnline: false, lastSeenAt, timestamp}`.
//! - Sockets that come and go in between update `"connectionCount"` only.
//!
//! Each user's changes are written one after another through `Persistence` and their events
//! go out in that order. Peers (`presence.scope = "peers"`) are the users who share an ACTIVE
//! connection with the user, read with the user's relations; `"all"` tells every socket.
//! `presence.legacy_events` adds the first Node server's `user_online` / `user_offline`
//! `{userId}`.
//!
//! `heartbeat` events and Engine.IO pongs mark a user as heard from; every
//! `presence.heartbeat_flush` the shard writes `"lastHeartbeatAt"` for them in one batch.
//! Shard 0 sweeps at start and every third of `presence.stale_after`: users marked online
//! whose `"lastHeartbeatAt"` is older than that and who have no socket here are set offline
//! (with a history row, without events) — after a crash nobody stays online.
//!
//! In a cluster (`crate::cluster`) presence is the cluster's: before a change is written the
//! shard asks how many sockets the other nodes have ([`Change::in_cluster`]): a user's first
//! socket here while they have one elsewhere is only a new `"connectionCount"` (the total of
//! all nodes), and so is their last socket here going while they have one elsewhere; the
//! node holding their last socket tells. The users of a node that died go
//! offline when its keys expire ([`NodeGone`]), and the sweep spares users with a socket on
//! any node.
//!
//! On a database without the presence columns (an app older than its presence migration),
//! nothing is written (`PresenceOptions::writes` is off) but the events still go out. A user
//! with no row in `users` still connects; the writes for them change nothing.

use std::sync::Arc;
use std::time::Duration;

use actix::{ActorFutureExt, AsyncContext, Context, Handler, Message, WrapFuture};
use chrono::NaiveDateTime;
use log::{debug, error, info};

use super::shard::{cancel, UserShard, Users};
use super::state::{Change, Presence, Relations};
use crate::chat::persistence::{UserOutcome, Write, WriteOp, WriteResult, Written};
use crate::chat::protocol::message_json::iso_millis;
use crate::chat::protocol::{Frame, ServerEvent};
use crate::chat::settings::PresenceScope;
use crate::db::users::{HistoryRow, PresenceRow};
use crate::ids;

/// A node of the cluster died and `user` had sockets there: offline, unless they have a
/// socket here or on another node.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct NodeGone(pub Arc<str>);

impl Handler<NodeGone> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: NodeGone, ctx: &mut Self::Context) {
        let entry = self.users.entry(msg.0.clone()).or_default();
        if entry.sockets.is_empty() && matches!(entry.presence, Presence::Offline) {
            let at = entity::now_utc_ms();
            self.enqueue(&msg.0, Change::Offline { at }, ctx);
        }
        self.forget_if_idle(&msg.0);
    }
}

impl Users {
    /// A node of the cluster died while `user` had sockets there.
    pub(crate) fn node_gone(&self, user: &str) {
        self.shard(user).do_send(NodeGone(user.into()));
    }
}

/// The user was heard from (a `heartbeat` event, an Engine.IO pong).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct Heard(pub Arc<str>);

impl UserShard {
    /// Starts the heartbeat flush (every shard) and the stale sweep (shard 0).
    pub(super) fn start_presence_timers(&mut self, ctx: &mut Context<Self>) {
        let options = self.deps.presence.clone();
        if !options.writes {
            return;
        }
        ctx.run_interval(
            Duration::from_millis(options.settings.heartbeat_flush),
            |shard, ctx| shard.flush_heartbeats(ctx),
        );
        if self.index == 0 {
            self.sweep(ctx);
            let every = Duration::from_millis((options.settings.stale_after / 3).max(1000));
            ctx.run_interval(every, |shard, ctx| shard.sweep(ctx));
        }
    }

    /// A socket of `user` registered.
    pub(super) fn socket_came(&mut self, user: &Arc<str>, ctx: &mut Context<Self>) {
        let Some(entry) = self.users.get_mut(user) else {
            return;
        };
        let count = entry.sockets.len() as i32;
        let at = entity::now_utc_ms();
        let change = match std::mem::replace(&mut entry.presence, Presence::Online) {
            Presence::Offline => Change::Online { count, at },
            Presence::Leaving(timer) => {
                cancel(ctx, timer);
                Change::Count { count, at }
            }
            Presence::Online => Change::Count { count, at },
        };
        self.enqueue(user, change, ctx);
    }

    /// A socket of `user` went.
    pub(super) fn socket_went(&mut self, user: &Arc<str>, ctx: &mut Context<Self>) {
        let grace = Duration::from_millis(self.deps.presence.settings.offline_grace);
        let Some(entry) = self.users.get_mut(user) else {
            return;
        };
        let count = entry.sockets.len() as i32;
        if count > 0 {
            self.enqueue(
                user,
                Change::Count {
                    count,
                    at: entity::now_utc_ms(),
                },
                ctx,
            );
        } else if matches!(entry.presence, Presence::Online) {
            let who = user.clone();
            entry.presence = Presence::Leaving(
                ctx.run_later(grace, move |shard, ctx| shard.grace_over(&who, ctx)),
            );
        }
    }

    fn grace_over(&mut self, user: &Arc<str>, ctx: &mut Context<Self>) {
        let Some(entry) = self.users.get_mut(user) else {
            return;
        };
        if entry.sockets.is_empty() && matches!(entry.presence, Presence::Leaving(_)) {
            entry.presence = Presence::Offline;
            self.enqueue(
                user,
                Change::Offline {
                    at: entity::now_utc_ms(),
                },
                ctx,
            );
        }
    }

    fn enqueue(&mut self, user: &Arc<str>, change: Change, ctx: &mut Context<Self>) {
        if let Some(entry) = self.users.get_mut(user) {
            entry.changes.push_back(change);
            self.next_change(user, ctx);
        }
    }

    /// Writes the user's next change, unless one is being written.
    fn next_change(&mut self, user: &Arc<str>, ctx: &mut Context<Self>) {
        let Some(entry) = self.users.get_mut(user) else {
            return;
        };
        if entry.changing {
            return;
        }
        // A count followed by another change is superseded by it.
        while entry.changes.len() > 1 && matches!(entry.changes.front(), Some(Change::Count { .. }))
        {
            entry.changes.pop_front();
        }
        let Some(change) = entry.changes.pop_front() else {
            return;
        };
        entry.changing = true;
        if let Some(remote) = self.all.as_ref().and_then(Users::remote) {
            // In a cluster the change is the cluster's: ask how many sockets the other
            // nodes have first.
            let who = user.clone();
            let elsewhere = remote.sockets_elsewhere(user);
            ctx.spawn(
                elsewhere
                    .into_actor(self)
                    .map(
                        move |elsewhere, shard, ctx| match change.in_cluster(elsewhere) {
                            Some(change) => shard.settle_change(&who, change, ctx),
                            None => {
                                if let Some(entry) = shard.users.get_mut(&who) {
                                    entry.changing = false;
                                }
                                shard.next_change(&who, ctx);
                                shard.forget_if_idle(&who);
                            }
                        },
                    ),
            );
            return;
        }
        self.settle_change(user, change, ctx);
    }

    /// Writes and tells `change`, with the user's relations when it tells their peers.
    fn settle_change(&mut self, user: &Arc<str>, change: Change, ctx: &mut Context<Self>) {
        let tells = !matches!(change, Change::Count { .. });
        if tells && self.deps.presence.settings.scope == PresenceScope::Peers {
            let then = Box::new(
                move |shard: &mut UserShard,
                      user: &Arc<str>,
                      relations: Option<Arc<Relations>>,
                      ctx: &mut Context<UserShard>| {
                    shard.write_change(user, change, relations, ctx)
                },
            );
            self.with_relations(user, then, ctx);
        } else {
            self.write_change(user, change, None, ctx);
        }
    }

    fn write_change(
        &mut self,
        user: &Arc<str>,
        change: Change,
        relations: Option<Arc<Relations>>,
        ctx: &mut Context<Self>,
    ) {
        if !self.deps.presence.writes {
            return self.change_done(user, change, relations, ctx);
        }
        let client = self
            .users
            .get(user)
            .map(|e| e.client.clone())
            .unwrap_or_default();
        let history = |online: bool, at: NaiveDateTime| HistoryRow {
            id: ids::cuid(),
            online,
            at,
            device: client.user_agent.clone(),
            ip: client.address.map(|ip| ip.to_string()),
        };
        let op = match &change {
            Change::Online { count, at } => WriteOp::Presence(PresenceRow {
                user: user.to_string(),
                online: Some(true),
                count: *count,
                at: *at,
                history: Some(history(true, *at)),
            }),
            Change::Offline { at } => WriteOp::Presence(PresenceRow {
                user: user.to_string(),
                online: Some(false),
                count: 0,
                at: *at,
                history: Some(HistoryRow {
                    device: None,
                    ip: None,
                    ..history(false, *at)
                }),
            }),
            Change::Count { count, at } => WriteOp::Presence(PresenceRow {
                user: user.to_string(),
                online: None,
                count: *count,
                at: *at,
                history: None,
            }),
        };
        self.next_seq += 1;
        let seq = self.next_seq;
        self.writing.insert(seq, (user.clone(), change, relations));
        self.deps.persistence.do_send(Write {
            room: shard_key(self.index),
            reply: ctx.address().recipient(),
            seq,
            op,
            permit: None,
        });
    }

    /// The change is written: tell whom it concerns, then write the next one.
    fn change_done(
        &mut self,
        user: &Arc<str>,
        change: Change,
        relations: Option<Arc<Relations>>,
        ctx: &mut Context<Self>,
    ) {
        let at = match change {
            Change::Online { at, .. } => Some((true, at)),
            Change::Offline { at } => Some((false, at)),
            Change::Count { .. } => None,
        };
        if let Some((online, at)) = at {
            self.tell(user, online, at, relations.as_deref());
            if let Some(remote) = self.all.as_ref().and_then(Users::remote) {
                if !online {
                    remote.went_offline(user);
                }
            }
        }
        if let Some(entry) = self.users.get_mut(user) {
            entry.changing = false;
            if at.is_some_and(|(online, _)| online) {
                // Only the history row of going online needed it.
                entry.client = Default::default();
            }
        }
        self.next_change(user, ctx);
        self.forget_if_idle(user);
    }

    /// Sends `user`'s presence event to whom `presence.scope` says.
    fn tell(
        &self,
        user: &Arc<str>,
        online: bool,
        at: NaiveDateTime,
        relations: Option<&Relations>,
    ) {
        let Some(all) = &self.all else {
            return;
        };
        let frames = presence_frames(user, online, at, self.deps.presence.settings.legacy_events);
        match self.deps.presence.settings.scope {
            PresenceScope::All => {
                for frame in frames {
                    all.broadcast(frame);
                }
            }
            PresenceScope::Peers => {
                let Some(relations) = relations else {
                    error!("presence of user {user}: their peers are unknown, nobody is told");
                    return;
                };
                for peer in relations.active_peers() {
                    for frame in &frames {
                        all.to_user(peer, frame.clone());
                    }
                }
            }
        }
    }

    fn flush_heartbeats(&mut self, ctx: &mut Context<Self>) {
        let heard: Vec<String> = self
            .users
            .iter_mut()
            .filter(|(_, e)| e.heard && !matches!(e.presence, Presence::Offline))
            .map(|(user, e)| {
                e.heard = false;
                user.to_string()
            })
            .collect();
        if heard.is_empty() {
            return;
        }
        self.next_seq += 1;
        self.deps.persistence.do_send(Write {
            room: shard_key(self.index),
            reply: ctx.address().recipient(),
            seq: self.next_seq,
            op: WriteOp::Heartbeats {
                users: heard,
                at: entity::now_utc_ms(),
            },
            permit: None,
        });
    }

    /// Sets offline the users marked online whose heartbeat is older than `stale_after` and
    /// who have no socket here.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let Some(all) = self.all.clone() else {
            // Not wired yet: try again shortly.
            ctx.run_later(Duration::from_millis(100), |shard, ctx| shard.sweep(ctx));
            return;
        };
        let db = self.deps.db.clone();
        let stale_after =
            chrono::Duration::milliseconds(self.deps.presence.settings.stale_after as i64);
        let (persistence, me, index) = (self.deps.persistence.clone(), ctx.address(), self.index);
        actix::spawn(async move {
            let now = entity::now_utc_ms();
            let cutoff = now - stale_after;
            let candidates = match crate::db::users::stale_online_users(&db, cutoff).await {
                Ok(candidates) => candidates,
                Err(e) => return error!("presence sweep: reading users failed: {e}"),
            };
            let mut stale = Vec::new();
            for user in candidates {
                let elsewhere = match all.remote() {
                    Some(remote) => remote.sockets_elsewhere(&user).await,
                    None => 0,
                };
                if elsewhere == 0 && all.socket_count(&user).await == 0 {
                    stale.push(user);
                }
            }
            if stale.is_empty() {
                return;
            }
            // Written by Persistence, as every write; the shard is told how many (`Written`).
            persistence.do_send(Write {
                room: shard_key(index),
                reply: me.recipient(),
                seq: SWEEP_SEQ,
                op: WriteOp::StaleOffline {
                    users: stale,
                    cutoff,
                    now,
                },
                permit: None,
            });
        });
    }
}

/// The sequence number of the presence sweep's write (the presence changes' count up from 0).
const SWEEP_SEQ: u64 = u64::MAX;

/// The `room` key of a shard's writes (room keys have a shard index in their top bits;
/// user shards use the top of the range).
fn shard_key(index: usize) -> u64 {
    u64::MAX - index as u64
}

/// The presence events of `user` going online or offline at `at`.
pub(crate) fn presence_frames(
    user: &str,
    online: bool,
    at: NaiveDateTime,
    legacy: bool,
) -> Vec<Frame> {
    let at = iso_millis(&at);
    let mut frames = vec![ServerEvent::Presence {
        user,
        online,
        at: &at,
    }
    .frame()];
    if legacy {
        frames.push(ServerEvent::LegacyPresence { user, online }.frame());
    }
    frames
}

impl Handler<Heard> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: Heard, _ctx: &mut Self::Context) {
        if let Some(entry) = self.users.get_mut(&msg.0) {
            entry.heard = true;
        }
    }
}

impl Handler<Written> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: Written, ctx: &mut Self::Context) {
        for (seq, result) in msg.0 {
            match result {
                WriteResult::Swept(Some(n)) if n > 0 => {
                    info!("presence sweep: {n} users left online by a stopped server set offline")
                }
                WriteResult::Swept(None) => error!("presence sweep: writing failed"),
                _ => {}
            }
            let Some((user, change, relations)) = self.writing.remove(&seq) else {
                continue;
            };
            match result {
                WriteResult::User(UserOutcome::Updated) => {}
                WriteResult::User(UserOutcome::NoSuchUser) => {
                    debug!("presence of user {user}: no such row in users, nothing written")
                }
                _ => error!("presence of user {user}: the write failed"),
            }
            self.change_done(&user, change, relations, ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn in_a_cluster_only_the_first_and_the_last_socket_anywhere_tell() {
        let at = entity::now_utc_ms();
        let count = |c: Option<Change>| match c {
            Some(Change::Count { count, .. }) => Some(count),
            _ => None,
        };
        assert_eq!(
            count(Change::Online { count: 1, at }.in_cluster(2)),
            Some(3)
        );
        assert!(matches!(
            Change::Online { count: 1, at }.in_cluster(0),
            Some(Change::Online { count: 1, .. })
        ));
        assert_eq!(count(Change::Offline { at }.in_cluster(2)), Some(2));
        assert!(matches!(
            Change::Offline { at }.in_cluster(0),
            Some(Change::Offline { .. })
        ));
        assert_eq!(count(Change::Count { count: 2, at }.in_cluster(1)), Some(3));
    }

    #[test]
    fn presence_events_carry_the_node_servers_payloads() {
        let at = NaiveDate::from_ymd_opt(2026, 1, 18)
            .and_then(|d| d.and_hms_milli_opt(4, 59, 38, 123))
            .unwrap();
        let frames = presence_frames("u1", true, at, false);
        assert_eq!(frames.len(), 1);
        assert_eq!(
            &*frames[0],
            r#"42["user_online_status",{"isOnline":true,"lastSeenAt":"2026-01-18T04:59:38.123Z","timestamp":"2026-01-18T04:59:38.123Z","userId":"u1"}]"#
        );
        let frames = presence_frames("u1", false, at, true);
        assert_eq!(frames.len(), 2);
        assert!(frames[0].starts_with(r#"42["user_offline_status",{"isOnline":false,"#));
        assert_eq!(&*frames[1], r#"42["user_offline",{"userId":"u1"}]"#);
        assert_eq!(
            &*presence_frames("u1", true, at, true)[1],
            r#"42["user_online",{"userId":"u1"}]"#
        );
    }
}
