//! The WebSocket transport over actix-ws.
//!
//! Two local tasks per connection: a reader that aggregates continuation frames (up to
//! `max_payload`, within a time limit), answers WebSocket-level pings and forwards
//! text/binary messages to the session, and a writer that drains the session's outbound
//! queue into the socket. Both end when the session fires the transport's kill switch, even
//! with the socket stuck.

use std::time::Duration;

use actix_ws::{CloseCode, Item, Message, MessageStream, ProtocolError, Session};
use bytes::BytesMut;
use bytestring::ByteString;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::transport::{report, CloseReason, KillSwitch, Outbound, TransportLink, WsEvent};

/// How long a last close frame may take to go out before the connection is dropped.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// Starts pumping `stream` into the session and the session's output into `ws`.
///
/// Frames and messages above `max_payload` end the connection with close code 1009; a
/// fragmented message not complete within `fragment_timeout` of its first frame ends it with
/// 1008 (a client cannot hold a growing buffer open for ever). Must be called on an actix
/// (Tokio local) runtime, e.g. inside an actix-web handler.
pub fn attach(
    ws: Session,
    stream: MessageStream,
    link: TransportLink,
    max_payload: usize,
    fragment_timeout: Duration,
) {
    let TransportLink {
        id,
        inbound,
        outbound,
        kill,
    } = link;
    let mut reader_kill = kill.clone();
    let mut stream = stream.max_frame_size(max_payload);

    let mut pong_ws = ws.clone();
    let close_ws = ws.clone();
    actix_web::rt::spawn(async move {
        // A fragmented message being received: text or binary, its bytes, its deadline.
        let mut partial: Option<(bool, BytesMut, tokio::time::Instant)> = None;
        let reason = loop {
            let deadline = partial.as_ref().map(|(_, _, deadline)| *deadline);
            let item = tokio::select! {
                biased;
                _ = reader_kill.fired() => return,
                _ = sleep_until_some(deadline) => {
                    let _ = close_ws.clone().close(Some(CloseCode::Policy.into())).await;
                    break CloseReason::TransportError("a fragmented message took too long".into());
                }
                item = stream.next() => match item {
                    Some(item) => item,
                    None => break CloseReason::ClientClosed,
                },
            };
            let forward = match item {
                Ok(Message::Text(text)) => WsEvent::Text(text),
                Ok(Message::Binary(bytes)) => WsEvent::Binary(bytes),
                Ok(Message::Continuation(item)) => {
                    match continuation(&mut partial, item, max_payload, fragment_timeout) {
                        Ok(Some(event)) => event,
                        Ok(None) => continue,
                        Err(reason) => {
                            let code = match reason {
                                CloseReason::TooLarge => CloseCode::Size,
                                _ => CloseCode::Protocol,
                            };
                            let _ = close_ws.clone().close(Some(code.into())).await;
                            break reason;
                        }
                    }
                }
                Ok(Message::Ping(data)) => {
                    if pong_ws.pong(&data).await.is_err() {
                        break CloseReason::ClientClosed;
                    }
                    continue;
                }
                Ok(Message::Pong(_)) | Ok(Message::Nop) => continue,
                Ok(Message::Close(_)) => break CloseReason::ClientClosed,
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

/// Resolves at `deadline`, or never without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// One frame of a fragmented message: the whole message once its last frame is in, at most
/// `max_payload` bytes.
fn continuation(
    partial: &mut Option<(bool, BytesMut, tokio::time::Instant)>,
    item: Item,
    max_payload: usize,
    fragment_timeout: Duration,
) -> Result<Option<WsEvent>, CloseReason> {
    let (first, data, last) = match item {
        Item::FirstText(data) => (Some(true), data, false),
        Item::FirstBinary(data) => (Some(false), data, false),
        Item::Continue(data) => (None, data, false),
        Item::Last(data) => (None, data, true),
    };
    match (first, partial.as_mut()) {
        (Some(text), None) => {
            let deadline = tokio::time::Instant::now() + fragment_timeout;
            *partial = Some((text, BytesMut::new(), deadline));
        }
        (None, Some(_)) => {}
        _ => {
            return Err(CloseReason::TransportError(
                "a continuation frame out of place".into(),
            ))
        }
    }
    let Some((text, buffer, _)) = partial.as_mut() else {
        return Ok(None);
    };
    if buffer.len() + data.len() > max_payload {
        return Err(CloseReason::TooLarge);
    }
    buffer.extend_from_slice(&data);
    if !last {
        return Ok(None);
    }
    let text = *text;
    let Some((_, buffer, _)) = partial.take() else {
        return Ok(None);
    };
    let bytes = buffer.freeze();
    if text {
        match ByteString::try_from(bytes) {
            Ok(text) => Ok(Some(WsEvent::Text(text))),
            Err(_) => Err(CloseReason::TransportError(
                "a text message that is not UTF-8".into(),
            )),
        }
    } else {
        Ok(Some(WsEvent::Binary(bytes)))
    }
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
