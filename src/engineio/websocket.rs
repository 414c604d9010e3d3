//! The WebSocket transport over actix-ws.
//!
//! Two local tasks per connection: a reader that aggregates continuation frames (up to
//! `max_payload`), answers WebSocket-level pings and forwards text/binary messages to the
//! session, and a writer that drains the session's outbound queue into the socket. Both end
//! when the session fires the transport's kill switch, even with the socket stuck.

use std::time::Duration;

use actix_ws::{AggregatedMessage, CloseCode, MessageStream, ProtocolError, Session};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::transport::{report, CloseReason, KillSwitch, Outbound, TransportLink, WsEvent};

/// How long a last close frame may take to go out before the connection is dropped.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// Starts pumping `stream` into the session and the session's output into `ws`.
///
/// Frames and aggregated messages above `max_payload` end the connection with close code
/// 1009. Must be called on an actix (Tokio local) runtime, e.g. inside an actix-web handler.
pub fn attach(ws: Session, stream: MessageStream, link: TransportLink, max_payload: usize) {
    let TransportLink {
        id,
        inbound,
        outbound,
        kill,
    } = link;
    let mut reader_kill = kill.clone();
    let mut stream = stream
        .max_frame_size(max_payload)
        .aggregate_continuations()
        .max_continuation_size(max_payload);

    let mut pong_ws = ws.clone();
    let close_ws = ws.clone();
    actix_web::rt::spawn(async move {
        let reason = loop {
            let item = tokio::select! {
                biased;
                _ = reader_kill.fired() => return,
                item = stream.next() => match item {
                    Some(item) => item,
                    None => break CloseReason::ClientClosed,
                },
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
        let _ = tokio::time::timeout(CLOSE_WAIT, close_ws.close(None)).await;
    });

    actix_web::rt::spawn(writer(ws, outbound, kill));
}

async fn writer(mut ws: Session, mut outbound: mpsc::Receiver<Outbound>, mut kill: KillSwitch) {
    loop {
        let item = tokio::select! {
            biased;
            _ = kill.fired() => break,
            item = outbound.recv() => item,
        };
        let sent = match item {
            Some(Outbound::Text(text)) => send_or_kill(ws.text(text), &mut kill).await,
            Some(Outbound::Binary(bytes)) => send_or_kill(ws.binary(bytes), &mut kill).await,
            Some(Outbound::Close(code)) => {
                close(ws, CloseCode::from(code)).await;
                return;
            }
            // The session dropped its sender without a close: close normally.
            None => {
                close(ws, CloseCode::Normal).await;
                return;
            }
        };
        if !sent {
            break;
        }
        // Let the connection write this frame out before the next is queued, so frames
        // are not coalesced into one TCP segment (Node's engine.io waits for each write;
        // the protocol test suites rely on it).
        tokio::task::yield_now().await;
    }
    // Killed (or the socket failed): one short try at a close frame, then let go.
    close(ws, CloseCode::Policy).await;
}

/// Sends, unless the kill switch fires first; `false` when the message did not go out.
async fn send_or_kill<F>(send: F, kill: &mut KillSwitch) -> bool
where
    F: std::future::Future<Output = Result<(), actix_ws::Closed>>,
{
    tokio::select! {
        biased;
        _ = kill.fired() => false,
        sent = send => sent.is_ok(),
    }
}

async fn close(ws: Session, code: CloseCode) {
    let _ = tokio::time::timeout(CLOSE_WAIT, ws.close(Some(code.into()))).await;
}
