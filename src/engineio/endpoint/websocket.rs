//! WebSocket requests: a session on a WebSocket from the start, and a WebSocket that asks
//! to take a long-polling session over (the upgrade's probe).

use actix::Actor;
use actix_web::{web, HttpRequest, HttpResponse};
use log::debug;
use tokio::sync::oneshot;

use super::error::{busy, EngineError};
use super::state::{EngineEndpoint, SessionEntry};
use crate::engineio::conn::Conn;
use crate::engineio::session::{EngineHandler, EngineSession};
use crate::engineio::transport::{self, CloseReason, Inbound, TransportLink, WsEvent};
use crate::engineio::websocket::{self, WsOptions};
use crate::ids;

/// `GET ?transport=websocket`: a session on a WebSocket from the start.
pub(super) fn open_websocket<H: EngineHandler>(
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
    let (session_link, transport_link) = transport::link(endpoint.options.queue_capacity());
    websocket::attach(ws, stream, transport_link, ws_options(req, endpoint));
    EngineSession::new(
        ids::session_id(),
        endpoint.options.config.clone(),
        session_link,
        (endpoint.factory)(),
    )
    .client(client, ticket)
    .metrics(endpoint.options.metrics.clone())
    .burst(endpoint.options.burst_packets)
    .closing_on(endpoint.closing.subscribe())
    .start();
    response
}

/// `GET ?transport=websocket&sid=…`: a WebSocket that wants to take a polling session over.
/// The session must accept it as its probe (one at a time, never after an upgrade).
pub(super) async fn upgrade_websocket<H: EngineHandler>(
    req: &HttpRequest,
    body: web::Payload,
    endpoint: &EngineEndpoint<H>,
    entry: &SessionEntry,
) -> HttpResponse {
    let id = transport::next_id();
    let (outbound, outbound_rx) = transport::outbound(endpoint.options.queue_capacity());
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
    websocket::attach(
        ws,
        stream,
        TransportLink {
            id,
            inbound: entry.inbound.clone(),
            outbound: outbound_rx,
            kill: kill_switch,
        },
        ws_options(req, endpoint),
    );
    response
}

/// The options of a WebSocket on the connection of `req`.
fn ws_options<H: EngineHandler>(req: &HttpRequest, endpoint: &EngineEndpoint<H>) -> WsOptions {
    WsOptions {
        max_payload: endpoint.options.config.max_payload,
        fragment_timeout: endpoint.options.fragment_timeout,
        close_timeout: endpoint.options.close_timeout,
        conn: Conn::of(req),
        metrics: endpoint.options.metrics.clone(),
    }
}
