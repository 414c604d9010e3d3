//! Transports: the byte pipes under an Engine.IO session.
//!
//! A session actor never touches a socket. Everything that reaches it — WebSocket frames,
//! long-polling requests, a WebSocket that wants to take a polling session over — arrives as
//! an [`Inbound`] item on one bounded channel, and WebSocket output leaves as [`Outbound`]
//! items on another. Both are bounded: a client that sends faster than its session handles
//! is slowed down (the WebSocket reader awaits), and a client that stops reading fills its
//! outgoing queue and is disconnected instead of growing memory.
//!
//! Channels are `Send`, so a transport opened on one actix-web worker can feed a session
//! that lives on another (the polling → WebSocket upgrade does exactly that).
//!
//! [`TransportKind`] names the two transports (the `transport=` query parameter).

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use bytestring::ByteString;
use serde::Deserialize;
use tokio::sync::{oneshot, watch};

use crate::engineio::queue as mpsc;

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

/// Something that reached the session.
#[derive(Debug)]
pub enum Inbound {
    /// An event of the WebSocket transport `id`.
    Ws { id: u64, event: WsEvent },
    /// A long-polling GET: the reply is the payload to answer it with.
    PollGet(oneshot::Sender<PollReply>),
    /// A long-polling POST body (at most `max_payload` bytes).
    PollPost(Bytes, oneshot::Sender<PollReply>),
    /// The client of the pending long-polling GET went away.
    PollAbort,
    /// A POST body above `max_payload` arrived.
    PollTooLarge,
    /// A POST body did not arrive within the request timeout.
    PollTimeout,
    /// A POST arrived while another was still in progress.
    PollConcurrentPost,
    /// A WebSocket (transport `id`) asks to upgrade this polling session; the session
    /// answers `true` to take it as its probe.
    WsProbe {
        id: u64,
        outbound: mpsc::Sender<Outbound>,
        kill: Kill,
        accept: oneshot::Sender<bool>,
    },
}

/// What a WebSocket reader reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// A text message (one Engine.IO packet).
    Text(ByteString),
    /// A binary message (an Engine.IO binary message).
    Binary(Bytes),
    /// The WebSocket ended: closed by the client, or broken (the reason says which).
    Closed(CloseReason),
}

/// The session's answer to a long-polling request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollReply {
    /// 200 with this body (a payload for a GET, `ok` for a POST).
    Ok(String),
    /// 400 Bad request (wrong transport after an upgrade, concurrent GETs, a bad payload).
    BadRequest,
}

/// Why a transport ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed the connection.
    ClientClosed,
    /// A message above `max_payload`.
    TooLarge,
    /// The transport broke the WebSocket protocol (or the connection failed).
    TransportError(String),
}

/// Something to send over a WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// A text message.
    Text(ByteString),
    /// A binary message.
    Binary(Bytes),
    /// Close the connection with this WebSocket close code after what is queued.
    Close(u16),
}

/// WebSocket close code: normal closure.
pub(crate) const CLOSE_NORMAL: u16 = 1000;
/// WebSocket close code: protocol error.
pub(crate) const CLOSE_PROTOCOL: u16 = 1002;
/// WebSocket close code: message too big.
pub(crate) const CLOSE_TOO_BIG: u16 = 1009;
/// WebSocket close code: policy violation (e.g. a client that stopped reading).
pub(crate) const CLOSE_POLICY: u16 = 1008;

/// How many inbound items may wait for the session before the transport stops reading.
pub(crate) const INBOUND_QUEUE: usize = 64;

/// A new transport id (unique in this process).
pub(crate) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The session's inbound channel.
pub(crate) fn inbound() -> (mpsc::Sender<Inbound>, mpsc::Receiver<Inbound>) {
    mpsc::channel(INBOUND_QUEUE)
}

/// A WebSocket's outbound queue, bounded by `capacity`.
pub fn outbound(capacity: usize) -> (mpsc::Sender<Outbound>, mpsc::Receiver<Outbound>) {
    mpsc::channel(capacity.max(1))
}

/// Ends a WebSocket at once, whatever is still queued for it: the way out for a client that
/// stopped reading, whose writer may be stuck on a full socket. Dropping it kills too.
#[derive(Debug)]
pub struct Kill(watch::Sender<bool>);

/// The transport's side of a [`Kill`].
#[derive(Debug, Clone)]
pub struct KillSwitch(watch::Receiver<bool>);

/// A connected kill pair.
pub(crate) fn kill_switch() -> (Kill, KillSwitch) {
    let (tx, rx) = watch::channel(false);
    (Kill(tx), KillSwitch(rx))
}

impl Kill {
    /// Kills the transport now.
    pub(crate) fn fire(&self) {
        self.0.send_replace(true);
    }

    /// Kills the transport after `grace`, unless it has ended by itself (a writer that is
    /// not stuck finishes what is queued and closes long before).
    pub(crate) fn fire_after(self, grace: std::time::Duration) {
        actix_web::rt::spawn(async move {
            tokio::time::sleep(grace).await;
            self.fire();
        });
    }
}

impl KillSwitch {
    /// Resolves when the transport must end.
    pub(crate) async fn fired(&mut self) {
        // A dropped `Kill` counts as fired.
        let _ = self.0.wait_for(|killed| *killed).await;
    }
}

/// The session's ends of a WebSocket transport.
#[derive(Debug)]
pub struct SessionLink {
    /// The transport id.
    pub id: u64,
    /// Everything that reaches the session.
    pub inbound: mpsc::Receiver<Inbound>,
    /// Where to queue what the client should receive.
    pub outbound: mpsc::Sender<Outbound>,
    /// Ends the WebSocket at once.
    pub kill: Kill,
}

/// The transport's ends of a WebSocket transport.
#[derive(Debug)]
pub struct TransportLink {
    /// The transport id.
    pub id: u64,
    /// Feed what the client sent.
    pub inbound: mpsc::Sender<Inbound>,
    /// Drain what the client should receive.
    pub outbound: mpsc::Receiver<Outbound>,
    /// Tells the transport to end at once.
    pub kill: KillSwitch,
}

impl TransportLink {
    /// Reports a WebSocket event of this transport to the session; `false` when the
    /// session is gone.
    pub async fn report(&self, event: WsEvent) -> bool {
        report(&self.inbound, self.id, event).await
    }
}

/// Reports an event of WebSocket `id` to a session; `false` when the session is gone.
pub async fn report(inbound: &mpsc::Sender<Inbound>, id: u64, event: WsEvent) -> bool {
    inbound.send(Inbound::Ws { id, event }).await.is_ok()
}

/// A connected pair of links for a new WebSocket session; `outbound_capacity` bounds the
/// per-session send queue.
pub fn link(outbound_capacity: usize) -> (SessionLink, TransportLink) {
    let id = next_id();
    let (in_tx, in_rx) = inbound();
    let (out_tx, out_rx) = outbound(outbound_capacity);
    let (kill, kill_switch) = kill_switch();
    (
        SessionLink {
            id,
            inbound: in_rx,
            outbound: out_tx,
            kill,
        },
        TransportLink {
            id,
            inbound: in_tx,
            outbound: out_rx,
            kill: kill_switch,
        },
    )
}
