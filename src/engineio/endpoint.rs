//! The Engine.IO HTTP endpoint (`/socket.io/`): origin checks and CORS, query validation
//! with Engine.IO's JSON error bodies, HTTP long-polling (handshake, GET, POST), WebSocket
//! sessions, and the upgrade of a polling session to WebSocket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Actor;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::BytesMut;
use futures_util::StreamExt;
use log::debug;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use super::admission::{Admission, AdmissionLimits, Ticket};
use super::client::{client_info, ClientInfo, IpNet};
use super::metrics::EngineMetrics;
use super::session::{EngineConfig, EngineHandler, EngineSession, Stage, Start};

use super::transport::{self, CloseReason, Inbound, PollReply, TransportLink, WsEvent};
use crate::ids;

/// The transports a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Polling,
    Websocket,
}

impl TransportKind {
    /// The name used on the wire (`transport=` query parameter).
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Polling => "polling",
            TransportKind::Websocket => "websocket",
        }
    }
}

/// Engine.IO's default path, where `socket.io-client` connects.
pub const SOCKET_IO_PATH: &str = "/socket.io/";

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
    /// Origins also allowed (with the same credentialed CORS), whose sessions are marked
    /// [`ClientInfo::restricted`]: the origin of an application that may reach only part of
    /// the layer above (the admin UI, which may connect to its own namespace only). CORS is
    /// decided per request, before anything above Engine.IO is known, so the restriction is
    /// carried by the session.
    pub restricted_origins: Vec<String>,
    /// Also allow a browser request whose `Origin` is the very host it was sent to (its
    /// `Host` header): a page this server serves itself, such as the demo page.
    pub allow_same_origin: bool,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpNet>,
    /// Bounds on sessions (see [`super::admission`]).
    pub admission: AdmissionLimits,
    /// Longest a long-polling POST may take to arrive.
    pub request_timeout: Duration,
    /// Longest a fragmented WebSocket message may take to complete.
    pub fragment_timeout: Duration,
    /// Where sessions are counted, if anywhere.
    pub metrics: Option<Arc<EngineMetrics>>,
}

/// The live long-polling sessions of an endpoint, by sid: how to reach each one from any
/// worker (a WebSocket upgrade may arrive on another worker than the one that created it).
#[derive(Default)]
struct Sessions {
    map: Mutex<HashMap<String, SessionEntry>>,
}

#[derive(Clone)]
struct SessionEntry {
    inbound: mpsc::Sender<Inbound>,
    /// A POST is being received.
    posting: Arc<AtomicBool>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionEntry>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, sid: &str) -> Option<SessionEntry> {
        self.lock().get(sid).cloned()
    }
}

/// One Engine.IO endpoint: its settings and how to make the handler of a new session.
pub struct EngineEndpoint<H: EngineHandler> {
    options: EndpointOptions,
    factory: Arc<dyn Fn() -> H + Send + Sync>,
    sessions: Arc<Sessions>,
    /// Drains, then closes, every session of this endpoint.
    closing: watch::Sender<Stage>,
    admission: Arc<Admission>,
}

impl<H: EngineHandler> EngineEndpoint<H> {
    /// An endpoint whose sessions get their handler from `factory`.
    pub fn new(options: EndpointOptions, factory: impl Fn() -> H + Send + Sync + 'static) -> Self {
        EngineEndpoint {
            admission: Admission::new(options.admission),
            options,
            factory: Arc::new(factory),
            sessions: Arc::default(),
            closing: watch::Sender::new(Stage::Running),
        }
    }

    /// `(sessions, sessions not established)` now.
    pub fn load(&self) -> (usize, usize) {
        self.admission.load()
    }

    /// Whether new sessions are admitted (`false` from the start of a shutdown).
    pub fn accepting(&self) -> bool {
        *self.closing.borrow() == Stage::Running
    }

    /// A place for a new session of `client`, if there is one (see [`busy`]); none while
    /// shutting down.
    fn admit(&self, client: &ClientInfo) -> Option<Ticket> {
        let refused = |cause: &str| {
            if let Some(m) = &self.options.metrics {
                m.refused.with_label_values(&[cause]).inc();
            }
        };
        if *self.closing.borrow() != Stage::Running {
            refused("shutting_down");
            return None;
        }
        match self.admission.admit(client.address) {
            Ok(ticket) => Some(ticket),
            Err(refusal) => {
                refused(refusal.label());
                None
            }
        }
    }

    /// Drains every session (the server is shutting down): nothing more is read from the
    /// clients, each session closes once its handler has finished what it was given, and
    /// new sessions are refused (503).
    pub fn drain_all(&self) {
        self.closing.send_if_modified(|stage| {
            let changed = *stage < Stage::Draining;
            if changed {
                *stage = Stage::Draining;
            }
            changed
        });
    }

    /// Closes every session, present and future, of this endpoint (before a shutdown):
    /// WebSocket clients get a close frame, a pending long-poll GET a close packet.
    pub fn close_all(&self) {
        self.closing.send_replace(Stage::Closing);
    }

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

    /// The request's `Origin`, if it is allowed; `Err(Forbidden)` for any other origin.
    /// Requests without an `Origin` (non-browser clients) are allowed.
    fn allowed_origin(&self, req: &HttpRequest) -> Result<Option<String>, EngineError> {
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            return Ok(None);
        };
        let origin = origin.to_str().map_err(|_| EngineError::Forbidden)?;
        let listed = |list: &[String]| {
            list.iter()
                .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
        };
        let allowed = listed(&self.options.cors_origins)
            || listed(&self.options.restricted_origins)
            || (self.options.allow_same_origin && is_same_origin(req, origin));
        if allowed {
            Ok(Some(origin.to_string()))
        } else {
            debug!("refused a request from origin {origin:?}");
            Err(EngineError::Forbidden)
        }
    }

    /// Who the client of a new session is; marked restricted if its `Origin` is one of
    /// `restricted_origins` (and not an origin allowed without restriction).
    fn client_info(&self, req: &HttpRequest) -> ClientInfo {
        let mut client = client_info(req, &self.options.trusted_proxies);
        if let Some(origin) = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
        {
            let listed = |list: &[String]| {
                list.iter()
                    .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
            };
            client.restricted = listed(&self.options.restricted_origins)
                && !listed(&self.options.cors_origins)
                && !(self.options.allow_same_origin && is_same_origin(req, origin));
        }
        client
    }
}

/// Whether `origin` (`http(s)://host[:port]`) names the host `req` was sent to.
fn is_same_origin(req: &HttpRequest, origin: &str) -> bool {
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| !authority.is_empty() && authority.eq_ignore_ascii_case(host))
}

/// Every request to the endpoint: CORS and origin checks, then the transport's handling.
pub async fn handle<H: EngineHandler>(
    req: HttpRequest,
    body: web::Payload,
    endpoint: web::Data<EngineEndpoint<H>>,
) -> HttpResponse {
    let origin = match endpoint.allowed_origin(&req) {
        Ok(origin) => origin,
        Err(e) => return e.response(),
    };
    let mut response = if req.method() == Method::OPTIONS {
        preflight(&req)
    } else {
        // Parsed here rather than by an extractor, so that a bad query string still gets
        // Engine.IO's error body and the CORS headers.
        match web::Query::<EngineQuery>::from_query(req.query_string()) {
            Ok(query) => dispatch(&req, body, &query, &endpoint).await,
            Err(_) => EngineError::BadRequest.response(),
        }
    };
    if let Some(origin) = origin {
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        }
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// A CORS preflight: 204 with the allowed methods and headers (the origin headers are added
/// by [`handle`] when the origin is allowed).
fn preflight(req: &HttpRequest) -> HttpResponse {
    let mut response = HttpResponse::NoContent();
    response.insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"));
    let requested = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("content-type"));
    response.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, requested));
    response.insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"));
    response.finish()
}

async fn dispatch<H: EngineHandler>(
    req: &HttpRequest,
    body: web::Payload,
    query: &EngineQuery,
    endpoint: &EngineEndpoint<H>,
) -> HttpResponse {
    let transport = match endpoint.check(query) {
        Ok(transport) => transport,
        Err(e) => return e.response(),
    };
    let get = req.method() == Method::GET;
    let post = req.method() == Method::POST;
    match (transport, query.sid.as_deref()) {
        (TransportKind::Polling, None) if get => open_polling(req, endpoint).await,
        (TransportKind::Polling, None) => EngineError::BadHandshakeMethod.response(),
        (TransportKind::Polling, Some(sid)) => match endpoint.sessions.get(sid) {
            None => EngineError::UnknownSid.response(),
            Some(entry) if get => poll_get(&entry.inbound).await,
            Some(entry) if post => {
                poll_post(
                    &entry,
                    body,
                    endpoint.options.config.max_payload,
                    endpoint.options.request_timeout,
                )
                .await
            }
            Some(_) => EngineError::BadRequest.response(),
        },
        (TransportKind::Websocket, _) if !get => EngineError::BadHandshakeMethod.response(),
        (TransportKind::Websocket, None) => open_websocket(req, body, endpoint),
        (TransportKind::Websocket, Some(sid)) => match endpoint.sessions.get(sid) {
            None => EngineError::UnknownSid.response(),
            Some(entry) => upgrade_websocket(req, body, endpoint, &entry).await,
        },
    }
}

/// The `code` of the 503 answer to a handshake past a bound (Engine.IO's codes stop at 5).
pub const BUSY_CODE: u8 = 6;

/// The answer to a handshake past a bound: 503 `{"code":6,"message":"Server busy"}`.
fn busy() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, "1"))
        .json(json!({ "code": BUSY_CODE, "message": "Server busy" }))
}

/// `GET ?transport=websocket`: a session on a WebSocket from the start.
fn open_websocket<H: EngineHandler>(
    req: &HttpRequest,
    body: web::Payload,
    endpoint: &EngineEndpoint<H>,
) -> HttpResponse {
    let client = endpoint.client_info(req);
    let Some(ticket) = endpoint.admit(&client) else {
        return busy();
    };
    let (response, ws, stream) = match actix_ws::handle(req, body) {
        Ok(parts) => parts,
        Err(e) => {
            debug!("websocket handshake refused: {e}");
            return EngineError::BadRequest.response();
        }
    };
    let (session_link, transport_link) = transport::link(endpoint.options.max_buffered_packets);
    super::websocket::attach(
        ws,
        stream,
        transport_link,
        endpoint.options.config.max_payload,
        endpoint.options.fragment_timeout,
    );
    EngineSession::new(
        ids::session_id(),
        endpoint.options.config.clone(),
        session_link,
        (endpoint.factory)(),
    )
    .client(client, ticket)
    .metrics(endpoint.options.metrics.clone())
    .closing_on(endpoint.closing.subscribe())
    .start();
    response
}

/// `GET ?transport=polling` without sid: a new long-polling session; the body is the
/// open packet.
async fn open_polling<H: EngineHandler>(
    req: &HttpRequest,
    endpoint: &EngineEndpoint<H>,
) -> HttpResponse {
    let client = endpoint.client_info(req);
    let Some(ticket) = endpoint.admit(&client) else {
        return busy();
    };
    let sid = ids::session_id();
    let (inbound, inbound_rx) = transport::inbound();
    let upgrades = if endpoint
        .options
        .transports
        .contains(&TransportKind::Websocket)
    {
        vec![TransportKind::Websocket.as_str().to_string()]
    } else {
        Vec::new()
    };
    endpoint.sessions.lock().insert(
        sid.clone(),
        SessionEntry {
            inbound: inbound.clone(),
            posting: Arc::default(),
        },
    );
    let sessions = endpoint.sessions.clone();
    let forget = sid.clone();
    EngineSession::with_transport(
        sid,
        endpoint.options.config.clone(),
        inbound_rx,
        Start::Polling {
            buffer_limit: endpoint.options.max_buffered_packets,
            upgrades,
        },
        (endpoint.factory)(),
    )
    .on_stop(move || {
        sessions.lock().remove(&forget);
    })
    .client(client, ticket)
    .metrics(endpoint.options.metrics.clone())
    .closing_on(endpoint.closing.subscribe())
    .start();
    poll_get(&inbound).await
}

/// Tells the session its pending GET was abandoned if the request is dropped before the
/// answer (the client went away).
struct AbortGuard<'a> {
    inbound: &'a mpsc::Sender<Inbound>,
    armed: bool,
}

impl Drop for AbortGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Not `try_send`: the notice must not be lost to a momentarily full queue.
            let inbound = self.inbound.clone();
            actix_web::rt::spawn(async move {
                let _ = inbound.send(Inbound::PollAbort).await;
            });
        }
    }
}

/// A long-polling GET: waits for the session to have something to send.
async fn poll_get(inbound: &mpsc::Sender<Inbound>) -> HttpResponse {
    let (reply, answer) = oneshot::channel();
    if inbound.send(Inbound::PollGet(reply)).await.is_err() {
        return EngineError::UnknownSid.response();
    }
    let mut guard = AbortGuard {
        inbound,
        armed: true,
    };
    let answer = answer.await;
    guard.armed = false;
    match answer {
        Ok(PollReply::Ok(payload)) => HttpResponse::Ok()
            .content_type("text/plain; charset=UTF-8")
            .body(payload),
        Ok(PollReply::BadRequest) => EngineError::BadRequest.response(),
        Err(_) => EngineError::UnknownSid.response(),
    }
}

/// Clears a session's "POST in progress" flag when the POST is done, however it ends.
struct PostingGuard(Arc<AtomicBool>);

impl Drop for PostingGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// A long-polling POST: at most `max_payload` bytes of packets for the session.
/// A long-polling POST: at most `max_payload` bytes of packets for the session, arriving
/// within `request_timeout` (a body that trickles in is cut off, and the session closes).
async fn poll_post(
    entry: &SessionEntry,
    mut body: web::Payload,
    max_payload: usize,
    request_timeout: Duration,
) -> HttpResponse {
    if entry.posting.swap(true, Ordering::SeqCst) {
        // Two POSTs at once: refused, and the session closes.
        let _ = entry.inbound.send(Inbound::PollConcurrentPost).await;
        return EngineError::BadRequest.response();
    }
    let _posting = PostingGuard(entry.posting.clone());
    let read = async {
        let mut data = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else {
                return Err(EngineError::BadRequest.response());
            };
            if data.len() + chunk.len() > max_payload {
                let _ = entry.inbound.send(Inbound::PollTooLarge).await;
                return Err(HttpResponse::PayloadTooLarge()
                    .json(json!({ "code": 3, "message": "Payload too large" })));
            }
            data.extend_from_slice(&chunk);
        }
        Ok(data)
    };
    let data = match tokio::time::timeout(request_timeout, read).await {
        Ok(Ok(data)) => data,
        Ok(Err(refused)) => return refused,
        Err(_) => {
            let _ = entry.inbound.send(Inbound::PollTimeout).await;
            return HttpResponse::RequestTimeout()
                .json(json!({ "code": 3, "message": "Request timeout" }));
        }
    };
    let (reply, answer) = oneshot::channel();
    if entry
        .inbound
        .send(Inbound::PollPost(data.freeze(), reply))
        .await
        .is_err()
    {
        return EngineError::UnknownSid.response();
    }
    match answer.await {
        Ok(PollReply::Ok(text)) => HttpResponse::Ok()
            .content_type("text/html; charset=UTF-8")
            .body(text),
        Ok(PollReply::BadRequest) => EngineError::BadRequest.response(),
        Err(_) => EngineError::UnknownSid.response(),
    }
}

/// `GET ?transport=websocket&sid=…`: a WebSocket that wants to take a polling session over.
/// The session must accept it as its probe (one at a time, never after an upgrade).
async fn upgrade_websocket<H: EngineHandler>(
    req: &HttpRequest,
    body: web::Payload,
    endpoint: &EngineEndpoint<H>,
    entry: &SessionEntry,
) -> HttpResponse {
    let id = transport::next_id();
    let (outbound, outbound_rx) = transport::outbound(endpoint.options.max_buffered_packets);
    let (kill, kill_switch) = transport::kill_switch();
    let (accept, accepted) = oneshot::channel();
    let asked = entry
        .inbound
        .send(Inbound::WsProbe {
            id,
            outbound,
            kill,
            accept,
        })
        .await;
    if asked.is_err() {
        return EngineError::UnknownSid.response();
    }
    if !accepted.await.unwrap_or(false) {
        // Already upgraded (or another probe is on): like Node, complete the WebSocket
        // handshake and close it at once.
        return match actix_ws::handle(req, body) {
            Ok((response, ws, _stream)) => {
                actix_web::rt::spawn(async move {
                    let _ = ws.close(Some(actix_ws::CloseCode::Policy.into())).await;
                });
                response
            }
            Err(_) => EngineError::BadRequest.response(),
        };
    }
    let (response, ws, stream) = match actix_ws::handle(req, body) {
        Ok(parts) => parts,
        Err(e) => {
            debug!("websocket upgrade handshake refused: {e}");
            transport::report(
                &entry.inbound,
                id,
                WsEvent::Closed(CloseReason::ClientClosed),
            )
            .await;
            return EngineError::BadRequest.response();
        }
    };
    super::websocket::attach(
        ws,
        stream,
        TransportLink {
            id,
            inbound: entry.inbound.clone(),
            outbound: outbound_rx,
            kill: kill_switch,
        },
        endpoint.options.config.max_payload,
        endpoint.options.fragment_timeout,
    );
    response
}

/// Mounts an Engine.IO endpoint at `path` (with and without the trailing slash).
pub fn mount<H: EngineHandler>(
    cfg: &mut web::ServiceConfig,
    path: &str,
    endpoint: web::Data<EngineEndpoint<H>>,
) {
    let bare = path.trim_end_matches('/');
    for p in [path, bare] {
        cfg.service(
            web::resource(p)
                .app_data(endpoint.clone())
                .route(web::route().to(handle::<H>)),
        );
    }
}
