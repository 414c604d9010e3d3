//! The Engine.IO HTTP endpoint (`/socket.io/`): query validation, Engine.IO's JSON error
//! bodies, and the WebSocket upgrade that starts a session actor.

use std::sync::Arc;

use actix::Actor;
use actix_web::{web, HttpRequest, HttpResponse};
use log::debug;
use serde::Deserialize;
use serde_json::json;

use crate::actors::session::{EngineConfig, EngineHandler, EngineSession};
use crate::config::TransportKind;
use crate::{ids, transport};

/// Engine.IO's error codes for HTTP errors, with their messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineError {
    /// `0`: the transport is not known or not enabled.
    UnknownTransport,
    /// `1`: the sid is not a live session.
    UnknownSid,
    /// `2`: wrong HTTP method for a handshake.
    BadHandshakeMethod,
    /// `3`: anything else that is wrong with the request.
    BadRequest,
    /// `4`: refused (e.g. a disallowed origin).
    Forbidden,
    /// `5`: an `EIO` other than 4.
    UnsupportedProtocolVersion,
}

impl EngineError {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            EngineError::UnknownTransport => 0,
            EngineError::UnknownSid => 1,
            EngineError::BadHandshakeMethod => 2,
            EngineError::BadRequest => 3,
            EngineError::Forbidden => 4,
            EngineError::UnsupportedProtocolVersion => 5,
        }
    }

    /// The message Engine.IO sends with the code.
    pub fn message(self) -> &'static str {
        match self {
            EngineError::UnknownTransport => "Transport unknown",
            EngineError::UnknownSid => "Session ID unknown",
            EngineError::BadHandshakeMethod => "Bad handshake method",
            EngineError::BadRequest => "Bad request",
            EngineError::Forbidden => "Forbidden",
            EngineError::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    /// The HTTP response: 403 for `Forbidden`, 400 otherwise, with `{"code","message"}`.
    pub fn response(self) -> HttpResponse {
        let body = json!({ "code": self.code(), "message": self.message() });
        match self {
            EngineError::Forbidden => HttpResponse::Forbidden().json(body),
            _ => HttpResponse::BadRequest().json(body),
        }
    }
}

/// The query string of an Engine.IO request.
#[derive(Debug, Deserialize)]
pub struct EngineQuery {
    #[serde(rename = "EIO")]
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
}

/// How an Engine.IO endpoint behaves.
#[derive(Debug, Clone)]
pub struct EndpointOptions {
    /// Engine.IO parameters of new sessions.
    pub config: EngineConfig,
    /// Enabled transports.
    pub transports: Vec<TransportKind>,
    /// Outgoing packets buffered per session.
    pub max_buffered_packets: usize,
    /// Allowed browser origins (requests without an `Origin` header are always allowed).
    pub cors_origins: Vec<String>,
}

/// One Engine.IO endpoint: its settings and how to make the handler of a new session.
pub struct EngineEndpoint<H: EngineHandler> {
    options: EndpointOptions,
    factory: Arc<dyn Fn() -> H + Send + Sync>,
}

impl<H: EngineHandler> EngineEndpoint<H> {
    /// An endpoint whose sessions get their handler from `factory`.
    pub fn new(options: EndpointOptions, factory: impl Fn() -> H + Send + Sync + 'static) -> Self {
        EngineEndpoint {
            options,
            factory: Arc::new(factory),
        }
    }
}

impl<H: EngineHandler> EngineEndpoint<H> {
    fn check(&self, query: &EngineQuery) -> Result<TransportKind, EngineError> {
        if query.eio.as_deref() != Some("4") {
            return Err(EngineError::UnsupportedProtocolVersion);
        }
        let transport = match query.transport.as_deref() {
            Some("websocket") => TransportKind::Websocket,
            Some("polling") => TransportKind::Polling,
            _ => return Err(EngineError::UnknownTransport),
        };
        if !self.options.transports.contains(&transport) {
            return Err(EngineError::UnknownTransport);
        }
        Ok(transport)
    }
}

/// `GET /socket.io/?EIO=4&transport=websocket`: opens a WebSocket session.
pub async fn handle<H: EngineHandler>(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<EngineQuery>,
    endpoint: web::Data<EngineEndpoint<H>>,
) -> HttpResponse {
    let transport = match endpoint.check(&query) {
        Ok(transport) => transport,
        Err(e) => return e.response(),
    };
    match transport {
        TransportKind::Polling => {
            // Long-polling is not served yet.
            EngineError::UnknownTransport.response()
        }
        TransportKind::Websocket => {
            if query.sid.is_some() {
                // Upgrades from polling are not served yet: no polling session can exist.
                return EngineError::UnknownSid.response();
            }
            open_websocket(&req, body, &endpoint)
        }
    }
}

fn open_websocket<H: EngineHandler>(
    req: &HttpRequest,
    body: web::Payload,
    endpoint: &EngineEndpoint<H>,
) -> HttpResponse {
    let (response, ws, stream) = match actix_ws::handle(req, body) {
        Ok(parts) => parts,
        Err(e) => {
            debug!("websocket handshake refused: {e}");
            return EngineError::BadRequest.response();
        }
    };
    let (session_link, transport_link) = transport::link(endpoint.options.max_buffered_packets);
    transport::websocket::attach(ws, stream, transport_link, endpoint.options.config.max_payload);
    let sid = ids::session_id();
    EngineSession::new(
        sid,
        endpoint.options.config.clone(),
        session_link,
        (endpoint.factory)(),
    )
    .start();
    response
}
