//! Test helpers, shared by every test file (each its own crate: what one of them does not
//! use is no warning here): start the app on 127.0.0.1:0 and talk raw WebSocket or
//! long-polling to it, the one token helper, and the modules below — the backend macro
//! ([`backends`]), the one world of users ([`world`]), test databases ([`db`]), waiting for
//! a condition ([`wait`]), the `courier` binary as a process ([`process`]), a TCP proxy for
//! database faults ([`proxy`]), the protocol test server's handlers ([`conformance`]).
#![allow(dead_code)]

pub mod backends;
pub mod conformance;
pub mod db;
pub mod process;
pub mod proxy;
pub mod wait;
pub mod world;

use std::collections::HashMap;
use std::time::Duration;

use actix_codec::Framed;
use actix_web::dev::ServerHandle;
use awc::ws::{self, Frame};
use awc::BoxedSocket;
use bytes::Bytes;
use courier::app::Application;
use courier::auth::Authenticator;
use courier::config::{LoadOptions, Settings};
use futures_util::{SinkExt, StreamExt};

#[allow(unused_imports)]
pub use wait::eventually;

/// The secret the tests' servers verify tokens with (`SOCKET_SECRET`).
pub const SECRET: &str = "integration-test-secret";

/// A token for `user`, signed with [`SECRET`], valid for ten minutes.
pub fn token(user: &str) -> String {
    token_signed(SECRET, user)
}

/// A token for `user` signed with `secret` (a server started with another secret), valid
/// for ten minutes.
pub fn token_signed(secret: &str, user: &str) -> String {
    Authenticator::new(secret, 0)
        .issue(user, Duration::from_secs(600))
        .expect("signing works")
}

/// Opens a WebSocket to the server on `port`, reads the open packet and completes a
/// Socket.IO CONNECT as `user`.
pub async fn connect_to(port: u16, user: &str) -> WsClient {
    let url = format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket");
    let mut client = WsClient::connect(&url).await;
    let open = client.recv_text().await;
    let handshake = open
        .strip_prefix('0')
        .unwrap_or_else(|| panic!("expected an open packet, got {open:?}"));
    serde_json::from_str::<serde_json::Value>(handshake).expect("handshake is JSON");
    client
        .send_text(&format!(r#"40{{"token":"{}"}}"#, token(user)))
        .await;
    let reply = client.recv_text().await;
    assert!(
        reply.starts_with(r#"40{"sid":""#),
        "connect failed: {reply}"
    );
    client
}

/// A free port on the loopback interface (for a server started as a process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Runs `future` on a new thread with a tokio runtime of its own (a `Drop` that needs I/O, a
/// server the test's own runtime must not carry); join the handle to wait for it.
pub fn on_own_runtime<F>(future: F) -> std::thread::JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(future);
    })
}

/// A running server; stopped when dropped.
pub struct TestApp {
    pub port: u16,
    /// The port of `/metrics` and `/readyz`, when `metrics.enabled`.
    pub metrics_port: Option<u16>,
    pub settings: Settings,
    handle: ServerHandle,
    /// A graceful shutdown (sessions drained first).
    pub shutdown: courier::app::ShutdownHandle,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stop without waiting for open WebSockets.
        actix_web::rt::spawn(async move { handle.stop(false).await });
    }
}

/// Settings for tests: loopback, port 0, the test secret, plus `overrides`
/// (as `COURIER__SECTION__KEY` environment variables).
pub fn test_settings(overrides: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("COURIER__SERVER__HOST".into(), "127.0.0.1".into());
    env.insert("COURIER__SERVER__PORT".into(), "0".into());
    env.insert("COURIER__SERVER__WORKERS".into(), "2".into());
    env.insert("COURIER__SERVER__SHUTDOWN_TIMEOUT".into(), "1".into());
    env.insert("COURIER__METRICS__BIND".into(), "127.0.0.1:0".into());
    env.insert("SOCKET_SECRET".into(), SECRET.into());
    env.insert("COURIER__DATABASE__URL".into(), "sqlite::memory:".into());
    for (k, v) in overrides {
        env.insert(k.to_string(), v.to_string());
    }
    Settings::load(&LoadOptions {
        config_dir: Some("/nonexistent-courier-test-config".into()),
        config_file: None,
        env,
    })
    .expect("test settings are valid")
}

/// Starts the server with `settings` on a free port.
pub async fn spawn_app_with(settings: Settings) -> TestApp {
    let app = Application::build(settings.clone())
        .await
        .expect("the app builds");
    let port = app.port();
    let metrics_port = app.metrics_port();
    let handle = app.handle();
    let shutdown = app.shutdown_handle();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        port,
        metrics_port,
        settings,
        handle,
        shutdown,
    }
}

/// Starts the server on the database at `url`, with test settings plus `overrides`.
pub async fn spawn_app_on(url: &str, overrides: &[(&str, &str)]) -> TestApp {
    let mut all = vec![("COURIER__DATABASE__URL", url)];
    all.extend_from_slice(overrides);
    spawn_app(&all).await
}

/// Starts the server with test settings plus `overrides`.
pub async fn spawn_app(overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_with(test_settings(overrides)).await
}

/// The value of the series `name` (with its labels, as `/metrics` writes them) in `text`.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

impl TestApp {
    /// `GET /metrics` on the operators' port.
    pub async fn metrics(&self) -> String {
        let port = self.metrics_port.expect("metrics are on");
        let mut response = awc::Client::default()
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .expect("/metrics answers");
        let body = response.body().await.expect("a body");
        String::from_utf8_lossy(&body).into_owned()
    }

    /// The value of the series `name` now.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics().await;
        metric_value(&text, name).unwrap_or_else(|| panic!("no series {name} in\n{text}"))
    }

    pub fn http(&self, path_and_query: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path_and_query)
    }

    pub fn ws_url(&self) -> String {
        format!(
            "ws://127.0.0.1:{}/socket.io/?EIO=4&transport=websocket",
            self.port
        )
    }

    /// A valid token for `user` ([`token`]).
    pub fn token(&self, user: &str) -> String {
        token(user)
    }

    /// Opens a WebSocket and reads the open packet.
    pub async fn connect_ws(&self) -> (WsClient, serde_json::Value) {
        let mut client = WsClient::connect(&self.ws_url()).await;
        let open = client.recv_text().await;
        let json = open
            .strip_prefix('0')
            .unwrap_or_else(|| panic!("expected an open packet, got {open:?}"));
        let handshake = serde_json::from_str(json).expect("handshake is JSON");
        (client, handshake)
    }

    /// Opens a WebSocket and completes a Socket.IO CONNECT as `user` ([`connect_to`]).
    pub async fn connect_user(&self, user: &str) -> WsClient {
        connect_to(self.port, user).await
    }

    /// [`TestApp::connect_user`], for a socket that sees presence events.
    pub async fn watcher(&self, user: &str) -> WsClient {
        let mut client = self.connect_user(user).await;
        client.skip_presence = false;
        client
    }
}

/// What the server sent.
#[derive(Debug)]
pub enum Received {
    Text(String),
    Binary(Bytes),
    Pong(Bytes),
    Close(Option<u16>),
    /// The stream ended without a close frame.
    Ended,
    /// Nothing within the wait.
    Timeout,
}

/// A raw WebSocket client.
pub struct WsClient {
    framed: Framed<BoxedSocket, ws::Codec>,
    /// Presence events (`user_online_status`, `user_offline_status`, `user_online`,
    /// `user_offline`) are dropped by [`WsClient::recv_message`]: they arrive whenever
    /// users come and go. Presence tests turn this off.
    pub skip_presence: bool,
}

/// Whether `text` is a presence event frame, or a refresh of the recovery offset
/// (`courier:offset`, sent on pongs and before a graceful shutdown closes a socket): frames
/// that arrive on their own schedule.
pub fn is_presence_frame(text: &str) -> bool {
    text.starts_with(r#"42["user_online"#)
        || text.starts_with(r#"42["user_offline"#)
        || text.starts_with(r#"42["courier:offset""#)
}

pub const WAIT: Duration = Duration::from_secs(5);

/// The `User-Agent` of the tests' WebSocket clients.
pub const USER_AGENT: &str = "courier-tests/1.0";

impl WsClient {
    pub async fn connect(url: &str) -> WsClient {
        Self::try_connect(url, &[])
            .await
            .unwrap_or_else(|status| panic!("websocket connects: {status}"))
    }

    /// Opens a WebSocket with extra request `headers`; the refusal's status if refused.
    pub async fn try_connect(url: &str, headers: &[(&str, &str)]) -> Result<WsClient, u16> {
        let mut request = awc::Client::new()
            .ws(url)
            .header("User-Agent", USER_AGENT)
            .max_frame_size(16 * 1024 * 1024);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        match request.connect().await {
            Ok((_resp, framed)) => Ok(WsClient {
                framed,
                skip_presence: true,
            }),
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => Err(status.as_u16()),
            Err(e) => panic!("websocket: {e}"),
        }
    }

    /// Sends one raw WebSocket frame (e.g. a continuation).
    pub async fn send_frame(&mut self, message: ws::Message) {
        self.framed.send(message).await.expect("send a frame");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.framed
            .send(ws::Message::Text(text.to_string().into()))
            .await
            .expect("send text");
    }

    pub async fn send_binary(&mut self, data: &[u8]) {
        self.framed
            .send(ws::Message::Binary(Bytes::copy_from_slice(data)))
            .await
            .expect("send binary");
    }

    pub async fn send_ping(&mut self, data: &[u8]) {
        self.framed
            .send(ws::Message::Ping(Bytes::copy_from_slice(data)))
            .await
            .expect("send ping");
    }

    /// The next frame within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Received {
        match actix_web::rt::time::timeout(wait, self.framed.next()).await {
            Err(_) => Received::Timeout,
            Ok(None) => Received::Ended,
            Ok(Some(Err(_))) => Received::Ended,
            Ok(Some(Ok(frame))) => match frame {
                Frame::Text(b) => Received::Text(String::from_utf8_lossy(&b).into_owned()),
                Frame::Binary(b) => Received::Binary(b),
                Frame::Pong(b) => Received::Pong(b),
                Frame::Close(reason) => Received::Close(reason.map(|r| u16::from(r.code))),
                Frame::Ping(_) | Frame::Continuation(_) => Received::Text(String::new()),
            },
        }
    }

    pub async fn recv(&mut self) -> Received {
        self.recv_within(WAIT).await
    }

    /// The next text frame (panics on anything else).
    pub async fn recv_text(&mut self) -> String {
        match self.recv().await {
            Received::Text(t) => t,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next text frame that is not an Engine.IO ping (pings are answered).
    pub async fn recv_message(&mut self) -> String {
        loop {
            let text = self.recv_text().await;
            if self.skip_presence && is_presence_frame(&text) {
                continue;
            }
            if text == "2" {
                self.send_text("3").await;
                continue;
            }
            return text;
        }
    }

    /// Asserts the server closes the connection within `wait`; returns the close code.
    pub async fn expect_closed(&mut self, wait: Duration) -> Option<u16> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.recv_within(left).await {
                Received::Close(code) => {
                    // Answer like a real client, so the server can let the connection go.
                    let _ = self.framed.send(ws::Message::Close(None)).await;
                    return code;
                }
                Received::Ended => return None,
                Received::Timeout => panic!("the server did not close the connection"),
                _ => continue,
            }
        }
    }

    /// Emits `event` with `payload` on `/`, asking for an acknowledgement when `ack` is set.
    pub async fn emit(&mut self, event: &str, payload: serde_json::Value, ack: Option<u64>) {
        let id = ack.map(|a| a.to_string()).unwrap_or_default();
        let body = serde_json::json!([event, payload]);
        self.send_text(&format!("42{id}{body}")).await;
    }

    /// The next Socket.IO packet (pings answered): `(event name, first argument)` for an
    /// event, `("ack:<id>", first argument)` for an acknowledgement.
    pub async fn recv_packet(&mut self) -> (String, serde_json::Value) {
        let text = self.recv_message().await;
        if let Some(rest) = text.strip_prefix("42") {
            let arr: serde_json::Value =
                serde_json::from_str(rest).unwrap_or_else(|e| panic!("bad event {text}: {e}"));
            let name = arr[0].as_str().expect("event name").to_string();
            return (name, arr[1].clone());
        }
        if let Some(rest) = text.strip_prefix("43") {
            let start = rest.find('[').expect("ack payload");
            let arr: serde_json::Value = serde_json::from_str(&rest[start..]).unwrap();
            return (format!("ack:{}", &rest[..start]), arr[0].clone());
        }
        panic!("expected an event or ack, got {text}");
    }

    /// The next packet, which must be `event`; returns its argument.
    pub async fn expect_event(&mut self, event: &str) -> serde_json::Value {
        let (name, payload) = self.recv_packet().await;
        assert_eq!(name, event, "payload: {payload}");
        payload
    }

    /// The next packet, which must be the acknowledgement `id`; returns its argument.
    pub async fn expect_ack(&mut self, id: u64) -> serde_json::Value {
        self.expect_event(&format!("ack:{id}")).await
    }

    /// The next event named `name`, others skipped (pings answered): its arguments. Panics
    /// on anything but a text frame, or after `wait`.
    pub async fn next_event(&mut self, name: &str, wait: Duration) -> Vec<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await {
                Received::Text(t) if t == "2" => self.send_text("3").await,
                Received::Text(t) => {
                    if let Some(rest) = t.strip_prefix("42") {
                        let v: serde_json::Value = serde_json::from_str(rest).expect("an event");
                        if v[0] == serde_json::json!(name) {
                            return v.as_array().map(|a| a[1..].to_vec()).unwrap_or_default();
                        }
                    }
                }
                other => panic!("waiting for {name}: {other:?}"),
            }
        }
    }

    /// Asserts no event named `name` arrives within `wait` (others are skipped, pings
    /// answered).
    pub async fn no_event(&mut self, name: &str, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await {
                Received::Timeout => return,
                Received::Text(t) if t == "2" => self.send_text("3").await,
                Received::Text(t) => {
                    assert!(!t.starts_with(&format!(r#"42["{name}""#)), "unexpected {t}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    /// Asserts nothing arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await {
                Received::Timeout => return,
                Received::Text(t) if self.skip_presence && is_presence_frame(&t) => {}
                Received::Text(t) if t == "2" => self.send_text("3").await,
                other => panic!("expected silence, got {other:?}"),
            }
        }
    }
}

/// The frame of a `send_message` of `content` to `connection_id`, its `tempId` the content.
pub fn send_message(connection_id: &str, content: &str) -> String {
    format!(
        "42{}",
        serde_json::json!(["send_message", {"connectionId": connection_id, "content": content, "tempId": content}])
    )
}

/// Raw HTTP long-polling against a test app.
pub struct Polling {
    pub base: String,
    pub client: awc::Client,
}

impl Polling {
    pub fn new(app: &TestApp) -> Polling {
        Polling {
            base: format!(
                "http://127.0.0.1:{}/socket.io/?EIO=4&transport=polling",
                app.port
            ),
            client: awc::Client::builder()
                .timeout(Duration::from_secs(10))
                .finish(),
        }
    }

    /// Opens a session: returns its sid and the handshake JSON.
    pub async fn handshake(&self) -> (String, serde_json::Value) {
        let (status, body) = self.get_url(&self.base).await;
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value =
            serde_json::from_str(body.strip_prefix('0').expect("open packet")).unwrap();
        (json["sid"].as_str().unwrap().to_string(), json)
    }

    pub fn url(&self, sid: &str) -> String {
        format!("{}&sid={sid}", self.base)
    }

    pub async fn get_url(&self, url: &str) -> (u16, String) {
        let mut resp = self.client.get(url).send().await.expect("GET");
        let body = resp.body().limit(16 * 1024 * 1024).await.expect("body");
        (
            resp.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    pub async fn get(&self, sid: &str) -> (u16, String) {
        self.get_url(&self.url(sid)).await
    }

    /// Starts a long-poll GET in the background; await the handle for its answer.
    pub fn spawn_get(&self, sid: &str) -> actix_web::rt::task::JoinHandle<(u16, String)> {
        let client = self.client.clone();
        let url = self.url(sid);
        actix_web::rt::spawn(async move {
            let mut resp = client.get(url).send().await.expect("GET");
            let body = resp.body().await.expect("body");
            (
                resp.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        })
    }

    pub async fn post(&self, sid: &str, body: &str) -> (u16, String) {
        let mut resp = self
            .client
            .post(self.url(sid))
            .insert_header(("content-type", "text/plain;charset=UTF-8"))
            .send_body(body.to_string())
            .await
            .expect("POST");
        let body = resp.body().await.expect("body");
        (
            resp.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    /// Opens a session and completes a Socket.IO CONNECT as `user`.
    pub async fn connect_user(&self, app: &TestApp, user: &str) -> String {
        let (sid, _) = self.handshake().await;
        let (status, body) = self
            .post(&sid, &format!(r#"40{{"token":"{}"}}"#, app.token(user)))
            .await;
        assert_eq!((status, body.as_str()), (200, "ok"));
        let (status, body) = self.get(&sid).await;
        assert_eq!(status, 200);
        assert!(body.starts_with(r#"40{"sid":"#), "{body}");
        sid
    }
}
