//! The endpoint's routes: [`mount`] serves [`handle`] at a path; every request gets its
//! origin checked and CORS headers, and goes to the transport's handling by its query
//! (`EIO`, `transport`, `sid`) and method.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::EngineError;
use super::origin::preflight;
use super::polling::{open_polling, poll_post, session_get};
use super::state::{EngineEndpoint, EngineQuery};
use super::websocket::{open_websocket, upgrade_websocket};
use crate::engineio::session::EngineHandler;
use crate::engineio::transport::TransportKind;

/// Engine.IO's default path, where `socket.io-client` connects.
pub const SOCKET_IO_PATH: &str = "/socket.io/";

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
            Some(entry) if get => session_get(req, &entry, endpoint).await,
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
