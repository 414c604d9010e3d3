//! Starting a node: the connection, the publishing queue, then (once the chat runs) the
//! subscriber and the refresher.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::info;
use tokio::sync::mpsc;

use super::keys::{node_uid, Keys};
use super::link::{self, Link, Target};
use super::metrics::ClusterMetrics;
use super::node::{Cluster, ClusterError, Sharded, ASKS};
use super::presence::refresher;
use super::publish::{pump, Notices, QUEUE};
use super::settings::RedisSettings;
use super::sharded::subscriber as sharded_subscriber;
use super::sharded::wire::ShardedChannels;
use super::subscriber::subscriber;
use super::wire::Channels;
use crate::chat::push::CHAT_NAMESPACE;
use crate::chat::users::Users;

impl Cluster {
    /// Connects to `settings.url` lazily (Courier starts while Redis is down, and is not
    /// ready meanwhile) and starts the publishing queue. [`Cluster::attach`] starts the rest
    /// once the chat runs. Must run inside the actix system.
    pub fn start(
        settings: &RedisSettings,
        metrics: Arc<ClusterMetrics>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let url = settings
            .url()
            .ok_or_else(|| ClusterError("redis.url is not set".into()))?;
        let target = Target::parse(url)
            .map_err(|e| ClusterError(format!("redis.url {}: {e}", link::redacted(url))))?;
        let timeout = Duration::from_millis(settings.request_timeout.max(100));
        let sharded = match &target {
            Target::Cluster(url) => {
                let (asks, asked) = mpsc::channel(ASKS);
                Some(Sharded {
                    channels: ShardedChannels::new(&settings.key, CHAT_NAMESPACE),
                    url: url.clone(),
                    asks,
                    asked: Mutex::new(Some(asked)),
                })
            }
            _ => None,
        };
        let link = Link::open(target, timeout)
            .map_err(|e| ClusterError(format!("redis.url {}: {e}", link::redacted(url))))?;
        let conn = link.commands();
        let (out, rx) = mpsc::channel(QUEUE);
        let cluster = Arc::new(Cluster {
            uid: node_uid().into(),
            channels: Channels::new(&settings.key, CHAT_NAMESPACE),
            keys: Keys {
                prefix: format!("courier:{}", settings.key),
            },
            out,
            conn: conn.clone(),
            link,
            local: Mutex::new(HashMap::new()),
            asked: Arc::new(Mutex::new(HashMap::new())),
            attached: AtomicBool::new(false),
            settings: settings.clone(),
            metrics: metrics.clone(),
            sharded,
        });
        let notices = Notices {
            uid: cluster.uid.clone(),
            channels: cluster.channels.clone(),
            sharded: cluster.sharded.as_ref().map(|s| s.channels.clone()),
        };
        actix::spawn(pump(rx, conn, metrics, notices));
        info!(
            "cluster: node {} on {} (channels {}*)",
            cluster.uid,
            link::redacted(url),
            cluster.channels.broadcast
        );
        Ok(cluster)
    }

    /// Starts receiving from the other nodes, delivering to `users`, and keeping this
    /// node's presence keys.
    pub(crate) fn attach(self: &Arc<Self>, users: Users) {
        if self.attached.swap(true, Ordering::AcqRel) {
            return;
        }
        match &self.sharded {
            Some(sharded) => {
                let asked = sharded
                    .asked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                if let Some(asked) = asked {
                    actix::spawn(sharded_subscriber::subscriber(
                        self.clone(),
                        users.clone(),
                        sharded.url.clone(),
                        asked,
                    ));
                }
            }
            None => {
                actix::spawn(subscriber(self.clone(), users.clone()));
            }
        }
        actix::spawn(refresher(self.clone(), users));
    }
}
