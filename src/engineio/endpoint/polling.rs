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
use tokio::sync::{oneshot, watch};

use crate::engineio::queue as mpsc;

use super::error::{busy, EngineError};
use super::state::{EngineEndpoint, SessionEntry};
use crate::engineio::conn::Conn;
use crate::engineio::metrics::EngineMetrics;
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
            gets: Arc::new(watch::Sender::new(0)),
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
    .burst(endpoint.options.burst_packets)
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

/// A long-polling GET of the session `entry`: [`poll_get`]. Its answer's connection is then
/// watched until the client comes for more: if the session ends first (its client stopped
/// polling) and that connection still holds bytes its client did not take
/// `close_timeout` later, it is cut off (actix-web would keep it, and the answer, for as
/// long as the client does not read).
pub(super) async fn session_get<H: EngineHandler>(
    req: &HttpRequest,
    entry: &SessionEntry,
    endpoint: &EngineEndpoint<H>,
) -> HttpResponse {
    entry.gets.send_modify(|n| *n = n.wrapping_add(1));
    // Subscribed after this GET's count: it sees the next one.
    let gets = entry.gets.subscribe();
    let response = poll_get(&entry.inbound).await;
    if let (true, Some(conn)) = (response.status().is_success(), Conn::of(req)) {
        let options = &endpoint.options;
        // Longer than a session that gets no GET lives (its pings go unanswered).
        let config = &options.config;
        let watched = 2 * (config.ping_interval + config.ping_timeout) + options.close_timeout;
        actix_web::rt::spawn(watch_answer(
            conn,
            gets,
            watched,
            options.close_timeout,
            options.metrics.clone(),
        ));
    }
    response
}

/// Waits (at most `watched`) for the client's next GET, or for the end of the session; on
/// the end, cuts `conn` off if it still holds bytes its client did not take `close_timeout`
/// later.
async fn watch_answer(
    conn: Conn,
    mut gets: watch::Receiver<u64>,
    watched: Duration,
    close_timeout: Duration,
    metrics: Option<Arc<EngineMetrics>>,
) {
    match tokio::time::timeout(watched, gets.changed()).await {
        // The session ended (its entry, the sender, is gone) with the answer not all taken.
        Ok(Err(_)) if conn.undelivered() => {
            conn.cut_off_after(close_timeout, TransportKind::Polling, metrics, true)
                .await
        }
        // Taken; or its client came for more (so it took this answer); or the session went
        // on without (upgraded to a WebSocket).
        Ok(Err(_)) | Ok(Ok(())) | Err(_) => {}
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
