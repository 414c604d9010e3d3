//! Building and running the server: [`Application::build`] connects the database (and
//! migrates it when allowed), starts the shared actors, binds the listener (port 0 picks a
//! free one, see [`Application::port`]) and wires the routes.

use std::fmt;
use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{from_fn, Condition};
use actix_web::{web, App, HttpServer};
use log::{info, warn};
use migration::MigrateOutcome;
use sea_orm::{DatabaseConnection, DbErr};

use crate::admin::Admin;
use crate::auth::Authenticator;
use crate::chat::remote::RemoteNodes;
use crate::chat::{
    Chat, ChatMetrics, ChatOptions, ChatSocket, MessageIdKey, PidKey, PresenceOptions,
    RecoveryOptions,
};
use crate::cluster::{Cluster, ClusterError, ClusterMetrics};
use crate::config::Settings;
use crate::db;
use crate::engineio::metrics::EngineMetrics;
use crate::engineio::TransportKind;
use crate::engineio::{AdmissionLimits, EndpointOptions, EngineConfig, EngineEndpoint};
use crate::http::ops::{allocator_gauges, CheckFuture, Ops, ReadinessCheck};
use crate::socketio::SocketLayer;
use crate::{engineio, http};

/// Why the application could not start.
#[derive(Debug)]
pub enum AppError {
    /// The listener could not be bound.
    Bind(io::Error),
    /// Nothing can listen on `address`, which the setting `setting` names.
    Listen {
        setting: &'static str,
        address: String,
        error: io::Error,
    },
    /// The database could not be opened: what to do about it.
    DatabaseOpen(String),
    /// The database could not be migrated or read.
    Database(DbErr),
    /// The metrics could not be registered.
    Metrics(prometheus::Error),
    /// `redis.url` could not be used.
    Cluster(ClusterError),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Bind(e) => write!(f, "cannot listen: {e}"),
            AppError::Listen {
                setting,
                address,
                error,
            } => write!(
                f,
                "cannot listen on {address} ({setting}): {error}; each process on a host needs \
                 its own {setting}"
            ),
            AppError::DatabaseOpen(e) => f.write_str(e),
            AppError::Database(e) => write!(f, "database: {e}"),
            AppError::Metrics(e) => write!(f, "metrics: {e}"),
            AppError::Cluster(e) => write!(f, "cluster: {e}"),
        }
    }
}

impl std::error::Error for AppError {}

/// Packets past `recovery.max_replay` a recovering client may be sent at once, past its
/// buffer: its CONNECT answer and the live events held while its replay was read.
const REPLAY_MARGIN: usize = 64;

/// How long a connection being closed may take to shut down.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_millis(100);

/// The Engine.IO parameters of `settings`.
pub(crate) fn engine_config(settings: &Settings) -> EngineConfig {
    EngineConfig {
        ping_interval: settings.engineio.ping_interval(),
        ping_timeout: settings.engineio.ping_timeout(),
        max_payload: settings.engineio.max_payload,
    }
}

/// The chat's options from `settings`, counting in `metrics`, on a single node.
pub(crate) fn chat_options(
    settings: &Settings,
    presence_writes: bool,
    metrics: Arc<ChatMetrics>,
) -> ChatOptions {
    ChatOptions {
        presence: PresenceOptions {
            settings: settings.presence.clone(),
            writes: presence_writes,
        },
        shards: settings.chat.shards,
        room_idle_timeout: Duration::from_millis(settings.chat.room_idle_timeout),
        batch_max: settings.database.batch_max,
        writers: settings.database.writers,
        retry_for: Duration::from_millis(settings.database.retry_for),
        write_queue: settings.database.write_queue,
        max_content_chars: settings.chat.max_content_chars,
        max_notice_ids: settings.chat.max_notice_ids,
        send_window: settings.chat.send_window,
        rate_limit: settings.chat.rate_limit,
        call_rate: settings.chat.call_rate,
        max_sockets_per_user: settings.chat.max_sockets_per_user,
        metrics,
        remote: None,
        recovery: RecoveryOptions {
            enabled: settings.recovery.enabled,
            max_disconnection: Duration::from_millis(settings.recovery.max_disconnection),
            max_replay: settings.recovery.max_replay,
            max_conversations: settings.recovery.max_conversations,
            max_records: settings.recovery.max_records,
        },
    }
}

/// Starts the chat's shared actors (persistence, room and user shards) on threads of their
/// own, counting in `metrics`. Presence is written only if the database has its columns.
pub async fn start_chat(
    database: DatabaseConnection,
    settings: &Settings,
    metrics: Arc<ChatMetrics>,
) -> Chat {
    start_chat_with(database, settings, metrics, None).await
}

/// [`start_chat`], reaching the other nodes of a cluster through `remote`.
pub(crate) async fn start_chat_with(
    database: DatabaseConnection,
    settings: &Settings,
    metrics: Arc<ChatMetrics>,
    remote: Option<Arc<dyn RemoteNodes>>,
) -> Chat {
    let presence_writes = crate::db::users::has_presence_columns(&database).await;
    if !presence_writes {
        warn!(
            "the database has no presence columns (users.\"isOnline\", \"lastSeenAt\", \
             \"connectionCount\", \"lastHeartbeatAt\", table user_online_status): presence is \
             not written (events still go out); apply the app's presence migration"
        );
    }
    let auth = Arc::new(Authenticator::new(
        &settings.auth.secret,
        settings.auth.leeway,
    ));
    Chat::start(
        database,
        auth,
        MessageIdKey::new(&settings.auth.secret),
        PidKey::new(&settings.auth.secret),
        &ChatOptions {
            remote,
            ..chat_options(settings, presence_writes, metrics)
        },
    )
}

/// The Engine.IO endpoint of the chat (and of the admin UI, mounted beside it).
type ChatEndpoint = EngineEndpoint<SocketLayer<ChatSocket>>;

/// Stops a running [`Application`] gracefully, within `server.shutdown_timeout`: the
/// sessions drain first (nothing more is read from the clients; what they sent is saved and
/// answered, then each session closes: WebSocket clients get a close frame, pending
/// long-polls a close packet, so clients reconnect at once), new sessions are refused, what
/// is left when the time is up is closed, then the server stops.
#[derive(Clone)]
pub struct ShutdownHandle {
    server: ServerHandle,
    endpoint: web::Data<EngineEndpoint<SocketLayer<ChatSocket>>>,
    timeout: Duration,
}

impl ShutdownHandle {
    /// Drains and closes every session and stops the server; resolves when it has stopped.
    pub async fn shutdown(&self) {
        self.endpoint.drain_all();
        let deadline = tokio::time::Instant::now() + self.timeout;
        while self.endpoint.load().0 > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (left, _) = self.endpoint.load();
        if left > 0 {
            warn!(
                "shutdown: {left} sessions still busy after server.shutdown_timeout, closing them"
            );
        }
        self.endpoint.close_all();
        self.server.stop(true).await;
    }
}

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    /// The operators' server and its port, when `metrics.enabled`.
    ops: Option<(Server, u16)>,
    shutdown_timeout: Duration,
    server: Server,
    chat: Chat,
    endpoint: web::Data<EngineEndpoint<SocketLayer<ChatSocket>>>,
}

impl Application {
    /// Opens the database, starts the actors and binds `server.host:server.port`.
    pub async fn build(settings: Settings) -> Result<Application, AppError> {
        for warning in settings.warnings() {
            warn!("{warning}");
        }
        if settings.uses_development_secret() {
            warn!(
                "!!! auth.secret is the built-in DEVELOPMENT secret: anyone can forge tokens, so \
                 Courier listens on {} only (server.host {:?} is ignored). Set SOCKET_SECRET \
                 (or auth.secret) to the app's secret to serve other hosts; \
                 COURIER_ENV=production refuses to start without one. !!!",
                settings.bind_host(),
                settings.server.host
            );
        }
        let database = db::connect(&settings.database).await.map_err(|e| {
            AppError::DatabaseOpen(db::open_error(
                &e,
                &settings.database.url,
                settings.database_url_source.as_deref(),
            ))
        })?;
        let migrated = db::migrate(&database, settings.database.migrate)
            .await
            .map_err(AppError::Database)?;
        // `cargo run` alone serves a working demo: its users are made on the embedded
        // database when missing (never on a database someone named).
        let seeded = if (settings.uses_development_secret() && settings.database_is_default())
            && migrated == MigrateOutcome::Migrated
        {
            http::demo::seed_if_missing(&database)
                .await
                .map_err(AppError::Database)?
                .is_some()
        } else {
            false
        };

        let listener =
            TcpListener::bind((settings.bind_host(), settings.server.port)).map_err(|error| {
                AppError::Listen {
                    setting: "server.port",
                    address: format!("{}:{}", settings.bind_host(), settings.server.port),
                    error,
                }
            })?;
        let addr = listener.local_addr().map_err(AppError::Bind)?;

        let registry = prometheus::Registry::new();
        let (engine_metrics, chat_metrics) = if settings.metrics.enabled {
            (
                Some(Arc::new(
                    EngineMetrics::new(&registry).map_err(AppError::Metrics)?,
                )),
                Arc::new(ChatMetrics::new(&registry).map_err(AppError::Metrics)?),
            )
        } else if settings.admin.enabled {
            // The admin UI's transport counts (not served: metrics are off).
            let unserved = prometheus::Registry::new();
            (
                Some(Arc::new(
                    EngineMetrics::new(&unserved).map_err(AppError::Metrics)?,
                )),
                Arc::new(ChatMetrics::off()),
            )
        } else {
            (None, Arc::new(ChatMetrics::off()))
        };
        // The admin UI: its engine numbers are read from the endpoint, made below (held
        // weakly: the endpoint holds the admin application).
        let endpoint_cell: Arc<std::sync::OnceLock<std::sync::Weak<ChatEndpoint>>> = Arc::default();
        let admin = settings.admin.enabled.then(|| {
            let (cell, metrics) = (endpoint_cell.clone(), engine_metrics.clone());
            let admin = Admin::new(
                &settings.admin,
                Box::new(move || {
                    let endpoint = cell.get().and_then(std::sync::Weak::upgrade);
                    let sessions = endpoint.map_or(0, |e| e.load().0);
                    let polling = metrics.as_ref().map_or(0, |m| {
                        usize::try_from(m.sockets_on(TransportKind::Polling).get()).unwrap_or(0)
                    });
                    (sessions, polling)
                }),
            );
            admin.start_stats(Duration::from_millis(settings.admin.stats_interval));
            info!(
                "admin UI enabled on /admin ({:?} mode, {})",
                settings.admin.mode,
                if settings.admin.readonly {
                    "read-only"
                } else {
                    "NOT read-only"
                }
            );
            admin
        });
        let layer_ext = admin.as_ref().map(crate::admin::layer_ext);
        let cluster = match settings.redis.url() {
            Some(_) => {
                let metrics = match engine_metrics {
                    Some(_) => ClusterMetrics::new(&registry).map_err(AppError::Metrics)?,
                    None => ClusterMetrics::off(),
                };
                Some(
                    Cluster::start(&settings.redis, Arc::new(metrics))
                        .map_err(AppError::Cluster)?,
                )
            }
            None => None,
        };
        let remote = cluster.clone().map(|c| c as Arc<dyn RemoteNodes>);
        let chat = start_chat_with(database.clone(), &settings, chat_metrics.clone(), remote).await;
        if let Some(cluster) = &cluster {
            cluster.attach(chat.context.users.clone());
        }
        // The demo page and its session route: only with the built-in development secret.
        let demo = settings
            .uses_development_secret()
            .then(|| http::demo::enabled(&settings.auth, &database, &chat.context.users));
        let context = chat.context.clone();
        let connect_timeout = settings.socketio.connect_timeout();
        let attachment_timeout = Duration::from_millis(settings.socketio.attachment_timeout);
        let endpoint = web::Data::new(EngineEndpoint::new(
            EndpointOptions {
                config: engine_config(&settings),
                transports: settings.engineio.transports.clone(),
                max_buffered_packets: settings.engineio.max_buffered_packets,
                // A replay of what a client missed (recovery.max_replay events), and a margin
                // for the CONNECT answer and the events held while it is read.
                burst_packets: if settings.recovery.enabled {
                    settings.recovery.max_replay.saturating_add(REPLAY_MARGIN)
                } else {
                    0
                },
                cors_origins: settings.cors.origins.clone(),
                restricted_origins: if settings.admin.enabled {
                    settings.admin.origins.clone()
                } else {
                    Vec::new()
                },
                allow_same_origin: demo.is_some(),
                trusted_proxies: settings.server.trusted_proxies(),
                admission: AdmissionLimits {
                    max_sessions: settings.engineio.max_sessions,
                    max_pending: settings.engineio.max_pending_sessions,
                    max_pending_per_address: settings.engineio.max_pending_per_address,
                    handshake_rate: settings.engineio.handshake_rate,
                    exempt_loopback: settings.engineio.exempt_loopback,
                    fd_reserve: settings.engineio.fd_reserve,
                },
                request_timeout: Duration::from_millis(settings.engineio.request_timeout),
                fragment_timeout: Duration::from_millis(settings.engineio.fragment_timeout),
                close_timeout: settings.engineio.close_timeout(),
                metrics: engine_metrics.clone(),
            },
            move || {
                SocketLayer::new(ChatSocket::new(context.clone()), connect_timeout)
                    .attachment_timeout(attachment_timeout)
                    .extend(layer_ext.clone())
            },
        ));
        let _ = endpoint_cell.set(Arc::downgrade(&endpoint.clone().into_inner()));

        let routes = endpoint.clone();
        let loopback_only = settings.uses_development_secret();
        let demo_page = demo.is_some();
        let mut server = HttpServer::new(move || {
            let endpoint = routes.clone();
            App::new()
                // With the development secret, loopback host names only (DNS rebinding).
                .wrap(Condition::new(
                    loopback_only,
                    from_fn(http::loopback_host_only),
                ))
                .route("/healthz", web::get().to(http::healthz))
                .configure(http::demo::routes(demo.clone()))
                .configure(|cfg| engineio::mount(cfg, engineio::SOCKET_IO_PATH, endpoint))
        })
        .shutdown_timeout(settings.server.shutdown_timeout)
        // Each connection's descriptor and addresses, so that a transport whose client stopped
        // reading can have its connection cut off (engineio::conn).
        .on_connect(engineio::conn::Conn::on_connect)
        // Closing a connection (a WebSocket close, a refused request) should not linger.
        .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
        // A client that closes its side is gone: its pending long-poll GET must be dropped
        // (actix-web otherwise keeps a half-closed connection's request waiting).
        .h1_allow_half_closed(false)
        // Real-time frames go out at once: with Nagle's algorithm a small frame can wait for
        // the client's delayed ACK (tens of milliseconds).
        .tcp_nodelay(true)
        // Signals are handled by `handle_signals`, which closes the sessions first.
        .disable_signals();
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server.listen(listener).map_err(AppError::Bind)?.run();

        let allocator = allocator_gauges(&registry).map_err(AppError::Metrics)?;
        let ops = match engine_metrics.filter(|_| settings.metrics.enabled) {
            Some(engine_metrics) => Some(ops_server(
                &settings,
                Ops {
                    registry,
                    refresh: {
                        let (endpoint, chat) = (endpoint.clone(), chat.context.clone());
                        Box::new(move || {
                            allocator();
                            engine_metrics.pending.set(endpoint.load().1 as i64);
                            chat.metrics.set_write_queue(chat.write_queue_depth());
                        })
                    },
                    accepting: {
                        let endpoint = endpoint.clone();
                        Box::new(move || endpoint.accepting())
                    },
                    checks: {
                        let mut checks = vec![database_check(database)];
                        checks.extend(cluster.clone().map(redis_check));
                        checks
                    },
                    timeout: Duration::from_millis(settings.metrics.ready_timeout),
                },
            )?),
            None => None,
        };
        // Said once everything listens: the operators' port too.
        info!("listening on http://{addr}");
        if seeded {
            info!(
                "demo: made the users Alice and Bob in {}; open http://{addr}/demo",
                crate::setting::redact_url(&settings.database.url)
            );
        } else if demo_page {
            info!("demo: open http://{addr}/demo (Alice's and Bob's chats side by side)");
        }
        Ok(Application {
            port: addr.port(),
            ops,
            shutdown_timeout: Duration::from_secs(settings.server.shutdown_timeout),
            server,
            chat,
            endpoint,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of `/metrics` and `/readyz` (`metrics.bind`), when `metrics.enabled`.
    pub fn metrics_port(&self) -> Option<u16> {
        self.ops.as_ref().map(|(_, port)| *port)
    }

    /// A handle to stop the server (graceful or not) without closing sessions first.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// A handle for a graceful shutdown that closes every session first.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            server: self.server.handle(),
            endpoint: self.endpoint.clone(),
            timeout: self.shutdown_timeout,
        }
    }

    /// Shuts down gracefully on SIGINT or SIGTERM (see [`ShutdownHandle`]).
    pub(crate) fn handle_signals(&self) {
        let shutdown = self.shutdown_handle();
        actix_web::rt::spawn(async move {
            wait_for_signal().await;
            info!("signal received: closing sessions and shutting down");
            shutdown.shutdown().await;
        });
    }

    /// Runs until stopped (SIGINT/SIGTERM or [`ServerHandle::stop`]), then lets
    /// persistence finish every queued write before returning.
    pub async fn run_until_stopped(self) -> io::Result<()> {
        let ops = self.ops.map(|(server, _)| {
            let handle = server.handle();
            (actix_web::rt::spawn(server), handle)
        });
        let served = self.server.await;
        info!("server stopped; finishing queued writes");
        self.chat.shutdown().await;
        if let Some((task, handle)) = ops {
            handle.stop(false).await;
            let _ = task.await;
        }
        served
    }
}

/// File descriptors a process needs besides its sessions' sockets: listeners, the database
/// pool, Redis, log and library files.
const FD_OVERHEAD: u64 = 100;

/// Raises this process's soft open-file limit to its hard limit (each session holds a
/// socket), logs the ceiling, and warns when `max_sessions` sessions would not fit under it.
pub fn raise_open_file_limit(max_sessions: usize) {
    let (before, hard) = match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok(limits) => limits,
        Err(e) => return warn!("cannot read the open-file limit: {e}"),
    };
    let ceiling = rlimit::increase_nofile_limit(u64::MAX).unwrap_or_else(|e| {
        warn!("cannot raise the open-file limit from {before}: {e}");
        before
    });
    if ceiling > before {
        info!("open files: up to {ceiling} (soft limit raised from {before}; hard limit {hard})");
    } else {
        info!("open files: up to {ceiling} (hard limit {hard})");
    }
    let wanted = max_sessions as u64 + FD_OVERHEAD;
    if wanted > ceiling {
        warn!(
            "engineio.max_sessions = {max_sessions} needs about {wanted} open files, more than \
             this process may open ({ceiling}): past that, connections fail; raise the hard \
             limit (LimitNOFILE= in systemd, ulimit -Hn) or lower engineio.max_sessions"
        );
    }
}

/// The operators' server on `metrics.bind`: one worker, `/metrics` and `/readyz`.
fn ops_server(settings: &Settings, ops: Ops) -> Result<(Server, u16), AppError> {
    let listener =
        TcpListener::bind(settings.metrics.bind.as_str()).map_err(|error| AppError::Listen {
            setting: "metrics.bind",
            address: settings.metrics.bind.clone(),
            error,
        })?;
    let addr = listener.local_addr().map_err(AppError::Bind)?;
    let ops = Arc::new(ops);
    let server = HttpServer::new(move || App::new().configure(http::ops::routes(ops.clone())))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .map_err(AppError::Bind)?
        .run();
    info!("metrics and readiness on http://{addr}/metrics, http://{addr}/readyz");
    Ok((server, addr.port()))
}

/// `/readyz`'s check of the database: a ping.
fn database_check(database: DatabaseConnection) -> ReadinessCheck {
    ReadinessCheck {
        name: "database",
        check: Box::new(move || -> CheckFuture {
            let database = database.clone();
            Box::pin(async move { database.ping().await.map_err(|e| e.to_string()) })
        }),
    }
}

/// `/readyz`'s check of Redis (when `redis.url` is set): a `PING`.
fn redis_check(cluster: Arc<Cluster>) -> ReadinessCheck {
    ReadinessCheck {
        name: "redis",
        check: Box::new(move || -> CheckFuture {
            let cluster = cluster.clone();
            Box::pin(async move { cluster.ping().await })
        }),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                warn!("cannot listen for SIGTERM ({e}); only SIGINT stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
