//! Building and running the server: [`Application::build`] binds the listener (port 0 picks
//! a free one, see [`Application::port`]) and wires settings, shared state and routes.

use std::io;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use log::{info, warn};

use crate::actors::chat::{ChatContext, ChatSocket};
use crate::actors::session::EngineConfig;
use crate::actors::socket::SocketLayer;
use crate::auth::Authenticator;
use crate::config::Settings;
use crate::http::{self, engineio::EngineEndpoint};

/// The Engine.IO parameters of `settings`.
pub fn engine_config(settings: &Settings) -> EngineConfig {
    EngineConfig {
        ping_interval: settings.engineio.ping_interval(),
        ping_timeout: settings.engineio.ping_timeout(),
        max_payload: settings.engineio.max_payload,
    }
}

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds `server.host:server.port` and prepares the server.
    pub async fn build(settings: Settings) -> io::Result<Application> {
        if settings.uses_development_secret() {
            warn!(
                "!!! auth.secret is the built-in DEVELOPMENT secret: anyone can forge tokens. \
                 Set SOCKET_SECRET (COURIER_ENV=production refuses to start with it). !!!"
            );
        }
        let listener = TcpListener::bind((settings.server.host.as_str(), settings.server.port))?;
        let addr = listener.local_addr()?;

        let chat = ChatContext {
            auth: Arc::new(Authenticator::new(
                &settings.auth.secret,
                settings.auth.leeway,
            )),
        };
        let connect_timeout = settings.socketio.connect_timeout();
        let endpoint = web::Data::new(EngineEndpoint {
            config: engine_config(&settings),
            transports: settings.engineio.transports.clone(),
            max_buffered_packets: settings.engineio.max_buffered_packets,
            factory: Arc::new(move || {
                SocketLayer::new(ChatSocket::new(chat.clone()), connect_timeout)
            }),
        });

        let mut server = HttpServer::new(move || {
            let endpoint = endpoint.clone();
            App::new()
                .route("/healthz", web::get().to(http::healthz))
                .configure(|cfg| http::mount_engine(cfg, http::SOCKET_IO_PATH, endpoint))
        })
        .shutdown_timeout(settings.server.shutdown_timeout);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server.listen(listener)?.run();
        info!("listening on http://{addr}");
        Ok(Application {
            port: addr.port(),
            server,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server (graceful or not).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Runs until stopped: SIGINT/SIGTERM or [`ServerHandle::stop`].
    pub async fn run_until_stopped(self) -> io::Result<()> {
        self.server.await
    }
}
