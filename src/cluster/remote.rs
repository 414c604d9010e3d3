//! [`RemoteNodes`] for [`Cluster`]: what the chat asks of the other nodes.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use log::debug;
use redis::AsyncCommands;

use super::elsewhere::Elsewhere;
use super::keys::ONLINE_USERS;
use super::node::{Ask, Cluster};
use super::publish::Queued;
use super::sharded::wire as sharded;
use super::wire;
use crate::chat::push::{Frame, Mark};
use crate::chat::rate_limit::CLUSTER_WINDOW;
use crate::chat::remote::{RemoteNodes, PID_ROOM};

impl Cluster {
    /// What asking the other nodes about a user's sockets needs.
    fn elsewhere(&self) -> Elsewhere {
        Elsewhere {
            conn: self.conn.clone(),
            keys: self.keys.clone(),
            uid: self.uid.clone(),
            channels: self.channels.clone(),
            sharded: self.sharded.as_ref().map(|s| s.channels.clone()),
            asked: self.asked.clone(),
        }
    }
}

impl RemoteNodes for Cluster {
    fn to_user(&self, user: &str, frame: &Frame, mark: Option<&Mark>) {
        self.publish_frame(&[user], frame, mark);
    }

    fn broadcast(&self, frame: &Frame) {
        self.publish_frame(&[], frame, None);
    }

    fn sockets_elsewhere(&self, user: &str) -> BoxFuture<'static, usize> {
        let view = self.elsewhere();
        let user = user.to_string();
        let timeout = Duration::from_millis(self.settings.request_timeout);
        Box::pin(async move {
            match view.fetch(&user, timeout).await {
                Ok(Some(n)) => n,
                outcome => {
                    // Not every node answered in time (or Redis failed): the Courier nodes'
                    // counts in Redis, or what did answer, whichever is more.
                    let partial = outcome.ok().flatten().unwrap_or(0);
                    match tokio::time::timeout(timeout, view.count(&user)).await {
                        Ok(Ok(n)) => n.max(partial),
                        Ok(Err(e)) => {
                            debug!("cluster: counting the sockets of {user} elsewhere failed: {e}");
                            partial
                        }
                        Err(_) => partial,
                    }
                }
            }
        })
    }

    fn sockets_counted(&self, user: &str) -> BoxFuture<'static, usize> {
        let view = self.elsewhere();
        let timeout = Duration::from_millis(self.settings.request_timeout);
        // Sharded: the user's room channel is subscribed before the CONNECT is answered, so
        // that nothing sent to them from then on misses this node.
        let subscribed = self.sharded.as_ref().map(|sharded| {
            let (done, subscribed) = tokio::sync::oneshot::channel();
            let _ = sharded.asks.try_send(Ask::Room(Arc::from(user), done));
            subscribed
        });
        let user = user.to_string();
        Box::pin(async move {
            let count = async {
                match tokio::time::timeout(timeout, view.count(&user)).await {
                    Ok(Ok(n)) => n,
                    _ => 0,
                }
            };
            let subscribed = async {
                if let Some(subscribed) = subscribed {
                    let _ = tokio::time::timeout(timeout, subscribed).await;
                }
            };
            futures_util::future::join(count, subscribed).await.0
        })
    }

    fn local_count(&self, user: &str, count: usize) {
        {
            let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            if count == 0 {
                local.remove(user);
            } else {
                local.insert(user.into(), count);
            }
        }
        let key = self.keys.sockets(user);
        if count == 0 {
            // The user stays in this node's list until their presence is settled
            // (`went_offline`): if this node stops first, whoever buries it settles them.
            let mut cmd = redis::cmd("HDEL");
            cmd.arg(&key).arg(&*self.uid);
            self.send(cmd, Queued::Command);
        } else {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(&key).arg(&*self.uid).arg(count);
            self.send(cmd, Queued::Command);
            let mut cmd = redis::cmd("PEXPIRE");
            cmd.arg(&key).arg(self.settings.presence_ttl * 4);
            self.send(cmd, Queued::Command);
            let mut cmd = redis::cmd("SADD");
            cmd.arg(self.keys.node_users(&self.uid)).arg(user);
            self.send(cmd, Queued::Command);
            let mut cmd = redis::cmd("SADD");
            cmd.arg(ONLINE_USERS).arg(user);
            self.send(cmd, Queued::Command);
        }
    }

    fn pid_taken(&self, nonce: &str) {
        let opts = serde_json::json!({
            "rooms": [format!("{}{nonce}", PID_ROOM)],
            "except": [],
            "flags": {},
        });
        let cmd = match &self.sharded {
            Some(sharded) => {
                let mut cmd = redis::cmd("SPUBLISH");
                cmd.arg(&sharded.channels.main).arg(sharded::encode(
                    &self.uid,
                    sharded::kind::DISCONNECT_SOCKETS,
                    serde_json::json!({"opts": opts, "close": true}),
                ));
                cmd
            }
            None => {
                let request = serde_json::json!({
                    "uid": &*self.uid,
                    "type": wire::request_type::REMOTE_DISCONNECT,
                    "opts": opts,
                    "close": true,
                })
                .to_string();
                let mut cmd = redis::cmd("PUBLISH");
                cmd.arg(&self.channels.request).arg(request);
                cmd
            }
        };
        self.send(cmd, Queued::Command);
    }

    fn went_offline(&self, user: &str) {
        let mut cmd = redis::cmd("SREM");
        cmd.arg(ONLINE_USERS).arg(user);
        self.send(cmd, Queued::Command);
        let mut cmd = redis::cmd("SREM");
        cmd.arg(self.keys.node_users(&self.uid)).arg(user);
        self.send(cmd, Queued::Command);
    }

    fn note_message(&self, user: &str) {
        let key = format!("ratelimit:messages:{user}");
        let window = CLUSTER_WINDOW.as_millis() as u64;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key).arg(0).arg("PX").arg(window).arg("NX");
        self.send(cmd, Queued::Command);
        let mut cmd = redis::cmd("INCR");
        cmd.arg(&key);
        self.send(cmd, Queued::Command);
    }

    fn count_message(&self, user: &str) -> BoxFuture<'static, Option<u64>> {
        let mut conn = self.conn.clone();
        let key = format!("ratelimit:messages:{user}");
        let window = CLUSTER_WINDOW.as_millis() as u64;
        Box::pin(async move {
            // The Node server's counter: created for one window by the first message in it.
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(&key)
                .arg(0)
                .arg("PX")
                .arg(window)
                .arg("NX")
                .ignore();
            pipe.cmd("INCR").arg(&key);
            match pipe.query_async::<(u64,)>(&mut conn).await {
                Ok((n,)) => Some(n),
                Err(e) => {
                    debug!("cluster: counting a message of {key} failed: {e}");
                    None
                }
            }
        })
    }

    fn max_rooms_per_socket(&self) -> usize {
        self.settings.max_rooms_per_socket
    }

    fn online_anywhere(&self, user: &str) -> BoxFuture<'static, bool> {
        let elsewhere = self.sockets_elsewhere(user);
        let mut conn = self.conn.clone();
        let user = user.to_string();
        Box::pin(async move {
            if elsewhere.await > 0 {
                return true;
            }
            // A user connected to a Node server only is in its set.
            conn.sismember(ONLINE_USERS, &user).await.unwrap_or(false)
        })
    }
}
