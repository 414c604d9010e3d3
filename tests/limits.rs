//! Bounded resources for clients that have not authenticated, through the real server:
//! caps on sessions not yet CONNECTed (in total and per client address), the handshake
//! rate per address, the cap on all sessions (HTTP 503 `{"code":6,"message":"Server
//! busy"}`), binary attachments refused before CONNECT, time limits on a partial binary
//! packet, a fragmented WebSocket message and a trickling POST, and the sockets per user.

mod common;

use std::time::Duration;

use awc::ws;
use bytes::Bytes;
use common::{eventually, spawn_app, Polling, Received, TestApp, WsClient};
use serde_json::{json, Value};

/// A polling handshake from `address` (named by `X-Forwarded-For`, believed from the
/// loopback proxy): the status and the body.
async fn handshake_from(app: &TestApp, address: &str) -> (u16, String) {
    let polling = Polling::new(app);
    let mut resp = polling
        .client
        .get(&polling.base)
        .insert_header(("X-Forwarded-For", address))
        .send()
        .await
        .expect("GET");
    let body = resp.body().await.expect("body");
    (
        resp.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn busy(response: &(u16, String)) {
    assert_eq!(response.0, 503, "{}", response.1);
    let body: Value = serde_json::from_str(&response.1).expect("a JSON body");
    assert_eq!(body, json!({"code": 6, "message": "Server busy"}));
}

/// The proxy in front of the tests' clients is loopback: X-Forwarded-For names them.
const BEHIND_A_PROXY: (&str, &str) = ("COURIER__SERVER__TRUSTED_PROXIES", "127.0.0.1");

#[actix_web::test]
async fn one_address_cannot_fill_the_cap_of_sessions_not_yet_connected() {
    let app = spawn_app(&[
        BEHIND_A_PROXY,
        ("COURIER__ENGINEIO__MAX_PENDING_SESSIONS", "5"),
        ("COURIER__ENGINEIO__MAX_PENDING_PER_ADDRESS", "2"),
    ])
    .await;
    // One client opens sessions and never CONNECTs: two, then refused.
    assert_eq!(handshake_from(&app, "198.51.100.7").await.0, 200);
    assert_eq!(handshake_from(&app, "198.51.100.7").await.0, 200);
    busy(&handshake_from(&app, "198.51.100.7").await);
    // Over WebSocket too.
    let refused =
        WsClient::try_connect(&app.ws_url(), &[("X-Forwarded-For", "198.51.100.7")]).await;
    assert_eq!(refused.err(), Some(503));
    // Other clients still get in, up to the global cap.
    assert_eq!(handshake_from(&app, "198.51.100.8").await.0, 200);
    assert_eq!(handshake_from(&app, "198.51.100.9").await.0, 200);
    assert_eq!(handshake_from(&app, "198.51.100.10").await.0, 200);
    busy(&handshake_from(&app, "198.51.100.11").await);
}

#[actix_web::test]
async fn a_connected_session_no_longer_counts_as_pending() {
    let app = spawn_app(&[
        BEHIND_A_PROXY,
        ("COURIER__ENGINEIO__MAX_PENDING_PER_ADDRESS", "1"),
    ])
    .await;
    let mut first = WsClient::try_connect(&app.ws_url(), &[("X-Forwarded-For", "203.0.113.5")])
        .await
        .expect("admitted");
    first.recv_text().await;
    assert_eq!(
        WsClient::try_connect(&app.ws_url(), &[("X-Forwarded-For", "203.0.113.5")])
            .await
            .err(),
        Some(503)
    );
    first
        .send_text(&format!(r#"40{{"token":"{}"}}"#, app.token("u1")))
        .await;
    assert!(first.recv_text().await.starts_with("40"));
    let second = WsClient::try_connect(&app.ws_url(), &[("X-Forwarded-For", "203.0.113.5")]).await;
    assert!(second.is_ok(), "admitted once the first connected");
}

#[actix_web::test]
async fn handshakes_are_rate_limited_per_address() {
    let app = spawn_app(&[
        BEHIND_A_PROXY,
        ("COURIER__ENGINEIO__HANDSHAKE_RATE__PER_SECOND", "1"),
        ("COURIER__ENGINEIO__HANDSHAKE_RATE__BURST", "3"),
    ])
    .await;
    for _ in 0..3 {
        assert_eq!(handshake_from(&app, "192.0.2.1").await.0, 200);
    }
    busy(&handshake_from(&app, "192.0.2.1").await);
    assert_eq!(
        handshake_from(&app, "192.0.2.2").await.0,
        200,
        "another address"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(handshake_from(&app, "192.0.2.1").await.0, 200, "refilled");
}

#[actix_web::test]
async fn all_sessions_are_capped() {
    let app = spawn_app(&[("COURIER__ENGINEIO__MAX_SESSIONS", "2")]).await;
    let a = app.connect_user("a").await;
    let _b = app.connect_user("b").await;
    busy(&Polling::new(&app).get_url(&Polling::new(&app).base).await);
    drop(a);
    // The place comes back when a session ends.
    eventually("a handshake admitted once a session ended", async || {
        Polling::new(&app).get_url(&Polling::new(&app).base).await.0 == 200
    })
    .await;
}

#[actix_web::test]
async fn binary_attachments_before_connect_close_the_session() {
    let app = spawn_app(&[]).await;
    let (mut client, _) = app.connect_ws().await;
    client
        .send_text(r#"451-["upload",{"_placeholder":true,"num":0}]"#)
        .await;
    assert_eq!(
        client.expect_closed(Duration::from_secs(3)).await,
        Some(1002)
    );
}

#[actix_web::test]
async fn a_partial_binary_packet_has_a_time_limit() {
    let app = spawn_app(&[("COURIER__SOCKETIO__ATTACHMENT_TIMEOUT", "300")]).await;
    let mut client = app.connect_user("u1").await;
    client
        .send_text(r#"451-["upload",{"_placeholder":true,"num":0}]"#)
        .await;
    // The attachment never comes.
    assert_eq!(
        client.expect_closed(Duration::from_secs(3)).await,
        Some(1002)
    );
    // A complete one in time is fine (and ignored: an unknown event).
    let mut client = app.connect_user("u2").await;
    client
        .send_text(r#"451-["upload",{"_placeholder":true,"num":0}]"#)
        .await;
    client.send_binary(&[1, 2, 3]).await;
    client.expect_silence(Duration::from_millis(600)).await;
}

#[actix_web::test]
async fn a_fragmented_websocket_message_has_a_time_limit() {
    let app = spawn_app(&[("COURIER__ENGINEIO__FRAGMENT_TIMEOUT", "300")]).await;
    let mut client = app.connect_user("u1").await;
    // A complete fragmented message is taken.
    client
        .send_frame(ws::Message::Continuation(actix_ws::Item::FirstText(
            Bytes::from_static(b"4"),
        )))
        .await;
    client
        .send_frame(ws::Message::Continuation(actix_ws::Item::Last(
            Bytes::from_static(b"2[\"x\"]"),
        )))
        .await;
    client.expect_silence(Duration::from_millis(500)).await;
    // One that never ends is cut off.
    client
        .send_frame(ws::Message::Continuation(actix_ws::Item::FirstText(
            Bytes::from_static(b"42[\"x\",\""),
        )))
        .await;
    assert_eq!(
        client.expect_closed(Duration::from_secs(3)).await,
        Some(1008)
    );
}

#[actix_web::test]
async fn a_trickling_post_is_cut_off() {
    let app = spawn_app(&[("COURIER__ENGINEIO__REQUEST_TIMEOUT", "300")]).await;
    let polling = Polling::new(&app);
    let sid = polling.connect_user(&app, "u1").await;
    // Headers and the start of a body that then stops coming.
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connects");
    let head = format!(
        "POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: text/plain\r\nContent-Length: 100\r\n\r\n42[\"x\","
    );
    tokio::io::AsyncWriteExt::write_all(&mut raw, head.as_bytes())
        .await
        .expect("write");
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::io::AsyncReadExt::read(&mut raw, &mut answer),
    )
    .await
    .expect("answered in time")
    .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    // Without the request timeout nothing would answer: the body never completes.
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // The session is closed.
    let (status, body) = polling.get(&sid).await;
    assert!(status == 400 || body.ends_with('1'), "{status} {body}");
}

#[actix_web::test]
async fn sockets_per_user_are_capped() {
    let app = spawn_app(&[("COURIER__CHAT__MAX_SOCKETS_PER_USER", "2")]).await;
    let first = app.connect_user("u1").await;
    let _second = app.connect_user("u1").await;
    let (mut third, _) = app.connect_ws().await;
    third
        .send_text(&format!(r#"40{{"token":"{}"}}"#, app.token("u1")))
        .await;
    assert_eq!(
        third.recv_text().await,
        r#"44{"message":"Too many connections"}"#
    );
    // Another user is not affected.
    let _other = app.connect_user("u2").await;
    // One goes: the next CONNECT works.
    drop(first);
    eventually("a CONNECT admitted once a socket went", async || {
        third
            .send_text(&format!(r#"40{{"token":"{}"}}"#, app.token("u1")))
            .await;
        match third.recv().await {
            Received::Text(t) if t.starts_with(r#"40{"sid""#) => true,
            Received::Text(t) => {
                assert_eq!(t, r#"44{"message":"Too many connections"}"#);
                false
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

/// A signed-in client that CONNECTs and leaves (`41`) over and over: each Engine.IO session
/// it leaves behind counts as one of its user's sockets, and closes after `connect_timeout`
/// with no namespace connected, so it cannot fill `engineio.max_sessions` for everyone.
#[actix_web::test]
async fn a_signed_in_user_cannot_hold_sessions_with_no_namespace() {
    let app = spawn_app(&[
        BEHIND_A_PROXY,
        ("COURIER__CHAT__MAX_SOCKETS_PER_USER", "3"),
        ("COURIER__ENGINEIO__MAX_SESSIONS", "12"),
        ("COURIER__ENGINEIO__MAX_PENDING_PER_ADDRESS", "4"),
        ("COURIER__SOCKETIO__CONNECT_TIMEOUT", "1500"),
    ])
    .await;
    let from = [("X-Forwarded-For", "198.51.100.66")];
    let (mut held, mut connected, mut refused) = (Vec::new(), 0, 0);
    for _ in 0..20 {
        let Ok(mut client) = WsClient::try_connect(&app.ws_url(), &from).await else {
            continue;
        };
        client.recv_text().await;
        client
            .send_text(&format!(r#"40{{"token":"{}"}}"#, app.token("mallory")))
            .await;
        let reply = client.recv_text().await;
        if reply.starts_with(r#"40{"sid""#) {
            connected += 1;
            client.send_text("41").await;
        } else {
            assert_eq!(reply, r#"44{"message":"Too many connections"}"#);
            refused += 1;
        }
        held.push(client);
    }
    assert_eq!(connected, 3, "the user's sessions count, connected or not");
    assert_eq!(
        refused, 4,
        "then only sessions not yet connected, up to their cap"
    );
    // Another user still gets in while those sessions are held.
    let _other = app.connect_user("alice").await;
    // Each left-behind session closes after connect_timeout.
    for client in &mut held {
        client.expect_closed(Duration::from_secs(10)).await;
    }
    // And the user's slots came back with them.
    eventually(
        "the user connects again once the sessions closed",
        async || {
            let mut client = WsClient::try_connect(&app.ws_url(), &from)
                .await
                .expect("admitted");
            client.recv_text().await;
            client
                .send_text(&format!(r#"40{{"token":"{}"}}"#, app.token("mallory")))
                .await;
            client.recv_text().await.starts_with(r#"40{"sid""#)
        },
    )
    .await;
}

/// With 120 file descriptors and a reserve of 60, the server admits WebSockets until 60
/// remain, then refuses new handshakes with 503 (counted under `fd_reserve`), while the
/// sockets already open carry on (they keep answering the server's pings); it never reaches
/// the limit, where `accept()` fails and nothing can answer.
#[actix_web::test]
async fn handshakes_are_refused_within_the_fd_reserve_and_open_sockets_carry_on() {
    let server = common::process::Courier::start_with_open_files(
        &[
            ("COURIER__ENGINEIO__FD_RESERVE", "60"),
            ("COURIER__ENGINEIO__PING_INTERVAL", "300"),
            ("COURIER__ENGINEIO__PING_TIMEOUT", "5000"),
        ],
        120,
    );
    let url = format!(
        "ws://127.0.0.1:{}/socket.io/?EIO=4&transport=websocket",
        server.port
    );
    let mut open = Vec::new();
    let refused = loop {
        assert!(
            open.len() < 120,
            "never refused with {} sockets open",
            open.len()
        );
        match WsClient::try_connect(&url, &[]).await {
            Ok(mut client) => {
                assert!(
                    client.recv_text().await.starts_with("0{"),
                    "the open packet"
                );
                open.push(client);
            }
            Err(status) => break status,
        }
    };
    assert_eq!(refused, 503);
    assert!(!open.is_empty(), "some sockets fit before the reserve");
    // Every socket already open still answers pings.
    for client in &mut open {
        let ping = client.recv_text().await;
        assert_eq!(ping, "2");
        client.send_text("3").await;
    }
    let metrics = awc::Client::new()
        .get(format!("http://127.0.0.1:{}/metrics", server.metrics_port))
        .send()
        .await
        .expect("metrics answer")
        .body()
        .await
        .expect("metrics body");
    let text = String::from_utf8_lossy(&metrics);
    let refusals = common::metric_value(
        &text,
        "courier_handshakes_refused_total{cause=\"fd_reserve\"}",
    )
    .expect("the fd_reserve series");
    assert!(refusals >= 1.0, "counted: {refusals}");
}
