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

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{info, warn};
use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ErrorKind, Pipeline, RedisError,
    RedisFuture, RedisResult, TlsMode, Value,
};

/// `redis.url`, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One server: the URL as the redis crate reads it.
    Single(String),
    /// The master a set of sentinels name.
    Sentinel(SentinelUrl),
    /// A Redis Cluster.
    Cluster(ClusterUrl),
}

/// A `redis+sentinel://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    pub sentinels: Vec<(String, u16)>,
    /// The master's name, as the sentinels monitor it.
    pub master: String,
    pub db: i64,
    /// The master's (and its replicas') AUTH.
    pub username: Option<String>,
    pub password: Option<String>,
    /// The sentinels' own AUTH.
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<String>,
    /// TLS, and whether the certificates go unverified (`#insecure`).
    pub tls: Option<bool>,
}

impl std::fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelUrl")
            .field("sentinels", &self.sentinels)
            .field("master", &self.master)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// A `redis+cluster://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterUrl {
    pub nodes: Vec<(String, u16)>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: Option<bool>,
}

impl std::fmt::Debug for ClusterUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterUrl")
            .field("nodes", &self.nodes)
            .field("username", &self.username)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl ClusterUrl {
    /// Each node as a `redis://` (`rediss://`) URL the redis crate reads.
    pub fn node_urls(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let auth = match (&self.username, &self.password) {
            (None, None) => String::new(),
            (user, password) => format!(
                "{}:{}@",
                encode(user.as_deref().unwrap_or("")),
                encode(password.as_deref().unwrap_or(""))
            ),
        };
        let fragment = if self.tls == Some(true) {
            "/#insecure"
        } else {
            ""
        };
        self.nodes
            .iter()
            .map(|(host, port)| format!("{scheme}://{auth}{}:{port}{fragment}", bracket(host)))
            .collect()
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// `host:port` (`[v6]:port`), the port `default` when absent.
fn host_port(s: &str, default: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: unclosed ["))?;
        (host, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{s:?}: no host"));
    }
    let port = match port {
        None => default,
        Some(p) => p.parse().map_err(|_| format!("{s:?}: bad port"))?,
    };
    Ok((host.to_string(), port))
}

impl Target {
    /// Reads `redis.url`; the error says what is wrong (never the password).
    pub fn parse(url: &str) -> Result<Target, String> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(
                "must be a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL".into(),
            );
        };
        let (tls, kind) = match scheme {
            "redis" | "rediss" => {
                redis::Client::open(url).map_err(|e| e.to_string())?;
                return Ok(Target::Single(url.to_string()));
            }
            "redis+sentinel" => (false, "sentinel"),
            "rediss+sentinel" => (true, "sentinel"),
            "redis+cluster" => (false, "cluster"),
            "rediss+cluster" => (true, "cluster"),
            other => {
                return Err(format!(
                    "unknown scheme {other}://: redis://, rediss://, redis+sentinel://, \
                     rediss+sentinel://, redis+cluster:// or rediss+cluster://"
                ))
            }
        };
        let (rest, fragment) = match rest.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (rest, None),
        };
        let insecure = match fragment {
            None => false,
            Some("insecure") if tls => true,
            Some(other) => return Err(format!("unknown fragment #{other}")),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, path),
            None => (rest, ""),
        };
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (info, None),
                };
                let user = Some(decode(user)?).filter(|u| !u.is_empty());
                let password = password.map(decode).transpose()?;
                (user, password)
            }
        };
        let default_port = if kind == "sentinel" { 26379 } else { 6379 };
        let nodes = hosts
            .split(',')
            .map(|h| host_port(h.trim(), default_port))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = tls.then_some(insecure);
        let mut sentinel_username = None;
        let mut sentinel_password = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match (kind, key) {
                ("sentinel", "sentinel_username") => sentinel_username = Some(decode(value)?),
                ("sentinel", "sentinel_password") => sentinel_password = Some(decode(value)?),
                _ => return Err(format!("unknown parameter {key:?}")),
            }
        }
        if kind == "cluster" {
            if !path.trim_matches('/').is_empty() {
                return Err("a cluster URL names no database (a Redis Cluster has only 0)".into());
            }
            return Ok(Target::Cluster(ClusterUrl {
                nodes,
                username,
                password,
                tls,
            }));
        }
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        let master = parts
            .next()
            .map(decode)
            .transpose()?
            .ok_or("names no master: redis+sentinel://host:26379,…/MASTER_NAME")?;
        let db = match parts.next() {
            None => 0,
            Some(db) => db
                .parse()
                .map_err(|_| format!("bad database number {db:?}"))?,
        };
        if parts.next().is_some() {
            return Err("too many path segments: …/MASTER_NAME[/db]".into());
        }
        Ok(Target::Sentinel(SentinelUrl {
            sentinels: nodes,
            master,
            db,
            username,
            password,
            sentinel_username,
            sentinel_password,
            tls,
        }))
    }

    /// Whether this is a Redis Cluster (sharded pub/sub).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Target::Cluster(_))
    }
}

/// `url` as it may be logged: no password (neither the servers' nor the sentinels').
pub fn redacted(url: &str) -> String {
    let url = crate::config::redact_url(url);
    let Some(at) = url.find("sentinel_password=") else {
        return url;
    };
    let value = at + "sentinel_password=".len();
    let end = url[value..]
        .find(['&', '#'])
        .map_or(url.len(), |i| value + i);
    format!("{}***{}", &url[..value], &url[end..])
}

/// Whether a failure of the master's connection means asking the sentinels again: the
/// connection is gone or silent, or the server is no longer the master.
pub fn wants_new_master(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || matches!(e.code(), Some("READONLY" | "MASTERDOWN"))
}

/// The connection to the master the sentinels name, found again when it fails.
pub struct SentinelLink {
    url: SentinelUrl,
    /// Asks the sentinels, one lookup at a time.
    lookup: tokio::sync::Mutex<Lookup>,
    current: Mutex<Option<Current>>,
    config: AsyncConnectionConfig,
    timeout: Duration,
}

struct Lookup {
    client: SentinelClient,
    /// No new lookup before then (the last one failed).
    quiet_until: Option<Instant>,
    generation: u64,
    /// The master last found, for the log.
    last: Option<String>,
}

#[derive(Clone)]
struct Current {
    generation: u64,
    conn: MultiplexedConnection,
}

/// How long after a failed lookup the next one waits.
const LOOKUP_PAUSE: Duration = Duration::from_millis(100);

fn failure(message: &'static str) -> RedisError {
    RedisError::from((ErrorKind::Io, message))
}

impl SentinelLink {
    fn new(url: SentinelUrl, timeout: Duration) -> RedisResult<SentinelLink> {
        let addrs = url.sentinels.iter().map(|(host, port)| match url.tls {
            None => ConnectionAddr::Tcp(host.clone(), *port),
            Some(insecure) => ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure,
                tls_params: None,
            },
        });
        let mut builder =
            SentinelClientBuilder::new(addrs, &url.master, SentinelServerType::Master)?;
        if let Some(insecure) = url.tls {
            builder = builder.set_client_to_redis_tls_mode(if insecure {
                TlsMode::Insecure
            } else {
                TlsMode::Secure
            });
        }
        builder = builder.set_client_to_redis_db(url.db);
        if let Some(user) = &url.username {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = &url.password {
            builder = builder.set_client_to_redis_password(password);
        }
        if let Some(user) = &url.sentinel_username {
            builder = builder.set_client_to_sentinel_username(user);
        }
        if let Some(password) = &url.sentinel_password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        Ok(SentinelLink {
            lookup: tokio::sync::Mutex::new(Lookup {
                client: builder.build()?,
                quiet_until: None,
                generation: 0,
                last: None,
            }),
            url,
            current: Mutex::new(None),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout)),
            timeout,
        })
    }

    /// A client for the master the sentinels name now (checked to be a master), and its
    /// address.
    pub async fn master(&self) -> RedisResult<(Client, String)> {
        let mut lookup = self.lookup.lock().await;
        Self::ask(&mut lookup, self.timeout, &self.url.master).await
    }

    async fn ask(
        lookup: &mut Lookup,
        timeout: Duration,
        name: &str,
    ) -> RedisResult<(Client, String)> {
        let client = tokio::time::timeout(timeout * 2, lookup.client.async_get_client())
            .await
            .map_err(|_| failure("the sentinels did not answer in time"))??;
        let addr = client.get_connection_info().addr().to_string();
        if lookup.last.as_deref() != Some(addr.as_str()) {
            match &lookup.last {
                None => info!("cluster: the sentinels name {addr} master of {name}"),
                Some(before) => {
                    warn!("cluster: the sentinels now name {addr} master of {name} (was {before})")
                }
            }
            lookup.last = Some(addr.clone());
        }
        Ok((client, addr))
    }

    /// The master's connection (a new one when there is none).
    async fn get(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let mut lookup = self.lookup.lock().await;
        // Another caller may have connected meanwhile.
        if let Some(c) = self.current() {
            return Ok(c);
        }
        if lookup.quiet_until.is_some_and(|t| Instant::now() < t) {
            return Err(failure("no master known yet"));
        }
        let connected = async {
            let (client, _) = Self::ask(&mut lookup, self.timeout, &self.url.master).await?;
            client
                .get_multiplexed_async_connection_with_config(&self.config)
                .await
        }
        .await;
        match connected {
            Ok(conn) => {
                lookup.quiet_until = None;
                lookup.generation += 1;
                let current = Current {
                    generation: lookup.generation,
                    conn,
                };
                *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(current.clone());
                Ok((current.generation, current.conn))
            }
            Err(e) => {
                lookup.quiet_until = Some(Instant::now() + LOOKUP_PAUSE);
                Err(e)
            }
        }
    }

    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| (c.generation, c.conn.clone()))
    }

    /// The connection of `generation` failed with `e`: the next command asks the sentinels
    /// again if `e` says the master is gone.
    fn failed(&self, generation: u64, e: &RedisError) {
        if !wants_new_master(e) {
            return;
        }
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|c| c.generation == generation) {
            *current = None;
        }
    }

    /// Forgets the master's connection: the next command asks the sentinels.
    pub fn forget(&self) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

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
pub fn cluster_builder(
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
    pub fn is_cluster(&self) -> bool {
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
pub enum Link {
    Single {
        client: Client,
        conn: ConnectionManager,
    },
    Sentinel(Arc<SentinelLink>),
    Cluster {
        url: ClusterUrl,
        link: Arc<ClusterLink>,
    },
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
            Target::Cluster(url) => Link::Cluster {
                link: Arc::new(ClusterLink::new(&url, timeout)?),
                url,
            },
        })
    }

    /// The commands' connection.
    pub fn commands(&self) -> Conn {
        match self {
            Link::Single { conn, .. } => Conn::Single(conn.clone()),
            Link::Sentinel(link) => Conn::Sentinel(link.clone()),
            Link::Cluster { link, .. } => Conn::Cluster(link.clone()),
        }
    }

    /// A new pub/sub connection (one server, or the sentinels' master) and the server's
    /// address. Not for a cluster (sharded pub/sub has its own).
    pub async fn pubsub(&self) -> RedisResult<(redis::aio::PubSub, String)> {
        match self {
            Link::Single { client, .. } => Ok((
                client.get_async_pubsub().await?,
                client.get_connection_info().addr().to_string(),
            )),
            Link::Sentinel(link) => {
                let (client, addr) = link.master().await?;
                Ok((client.get_async_pubsub().await?, addr))
            }
            Link::Cluster { .. } => Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "a cluster has no single pub/sub connection",
            ))),
        }
    }

    /// Behind sentinels: whether the master the sentinels name now is no longer `addr`
    /// (then the master's connection is dropped too). `false` when they cannot be asked.
    pub async fn master_moved_from(&self, addr: &str) -> bool {
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
    pub fn watches_master(&self) -> bool {
        matches!(self, Link::Sentinel(_))
    }

    /// The cluster's URL, for a cluster.
    pub fn cluster(&self) -> Option<&ClusterUrl> {
        match self {
            Link::Cluster { url, .. } => Some(url),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_are_read() {
        let t = Target::parse("redis+sentinel://h1:26379,h2,[::1]:26380/mymaster").unwrap();
        let Target::Sentinel(s) = t else {
            panic!("a sentinel URL")
        };
        assert_eq!(
            s.sentinels,
            vec![
                ("h1".to_string(), 26379),
                ("h2".to_string(), 26379),
                ("::1".to_string(), 26380)
            ]
        );
        assert_eq!((s.master.as_str(), s.db, s.tls), ("mymaster", 0, None));
        let t = Target::parse(
            "rediss+sentinel://app:p%40ss@h1:1,h2:2/mm/3?sentinel_password=s3&sentinel_username=sen#insecure",
        )
        .unwrap();
        let Target::Sentinel(s) = t else {
            panic!("a sentinel URL")
        };
        assert_eq!(s.username.as_deref(), Some("app"));
        assert_eq!(s.password.as_deref(), Some("p@ss"));
        assert_eq!(s.sentinel_username.as_deref(), Some("sen"));
        assert_eq!(s.sentinel_password.as_deref(), Some("s3"));
        assert_eq!((s.master.as_str(), s.db, s.tls), ("mm", 3, Some(true)));
        // No password in what is logged.
        assert!(!format!("{s:?}").contains("p@ss"));
        for bad in [
            "redis+sentinel://h1:26379",
            "redis+sentinel://h1:x/m",
            "redis+sentinel://h1/m/x",
            "redis+sentinel://h1/m?nope=1",
            "redis+sentinel://h1/m#insecure",
            "sentinel://h1/m",
            "redis+sentinel:///m",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            Target::parse("redis://:pw@h:6380/0"),
            Ok(Target::Single(_))
        ));
        assert_eq!(
            redacted("redis+sentinel://u:pw@h1,h2/m?sentinel_password=s3&sentinel_username=x"),
            "redis+sentinel://u:***@h1,h2/m?sentinel_password=***&sentinel_username=x"
        );
    }

    #[test]
    fn cluster_urls_are_read() {
        let t = Target::parse("redis+cluster://:pw@a:7000,b:7001").unwrap();
        assert!(t.is_cluster());
        let Target::Cluster(c) = t else {
            panic!("a cluster URL")
        };
        assert_eq!(
            c.node_urls(),
            vec![
                "redis://:pw@a:7000".to_string(),
                "redis://:pw@b:7001".into()
            ]
        );
        let Ok(Target::Cluster(c)) = Target::parse("rediss+cluster://a#insecure") else {
            panic!("a cluster URL")
        };
        assert_eq!(c.node_urls(), vec!["rediss://a:6379/#insecure".to_string()]);
        assert!(Target::parse("redis+cluster://a:7000/1").is_err());
    }

    #[test]
    fn which_failures_ask_the_sentinels_again() {
        let readonly = RedisError::from((
            ErrorKind::Server(redis::ServerErrorKind::ReadOnly),
            "READONLY You can't write against a read only replica.",
        ));
        assert!(wants_new_master(&readonly));
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(wants_new_master(&io));
        let wrong_type = RedisError::from((
            ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "WRONGTYPE",
        ));
        assert!(!wants_new_master(&wrong_type));
    }
}
