//! A user's relations: who they share a connection with and whether it is ACTIVE (read from
//! `connections` on demand, kept for `presence.peers_ttl`), and their name and image (for
//! `call:incoming`); presence and call signalling ask for them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{ActorFutureExt, AsyncContext, Context, Handler, Message, WrapFuture};
use log::error;

use super::shard::{RelationsWaiter, UserShard};
use super::state::Relations;
use crate::db::connections;

/// A user's relations were read.
#[derive(Message)]
#[rtype(result = "()")]
struct RelationsRead {
    user: Arc<str>,
    relations: Option<Relations>,
}

impl UserShard {
    /// Runs `then` with `user`'s relations: at once if they were read within
    /// `presence.peers_ttl`, else once they are read again (one read for every waiter).
    pub(crate) fn with_relations(
        &mut self,
        user: &Arc<str>,
        then: RelationsWaiter,
        ctx: &mut Context<Self>,
    ) {
        let ttl = Duration::from_millis(self.deps.presence.settings.peers_ttl);
        self.with_relations_within(user, ttl, then, ctx);
    }

    /// Runs `then` with `user`'s relations as read within `max_age` (zero: read now, or by
    /// the read already under way).
    pub(crate) fn with_relations_within(
        &mut self,
        user: &Arc<str>,
        max_age: Duration,
        then: RelationsWaiter,
        ctx: &mut Context<Self>,
    ) {
        let entry = self.users.entry(user.clone()).or_default();
        if let Some(relations) = entry
            .relations
            .clone()
            .filter(|r| r.loaded.is_some_and(|at| at.elapsed() < max_age))
        {
            then(self, user, Some(relations), ctx);
            return;
        }
        if let Some(waiting) = &mut entry.waiting {
            waiting.push(then);
            return;
        }
        entry.waiting = Some(vec![then]);
        let db = self.deps.db.clone();
        let id = user.clone();
        let read = async move {
            match connections::relations(&db, &id).await {
                Ok((peers, name, image)) => Some(Relations {
                    peers: peers
                        .into_iter()
                        .map(|(peer, active)| (Arc::from(peer), active))
                        .collect(),
                    name,
                    image,
                    loaded: Some(Instant::now()),
                }),
                Err(e) => {
                    error!("reading the connections of user {id} failed: {e}");
                    None
                }
            }
        };
        let user = user.clone();
        ctx.spawn(read.into_actor(self).map(move |relations, _shard, ctx| {
            ctx.notify(RelationsRead { user, relations });
        }));
    }
}

impl Handler<RelationsRead> for UserShard {
    type Result = ();

    fn handle(&mut self, msg: RelationsRead, ctx: &mut Self::Context) {
        let relations = msg.relations.map(Arc::new);
        let waiting = match self.users.get_mut(&msg.user) {
            Some(entry) => {
                if relations.is_some() {
                    entry.relations = relations.clone();
                }
                entry.waiting.take().unwrap_or_default()
            }
            None => Vec::new(),
        };
        for then in waiting {
            then(self, &msg.user, relations.clone(), ctx);
        }
        self.forget_if_idle(&msg.user);
    }
}
