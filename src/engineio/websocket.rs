//! The WebSocket transport over actix-ws.
//!
//! One local task per connection: it drains the session's outbound queue into the socket,
//! and reads from the socket (aggregating continuation frames up to `max_payload`, within a
//! time limit, answering WebSocket-level pings) what it forwards to the session. It ends
//! when the session fires the transport's kill switch, even with the socket stuck. Once it
//! ended, its connection has `close_timeout` to deliver what is still queued and close; a
//! connection still open then (its client does not read) is cut off ([`Conn::cut_off`]).

use std::sync::Arc;
use std::time::Duration;

use actix_ws::{CloseCode, Item, Message, MessageStream, ProtocolError, Session};
use bytes::BytesMut;
use bytestring::ByteString;
use futures_util::StreamExt;

use super::conn::Conn;
use super::metrics::EngineMetrics;
use super::transport::{
    report, CloseReason, Inbound, KillSwitch, Outbound, TransportKind, TransportLink, WsEvent,
};

/// How long a last close frame may take to go out before the connection is dropped.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// How a WebSocket transport behaves.
#[derive(Debug, Clone)]
pub(crate) struct WsOptions {
    /// Largest frame or message accepted.
    pub(crate) max_payload: usize,
    /// Longest a fragmented message may take to complete.
    pub(crate) fragment_timeout: Duration,
    /// Longest the connection stays open once the transport ended.
    pub(crate) close_timeout: Duration,
    /// The TCP connection, if known: what is cut off after `close_timeout`.
    pub(crate) conn: Option<Conn>,
    /// Where connections cut off are counted.
    pub(crate) metrics: Option<Arc<EngineMetrics>>,
}

/// Starts pumping `stream` into the session and the session's output into `ws`.
///
/// Frames and messages above `max_payload` end the connection with close code 1009; a
/// fragmented message not complete within `fragment_timeout` of its first frame ends it with
/// 1008 (a client cannot hold a growing buffer open for ever). Must be called on an actix
/// (Tokio local) runtime, e.g. inside an actix-web handler: the worker that owns the
/// connection, where it is cut off if it is still open `close_timeout` after the transport
/// ended (actix-web's dispatcher would otherwise keep it, and what it has queued, for as long
/// as its client does not read).
///
/// One task per connection does both directions: it writes what the session queues, and
/// reads the next message only once the previous one was handed to the session (the
/// session's bounded channel is the back-pressure: a paused or busy session stops the
/// reading, never the writing).
pub(crate) fn attach(ws: Session, stream: MessageStream, link: TransportLink, options: WsOptions) {
    actix_web::rt::spawn(async move {
        pump(
            ws,
            stream,
            link,
            options.max_payload,
            options.fragment_timeout,
        )
        .await;
        // Every handle on the socket is gone: the response ends once what is queued is
        // written, and the connection closes.
        if let Some(conn) = options.conn {
            conn.cut_off_after(
                options.close_timeout,
                TransportKind::Websocket,
                options.metrics,
                false,
            )
            .await;
        }
    });
}

async fn pump(
    ws: Session,
    stream: MessageStream,
    link: TransportLink,
    max_payload: usize,
    fragment_timeout: Duration,
) {
    let TransportLink {
        id,
        inbound,
        mut outbound,
        mut kill,
    } = link;
    let mut stream = stream.max_frame_size(max_payload);
    let mut ws = ws;
    // A fragmented message being received: text or binary, its bytes, its deadline.
    let mut partial: Option<(bool, BytesMut, tokio::time::Instant)> = None;
    // A message read and not yet taken by the session.
    let mut unread: Option<WsEvent> = None;
    // Why the client side ended, once it has (the session still hears of it).
    let mut ended: Option<CloseReason> = None;
    loop {
        let deadline = partial.as_ref().map(|(_, _, deadline)| *deadline);
        tokio::select! {
            biased;
            _ = kill.fired() => {
                // Killed (or the socket failed): one short try at a close frame, then let go.
                close(ws, CloseCode::Policy).await;
                return;
            }
            item = outbound.recv() => {
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
                    close(ws, CloseCode::Policy).await;
                    return;
                }
            }
            permit = inbound.reserve(), if unread.is_some() => {
                let Ok(permit) = permit else {
                    // The session is gone.
                    close(ws, CloseCode::Normal).await;
                    return;
                };
                if let Some(event) = unread.take() {
                    permit.send(Inbound::Ws { id, event });
                }
            }
            _ = sleep_until_some(deadline), if unread.is_none() && ended.is_none() => {
                let _ = ws.clone().close(Some(CloseCode::Policy.into())).await;
                ended = Some(CloseReason::TransportError("a fragmented message took too long".into()));
            }
            item = stream.next(), if unread.is_none() && ended.is_none() => {
                match read(item, &mut partial, &mut ws, max_payload, fragment_timeout).await {
                    Read::Event(event) => unread = Some(event),
                    Read::Nothing => {}
                    Read::End(reason) => ended = Some(reason),
                }
            }
        }
        if let Some(reason) = ended.take() {
            // The session learns why; the socket is closed even if it is gone already.
            report(&inbound, id, WsEvent::Closed(reason)).await;
            let _ = tokio::time::timeout(CLOSE_WAIT, ws.close(None)).await;
            return;
        }
    }
}

/// What one item of the WebSocket stream gives.
enum Read {
    /// A message for the session.
    Event(WsEvent),
    /// Nothing for the session (a ping answered, a fragment kept).
    Nothing,
    /// The client side ended.
    End(CloseReason),
}

async fn read(
    item: Option<Result<Message, ProtocolError>>,
    partial: &mut Option<(bool, BytesMut, tokio::time::Instant)>,
    ws: &mut Session,
    max_payload: usize,
    fragment_timeout: Duration,
) -> Read {
    let Some(item) = item else {
        return Read::End(CloseReason::ClientClosed);
    };
    match item {
        Ok(Message::Text(text)) => Read::Event(WsEvent::Text(text)),
        Ok(Message::Binary(bytes)) => Read::Event(WsEvent::Binary(bytes)),
        Ok(Message::Continuation(item)) => {
            match continuation(partial, item, max_payload, fragment_timeout) {
                Ok(Some(event)) => Read::Event(event),
                Ok(None) => Read::Nothing,
                Err(reason) => {
                    let code = match reason {
                        CloseReason::TooLarge => CloseCode::Size,
                        _ => CloseCode::Protocol,
                    };
                    let _ = ws.clone().close(Some(code.into())).await;
                    Read::End(reason)
                }
            }
        }
        Ok(Message::Ping(data)) => {
            if ws.pong(&data).await.is_err() {
                Read::End(CloseReason::ClientClosed)
            } else {
                Read::Nothing
            }
        }
        Ok(Message::Pong(_)) | Ok(Message::Nop) => Read::Nothing,
        Ok(Message::Close(_)) => Read::End(CloseReason::ClientClosed),
        Err(ProtocolError::Overflow) => {
            let _ = ws.clone().close(Some(CloseCode::Size.into())).await;
            Read::End(CloseReason::TooLarge)
        }
        Err(e) => {
            let _ = ws.clone().close(Some(CloseCode::Protocol.into())).await;
            Read::End(CloseReason::TransportError(e.to_string()))
        }
    }
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
