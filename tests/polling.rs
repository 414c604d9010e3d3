//! HTTP long-polling and the upgrade to WebSocket, spoken raw: handshake, GET/POST,
//! concurrency rules, close semantics, limits, heartbeat, the probe/upgrade dance, and the
//! origin checks with CORS.

mod common;

use std::time::Duration;

use common::db::{Kind, TestDb};
use common::{eventually, spawn_app, spawn_app_on, Polling, WsClient};
use serde_json::json;

#[actix_web::test]
async fn handshake_offers_the_websocket_upgrade() {
    let app = spawn_app(&[]).await;
    let polling = Polling::new(&app);
    let (sid, open) = polling.handshake().await;
    assert_eq!(sid.len(), 20);
    assert_eq!(open["upgrades"], json!(["websocket"]));
    assert_eq!(open["pingInterval"], json!(25000));
    assert_eq!(open["pingTimeout"], json!(20000));
    assert_eq!(open["maxPayload"], json!(1000000));

    let only_polling = spawn_app(&[("COURIER__ENGINEIO__TRANSPORTS", "polling")]).await;
    let (_, open) = Polling::new(&only_polling).handshake().await;
    assert_eq!(open["upgrades"], json!([]));
}

#[actix_web::test]
async fn connects_and_exchanges_packets() {
    let app = spawn_app(&[]).await;
    let polling = Polling::new(&app);
    let (sid, _) = polling.handshake().await;
    // A payload of several packets in one POST.
    let (status, body) = polling
        .post(
            &sid,
            &format!("40\u{1e}40{{\"token\":\"{}\"}}", app.token("u1")),
        )
        .await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, body) = polling.get(&sid).await;
    assert_eq!(status, 200);
    let packets: Vec<&str> = body.split('\u{1e}').collect();
    assert_eq!(packets.len(), 2, "{body}");
    assert_eq!(
        packets[0],
        r#"44{"message":"Authentication error: No token"}"#
    );
    assert!(packets[1].starts_with(r#"40{"sid":"#));
}

#[actix_web::test]
async fn bad_requests_get_engineio_errors() {
    let app = spawn_app(&[]).await;
    let polling = Polling::new(&app);
    let base = format!("http://127.0.0.1:{}/socket.io/", app.port);
    for (query, code) in [
        ("?EIO=3&transport=polling", 5),
        ("?EIO=4&transport=carrier", 0),
        ("?EIO=4&transport=polling&sid=nope", 1),
    ] {
        let (status, body) = polling.get_url(&format!("{base}{query}")).await;
        assert_eq!(status, 400, "{query}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["code"], json!(code), "{query}");
    }
    let mut resp = awc::Client::new()
        .post(format!("{base}?EIO=4&transport=polling"))
        .send_body("40")
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"code": 2, "message": "Bad handshake method"}));
    let (status, _) = polling.post("nope", "40").await;
    assert_eq!(status, 400);
}

#[actix_web::test]
async fn a_second_concurrent_get_closes_the_session() {
    let app = spawn_app(&[]).await;
    let polling = Polling::new(&app);
    let sid = polling.connect_user(&app, "u1").await;
    let first = polling.spawn_get(&sid);
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = polling.get(&sid).await;
    assert_eq!(status, 400, "the second GET is refused");
    assert_eq!(
        first.await.unwrap(),
        (200, "1".to_string()),
        "the first gets a close packet"
    );
    let (status, _) = polling.get(&sid).await;
    assert_eq!(status, 400, "the session is gone");
}

#[actix_web::test]
async fn concurrent_posts_close_the_session() {
    let app = spawn_app(&[]).await;
    let polling = Polling::new(&app);
    let sid = polling.connect_user(&app, "u1").await;
    // A POST whose body has not fully arrived keeps the first one in progress.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", app.port)).unwrap();
    let head = format!(
        "POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n\
         Host: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n3"
    );
    std::io::Write::write_all(&mut raw, head.as_bytes()).unwrap();
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = polling.post(&sid, "3").await;
    assert_eq!(status, 400);
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(polling.get(&sid).await, (200, "1".to_string()), "closed");
    assert_eq!(polling.get(&sid).await.0, 400, "and gone");
    drop(raw);
}

#[actix_web::test]
async fn a_cancelled_get_closes_the_session() {
    let app = spawn_app(&[]).await;
    let polling = Polling::new(&app);
    let sid = polling.connect_user(&app, "u1").await;
    let impatient = awc::Client::builder()
        .timeout(Duration::from_millis(200))
        .finish();
    assert!(impatient.get(polling.url(&sid)).send().await.is_err());
    eventually(
        "the session closed after its GET was cancelled",
        async || {
            // A fresh connection each time.
            let fresh = awc::Client::new();
            let resp = fresh
                .get(polling.url(&sid))
                .timeout(Duration::from_millis(300))
                .send()
                .await;
            resp.is_ok_and(|resp| resp.status().as_u16() == 400)
        },
    )
    .await;
}

#[actix_web::test]
async fn a_client_close_answers_the_pending_get_with_noop() {
    let app = spawn_app(&[]).await;
    let polling = Polling::new(&app);
    let sid = polling.connect_user(&app, "u1").await;
    let pending = polling.spawn_get(&sid);
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(polling.post(&sid, "1").await, (200, "ok".to_string()));
    assert_eq!(pending.await.unwrap(), (200, "6".to_string()));
    assert_eq!(polling.get(&sid).await.0, 400);
    assert_eq!(polling.post(&sid, "3").await.0, 400);
}

/// The client's close, then its GET (what the Engine.IO suite's "forcefully closes the
/// session" does when the POST wins the race): that GET gets the noop, later ones 400.
#[actix_web::test]
async fn a_client_close_before_the_get_leaves_the_noop_for_it() {
    let app = spawn_app(&[]).await;
    let polling = Polling::new(&app);
    let sid = polling.connect_user(&app, "u1").await;
    assert_eq!(polling.post(&sid, "1").await, (200, "ok".to_string()));
    assert_eq!(polling.get(&sid).await, (200, "6".to_string()));
    assert_eq!(polling.get(&sid).await.0, 400);
    assert_eq!(polling.post(&sid, "3").await.0, 400);
}

/// A session closed by the client before its GET came (the session waits for that GET
/// with the noop) is no longer counted on `polling`, whether the GET comes or not: churn
/// left one socket counted for every close that won that race (issue 21.1).
#[actix_web::test]
async fn a_client_close_before_the_get_is_no_longer_counted() {
    const POLLING: &str = r#"courier_sockets{transport="polling"}"#;
    let app = spawn_app(&[]).await;
    let polling = Polling::new(&app);
    let first = polling.connect_user(&app, "u1").await;
    let second = polling.connect_user(&app, "u2").await;
    assert_eq!(app.metric(POLLING).await, 2.0);
    assert_eq!(polling.post(&first, "1").await, (200, "ok".to_string()));
    assert_eq!(polling.post(&second, "1").await, (200, "ok".to_string()));
    // The first one's GET takes the noop; the second one's never comes.
    assert_eq!(polling.get(&first).await, (200, "6".to_string()));
    eventually("closed sessions are no longer counted", async || {
        app.metric(POLLING).await == 0.0
    })
    .await;
}

/// The GET and the close sent at the same moment, whichever arrives first: the GET gets the
/// noop, and the session is gone after.
#[actix_web::test]
async fn a_client_close_racing_the_get_gives_the_get_the_noop() {
    let app = spawn_app(&[]).await;
    let polling = Polling::new(&app);
    for _ in 0..20 {
        let sid = polling.connect_user(&app, "u1").await;
        let get = polling.spawn_get(&sid);
        let post = polling.post(&sid, "1");
        let (posted, got) = futures_util::future::join(post, get).await;
        assert_eq!(posted, (200, "ok".to_string()));
        assert_eq!(got.unwrap(), (200, "6".to_string()));
        assert_eq!(polling.get(&sid).await.0, 400);
    }
}

/// The close as one of several packets of a POST: the packets before it are taken, the
/// pending GET gets the noop.
#[actix_web::test]
async fn a_client_close_after_other_packets_in_one_post() {
    let app = spawn_app(&[]).await;
    let polling = Polling::new(&app);
    let sid = polling.connect_user(&app, "u1").await;
    let pending = polling.spawn_get(&sid);
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        polling.post(&sid, "3\u{1e}1").await,
        (200, "ok".to_string())
    );
    assert_eq!(pending.await.unwrap(), (200, "6".to_string()));
    assert_eq!(polling.get(&sid).await.0, 400);
}

/// A GET the client gives up on closes the session: the next request (a POST here, so the
/// "two GETs" rule cannot be what refuses it) gets 400.
#[actix_web::test]
async fn an_abandoned_get_is_noticed_and_closes_the_session() {
    let app = spawn_app(&[]).await;
    let polling = Polling::new(&app);
    let sid = polling.connect_user(&app, "u1").await;
    let get = polling.spawn_get(&sid);
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    get.abort();
    // Until the server noticed (a pong is harmless to a session that is still open).
    eventually("the session is gone", async || {
        polling.post(&sid, "3").await.0 == 400
    })
    .await;
}

#[actix_web::test]
async fn heartbeat_rides_on_the_pending_get() {
    let app = spawn_app(&[
        ("COURIER__ENGINEIO__PING_INTERVAL", "100"),
        ("COURIER__ENGINEIO__PING_TIMEOUT", "300"),
    ])
    .await;
    let polling = Polling::new(&app);
    let sid = polling.connect_user(&app, "u1").await;
    for _ in 0..3 {
        assert_eq!(polling.get(&sid).await, (200, "2".to_string()));
        assert_eq!(polling.post(&sid, "3").await, (200, "ok".to_string()));
    }
    // No pong this time: the next GET carries the ping, the one after it the close.
    assert_eq!(polling.get(&sid).await, (200, "2".to_string()));
    assert_eq!(polling.get(&sid).await, (200, "1".to_string()));
    assert_eq!(polling.get(&sid).await.0, 400);
}

#[actix_web::test]
async fn a_body_above_max_payload_is_refused_and_closes() {
    let app = spawn_app(&[("COURIER__ENGINEIO__MAX_PAYLOAD", "1000")]).await;
    let polling = Polling::new(&app);
    let sid = polling.connect_user(&app, "u1").await;
    let big = format!(r#"42["x","{}"]"#, "y".repeat(2000));
    let (status, _) = polling.post(&sid, &big).await;
    assert_eq!(status, 413);
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(polling.get(&sid).await, (200, "1".to_string()), "closed");
    assert_eq!(polling.get(&sid).await.0, 400, "and gone");
}

#[actix_web::test]
async fn an_undecodable_payload_closes_the_session() {
    let app = spawn_app(&[]).await;
    let polling = Polling::new(&app);
    let sid = polling.connect_user(&app, "u1").await;
    // Engine.IO-valid, Socket.IO-invalid: taken, then the session closes; the next GET
    // gets the close packet.
    assert_eq!(polling.post(&sid, "42{}").await.0, 200);
    assert_eq!(polling.get(&sid).await, (200, "1".to_string()));
    assert_eq!(polling.get(&sid).await.0, 400);
    let sid = polling.connect_user(&app, "u1").await;
    // Not even Engine.IO: refused, and the session is gone at once.
    assert_eq!(polling.post(&sid, "x\u{1e}").await.0, 400);
    assert_eq!(polling.get(&sid).await.0, 400);
}

/// Opens a WebSocket for the polling session `sid` and completes the probe.
async fn probe(app: &common::TestApp, sid: &str) -> WsClient {
    let mut ws = WsClient::connect(&format!("{}&sid={sid}", app.ws_url())).await;
    ws.send_text("2probe").await;
    assert_eq!(ws.recv_text().await, "3probe");
    ws
}

#[actix_web::test]
async fn upgrade_flushes_buffered_packets_over_websocket_in_order() {
    let db = TestDb::new(Kind::Sqlite).await;
    let app = spawn_app_on(&db.url, &[]).await;
    let alice = db.user("alice").await;
    let bob = db.user("bob").await;
    let ab = db.connection(&alice, &bob, "ACTIVE").await;
    let mut a = app.connect_user(&alice).await;
    // Alice's presence is told (to nobody yet) before Bob connects: it is told once it is
    // written.
    eventually("alice online", async || {
        db.presence(&alice).await == (true, 1)
    })
    .await;

    let polling = Polling::new(&app);
    let sid = polling.connect_user(&app, &bob).await;
    // Bob's pending GET is answered with a noop once the probe succeeds.
    let pending = polling.spawn_get(&sid);
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    let mut ws = probe(&app, &sid).await;
    assert_eq!(pending.await.unwrap(), (200, "6".to_string()));

    // Alice sends while Bob is paused between probe and upgrade: buffered for him.
    for i in 0..5 {
        a.emit(
            "send_message",
            json!({"connectionId": ab, "content": format!("m{i}"), "tempId": i.to_string()}),
            None,
        )
        .await;
        a.expect_event("message_sent").await;
    }
    // Polling stays paused with noops during the upgrade.
    assert_eq!(polling.get(&sid).await, (200, "6".to_string()));
    ws.send_text("5").await;
    for i in 0..5 {
        let got = ws.expect_event("receive_message").await;
        assert_eq!(got["content"], json!(format!("m{i}")));
    }
    ws.expect_silence(Duration::from_millis(300)).await;

    // After the upgrade: polling is refused, and a second WebSocket is closed at once
    // (as Node does: handshake, then close).
    assert_eq!(polling.get(&sid).await.0, 400);
    assert_eq!(polling.post(&sid, "3").await.0, 400);
    let mut second = WsClient::connect(&format!("{}&sid={sid}", app.ws_url())).await;
    second.expect_closed(Duration::from_secs(3)).await;

    // The same session goes on over WebSocket, both ways.
    a.emit(
        "send_message",
        json!({"connectionId": ab, "content": "after", "tempId": "z"}),
        None,
    )
    .await;
    assert_eq!(
        ws.expect_event("receive_message").await["content"],
        json!("after")
    );
    ws.emit(
        "send_message",
        json!({"connectionId": ab, "content": "from bob", "tempId": "b"}),
        None,
    )
    .await;
    assert_eq!(ws.expect_event("message_sent").await["tempId"], json!("b"));
    assert_eq!(a.expect_event("message_sent").await["tempId"], json!("z"));
    assert_eq!(
        a.expect_event("receive_message").await["content"],
        json!("from bob")
    );
    assert_eq!(
        db.messages(&ab).await.len(),
        7,
        "nothing lost, nothing twice"
    );
}

#[actix_web::test]
async fn a_probe_that_gives_up_leaves_polling_working() {
    let app = spawn_app(&[]).await;
    let polling = Polling::new(&app);
    let sid = polling.connect_user(&app, "u1").await;
    let mut ws = probe(&app, &sid).await;
    ws.send_text("1").await;
    drop(ws);
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    // Still a polling session: a POST is taken.
    assert_eq!(polling.post(&sid, "3").await, (200, "ok".to_string()));
}

#[actix_web::test]
async fn websocket_with_an_unknown_sid_is_refused() {
    let app = spawn_app(&[]).await;
    let result = awc::Client::new()
        .ws(format!("{}&sid=unknown", app.ws_url()))
        .connect()
        .await;
    assert!(matches!(
        result,
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s.as_u16() == 400
    ));
}

#[actix_web::test]
async fn disallowed_origins_are_refused_and_allowed_ones_get_cors_headers() {
    let app = spawn_app(&[("NEXTJS_URL", "http://app.example, https://app2.example")]).await;
    let base = format!(
        "http://127.0.0.1:{}/socket.io/?EIO=4&transport=polling",
        app.port
    );
    let client = awc::Client::new();

    let mut resp = client
        .get(&base)
        .insert_header(("Origin", "http://evil.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"code": 4, "message": "Forbidden"}));

    let ws = client
        .ws(app.ws_url())
        .origin("http://evil.example")
        .connect()
        .await;
    assert!(matches!(
        ws,
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s.as_u16() == 403
    ));
    let ws = client
        .ws(app.ws_url())
        .origin("https://app2.example")
        .connect()
        .await;
    assert!(ws.is_ok(), "an allowed origin may open a websocket");

    let resp = client
        .get(&base)
        .insert_header(("Origin", "http://app.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let headers = resp.headers();
    assert_eq!(
        headers.get("access-control-allow-origin").unwrap(),
        "http://app.example"
    );
    assert_eq!(
        headers.get("access-control-allow-credentials").unwrap(),
        "true"
    );

    let resp = client
        .request(awc::http::Method::OPTIONS, &base)
        .insert_header(("Origin", "https://app2.example"))
        .insert_header(("Access-Control-Request-Method", "POST"))
        .insert_header(("Access-Control-Request-Headers", "content-type"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let headers = resp.headers();
    assert_eq!(
        headers.get("access-control-allow-origin").unwrap(),
        "https://app2.example"
    );
    assert_eq!(
        headers.get("access-control-allow-credentials").unwrap(),
        "true"
    );
    assert!(headers
        .get("access-control-allow-methods")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("POST"));

    // No Origin at all (a non-browser client): allowed, no CORS headers needed.
    let resp = client.get(&base).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[actix_web::test]
async fn a_server_close_keeps_the_last_packets_for_the_next_get() {
    // No CONNECT in time: the server closes a polling session that has no GET pending;
    // the client's next GET still gets what was queued, then the close packet.
    let app = spawn_app(&[("COURIER__SOCKETIO__CONNECT_TIMEOUT", "200")]).await;
    let polling = Polling::new(&app);
    let (sid, _) = polling.handshake().await;
    assert_eq!(polling.post(&sid, "40").await.0, 200);
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        polling.get(&sid).await,
        (
            200,
            "44{\"message\":\"Authentication error: No token\"}\u{1e}1".to_string()
        )
    );
    assert_eq!(polling.get(&sid).await.0, 400);
}

#[actix_web::test]
async fn a_get_that_races_the_upgrade_is_refused() {
    // The client sends 2probe and 5 back to back and polls at once (the protocol test
    // suite's "ignores HTTP requests with same sid after upgrade"): whichever the session
    // sees first, the GET is refused once the upgrade completes, and the WebSocket carries
    // the session on.
    let app = spawn_app(&[]).await;
    let polling = Polling::new(&app);
    let sid = polling.connect_user(&app, "u1").await;
    let mut ws = WsClient::connect(&format!("{}&sid={sid}", app.ws_url())).await;
    ws.send_text("2probe").await;
    ws.send_text("5").await;
    assert_eq!(polling.get(&sid).await.0, 400);
    assert_eq!(ws.recv_text().await, "3probe");
    ws.send_text("41").await;
    ws.send_text(&format!(r#"40{{"token":"{}"}}"#, app.token("u1")))
        .await;
    assert!(ws.recv_message().await.starts_with(r#"40{"sid":"#));
}
