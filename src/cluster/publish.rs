//! The ordered publishing queue: everything a node writes to Redis, in order, pipelined;
//! a failed pipeline is not sent again, and notices of what it lost go before the next.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{info, warn};
use redis::Cmd;
use tokio::sync::mpsc;

use super::flags::{MISSED_FLAG, MISSED_ROOM};
use super::link::Conn;
use super::metrics::ClusterMetrics;
use super::sharded::wire as sharded;
use super::wire::{self, Channels};
use crate::chat::push::CHAT_NAMESPACE;

/// Most users a node remembers lost publishes for; past it, its notice is for everyone.
const MISSED_USERS: usize = 10_000;

/// What a queued command is.
#[derive(Debug, Clone)]
pub(super) enum Queued {
    /// Not a publish.
    Command,
    /// A broadcast to every socket (not caught up when lost: live events only).
    Broadcast,
    /// A delivery to a user's sockets (caught up from the database when lost).
    ToUser(Arc<str>),
}

/// Most commands queued for Redis before more are dropped (and counted as failed).
pub(super) const QUEUE: usize = 65_536;

/// Most commands sent in one pipeline.
const BATCH: usize = 512;

/// What a node's notice of lost publishes needs.
pub(super) struct Notices {
    pub(super) uid: Arc<str>,
    pub(super) channels: Channels,
    pub(super) sharded: Option<sharded::ShardedChannels>,
}

impl Notices {
    /// The notice that publishes to `user` (`None`: to anyone) were lost, on the channel they
    /// went to (so that it comes after them and before the next ones).
    fn missed(&self, user: Option<&str>) -> Cmd {
        if let Some(channels) = &self.sharded {
            return sharded::missed_notice(&self.uid, channels, user);
        }
        let flag = user.map_or(rmpv::Value::Boolean(true), rmpv::Value::from);
        let payload = wire::encode_broadcast(
            &self.uid,
            CHAT_NAMESPACE,
            &serde_json::json!([MISSED_ROOM]),
            &[MISSED_ROOM],
            vec![(rmpv::Value::from(MISSED_FLAG), flag)],
        );
        let channel = match user {
            Some(user) => self.channels.broadcast_to(&[user]),
            None => self.channels.broadcast.clone(),
        };
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(payload);
        cmd
    }
}

/// The users whose deliveries Redis failed since the last notice.
#[derive(Default)]
struct Missed {
    users: HashSet<Arc<str>>,
    everyone: bool,
}

impl Missed {
    fn is_empty(&self) -> bool {
        self.users.is_empty() && !self.everyone
    }

    fn add(&mut self, user: Arc<str>) {
        if self.everyone {
            return;
        }
        if self.users.len() >= MISSED_USERS {
            self.users.clear();
            self.everyone = true;
        } else {
            self.users.insert(user);
        }
    }

    fn notices(&self, notices: &Notices) -> Vec<Cmd> {
        if self.everyone {
            return vec![notices.missed(None)];
        }
        self.users.iter().map(|u| notices.missed(Some(u))).collect()
    }
}

/// Runs `pipe` (its replies ignored). On a Redis Cluster a pipeline goes to one node: there
/// it is one pipeline per hash slot (the slot of each command's first key or channel), the
/// commands of each in their order, all at once; it fails if any fails.
pub(super) async fn run(conn: &mut Conn, pipe: redis::Pipeline) -> redis::RedisResult<()> {
    if !conn.is_cluster() {
        return pipe.query_async::<()>(conn).await;
    }
    let mut groups: Vec<(redis::cluster_routing::Slot, redis::Pipeline)> = Vec::new();
    for cmd in pipe.cmd_iter() {
        let key = match cmd.args_iter().nth(1) {
            Some(redis::Arg::Simple(key)) => key.to_vec(),
            _ => Vec::new(),
        };
        let slot = redis::cluster_routing::Slot::for_key(&key);
        let group = match groups.iter_mut().position(|(s, _)| *s == slot) {
            Some(i) => &mut groups[i].1,
            None => {
                let at = groups.len();
                groups.push((slot, redis::pipe()));
                &mut groups[at].1
            }
        };
        group.add_command(cmd.clone()).ignore();
    }
    let sent = groups.into_iter().map(|(_, group)| {
        let mut conn = conn.clone();
        async move { group.query_async::<()>(&mut conn).await }
    });
    futures_util::future::join_all(sent)
        .await
        .into_iter()
        .collect::<redis::RedisResult<Vec<()>>>()
        .map(|_| ())
}

/// How long a pump with lost publishes to tell waits for new commands before it tries to
/// send the notices alone.
const NOTICE_RETRY: Duration = Duration::from_millis(250);

/// Sends the queued commands to Redis, in order, in pipelines.
///
/// A pipeline that fails is not sent again (that would reorder); the users it was delivering
/// to are remembered, and the first pipeline that goes through after it starts with a notice
/// for each ([`MISSED_FLAG`]): their sockets on the other nodes catch up from the database.
pub(super) async fn pump(
    mut rx: mpsc::Receiver<(Cmd, Queued)>,
    mut conn: Conn,
    metrics: Arc<ClusterMetrics>,
    notices: Notices,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut failing: Option<(Instant, usize)> = None;
    let mut missed = Missed::default();
    loop {
        let received = if missed.is_empty() {
            rx.recv_many(&mut batch, BATCH).await
        } else {
            match tokio::time::timeout(NOTICE_RETRY, rx.recv_many(&mut batch, BATCH)).await {
                Ok(n) => n,
                // Nothing new: the notices alone.
                Err(_) => usize::MAX,
            }
        };
        if received == 0 {
            return;
        }
        let mut pipe = redis::pipe();
        let telling = !missed.is_empty();
        for notice in missed.notices(&notices) {
            pipe.add_command(notice).ignore();
        }
        let mut publishes = 0;
        let mut to_users = Vec::new();
        for (cmd, queued) in batch.drain(..) {
            pipe.add_command(cmd).ignore();
            match queued {
                Queued::Command => {}
                Queued::Broadcast => publishes += 1,
                Queued::ToUser(user) => {
                    publishes += 1;
                    to_users.push(user);
                }
            }
        }
        match run(&mut conn, pipe).await {
            Ok(()) => {
                metrics.published(publishes);
                if telling {
                    missed = Missed::default();
                }
                if let Some((_, lost)) = failing.take() {
                    info!(
                        "cluster: Redis is back; {lost} messages for other nodes were lost \
                         (their users' sockets there catch up from the database)"
                    );
                }
            }
            Err(e) => {
                metrics.publish_failed(publishes);
                for user in to_users {
                    missed.add(user);
                }
                match &mut failing {
                    None => {
                        warn!(
                            "cluster: publishing to Redis failed ({e}): {publishes} messages \
                             for other nodes lost; local delivery goes on"
                        );
                        failing = Some((Instant::now(), publishes));
                    }
                    Some((since, lost)) => {
                        *lost += publishes;
                        if since.elapsed() >= Duration::from_secs(10) {
                            warn!(
                                "cluster: Redis still failing ({e}): {lost} messages for other \
                                 nodes lost so far"
                            );
                            *since = Instant::now();
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_missed_notice_goes_where_the_lost_deliveries_went_and_to_nobody() {
        let notices = Notices {
            uid: Arc::from("node1"),
            channels: Channels::new("socket.io", "/"),
            sharded: None,
        };
        let args = |cmd: &Cmd| -> Vec<Vec<u8>> {
            cmd.args_iter()
                .filter_map(|a| match a {
                    redis::Arg::Simple(bytes) => Some(bytes.to_vec()),
                    _ => None,
                })
                .collect()
        };
        let to_u1 = args(&notices.missed(Some("u1")));
        assert_eq!(to_u1[0], b"PUBLISH");
        assert_eq!(to_u1[1], b"socket.io#/#u1#");
        let notice = wire::decode_broadcast(&to_u1[2]).expect("a broadcast");
        assert_eq!(notice.rooms, vec![MISSED_ROOM.to_string()]);
        assert_eq!(notice.flags, json!({"courierMissed": "u1"}));
        let to_all = args(&notices.missed(None));
        assert_eq!(to_all[1], b"socket.io#/#");
        let notice = wire::decode_broadcast(&to_all[2]).expect("a broadcast");
        assert_eq!(notice.flags, json!({"courierMissed": true}));
        // Too many users: one notice for everyone.
        let mut missed = Missed::default();
        for i in 0..=MISSED_USERS {
            missed.add(Arc::from(format!("u{i}")));
        }
        assert_eq!(missed.notices(&notices).len(), 1);
        assert!(missed.everyone);
    }
}
