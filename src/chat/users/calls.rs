//! Call signalling on the user shards: a call event from a socket goes to its user's shard,
//! which checks the pair of users (see `chat::protocol::call`: every call event only between
//! the two users of an ACTIVE connection; `call:initiate` reads it afresh, a call's relays rely
//! on that check for the call's lifetime) and relays it to the other user's sockets, on every
//! node; `call:initiate` rings through the recipient's shard.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{ActorFutureExt, AsyncContext, Context, Handler, Message, WrapFuture};

use super::shard::UserShard;
use super::state::Relations;
use crate::chat::protocol::call::{Call, Failure, INITIATE_FAILED, NOT_CONNECTED, USER_OFFLINE};
use crate::chat::protocol::message_json::iso_millis;
use crate::chat::protocol::server::{ack, CallParty, ServerEvent};
use crate::chat::protocol::Frame;
use crate::chat::push::Caller;

/// Answers `caller` with `call:failed` (and a failed ack).
fn fail(caller: &Caller, why: Failure) {
    caller.done(
        Some(ServerEvent::from(why).frame()),
        &ack::error(why.reason),
    );
}

/// A call event from `from`'s socket, for `from`'s user shard.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct CallRequest {
    pub from: Arc<str>,
    pub caller: Caller,
    pub call: Call,
}

/// For the recipient's shard: ring every socket of `to`, or tell the caller they are
/// offline.
#[derive(Message)]
#[rtype(result = "()")]
struct Ring {
    to: Arc<str>,
    /// Who calls.
    from: Arc<str>,
    frame: Frame,
    caller: Caller,
}

/// A relay refused by a view of the sender's connections older than this is checked
/// once more against the database (a connection that just became ACTIVE).
const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// How long a call's relays rely on its `call:initiate`'s check at most.
const CALL_LIFETIME: Duration = Duration::from_secs(4 * 3600);

/// Most calls one user is in at once (the oldest is forgotten past it).
const MAX_CALLS: usize = 8;

/// Notes on `user`'s entry that they are in a call with `peer` (from now), or that the
/// call ended (`open == false`).
fn note_call(shard: &mut UserShard, user: &Arc<str>, peer: &str, open: bool) {
    let Some(entry) = shard.users.get_mut(user) else {
        return;
    };
    entry
        .calls
        .retain(|(p, since)| **p != *peer && since.elapsed() < CALL_LIFETIME);
    if open {
        if entry.calls.len() >= MAX_CALLS {
            entry.calls.remove(0);
        }
        entry.calls.push((Arc::from(peer), Instant::now()));
    }
}

/// Whether `user` is in a call with `peer`.
fn in_call(shard: &UserShard, user: &str, peer: &str) -> bool {
    shard.users.get(user).is_some_and(|entry| {
        entry
            .calls
            .iter()
            .any(|(p, since)| **p == *peer && since.elapsed() < CALL_LIFETIME)
    })
}

impl Handler<CallRequest> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: CallRequest, ctx: &mut Self::Context) {
        // `call:initiate` reads the connection's status afresh, as `send_message` does
        // (the app changes it through its own API); the relays within a call rely on that
        // read, kept for `presence.peers_ttl`.
        let max_age = if msg.call.is_initiate() {
            Duration::ZERO
        } else {
            Duration::from_millis(self.deps.presence.settings.peers_ttl)
        };
        self.authorize_call(msg, max_age, ctx);
    }
}

impl UserShard {
    /// Relays `msg` if its two users share an ACTIVE connection, as read within
    /// `max_age`.
    fn authorize_call(&mut self, msg: CallRequest, max_age: Duration, ctx: &mut Context<Self>) {
        let from = msg.from.clone();
        self.with_relations_within(
            &from,
            max_age,
            Box::new(move |shard, _user, relations, ctx| {
                let refused_by_old_view = relations.as_ref().is_some_and(|r| {
                    r.age() >= RECHECK_AFTER
                        && msg.call.other().is_some_and(|other| {
                            !r.active_with(other) && !in_call(shard, &msg.from, other)
                        })
                });
                if refused_by_old_view && max_age > Duration::ZERO {
                    return shard.authorize_call(msg, Duration::ZERO, ctx);
                }
                shard.relay_call(msg, relations.as_deref(), ctx)
            }),
            ctx,
        );
    }

    fn relay_call(
        &mut self,
        msg: CallRequest,
        relations: Option<&Relations>,
        _ctx: &mut Context<Self>,
    ) {
        let CallRequest { from, caller, call } = msg;
        let Some(relations) = relations else {
            return fail(
                &caller,
                if call.is_initiate() {
                    INITIATE_FAILED
                } else {
                    NOT_CONNECTED
                },
            );
        };
        // Every call event, between the two users of an ACTIVE connection only; within a
        // call, as its `call:initiate` found them (a call can be ended after the
        // connection was ended mid-call).
        if let Some(other) = call.other() {
            let allowed = relations.active_with(other)
                || (!call.is_initiate() && in_call(self, &from, other));
            if !allowed || other == &*from {
                return fail(&caller, NOT_CONNECTED);
            }
        }
        let Some(all) = self.all.clone() else {
            return fail(&caller, INITIATE_FAILED);
        };
        let now = iso_millis(&entity::now_utc_ms());
        fn party<'a>(participant: &'a str, connection_id: &'a str, now: &'a str) -> CallParty<'a> {
            CallParty {
                participant,
                connection_id,
                timestamp: now,
            }
        }
        match call {
            Call::Initiate {
                recipient,
                call_type,
                room_name,
            } => {
                let frame = ServerEvent::CallIncoming {
                    caller_id: &from,
                    caller_name: relations.name.as_deref().unwrap_or("User"),
                    caller_image: relations.image.as_deref(),
                    call_type: &call_type,
                    room_name: &room_name,
                    timestamp: &now,
                }
                .frame();
                note_call(self, &from, &recipient, true);
                let to: Arc<str> = recipient.into();
                all.shard(&to).do_send(Ring {
                    to,
                    from: from.clone(),
                    frame,
                    caller,
                });
            }
            Call::Answer {
                caller: callee_of,
                connection_id,
            } => {
                let accepted = ServerEvent::CallAccepted(party(&from, &connection_id, &now));
                all.to_user(&callee_of.into(), accepted.frame());
                caller.done(None, ack::OK);
            }
            Call::Reject {
                caller: ringing,
                connection_id,
            } => {
                note_call(self, &from, &ringing, false);
                let rejected = ServerEvent::CallRejected(party(&from, &connection_id, &now));
                all.to_user(&ringing.as_str().into(), rejected.frame());
                let back = ServerEvent::CallRejected(party(&ringing, &connection_id, &now));
                caller.done(Some(back.frame()), ack::OK);
            }
            Call::End {
                participant,
                connection_id,
            } => {
                if let Some(participant) = &participant {
                    note_call(self, &from, participant, false);
                    let ended = ServerEvent::CallEnded {
                        participant: Some(&from),
                        connection_id: &connection_id,
                        timestamp: &now,
                    };
                    all.to_user(&participant.as_str().into(), ended.frame());
                }
                let back = ServerEvent::CallEnded {
                    participant: participant.as_deref(),
                    connection_id: &connection_id,
                    timestamp: &now,
                };
                caller.done(Some(back.frame()), ack::OK);
            }
            Call::IceCandidate {
                to,
                connection_id,
                candidate,
            } => {
                let relayed = ServerEvent::CallIceCandidate {
                    from: &from,
                    connection_id: &connection_id,
                    candidate: &candidate,
                };
                all.to_user(&to.into(), relayed.frame());
                caller.done(None, ack::OK);
            }
        }
    }
}

impl Handler<Ring> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: Ring, ctx: &mut Self::Context) {
        // The recipient's relays in this call rely on the caller's check too.
        note_call(self, &msg.to, &msg.from, true);
        let here = self.deliver_here(&msg.to, &msg.frame);
        let Some(remote) = self.all.as_ref().and_then(|all| all.remote()).cloned() else {
            return if here == 0 {
                fail(&msg.caller, USER_OFFLINE)
            } else {
                msg.caller.done(None, ack::OK)
            };
        };
        // In a cluster: ring the sockets on the other nodes too; offline only when no
        // node has a socket of the recipient.
        remote.to_user(&msg.to, &msg.frame, None);
        if here > 0 {
            return msg.caller.done(None, ack::OK);
        }
        let online = remote.online_anywhere(&msg.to);
        ctx.spawn(online.into_actor(self).map(move |online, _shard, _ctx| {
            if online {
                msg.caller.done(None, ack::OK)
            } else {
                fail(&msg.caller, USER_OFFLINE)
            }
        }));
    }
}
