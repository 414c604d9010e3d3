//! Long-polling requests: the handshake (`GET` without sid) that opens a session, the GETs
//! that take its output and the POSTs that bring its packets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::BytesMut;
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::oneshot;

use crate::engineio::queue as mpsc;

use super::error::{busy, EngineError};
use super::state::{EngineEndpoint, SessionEntry};
use crate::engineio::session::{EngineHandler, EngineSession, Start};
use crate::engineio::transport::{self, Inbound, PollReply, TransportKind};
use crate::ids;

/// `GET ?transport=polling` without sid: a new long-polling session; the body is the
/// open packet.
pub(super) async fn open_polling<H: EngineHandler>(
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
pub(super) async fn poll_get(inbound: &mpsc::Sender<Inbound>) -> HttpResponse {
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

/// A long-polling POST: at most `max_payload` bytes of packets for the session, arriving
/// within `request_timeout` (a body that trickles in is cut off, and the session closes).
pub(super) async fn poll_post(
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
