//! This node's presence keys: written again every `redis.refresh`, dead nodes buried.

use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info};
use redis::AsyncCommands;

use super::keys::ONLINE_USERS;
use super::node::Cluster;
use super::publish::run;
use crate::chat::users::Users;

impl Cluster {
    /// Writes this node's keys again: alive, its users' counts, `online_users`.
    fn refresh_commands(&self) -> redis::Pipeline {
        let ttl = self.settings.presence_ttl;
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.keys.node(&self.uid))
            .arg(1)
            .arg("PX")
            .arg(ttl)
            .ignore();
        pipe.cmd("SADD")
            .arg(self.keys.nodes())
            .arg(&*self.uid)
            .ignore();
        let local: Vec<(Arc<str>, usize)> = self
            .local
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(u, n)| (u.clone(), *n))
            .collect();
        let node_users = self.keys.node_users(&self.uid);
        for (user, n) in &local {
            let key = self.keys.sockets(user);
            pipe.cmd("HSET").arg(&key).arg(&*self.uid).arg(*n).ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(ttl * 4).ignore();
            pipe.cmd("SADD").arg(&node_users).arg(&**user).ignore();
            pipe.cmd("SADD").arg(ONLINE_USERS).arg(&**user).ignore();
        }
        pipe.cmd("PEXPIRE").arg(&node_users).arg(ttl * 4).ignore();
        pipe
    }

    /// Finds the nodes whose key expired; settles the presence of the users of those this
    /// node claims.
    async fn bury_dead_nodes(&self, chat: &Users) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let nodes: Vec<String> = conn.smembers(self.keys.nodes()).await?;
        for uid in nodes.into_iter().filter(|uid| **uid != *self.uid) {
            let alive: bool = conn.exists(self.keys.node(&uid)).await?;
            if alive {
                continue;
            }
            let claimed: usize = conn.srem(self.keys.nodes(), &uid).await?;
            if claimed == 0 {
                continue;
            }
            let list = self.keys.node_users(&uid);
            let users: Vec<String> = conn.smembers(&list).await?;
            let _: () = conn.del(&list).await?;
            info!(
                "cluster: node {uid} stopped refreshing its keys; settling the presence of its {} users",
                users.len()
            );
            for user in users {
                let _: () = conn.hdel(self.keys.sockets(&user), &uid).await?;
                chat.node_gone(&user);
            }
        }
        Ok(())
    }
}

/// Keeps this node's keys and buries dead nodes, every `redis.refresh`.
///
/// After its own refreshes failed (Redis down, a failover), a node buries no other node for
/// one `redis.presence_ttl`: the others' keys may have expired meanwhile (a replica promoted
/// after longer than their life keeps the keys' expiry running), and they get that long to
/// write them again, as they always have.
pub(super) async fn refresher(cluster: Arc<Cluster>, users: Users) {
    let every = Duration::from_millis(cluster.settings.refresh);
    let grace = Duration::from_millis(cluster.settings.presence_ttl);
    let mut conn = cluster.conn.clone();
    let mut failing = false;
    let mut bury_from = Instant::now();
    loop {
        let pipe = cluster.refresh_commands();
        match run(&mut conn, pipe).await {
            Ok(()) => {
                if std::mem::take(&mut failing) {
                    bury_from = Instant::now() + grace;
                }
                if Instant::now() >= bury_from {
                    if let Err(e) = cluster.bury_dead_nodes(&users).await {
                        debug!("cluster: looking for dead nodes failed: {e}");
                    }
                }
            }
            Err(e) => {
                failing = true;
                debug!("cluster: refreshing this node's keys failed: {e}");
            }
        }
        tokio::time::sleep(every).await;
    }
}
