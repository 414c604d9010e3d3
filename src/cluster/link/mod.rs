//! Where Redis is (`redis.url`) and the connections a node keeps to it.
//!
//! - `redis://[user:password@]host:port[/db]`, `rediss://…` (TLS; `#insecure` skips the
//!   certificate's verification): one server. The commands' connection reconnects by itself;
//!   the subscriber connects again when its connection drops.
//! - `redis+sentinel://[user:password@]h1:26379,h2:26379,h3:26379/MASTER[/db]`
//!   (`rediss+sentinel://` for TLS to the sentinels and the master, `#insecure` as above;
//!   `?sentinel_username=…&sentinel_password=…` when the sentinels have their own AUTH, the
//!   user and password before `@` being the master's): the master the sentinels name for
//!   `MASTER`, checked to be one (`ROLE`). The commands' connection asks the sentinels again
//!   when its master fails (the connection drops or times out, or the server answers
//!   `READONLY`/`MASTERDOWN`: it is a replica now); the subscriber subscribes again on the
//!   master the sentinels name whenever its connection drops, and every `redis.refresh` asks
//!   them whether the master moved (a failover that left the old master running).
//! - `redis+cluster://[user:password@]h1:7000,h2:7001,…` (`rediss+cluster://`): a Redis
//!   Cluster, any of its nodes (the others are found from them), spoken to with sharded
//!   pub/sub ([`super::sharded`]).

pub mod sentinel;
pub mod url;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Client, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use sentinel::{failure, SentinelLink};
pub use url::{redacted, ClusterUrl, SentinelUrl, Target};
/// A Redis Cluster's connection, made at first use (a node starts while Redis is down); it
/// follows the cluster's topology by itself.
pub struct ClusterLink {
    client: redis::cluster::ClusterClient,
    conn: tokio::sync::Mutex<Option<redis::cluster_async::ClusterConnection>>,
    timeout: Duration,
}

impl ClusterLink {
    /// The commands' client of `url` (RESP2, no pushes).
    fn new(url: &ClusterUrl, timeout: Duration) -> RedisResult<ClusterLink> {
        Ok(ClusterLink {
            client: cluster_builder(url, timeout).build()?,
            conn: tokio::sync::Mutex::new(None),
            timeout,
        })
    }

    async fn get(&self) -> RedisResult<redis::cluster_async::ClusterConnection> {
        let mut conn = self.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Ok(c.clone());
        }
        let made = tokio::time::timeout(self.timeout * 2, self.client.get_async_connection())
            .await
            .map_err(|_| failure("the cluster's nodes did not answer in time"))??;
        *conn = Some(made.clone());
        Ok(made)
    }
}

/// A builder for a client of the cluster at `url`.
pub(crate) fn cluster_builder(
    url: &ClusterUrl,
    timeout: Duration,
) -> redis::cluster::ClusterClientBuilder {
    redis::cluster::ClusterClientBuilder::new(url.node_urls())
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .retries(2)
}

/// The commands' connection of a node (publishes, presence keys, counters), whatever the
/// target: cheap to clone, one connection underneath.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Sentinel(Arc<SentinelLink>),
    Cluster(Arc<ClusterLink>),
}

impl Conn {
    /// Whether this is a Redis Cluster's (a pipeline goes to one hash slot).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Sentinel(link) => {
                let link = link.clone();
                Box::pin(async move {
                    let (generation, mut conn) = link.get().await?;
                    let answer = conn.req_packed_command(cmd).await;
                    if let Err(e) = &answer {
                        link.failed(generation, e);
                    }
                    answer
                })
            }
            Conn::Cluster(link) => {
                let link = link.clone();
                Box::pin(async move { link.get().await?.req_packed_command(cmd).await })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(link) => {
                let link = link.clone();
                Box::pin(async move {
                    let (generation, mut conn) = link.get().await?;
                    let answer = conn.req_packed_commands(pipeline, offset, count).await;
                    if let Err(e) = &answer {
                        link.failed(generation, e);
                    }
                    answer
                })
            }
            Conn::Cluster(link) => {
                let link = link.clone();
                Box::pin(async move {
                    link.get()
                        .await?
                        .req_packed_commands(pipeline, offset, count)
                        .await
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Sentinel(link) => link.url.db,
            Conn::Cluster(_) => 0,
        }
    }
}

/// A node's way to Redis: its commands' connection and how its subscriber connects.
// One per node: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Link {
    Single {
        client: Client,
        conn: ConnectionManager,
    },
    Sentinel(Arc<SentinelLink>),
    Cluster(Arc<ClusterLink>),
}

impl Link {
    /// The link to `target`; nothing is connected yet. `timeout`: how long a connection or an
    /// answer may take.
    pub fn open(target: Target, timeout: Duration) -> RedisResult<Link> {
        Ok(match target {
            Target::Single(url) => {
                let client = Client::open(url.as_str())?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
                Link::Single { client, conn }
            }
            Target::Sentinel(url) => Link::Sentinel(Arc::new(SentinelLink::new(url, timeout)?)),
            Target::Cluster(url) => Link::Cluster(Arc::new(ClusterLink::new(&url, timeout)?)),
        })
    }

    /// The commands' connection.
    pub(crate) fn commands(&self) -> Conn {
        match self {
            Link::Single { conn, .. } => Conn::Single(conn.clone()),
            Link::Sentinel(link) => Conn::Sentinel(link.clone()),
            Link::Cluster(link) => Conn::Cluster(link.clone()),
        }
    }

    /// A new pub/sub connection (one server, or the sentinels' master) and the server's
    /// address. Not for a cluster (sharded pub/sub has its own).
    pub(crate) async fn pubsub(&self) -> RedisResult<(redis::aio::PubSub, String)> {
        match self {
            Link::Single { client, .. } => Ok((
                client.get_async_pubsub().await?,
                client.get_connection_info().addr().to_string(),
            )),
            Link::Sentinel(link) => {
                let (client, addr) = link.master().await?;
                Ok((client.get_async_pubsub().await?, addr))
            }
            Link::Cluster(_) => Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "a cluster has no single pub/sub connection",
            ))),
        }
    }

    /// Behind sentinels: whether the master the sentinels name now is no longer `addr`
    /// (then the master's connection is dropped too). `false` when they cannot be asked.
    pub(crate) async fn master_moved_from(&self, addr: &str) -> bool {
        let Link::Sentinel(link) = self else {
            return false;
        };
        match link.master().await {
            Ok((_, now)) if now != addr => {
                link.forget();
                true
            }
            _ => false,
        }
    }

    /// Whether the subscriber should ask, every `redis.refresh`, whether the master moved.
    pub(crate) fn watches_master(&self) -> bool {
        matches!(self, Link::Sentinel(_))
    }
}
