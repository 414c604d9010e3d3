//! Back-pressure instead of refusal, through the real server: with `chat.send_window = 4`
//! and the `messages` table locked by another session, a client that emits 50 messages
//! gets no answer and Courier reads nothing more from it (a WebSocket frame is not read; a
//! long-polling POST is not answered), its heartbeat survives; once the table is unlocked,
//! all 50 are saved in the order emitted, with no `error`.

mod common;

use std::time::Duration;

use common::backends::on_backends;
use common::db::Kind;
use common::world::world_with;
use common::{Polling, Received};
use serde_json::{json, Value};

const COUNT: usize = 50;
/// How long the table stays locked: several heartbeats. While reading is paused, a ping
/// whose pong may wait unread is followed by the next one after `max(ping_interval,
/// ping_timeout)`: one every 1.8 s here.
const LOCKED_FOR: Duration = Duration::from_millis(4000);

/// A window of 4 requests, and a heartbeat that goes on while the table is locked.
const SETTINGS: [(&str, &str); 4] = [
    ("COURIER__CHAT__SEND_WINDOW", "4"),
    // The locked table is not a database outage: the writes wait for it (SQLite answers
    // "database is locked", retried until `retry_for`), however long the lock is held.
    ("COURIER__DATABASE__RETRY_FOR", "30000"),
    ("COURIER__ENGINEIO__PING_INTERVAL", "300"),
    // The test answers pings between other awaits (the lock, the POST): deadlines of 200 ms,
    // then 1 s, closed the session when a loaded machine (the suite beside a window4 run)
    // held the test longer.
    ("COURIER__ENGINEIO__PING_TIMEOUT", "1800"),
];

fn send(connection_id: &str, i: usize) -> String {
    format!(
        "42{}",
        json!(["send_message", {"connectionId": connection_id, "content": format!("m{i}"), "tempId": format!("t{i}")}])
    )
}

fn assert_saved_in_order(contents: Vec<String>) {
    let expected: Vec<String> = (0..COUNT).map(|i| format!("m{i}")).collect();
    assert_eq!(contents, expected, "all saved, in the order emitted");
}

async fn websocket(kind: Kind) {
    let w = world_with(kind, &SETTINGS).await;
    let (db, app, alice, ab) = (&w.db, &w.app, &w.alice, &w.ab);
    let mut a = app.connect_user(alice).await;
    let lock = db.lock_messages().await;
    for i in 0..COUNT {
        a.send_text(&send(ab, i)).await;
    }
    // A ping of the client's: answered only once the server reads it again.
    a.send_text("2client").await;
    let until = tokio::time::Instant::now() + LOCKED_FOR;
    let mut server_pings = 0;
    while let Some(left) = until.checked_duration_since(tokio::time::Instant::now()) {
        match a.recv_within(left).await {
            Received::Text(t) if t == "2" => {
                server_pings += 1;
                // Answered, but not read by the paused server: the heartbeat must hold.
                a.send_text("3").await;
            }
            Received::Timeout => break,
            other => panic!("nothing but pings while the table is locked, got {other:?}"),
        }
    }
    assert!(
        server_pings >= 2,
        "the server kept pinging ({server_pings})"
    );
    assert!(db.contents(ab).await.is_empty());
    lock.release().await;
    let mut sent = 0;
    let mut pong = false;
    while sent < COUNT || !pong {
        match a.recv().await {
            Received::Text(t) if t == "2" => a.send_text("3").await,
            Received::Text(t) if t == "3client" => {
                // Read once the window had room again: after the first 46 answers.
                assert!(
                    sent >= COUNT - 4,
                    "the ping was read after the sends ({sent})"
                );
                pong = true;
            }
            Received::Text(t) => {
                let v: Value =
                    serde_json::from_str(t.strip_prefix("42").expect("an event")).expect("JSON");
                assert_eq!(v[0], json!("message_sent"), "no error: {t}");
                assert_eq!(v[1]["tempId"], json!(format!("t{sent}")));
                sent += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_saved_in_order(db.contents(ab).await);
    // Seen by operators: the pause, every message saved and acknowledged.
    assert!(app.metric("courier_backpressure_pauses_total").await >= 1.0);
    assert_eq!(
        app.metric("courier_messages_saved_total").await,
        COUNT as f64
    );
    assert_eq!(
        app.metric("courier_message_ack_seconds_count").await,
        COUNT as f64
    );
}

async fn polling(kind: Kind) {
    let w = world_with(kind, &SETTINGS).await;
    let (db, app, alice, ab) = (&w.db, &w.app, &w.alice, &w.ab);
    let polling = Polling::new(app);
    let sid = polling.connect_user(app, alice).await;
    let lock = db.lock_messages().await;
    let body: Vec<String> = (0..COUNT).map(|i| send(ab, i)).collect();
    let body = body.join("\u{1e}");
    let post = {
        let client = polling.client.clone();
        let url = polling.url(&sid);
        actix_web::rt::spawn(async move {
            let mut resp = client
                .post(url)
                .insert_header(("content-type", "text/plain;charset=UTF-8"))
                .send_body(body)
                .await
                .expect("POST");
            let text = resp.body().await.expect("body");
            (
                resp.status().as_u16(),
                String::from_utf8_lossy(&text).into_owned(),
            )
        })
    };
    // GETs go on (the heartbeat's pings ride on them); the POST is not answered.
    let until = tokio::time::Instant::now() + LOCKED_FOR;
    let mut server_pings = 0;
    while tokio::time::Instant::now() < until {
        let (status, payload) = polling.get(&sid).await;
        assert_eq!(status, 200);
        for packet in payload.split('\u{1e}') {
            assert_eq!(packet, "2", "nothing but pings while the table is locked");
            server_pings += 1;
        }
    }
    assert!(
        server_pings >= 2,
        "the server kept pinging ({server_pings})"
    );
    assert!(
        !post.is_finished(),
        "the POST is held while its packets wait"
    );
    assert!(db.contents(ab).await.is_empty());
    lock.release().await;
    let (status, text) = post.await.expect("the POST task");
    assert_eq!((status, text.as_str()), (200, "ok"));
    // The pong the client held back while its POST was open.
    assert_eq!(polling.post(&sid, "3").await, (200, "ok".to_string()));
    let mut sent = 0;
    while sent < COUNT {
        let (status, payload) = polling.get(&sid).await;
        assert_eq!(status, 200, "{payload}");
        for packet in payload.split('\u{1e}') {
            if packet == "2" {
                assert_eq!(polling.post(&sid, "3").await.0, 200);
                continue;
            }
            let v: Value =
                serde_json::from_str(packet.strip_prefix("42").expect("an event")).expect("JSON");
            assert_eq!(v[0], json!("message_sent"), "no error: {packet}");
            assert_eq!(v[1]["tempId"], json!(format!("t{sent}")));
            sent += 1;
        }
    }
    assert_saved_in_order(db.contents(ab).await);
}

on_backends!([postgres, sqlite] websocket, polling);
