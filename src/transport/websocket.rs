//! The WebSocket transport over actix-ws.
//!
//! Two local tasks per connection: a reader that aggregates continuation frames (up to
//! `max_payload`), answers WebSocket-level pings and forwards text/binary messages to the
//! session, and a writer that drains the session's outbound queue into the socket.

use actix_ws::{AggregatedMessage, CloseCode, MessageStream, ProtocolError, Session};
use futures_util::StreamExt;

use super::{report, CloseReason, Outbound, TransportLink, WsEvent};

/// Starts pumping `stream` into the session and the session's output into `ws`.
///
/// Frames and aggregated messages above `max_payload` end the connection with close code
/// 1009. Must be called on an actix (Tokio local) runtime, e.g. inside an actix-web handler.
pub fn attach(ws: Session, stream: MessageStream, link: TransportLink, max_payload: usize) {
    let TransportLink {
        id,
        inbound,
        outbound,
    } = link;
    let mut stream = stream
        .max_frame_size(max_payload)
        .aggregate_continuations()
        .max_continuation_size(max_payload);

    let mut pong_ws = ws.clone();
    let close_ws = ws.clone();
    actix_web::rt::spawn(async move {
        let reason = loop {
            let item = match stream.next().await {
                Some(item) => item,
                None => break CloseReason::ClientClosed,
            };
            let forward = match item {
                Ok(AggregatedMessage::Text(text)) => WsEvent::Text(text),
                Ok(AggregatedMessage::Binary(bytes)) => WsEvent::Binary(bytes),
                Ok(AggregatedMessage::Ping(data)) => {
                    if pong_ws.pong(&data).await.is_err() {
                        break CloseReason::ClientClosed;
                    }
                    continue;
                }
                Ok(AggregatedMessage::Pong(_)) => continue,
                Ok(AggregatedMessage::Close(_)) => break CloseReason::ClientClosed,
                Err(ProtocolError::Overflow) => {
                    let _ = close_ws.clone().close(Some(CloseCode::Size.into())).await;
                    break CloseReason::TooLarge;
                }
                Err(e) => {
                    let _ = close_ws
                        .clone()
                        .close(Some(CloseCode::Protocol.into()))
                        .await;
                    break CloseReason::TransportError(e.to_string());
                }
            };
            // Awaiting here is the inbound back-pressure: a busy session slows its reader.
            if !report(&inbound, id, forward).await {
                return;
            }
        };
        report(&inbound, id, WsEvent::Closed(reason)).await;
        // Make sure the socket is closed even when the session is gone already.
        let _ = close_ws.close(None).await;
    });

    actix_web::rt::spawn(writer(ws, outbound));
}

async fn writer(mut ws: Session, mut outbound: tokio::sync::mpsc::Receiver<Outbound>) {
    while let Some(item) = outbound.recv().await {
        let sent = match item {
            Outbound::Text(text) => ws.text(text).await,
            Outbound::Binary(bytes) => ws.binary(bytes).await,
            Outbound::Close(code) => {
                let _ = ws.close(Some(CloseCode::from(code).into())).await;
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
    // The session dropped its sender without a close: close normally.
    let _ = ws.close(Some(CloseCode::Normal.into())).await;
}
