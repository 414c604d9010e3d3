//! The operators' port (`metrics.bind`): `/metrics` in the Prometheus text format counts
//! what clients do, `/readyz` names what is down (the database behind a TCP proxy that
//! refuses it) and turns 503 from the first moment of a shutdown, while the public port
//! still answers.

mod common;

use std::time::Duration;

use common::db::{Kind, TestDb};
use common::proxy::DbProxy;
use common::{eventually, spawn_app, spawn_app_on, TestApp};
use serde_json::{json, Value};

async fn get(url: &str) -> (u16, String, String) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let mut response = client
        .get(url)
        .send()
        .await
        .expect("the request is answered");
    let body = response.body().await.expect("a body");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (
        response.status().as_u16(),
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn ops(app: &TestApp, path: &str) -> String {
    let port = app.metrics_port.expect("metrics are on by default");
    format!("http://127.0.0.1:{port}{path}")
}

async fn readyz(app: &TestApp) -> (u16, Value) {
    let (status, _, body) = get(&ops(app, "/readyz")).await;
    (status, serde_json::from_str(&body).expect("JSON"))
}

use common::metric_value as value;

#[actix_web::test]
async fn metrics_count_sockets_events_and_refusals() {
    let app = spawn_app(&[]).await;
    let port = app.metrics_port.expect("metrics are on by default");
    assert_ne!(port, app.port, "not on the public port");
    // The public port does not serve them.
    let (status, _, _) = get(&app.http("/metrics")).await;
    assert_eq!(status, 404);

    let mut alice = app.connect_user("alice").await;
    // A bad send_message (refused: invalid), an event nobody knows (counted as "other").
    alice
        .emit("send_message", json!({"connectionId": 42}), Some(1))
        .await;
    alice.expect_event("error").await;
    alice.expect_ack(1).await;
    alice
        .emit("some-name-a-client-made-up", json!({}), None)
        .await;
    alice.emit("heartbeat", json!({}), None).await;
    // Events are handled in order: once this one is answered, all of them were counted.
    alice
        .emit("send_message", json!({"connectionId": 43}), Some(2))
        .await;
    alice.expect_event("error").await;
    alice.expect_ack(2).await;
    let (status, content_type, text) = get(&ops(&app, "/metrics")).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let expect = |name: &str, want: f64| {
        assert_eq!(value(&text, name), Some(want), "{name} in\n{text}");
    };
    expect(r#"courier_sockets{transport="websocket"}"#, 1.0);
    expect(r#"courier_sockets{transport="polling"}"#, 0.0);
    expect("courier_sessions_pending", 0.0);
    expect(
        r#"courier_events_received_total{event="send_message"}"#,
        2.0,
    );
    expect(r#"courier_events_received_total{event="heartbeat"}"#, 1.0);
    expect(r#"courier_events_received_total{event="other"}"#, 1.0);
    expect(r#"courier_messages_refused_total{reason="invalid"}"#, 2.0);
    expect("courier_users_online", 1.0);
    expect("courier_write_queue_depth", 0.0);
    assert!(
        !text.contains("some-name-a-client-made-up"),
        "labels stay bounded"
    );

    // The socket leaves: no socket counted.
    drop(alice);
    eventually("a closed socket is no longer counted", async || {
        let (_, _, text) = get(&ops(&app, "/metrics")).await;
        value(&text, r#"courier_sockets{transport="websocket"}"#) == Some(0.0)
            && value(&text, "courier_users_online") == Some(0.0)
    })
    .await;
}

#[actix_web::test]
async fn refused_handshakes_are_counted_by_cause() {
    let app = spawn_app(&[
        ("COURIER__ENGINEIO__MAX_SESSIONS", "1"),
        ("COURIER__ENGINEIO__EXEMPT_LOOPBACK", "false"),
    ])
    .await;
    let _first = app.connect_user("alice").await;
    let (status, _, _) = get(&app.http("/socket.io/?EIO=4&transport=polling")).await;
    assert_eq!(status, 503);
    let (_, _, text) = get(&ops(&app, "/metrics")).await;
    assert_eq!(
        value(
            &text,
            r#"courier_handshakes_refused_total{cause="max_sessions"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"courier_handshakes_refused_total{cause="handshake_rate"}"#
        ),
        Some(0.0)
    );
}

#[actix_web::test]
async fn metrics_off_serves_nothing() {
    let app = spawn_app(&[("COURIER__METRICS__ENABLED", "false")]).await;
    assert_eq!(app.metrics_port, None);
    let (status, _, _) = get(&app.http("/healthz")).await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn readiness_names_the_database_when_it_is_down() {
    let db = TestDb::new(Kind::Postgres).await;
    let proxy = DbProxy::start("127.0.0.1:5432".parse().unwrap());
    let app = spawn_app_on(
        &proxy.url(&db.url),
        &[("COURIER__METRICS__READY_TIMEOUT", "500")],
    )
    .await;
    assert_eq!(readyz(&app).await, (200, json!({"ready": true})));
    // The database goes away: every connection drops, new ones are refused.
    proxy.refuse(true);
    proxy.cut();
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], json!(false));
    assert!(
        body["down"]["database"].is_string(),
        "names the database: {body}"
    );
    assert_eq!(body["down"].as_object().map(|o| o.len()), Some(1));
    // Liveness is not readiness: the public port still answers.
    let (status, _, _) = get(&app.http("/healthz")).await;
    assert_eq!(status, 200);
    // It comes back: ready again, by itself.
    proxy.refuse(false);
    eventually("ready again once the database answers", async || {
        readyz(&app).await.0 == 200
    })
    .await;
}

#[actix_web::test]
async fn not_ready_from_the_first_moment_of_a_shutdown() {
    let db = TestDb::new(Kind::Postgres).await;
    let app = spawn_app_on(&db.url, &[("COURIER__SERVER__SHUTDOWN_TIMEOUT", "3")]).await;
    let alice = db.user("alice").await;
    let bob = db.user("bob").await;
    let ab = db.connection(&alice, &bob, "ACTIVE").await;
    let mut a = app.connect_user(&alice).await;
    assert_eq!(readyz(&app).await.0, 200);
    // A message held in flight (the table is locked) keeps the drain going.
    let lock = db.lock_messages().await;
    a.emit(
        "send_message",
        json!({"connectionId": ab, "content": "in flight", "tempId": "t1"}),
        Some(1),
    )
    .await;
    // The server took it: it holds its place in the write queue.
    eventually("the message is in flight", async || {
        app.metric("courier_write_queue_depth").await == 1.0
    })
    .await;
    let shutdown = app.shutdown.clone();
    let stopping = actix_web::rt::spawn(async move { shutdown.shutdown().await });
    // Ready until the shutdown begins, then not ready, while the message is still in flight.
    let not_ready = (
        503,
        json!({"ready": false, "down": {"server": "shutting down"}}),
    );
    eventually("not ready once the shutdown began", async || {
        let answer = readyz(&app).await;
        assert!(
            answer == not_ready || answer == (200, json!({"ready": true})),
            "{answer:?}"
        );
        answer == not_ready
    })
    .await;
    // The server still runs: the public port answers while the session drains.
    let (status, _, _) = get(&app.http("/healthz")).await;
    assert_eq!(status, 200);
    lock.release().await;
    a.expect_event("message_sent").await;
    let ack = a.expect_ack(1).await;
    assert_eq!(
        ack["tempId"],
        json!("t1"),
        "the message in flight is answered"
    );
    stopping.await.expect("the shutdown finishes");
}
