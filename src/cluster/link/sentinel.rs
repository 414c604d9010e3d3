//! The master behind the sentinels, found again when it fails.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::{info, warn};
use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ErrorKind, RedisError, RedisResult, TlsMode,
};

use super::url::SentinelUrl;

/// Whether a failure of the master's connection means asking the sentinels again: the
/// connection is gone or silent, or the server is no longer the master.
pub(crate) fn wants_new_master(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || matches!(e.code(), Some("READONLY" | "MASTERDOWN"))
}

/// The connection to the master the sentinels name, found again when it fails.
pub struct SentinelLink {
    pub(super) url: SentinelUrl,
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

pub(super) fn failure(message: &'static str) -> RedisError {
    RedisError::from((ErrorKind::Io, message))
}

impl SentinelLink {
    pub(super) fn new(url: SentinelUrl, timeout: Duration) -> RedisResult<SentinelLink> {
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
    pub(super) async fn get(&self) -> RedisResult<(u64, MultiplexedConnection)> {
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
    pub(super) fn failed(&self, generation: u64, e: &RedisError) {
        if !wants_new_master(e) {
            return;
        }
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|c| c.generation == generation) {
            *current = None;
        }
    }

    /// Forgets the master's connection: the next command asks the sentinels.
    pub(crate) fn forget(&self) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
