//! Slow clients, through the real server: a client that stops reading while messages keep
//! coming is cut off. Its session is closed and counted (`courier_slow_clients_total`), its
//! TCP connection is shut down within a bounded time whatever its buffers still hold
//! (`engineio.close_timeout`, `courier_forced_closes_total`), and when it comes back with its
//! pid and offset it gets what it missed, or `courier:resync` when that is more than
//! `recovery.max_replay`.
//!
//! The slow client's socket holds little (a small receive buffer, and a small segment size,
//! from which the server sizes its send buffer), so that a few hundred kilobytes fill both
//! ends and the server's writes block, as with a client whose network stalled. The client
//! never reads until the server has reset its connection: a connection the server merely
//! stopped writing to would never end for it.

mod common;

use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use common::db::Kind;
use common::wait::eventually_within;
use common::world::{world_with, World};
use common::{Polling, TestApp, WsClient, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Outgoing packets a session buffers: past these a client that does not read is cut off.
const BUFFERED: (&str, &str) = ("COURIER__ENGINEIO__MAX_BUFFERED_PACKETS", "32");
/// Each message's content: 16 kB, so that a few fill the buffers of the slow client's socket.
const CONTENT_CHARS: usize = 16_000;
/// Allows them.
const CONTENT: (&str, &str) = ("COURIER__CHAT__MAX_CONTENT_CHARS", "20000");
/// Messages sent after the slow client was counted: missed, whatever its buffers held.
const AFTER: usize = 12;
/// How long the server may take to reset the slow client's connection: `close_timeout` (3 s
/// by default) after its session closed, with room for a loaded machine.
const CUT_WITHIN: Duration = Duration::from_secs(30);
/// Most messages sent before the slow client must have been counted.
const MAX_SENT: usize = 3000;

fn content(i: usize) -> String {
    format!("{i:05} {}", "x".repeat(CONTENT_CHARS))
}

/// Alice sends the messages `range` to Bob, and reads their answers.
async fn send(alice: &mut WsClient, ab: &str, range: Range<usize>) {
    for i in range.clone() {
        let send = json!(["send_message", {"connectionId": ab, "content": content(i), "tempId": format!("t{i}")}]);
        alice.send_text(&format!("42{send}")).await;
    }
    for _ in range {
        alice.next_event("message_sent", WAIT).await;
    }
}

/// Alice sends messages from `from` on, 16 at a time, until a client has been counted slow;
/// then `AFTER` more. Returns how many were sent in all.
async fn send_until_slow(w: &World, alice: &mut WsClient, from: usize) -> usize {
    let mut sent = from;
    while w.app.metric("courier_slow_clients_total").await < 1.0 {
        assert!(
            sent < MAX_SENT,
            "the client that does not read was never counted slow"
        );
        eprintln!("sent {sent}");
        send(alice, &w.ab, sent..sent + 16).await;
        sent += 16;
    }
    send(alice, &w.ab, sent..sent + AFTER).await;
    sent + AFTER
}

/// A connection to the app that holds little: a small receive buffer, and a small segment
/// size (the server's send buffer is sized from it).
fn tight_socket(port: u16) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.set_tcp_mss(536).expect("TCP_MAXSEG");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    socket.connect(&addr.into()).expect("connects");
    socket.set_nonblocking(true).expect("non-blocking");
    TcpStream::from_std(socket.into()).expect("a tokio stream")
}

/// Whether the server reset `stream` (it is asked without reading: what it holds stays).
fn was_reset(stream: &TcpStream) -> bool {
    matches!(stream.take_error(), Ok(Some(_)))
}

/// The `receive_message` contents among `frames` (Socket.IO text packets), and the offset of
/// the last one.
fn received(frames: &[String], got: &mut Vec<String>, offset: &mut Option<String>) {
    for frame in frames {
        let Some(event) = frame.strip_prefix("42") else {
            continue;
        };
        let Ok(Value::Array(args)) = serde_json::from_str::<Value>(event) else {
            continue;
        };
        if args.first() == Some(&json!("receive_message")) {
            got.push(args[1]["content"].as_str().unwrap_or_default().to_string());
            *offset = args.last().and_then(Value::as_str).map(str::to_string);
        }
    }
}

/// Asserts `got` are the first messages sent, in order.
fn assert_first_ones(got: &[String], total: usize) {
    assert!(
        got.len() < total,
        "the slow client missed some ({total} sent)"
    );
    let expected: Vec<String> = (0..got.len()).map(content).collect();
    assert!(got == expected, "what it got came first, in order");
}

/// A raw WebSocket client on a [`tight_socket`].
struct SlowWs(WebSocketStream<TcpStream>);

impl SlowWs {
    /// Opens a WebSocket as `user` and completes a CONNECT; the client and its pid.
    async fn connect(app: &TestApp, user: &str) -> (SlowWs, String) {
        let (ws, _) = tokio_tungstenite::client_async(app.ws_url(), tight_socket(app.port))
            .await
            .expect("the WebSocket handshake");
        let mut ws = SlowWs(ws);
        assert!(ws.next_text().await.starts_with('0'), "an open packet");
        let connect = format!(r#"40{{"token":"{}"}}"#, app.token(user));
        ws.0.send(Message::text(connect)).await.expect("send");
        let answer = ws.next_text().await;
        let answer: Value = serde_json::from_str(answer.strip_prefix("40").expect("CONNECT"))
            .expect("a CONNECT answer");
        let pid = answer["pid"].as_str().expect("recovery is on: a pid");
        (ws, pid.to_string())
    }

    async fn next_text(&mut self) -> String {
        match tokio::time::timeout(WAIT, self.0.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => text.as_str().to_string(),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    fn was_reset(&self) -> bool {
        was_reset(self.0.get_ref())
    }

    /// Reads what the socket still holds until the connection ends: the `receive_message`
    /// contents and the last offset.
    async fn drain(mut self) -> (Vec<String>, Option<String>) {
        let (mut got, mut offset) = (Vec::new(), None);
        loop {
            match tokio::time::timeout(CUT_WITHIN, self.0.next()).await {
                Err(_) => panic!("the connection did not end"),
                Ok(None) | Ok(Some(Err(_))) => return (got, offset),
                Ok(Some(Ok(Message::Text(text)))) => {
                    received(&[text.as_str().to_string()], &mut got, &mut offset)
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// Opens a socket for `user`, asking to recover `pid` from `offset` (none: from the pid's
/// start); the client and the CONNECT answer.
async fn recover(app: &TestApp, user: &str, pid: &str, offset: Option<&str>) -> (WsClient, Value) {
    let (mut client, _) = app.connect_ws().await;
    let auth = json!({"token": app.token(user), "pid": pid, "offset": offset});
    client.send_text(&format!("40{auth}")).await;
    let reply = client.recv_text().await;
    let answer = serde_json::from_str(reply.strip_prefix("40").expect("a CONNECT answer"))
        .expect("a CONNECT answer");
    (client, answer)
}

/// Asserts that `bob`, recovered, gets the messages `missed` (in order), then live ones.
async fn assert_replayed(
    w: &World,
    alice: &mut WsClient,
    bob: &mut WsClient,
    missed: Range<usize>,
) {
    for i in missed.clone() {
        let m = bob.next_event("receive_message", WAIT).await;
        assert_eq!(m[0]["content"], json!(content(i)), "replayed in order");
    }
    send(alice, &w.ab, missed.end..missed.end + 1).await;
    let m = bob.next_event("receive_message", WAIT).await;
    assert_eq!(m[0]["content"], json!(content(missed.end)), "then live");
}

/// Bob, cut off for not reading, and what he got.
struct CutOff {
    w: World,
    alice: WsClient,
    /// Messages Alice sent.
    total: usize,
    /// Bob's pid.
    pid: String,
    /// The contents Bob got, and the offset of the last.
    got: Vec<String>,
    offset: Option<String>,
}

/// Bob's WebSocket stops reading while Alice sends him messages: he is counted slow, and his
/// connection is reset (within [`CUT_WITHIN`], without his reading anything); then he reads
/// what his socket holds.
async fn websocket_client_that_stops_reading(max_replay: &str) -> CutOff {
    let w = world_with(
        Kind::Sqlite,
        &[
            BUFFERED,
            CONTENT,
            ("COURIER__RECOVERY__MAX_REPLAY", max_replay),
        ],
    )
    .await;
    let (bob, pid) = SlowWs::connect(&w.app, &w.bob).await;
    w.registered(&[(&w.bob, 1)]).await;
    let mut alice = w.app.connect_user(&w.alice).await;
    let total = send_until_slow(&w, &mut alice, 0).await;
    eventually_within(
        "the server resets the connection of the client that stopped reading",
        CUT_WITHIN,
        async || bob.was_reset(),
    )
    .await;
    let (got, offset) = bob.drain().await;
    assert_first_ones(&got, total);
    assert_eq!(w.app.metric("courier_slow_clients_total").await, 1.0);
    assert_eq!(
        w.app
            .metric(r#"courier_forced_closes_total{transport="websocket"}"#)
            .await,
        1.0
    );
    CutOff {
        w,
        alice,
        total,
        pid,
        got,
        offset,
    }
}

/// A WebSocket client that stops reading is cut off, its connection reset; it comes back with
/// its pid and offset and gets what it missed.
#[actix_web::test]
async fn a_websocket_client_that_stops_reading_is_cut_off_and_gets_the_replay() {
    let CutOff {
        w,
        mut alice,
        total,
        pid,
        got,
        offset,
    } = websocket_client_that_stops_reading("5000").await;
    let (mut bob, answer) = recover(&w.app, &w.bob, &pid, offset.as_deref()).await;
    assert_eq!(answer["pid"], json!(pid), "recovered: {answer}");
    assert_replayed(&w, &mut alice, &mut bob, got.len()..total).await;
}

/// The same client, having missed more than `recovery.max_replay`, is told `courier:resync`
/// (before any live event) on a fresh stream.
#[actix_web::test]
async fn a_websocket_client_cut_off_that_missed_too_much_is_told_to_resync() {
    let CutOff {
        w,
        mut alice,
        total,
        pid,
        got,
        offset,
    } = websocket_client_that_stops_reading("8").await;
    assert!(total - got.len() > 8, "more missed than max_replay");
    let (mut bob, answer) = recover(&w.app, &w.bob, &pid, offset.as_deref()).await;
    let fresh = answer["pid"].as_str().expect("a pid");
    assert_ne!(fresh, pid, "not recovered: {answer}");
    let resync = bob.recv_message().await;
    let args: Value =
        serde_json::from_str(resync.strip_prefix("42").expect("an event")).expect("JSON");
    assert_eq!(args[0], json!("courier:resync"), "first: {resync}");
    assert_eq!(args[1], json!({"reason": "missed events"}));
    assert!(args[2].is_string(), "the new stream's offset: {resync}");
    send(&mut alice, &w.ab, total..total + 1).await;
    let m = bob.next_event("receive_message", WAIT).await;
    assert_eq!(
        m[0]["content"],
        json!(content(total)),
        "then live, nothing replayed"
    );
}

/// A long-polling client that stops polling, with a GET whose (large) answer it does not
/// read: its session is cut off when its buffer is full, the connection of that GET is reset,
/// and it comes back with its pid and gets what it missed.
#[actix_web::test]
async fn a_polling_client_that_stops_polling_is_cut_off_and_gets_the_replay() {
    let w = world_with(
        Kind::Sqlite,
        &[BUFFERED, CONTENT, ("COURIER__RECOVERY__MAX_REPLAY", "5000")],
    )
    .await;
    let polling = Polling::new(&w.app);
    let (sid, _) = polling.handshake().await;
    let connect = format!(r#"40{{"token":"{}"}}"#, w.app.token(&w.bob));
    assert_eq!(polling.post(&sid, &connect).await, (200, "ok".to_string()));
    let (status, answer) = polling.get(&sid).await;
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(answer.strip_prefix("40").expect("CONNECT"))
        .expect("a CONNECT answer");
    let pid = answer["pid"].as_str().expect("a pid").to_string();
    w.registered(&[(&w.bob, 1)]).await;
    let mut alice = w.app.connect_user(&w.alice).await;
    // Bob stops polling: these wait in his session's buffer (below its limit).
    send(&mut alice, &w.ab, 0..20).await;
    // One more GET, never read: answered with all of them, more than its socket takes.
    let mut get = tight_socket(w.app.port);
    let request = format!(
        "GET /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
        w.app.port
    );
    get.write_all(request.as_bytes()).await.expect("a GET");
    let total = send_until_slow(&w, &mut alice, 20).await;
    eventually_within(
        "the server resets the connection of the GET the client does not read",
        CUT_WITHIN,
        async || was_reset(&get),
    )
    .await;
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(CUT_WITHIN, get.read_to_end(&mut bytes))
        .await
        .expect("the connection ended");
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "the GET was answered: {head}"
    );
    // Memory was bounded: the answer held what the buffer held, at most its limit.
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .and_then(|l| l.trim().parse().ok())
        .expect("a content-length");
    assert!(
        length < 32 * (CONTENT_CHARS + 1000),
        "at most the buffer limit: {length}"
    );
    let frames: Vec<String> = body.split('\u{1e}').map(str::to_string).collect();
    let (mut got, mut offset) = (Vec::new(), None);
    received(&frames, &mut got, &mut offset);
    assert_first_ones(&got, total);
    assert_eq!(w.app.metric("courier_slow_clients_total").await, 1.0);
    assert_eq!(
        w.app
            .metric(r#"courier_forced_closes_total{transport="polling"}"#)
            .await,
        1.0
    );
    // The session is gone.
    assert_eq!(polling.get(&sid).await.0, 400);
    let (mut bob, answer) = recover(&w.app, &w.bob, &pid, offset.as_deref()).await;
    assert_eq!(answer["pid"], json!(pid), "recovered: {answer}");
    assert_replayed(&w, &mut alice, &mut bob, got.len()..total).await;
}
