//! The server over raw WebSocket frames: handshake, authentication, namespaces, heartbeat,
//! limits and protocol errors.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{spawn_app, Received, SECRET};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs256(secret: &str, claims: serde_json::Value) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[actix_web::test]
async fn open_packet_carries_the_configured_parameters() {
    let app = spawn_app(&[
        ("COURIER__ENGINEIO__PING_INTERVAL", "1234"),
        ("COURIER__ENGINEIO__PING_TIMEOUT", "567"),
        ("COURIER__ENGINEIO__MAX_PAYLOAD", "89012"),
    ])
    .await;
    let (_client, open) = app.connect_ws().await;
    let sid = open["sid"].as_str().unwrap();
    assert_eq!(sid.len(), 20);
    assert_eq!(open["upgrades"], json!([]));
    assert_eq!(open["pingInterval"], json!(1234));
    assert_eq!(open["pingTimeout"], json!(567));
    assert_eq!(open["maxPayload"], json!(89012));
    let (_other, open2) = app.connect_ws().await;
    assert_ne!(open2["sid"], open["sid"]);
}

#[actix_web::test]
async fn good_token_connects() {
    let app = spawn_app(&[]).await;
    let (mut client, open) = app.connect_ws().await;
    client
        .send_text(&format!(r#"40{{"token":"{}"}}"#, app.token("user-1")))
        .await;
    let reply = client.recv_text().await;
    let body: serde_json::Value =
        serde_json::from_str(reply.strip_prefix("40").expect("a CONNECT")).unwrap();
    let sid = body["sid"].as_str().unwrap();
    assert_eq!(sid.len(), 20);
    assert_ne!(
        sid,
        open["sid"].as_str().unwrap(),
        "Socket.IO id differs from Engine.IO sid"
    );
}

async fn refused_with(app: &common::TestApp, connect: &str, expected: &str) {
    let (mut client, _) = app.connect_ws().await;
    client.send_text(connect).await;
    assert_eq!(client.recv_text().await, expected, "for {connect}");
    // The Engine.IO connection stays open: the client may retry.
    client
        .send_text(&format!(r#"40{{"token":"{}"}}"#, app.token("user-1")))
        .await;
    assert!(client.recv_text().await.starts_with(r#"40{"sid":"#));
}

const NO_TOKEN: &str = r#"44{"message":"Authentication error: No token"}"#;
const INVALID: &str = r#"44{"message":"Authentication error: Invalid token"}"#;

#[actix_web::test]
async fn missing_token_is_refused() {
    let app = spawn_app(&[]).await;
    refused_with(&app, "40", NO_TOKEN).await;
    refused_with(&app, "40{}", NO_TOKEN).await;
    refused_with(&app, r#"40{"token":""}"#, NO_TOKEN).await;
}

#[actix_web::test]
async fn wrong_signature_is_refused() {
    let app = spawn_app(&[]).await;
    let token = hs256("not-the-secret", json!({"userId": "u", "exp": now() + 60}));
    refused_with(&app, &format!(r#"40{{"token":"{token}"}}"#), INVALID).await;
}

#[actix_web::test]
async fn expired_token_is_refused() {
    let app = spawn_app(&[]).await;
    let token = hs256(SECRET, json!({"userId": "u", "exp": now() - 2}));
    refused_with(&app, &format!(r#"40{{"token":"{token}"}}"#), INVALID).await;
}

#[actix_web::test]
async fn alg_none_is_refused() {
    let app = spawn_app(&[]).await;
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(json!({"userId": "u", "exp": now() + 60}).to_string());
    refused_with(
        &app,
        &format!(r#"40{{"token":"{header}.{claims}."}}"#),
        INVALID,
    )
    .await;
}

#[actix_web::test]
async fn unknown_namespace_is_refused() {
    let app = spawn_app(&[]).await;
    let (mut client, _) = app.connect_ws().await;
    client
        .send_text(&format!(r#"40/admin,{{"token":"{}"}}"#, app.token("u")))
        .await;
    assert_eq!(
        client.recv_text().await,
        r#"44/admin,{"message":"Invalid namespace"}"#
    );
    client.send_text("40/custom").await;
    assert_eq!(
        client.recv_text().await,
        r#"44/custom,{"message":"Invalid namespace"}"#
    );
}

#[actix_web::test]
async fn ping_pong_keeps_the_session() {
    let app = spawn_app(&[
        ("COURIER__ENGINEIO__PING_INTERVAL", "150"),
        ("COURIER__ENGINEIO__PING_TIMEOUT", "1000"),
    ])
    .await;
    let mut client = app.connect_user("u").await;
    for _ in 0..3 {
        assert_eq!(client.recv_text().await, "2");
        client.send_text("3").await;
    }
    // WebSocket-level pings are answered too.
    client.send_ping(b"hi").await;
    loop {
        match client.recv().await {
            Received::Pong(data) => {
                assert_eq!(&data[..], b"hi");
                break;
            }
            Received::Text(t) if t == "2" => client.send_text("3").await,
            other => panic!("expected a pong, got {other:?}"),
        }
    }
}

#[actix_web::test]
async fn missing_pong_closes_the_session() {
    let app = spawn_app(&[
        ("COURIER__ENGINEIO__PING_INTERVAL", "100"),
        ("COURIER__ENGINEIO__PING_TIMEOUT", "150"),
    ])
    .await;
    let mut client = app.connect_user("u").await;
    assert_eq!(client.recv_text().await, "2");
    client.expect_closed(Duration::from_secs(2)).await;
}

#[actix_web::test]
async fn no_connect_within_connect_timeout_closes() {
    let app = spawn_app(&[("COURIER__SOCKETIO__CONNECT_TIMEOUT", "200")]).await;
    let (mut client, _) = app.connect_ws().await;
    client.expect_closed(Duration::from_secs(2)).await;
}

#[actix_web::test]
async fn oversize_message_closes_the_transport() {
    let app = spawn_app(&[("COURIER__ENGINEIO__MAX_PAYLOAD", "1000")]).await;
    let mut client = app.connect_user("u").await;
    let big = format!(r#"42["send_message","{}"]"#, "x".repeat(2000));
    client.send_text(&big).await;
    assert_eq!(client.expect_closed(WAIT_CLOSE).await, Some(1009));
}

const WAIT_CLOSE: Duration = Duration::from_secs(3);

#[actix_web::test]
async fn a_message_just_under_the_limit_is_accepted() {
    let app = spawn_app(&[("COURIER__ENGINEIO__MAX_PAYLOAD", "1000")]).await;
    let mut client = app.connect_user("u").await;
    let text = format!(r#"42["unknown_event","{}"]"#, "x".repeat(900));
    client.send_text(&text).await;
    client.expect_silence(Duration::from_millis(300)).await;
}

#[actix_web::test]
async fn socketio_disconnect_keeps_the_engineio_connection() {
    let app = spawn_app(&[
        ("COURIER__ENGINEIO__PING_INTERVAL", "200"),
        ("COURIER__ENGINEIO__PING_TIMEOUT", "1000"),
    ])
    .await;
    let mut client = app.connect_user("u").await;
    client.send_text("41").await;
    // No answer, and pings go on.
    assert_eq!(client.recv_text().await, "2");
    client.send_text("3").await;
    // The client may connect again on the same Engine.IO connection.
    client
        .send_text(&format!(r#"40{{"token":"{}"}}"#, app.token("u")))
        .await;
    assert!(client.recv_message().await.starts_with(r#"40{"sid":"#));
}

#[actix_web::test]
async fn malformed_packets_close_the_transport() {
    let app = spawn_app(&[]).await;
    for bad in [
        "42{}",
        "42[]",
        "42abc[\"x\"]",
        "9",
        "",
        "4",
        "42[\"connect\"]",
    ] {
        let mut client = app.connect_user("u").await;
        client.send_text(bad).await;
        client.expect_closed(WAIT_CLOSE).await;
    }
}

#[actix_web::test]
async fn events_before_connect_close_the_transport() {
    let app = spawn_app(&[]).await;
    let (mut client, _) = app.connect_ws().await;
    client.send_text(r#"42["send_message",{}]"#).await;
    client.expect_closed(WAIT_CLOSE).await;
}

#[actix_web::test]
async fn other_sockets_survive_a_bad_one() {
    let app = spawn_app(&[]).await;
    let mut good = app.connect_user("a").await;
    let mut bad = app.connect_user("b").await;
    bad.send_text("42{}").await;
    bad.expect_closed(WAIT_CLOSE).await;
    good.send_text("41").await;
    good.send_text(&format!(r#"40{{"token":"{}"}}"#, app.token("a")))
        .await;
    assert!(good.recv_message().await.starts_with(r#"40{"sid":"#));
}

#[actix_web::test]
async fn bad_engineio_requests_get_json_errors() {
    let app = spawn_app(&[("COURIER__ENGINEIO__TRANSPORTS", "websocket")]).await;
    let client = awc::Client::new();
    for (query, code, message) in [
        (
            "?EIO=3&transport=websocket",
            5,
            "Unsupported protocol version",
        ),
        ("?transport=websocket", 5, "Unsupported protocol version"),
        ("?EIO=4&transport=carrier-pigeon", 0, "Transport unknown"),
        ("?EIO=4&transport=polling", 0, "Transport unknown"),
        ("?EIO=4", 0, "Transport unknown"),
    ] {
        let mut resp = client
            .get(app.http(&format!("/socket.io/{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{query}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body, json!({"code": code, "message": message}), "{query}");
    }
    // A plain GET on the websocket transport (no upgrade headers) is a bad request.
    let mut resp = client
        .get(app.http("/socket.io/?EIO=4&transport=websocket"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], json!(3));
}

#[actix_web::test]
async fn healthz_answers() {
    let app = spawn_app(&[]).await;
    let resp = awc::Client::new()
        .get(app.http("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[actix_web::test]
async fn shutdown_closes_sessions_first_and_stops() {
    let settings = common::test_settings(&[("COURIER__SERVER__SHUTDOWN_TIMEOUT", "30")]);
    let app = courier::app::Application::build(settings).await.unwrap();
    let port = app.port();
    let shutdown = app.shutdown_handle();
    let running = actix_web::rt::spawn(app.run_until_stopped());
    let url = format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket");
    let mut client = common::WsClient::connect(&url).await;
    assert!(client.recv_text().await.starts_with('0'));
    // A long-poll is pending too.
    let polling = format!("http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling");
    let mut resp = awc::Client::new().get(&polling).send().await.unwrap();
    let open = resp.body().await.unwrap();
    let sid: serde_json::Value = serde_json::from_slice(&open[1..]).unwrap();
    let pending = actix_web::rt::spawn(async move {
        let mut resp = awc::Client::new()
            .get(format!("{polling}&sid={}", sid["sid"].as_str().unwrap()))
            .send()
            .await
            .unwrap();
        resp.body().await.unwrap()
    });
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;

    let stopping = actix_web::rt::spawn(async move { shutdown.shutdown().await });
    // The WebSocket client is told at once (not after the 30 s shutdown timeout)...
    client.expect_closed(Duration::from_secs(3)).await;
    // ...the pending long-poll gets a close packet...
    assert_eq!(&pending.await.unwrap()[..], b"1");
    // ...and the server stops.
    actix_web::rt::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("the shutdown completes")
        .unwrap();
    actix_web::rt::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("run_until_stopped returns")
        .unwrap()
        .unwrap();
}

#[actix_web::test]
async fn a_bad_query_string_gets_a_json_error() {
    let app = spawn_app(&[]).await;
    let mut resp = awc::Client::new()
        .get(app.http("/socket.io/?EIO=4&EIO=4&transport=polling"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"code": 3, "message": "Bad request"}));
}
