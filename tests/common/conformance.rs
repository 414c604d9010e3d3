//! The protocol test server's handlers (used by `examples/conformance.rs` and the tests;
//! test support, not part of the shipped library).
//!
//! The public Engine.IO v4 and Socket.IO v5 protocol test suites run against a server with
//! this behaviour; that Courier passes them with these two small handlers shows that its
//! protocol layer is generic and the chat is only one application on it:
//!
//! - [`Echo`], a raw Engine.IO handler sending every message back (mounted at `/engine.io/`);
//! - [`ConformanceApp`], a Socket.IO application (at `/socket.io/`) with namespaces `/` and
//!   `/custom` that emits `auth` with the handshake's auth payload on connect, echoes
//!   `message` as `message-back` and acknowledges `message-with-ack` with its arguments,
//!   binary attachments included.

use std::collections::HashMap;
use std::time::Duration;

use actix::Message;
use actix_web::web;
use log::debug;
use serde_json::{json, Value};

use courier::engineio::{
    self, EndpointOptions, EngineConfig, EngineEndpoint, EngineHandler, EngineIo, EngineMessage,
    TransportKind, SOCKET_IO_PATH,
};
use courier::socketio::{Event, Packet, PacketData, SocketHandler, SocketIo, SocketLayer};

/// Where the raw Engine.IO echo is mounted.
pub const ENGINE_IO_PATH: &str = "/engine.io/";
/// The test suites' Socket.IO connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// The test suites' Engine.IO options: ping interval 300 ms, ping timeout 200 ms, max
/// payload 1000000, both transports, no allowed browser origins (requests without `Origin`
/// are always allowed).
pub fn endpoint_options() -> EndpointOptions {
    EndpointOptions {
        config: EngineConfig {
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            max_payload: 1_000_000,
        },
        transports: vec![TransportKind::Polling, TransportKind::Websocket],
        max_buffered_packets: 1024,
        burst_packets: 0,
        cors_origins: Vec::new(),
        restricted_origins: Vec::new(),
        allow_same_origin: false,
        trusted_proxies: Vec::new(),
        admission: courier::engineio::AdmissionLimits::unbounded(),
        request_timeout: Duration::from_secs(10),
        fragment_timeout: Duration::from_secs(10),
        close_timeout: Duration::from_secs(3),
        metrics: None,
    }
}

/// The two endpoints of the conformance server. Make them once, outside
/// `HttpServer::new`'s per-worker closure, so that every worker sees every session.
#[derive(Clone)]
pub struct Endpoints {
    /// The raw Engine.IO echo.
    pub engine: web::Data<EngineEndpoint<Echo>>,
    /// The Socket.IO test application.
    pub socket: web::Data<EngineEndpoint<SocketLayer<ConformanceApp>>>,
}

impl Endpoints {
    /// Both endpoints with `options`.
    pub fn new(options: &EndpointOptions) -> Self {
        Endpoints {
            engine: web::Data::new(EngineEndpoint::new(options.clone(), || Echo)),
            socket: web::Data::new(EngineEndpoint::new(options.clone(), || {
                SocketLayer::new(ConformanceApp::default(), CONNECT_TIMEOUT)
            })),
        }
    }

    /// Closes every session of both endpoints (before a shutdown).
    pub fn close_all(&self) {
        self.engine.close_all();
        self.socket.close_all();
    }
}

/// Mounts `/engine.io/` (echo), `/socket.io/` (the conformance app) and `/healthz`.
pub fn configure(cfg: &mut web::ServiceConfig, endpoints: &Endpoints) {
    cfg.route("/healthz", web::get().to(courier::http::healthz));
    engineio::mount(cfg, ENGINE_IO_PATH, endpoints.engine.clone());
    engineio::mount(cfg, SOCKET_IO_PATH, endpoints.socket.clone());
}

/// A push type for handlers nothing pushes to: it cannot be constructed.
#[derive(Message)]
#[rtype(result = "()")]
pub enum NoPush {}

/// Raw Engine.IO echo: every text message back as text, every binary one as binary.
pub struct Echo;

impl EngineHandler for Echo {
    type Push = NoPush;

    fn on_message(&mut self, message: EngineMessage, io: &mut EngineIo<'_, Self>) {
        match message {
            EngineMessage::Text(text) => io.send_text(&text),
            EngineMessage::Binary(data) => io.send_binary(data),
        }
    }

    fn on_push(&mut self, push: NoPush, _io: &mut EngineIo<'_, Self>) {
        match push {}
    }
}

/// The namespaces a client may connect to.
/// The namespaces the conformance app accepts.
pub const NAMESPACES: [&str; 2] = ["/", "/custom"];

/// The Socket.IO application of the suite's reference server.
/// The Socket.IO test application.
#[derive(Default)]
pub struct ConformanceApp {
    /// The auth payload of each accepted CONNECT, until `on_connected` emits it.
    auth: HashMap<String, Value>,
}

impl SocketHandler for ConformanceApp {
    type Push = NoPush;

    fn on_connect(
        &mut self,
        nsp: &str,
        auth: Option<&Value>,
        _io: &mut SocketIo<'_, '_, Self>,
    ) -> Result<(), Value> {
        if !NAMESPACES.contains(&nsp) {
            return Err(json!({ "message": "Invalid namespace" }));
        }
        let auth = auth.cloned().unwrap_or_else(|| json!({}));
        self.auth.insert(nsp.to_owned(), auth);
        Ok(())
    }

    fn on_connected(&mut self, nsp: &str, io: &mut SocketIo<'_, '_, Self>) {
        let auth = self.auth.remove(nsp).unwrap_or_else(|| json!({}));
        io.emit(nsp, "auth", vec![auth]);
    }

    fn on_event(&mut self, nsp: &str, event: Event, io: &mut SocketIo<'_, '_, Self>) {
        let Event {
            name,
            args,
            ack,
            attachments,
        } = event;
        let data = match (name.as_str(), ack) {
            ("message", _) if attachments.is_empty() => PacketData::Event {
                event: "message-back".into(),
                args,
                id: None,
            },
            ("message", _) => PacketData::BinaryEvent {
                event: "message-back".into(),
                args,
                id: None,
                attachments,
            },
            ("message-with-ack", Some(id)) if attachments.is_empty() => {
                PacketData::Ack { args, id }
            }
            ("message-with-ack", Some(id)) => PacketData::BinaryAck {
                args,
                id,
                attachments,
            },
            _ => {
                debug!("session {}: event {name:?} ignored", io.engine_sid());
                return;
            }
        };
        io.send(&Packet::new(nsp, data));
    }

    fn on_push(&mut self, push: NoPush, _io: &mut SocketIo<'_, '_, Self>) {
        match push {}
    }

    fn on_disconnect(&mut self, nsp: &str, _reason: &str) {
        self.auth.remove(nsp);
    }
}
