//! The protocol test server (`courier::conformance`, served by `examples/conformance.rs`):
//! the raw Engine.IO echo and the Socket.IO test application, binary packets included,
//! over WebSocket and over long-polling.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::{App, HttpServer};
use common::{conformance, Received, WsClient};

struct Server {
    port: u16,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Server {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_web::rt::spawn(async move { handle.stop(false).await });
    }
}

fn start() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let endpoints = conformance::Endpoints::new(&conformance::endpoint_options());
    let server = HttpServer::new(move || {
        let endpoints = endpoints.clone();
        App::new().configure(move |cfg| conformance::configure(cfg, &endpoints))
    })
    .workers(2)
    .h1_allow_half_closed(false)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Server { port, handle }
}

impl Server {
    async fn ws(&self, path: &str) -> WsClient {
        let mut ws = WsClient::connect(&format!(
            "ws://127.0.0.1:{}{path}?EIO=4&transport=websocket",
            self.port
        ))
        .await;
        let open = ws.recv_text().await;
        assert!(open.starts_with(r#"0{"sid":"#), "{open}");
        assert!(open.contains(r#""pingInterval":300,"pingTimeout":200,"maxPayload":1000000"#));
        ws
    }

    fn polling(&self) -> common::Polling {
        common::Polling {
            base: format!(
                "http://127.0.0.1:{}/socket.io/?EIO=4&transport=polling",
                self.port
            ),
            client: awc::Client::new(),
        }
    }
}

async fn recv_binary(ws: &mut WsClient) -> Vec<u8> {
    match ws.recv().await {
        Received::Binary(b) => b.to_vec(),
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

#[actix_web::test]
async fn engineio_echo_over_websocket() {
    let server = start();
    let mut ws = server.ws("/engine.io/").await;
    ws.send_text("4hello").await;
    assert_eq!(ws.recv_text().await, "4hello");
    ws.send_binary(&[1, 2, 3, 4]).await;
    assert_eq!(recv_binary(&mut ws).await, vec![1, 2, 3, 4]);
}

#[actix_web::test]
async fn engineio_echo_over_polling_with_binary() {
    let server = start();
    let polling = common::Polling {
        base: format!(
            "http://127.0.0.1:{}/engine.io/?EIO=4&transport=polling",
            server.port
        ),
        client: awc::Client::new(),
    };
    let (sid, open) = polling.handshake().await;
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(polling.post(&sid, "4hello\u{1e}bAQIDBA==").await.0, 200);
    assert_eq!(
        polling.get(&sid).await,
        (200, "4hello\u{1e}bAQIDBA==".to_string())
    );
}

#[actix_web::test]
async fn socketio_connect_emits_auth_and_refuses_other_namespaces() {
    let server = start();
    let mut ws = server.ws("/socket.io/").await;
    ws.send_text("40").await;
    assert!(ws.recv_text().await.starts_with(r#"40{"sid":"#));
    assert_eq!(ws.recv_text().await, r#"42["auth",{}]"#);
    ws.send_text(r#"40/custom,{"token":"abc"}"#).await;
    assert!(ws.recv_text().await.starts_with(r#"40/custom,{"sid":"#));
    assert_eq!(
        ws.recv_text().await,
        r#"42/custom,["auth",{"token":"abc"}]"#
    );
    ws.send_text("40/random").await;
    assert_eq!(
        ws.recv_text().await,
        r#"44/random,{"message":"Invalid namespace"}"#
    );
}

#[actix_web::test]
async fn binary_events_and_acks_over_websocket() {
    let server = start();
    let mut ws = server.ws("/socket.io/").await;
    ws.send_text("40").await;
    ws.recv_text().await;
    ws.recv_text().await;

    ws.send_text(r#"42["message",1,"2",{"3":[true]}]"#).await;
    assert_eq!(
        ws.recv_text().await,
        r#"42["message-back",1,"2",{"3":[true]}]"#
    );
    ws.send_text(r#"42456["message-with-ack",1,"2"]"#).await;
    assert_eq!(ws.recv_text().await, r#"43456[1,"2"]"#);

    ws.send_text(r#"451-["message",{"_placeholder":true,"num":0}]"#)
        .await;
    ws.send_binary(&[1, 2, 3]).await;
    assert_eq!(
        ws.recv_text().await,
        r#"451-["message-back",{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(recv_binary(&mut ws).await, vec![1, 2, 3]);

    ws.send_text(
        r#"452-789["message-with-ack",{"_placeholder":true,"num":0},{"x":{"_placeholder":true,"num":1}}]"#,
    )
    .await;
    ws.send_binary(&[4]).await;
    ws.send_binary(&[5, 6]).await;
    assert_eq!(
        ws.recv_text().await,
        r#"462-789[{"_placeholder":true,"num":0},{"x":{"_placeholder":true,"num":1}}]"#
    );
    assert_eq!(recv_binary(&mut ws).await, vec![4]);
    assert_eq!(recv_binary(&mut ws).await, vec![5, 6]);
}

#[actix_web::test]
async fn binary_events_and_acks_over_polling() {
    let server = start();
    let polling = server.polling();
    let (sid, _) = polling.handshake().await;
    assert_eq!(polling.post(&sid, "40").await.0, 200);
    let (_, body) = polling.get(&sid).await;
    let packets: Vec<&str> = body.split('\u{1e}').collect();
    assert!(packets[0].starts_with(r#"40{"sid":"#));
    assert_eq!(packets[1], r#"42["auth",{}]"#);

    let payload = "451-[\"message\",{\"_placeholder\":true,\"num\":0}]\u{1e}bAQID";
    assert_eq!(polling.post(&sid, payload).await.0, 200);
    assert_eq!(
        polling.get(&sid).await.1,
        "451-[\"message-back\",{\"_placeholder\":true,\"num\":0}]\u{1e}bAQID"
    );
    let payload = "451-12[\"message-with-ack\",{\"_placeholder\":true,\"num\":0}]\u{1e}bBQY=";
    assert_eq!(polling.post(&sid, payload).await.0, 200);
    assert_eq!(
        polling.get(&sid).await.1,
        "461-12[{\"_placeholder\":true,\"num\":0}]\u{1e}bBQY="
    );
}

#[actix_web::test]
async fn heartbeat_with_the_test_suite_timings() {
    let server = start();
    let mut ws = server.ws("/socket.io/").await;
    ws.send_text("40").await;
    ws.recv_text().await;
    ws.recv_text().await;
    // pingInterval 300 ms: a ping arrives; without a pong the session closes 200 ms later.
    match ws.recv_within(Duration::from_millis(600)).await {
        Received::Text(ping) => assert_eq!(ping, "2"),
        other => panic!("expected a ping, got {other:?}"),
    }
    ws.expect_closed(Duration::from_millis(600)).await;
}
