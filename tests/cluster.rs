//! Three `courier` processes on one private Redis and one PostgreSQL database, as one
//! service (`redis.url`): chat both ways across nodes, a user with sockets on two nodes,
//! presence and calls across nodes, a node killed with `kill -9`, Redis restarted, and a
//! polling request for another node's session (400 `Session ID unknown`: sticky sessions).
//!
//! Each test starts its own `redis-server` on a free loopback port (never the machine's
//! shared one) and kills it at the end. Behind Redis Sentinel: a master, a replica and three
//! `redis-sentinel`s of its own, the master killed under load.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::db::{Kind, TestDb};
use common::{Received, WsClient, SECRET};
use courier::auth::Authenticator;
use serde_json::{json, Value};

/// A private `redis-server`; killed when dropped.
struct Redis {
    child: Child,
    port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Redis {
    fn start() -> Redis {
        Self::start_on(free_port())
    }

    fn start_on(port: u16) -> Redis {
        Self::start_with(port, &[])
    }

    /// A `redis-server` on `port` with `extra` arguments.
    fn start_with(port: u16, extra: &[&str]) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        Self::listening(child, port)
    }

    /// A `redis-server` speaking TLS only, with a password (a self-signed certificate made
    /// with `openssl` in `dir`).
    fn start_tls(dir: &std::path::Path, password: &str) -> Redis {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(made.success(), "a certificate");
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .arg("--tls-ca-cert-file")
            .arg(&cert)
            .args(["--tls-auth-clients", "no", "--requirepass", password])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        Self::listening(child, port)
    }

    /// The server `child` once it accepts connections on `port`.
    fn listening(child: std::process::Child, port: u16) -> Redis {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server listens");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `redis-cli` on this server.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `courier` process; killed when dropped.
struct Node {
    child: Child,
    port: u16,
    metrics_port: u16,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port in a log line `... http://127.0.0.1:PORT...` after `marker`.
fn port_after(line: &str, marker: &str) -> Option<u16> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let rest = &rest[rest.find("http://")? + "http://".len()..];
    let host_port = rest.split('/').next()?;
    host_port.rsplit(':').next()?.trim().parse().ok()
}

fn start_node(db: &TestDb, redis_url: &str) -> Node {
    start_node_with(db, redis_url, &[])
}

fn start_node_with(db: &TestDb, redis_url: &str, env: &[(&str, &str)]) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", "0")
        .env("SOCKET_SECRET", SECRET)
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", redis_url)
        .env("COURIER__REDIS__PRESENCE_TTL", "2000")
        .env("COURIER__REDIS__REFRESH", "400")
        .env("COURIER__PRESENCE__OFFLINE_GRACE", "300")
        .env("COURIER__SERVER__HOST", "127.0.0.1")
        .env("COURIER__SERVER__WORKERS", "1")
        .env("COURIER__CHAT__SHARDS", "2")
        .env("COURIER__METRICS__BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("courier starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut port, mut metrics, mut subscribed) = (None, None, false);
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if std::env::var_os("CLUSTER_TEST_LOG").is_some() {
                eprintln!("{line}");
            }
            if port.is_none() && line.contains("listening on http://") {
                port = port_after(&line, "listening on");
            }
            if metrics.is_none() && line.contains("metrics and readiness on http://") {
                metrics = port_after(&line, "readiness on");
            }
            subscribed |= line.contains("cluster: subscribed");
            if !sent && subscribed {
                if let (Some(p), Some(m)) = (port, metrics) {
                    let _ = tx.send((p, m));
                    sent = true;
                }
            }
        }
    });
    let Ok((port, metrics_port)) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("courier did not listen and subscribe within 30 s");
    };
    Node {
        child,
        port,
        metrics_port,
    }
}

async fn connect(node: &Node, user: &str) -> WsClient {
    let mut client = WsClient::connect(&format!(
        "ws://127.0.0.1:{}/socket.io/?EIO=4&transport=websocket",
        node.port
    ))
    .await;
    client.recv_text().await;
    let token = Authenticator::new(SECRET, 0)
        .issue(user, Duration::from_secs(600))
        .expect("a token");
    client
        .send_text(&format!(r#"40{{"token":"{token}"}}"#))
        .await;
    assert!(client.recv_text().await.starts_with("40"));
    client.skip_presence = false;
    client
}

/// The next event named `name`, skipping others (pings answered); panics after `wait`.
async fn next_event(client: &mut WsClient, name: &str, wait: Duration) -> Value {
    next_event_with_offset(client, name, wait).await.0
}

/// The next event named `name` (others skipped): its first argument and its offset (the
/// last argument, when it has two).
async fn next_event_with_offset(
    client: &mut WsClient,
    name: &str,
    wait: Duration,
) -> (Value, Option<String>) {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.recv_within(left).await {
            Received::Text(t) if t == "2" => client.send_text("3").await,
            Received::Text(t) => {
                if let Some(rest) = t.strip_prefix("42") {
                    let v: Value = serde_json::from_str(rest).expect("an event");
                    if v[0] == json!(name) {
                        let offset = v.get(2).and_then(Value::as_str).map(str::to_string);
                        return (v[1].clone(), offset);
                    }
                }
            }
            other => panic!("waiting for {name}: {other:?}"),
        }
    }
}

/// Waits for the presence event `name` of `user` (others' are skipped).
async fn presence_of(client: &mut WsClient, name: &str, user: &str) {
    loop {
        if next_event(client, name, LONG).await["userId"] == json!(user) {
            return;
        }
    }
}

/// Asserts no event named `name` arrives within `wait` (others are skipped).
async fn no_event(client: &mut WsClient, name: &str, wait: Duration) {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.recv_within(left).await {
            Received::Timeout => return,
            Received::Text(t) if t == "2" => client.send_text("3").await,
            Received::Text(t) => {
                assert!(!t.starts_with(&format!(r#"42["{name}""#)), "unexpected {t}");
            }
            other => panic!("{other:?}"),
        }
    }
}

fn send_message(connection_id: &str, content: &str) -> String {
    format!(
        "42{}",
        json!(["send_message", {"connectionId": connection_id, "content": content, "tempId": content}])
    )
}

async fn metric(node: &Node, name: &str) -> f64 {
    let body = awc::Client::new()
        .get(format!("http://127.0.0.1:{}/metrics", node.metrics_port))
        .send()
        .await
        .expect("metrics answer")
        .body()
        .await
        .expect("a body");
    common::metric_value(&String::from_utf8_lossy(&body), name).unwrap_or(0.0)
}

async fn readyz(node: &Node) -> (u16, String) {
    let mut resp = awc::Client::new()
        .get(format!("http://127.0.0.1:{}/readyz", node.metrics_port))
        .send()
        .await
        .expect("readyz answers");
    let body = resp.body().await.expect("a body");
    (
        resp.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

const LONG: Duration = Duration::from_secs(10);

async fn user_row(db: &TestDb, id: &str) -> entity::users::Model {
    use sea_orm::EntityTrait;
    entity::users::Entity::find_by_id(id.to_string())
        .one(&db.conn)
        .await
        .expect("read users")
        .expect("the user")
}

#[actix_web::test]
async fn chat_crosses_nodes_both_ways_in_order_and_once() {
    let redis = Redis::start();
    let db = TestDb::new(Kind::Postgres).await;
    // The first node migrates the database.
    let (a, b, c) = (
        start_node(&db, &redis.url()),
        start_node(&db, &redis.url()),
        start_node(&db, &redis.url()),
    );
    let alice = db.user("alice").await;
    let bob = db.user("bob").await;
    let ab = db.connection(&alice, &bob, "ACTIVE").await;
    let mut alice_a = connect(&a, &alice).await;
    // Bob has a socket on two other nodes.
    let mut bob_b = connect(&b, &bob).await;
    let mut bob_c = connect(&c, &bob).await;

    let n = 30;
    for i in 0..n {
        alice_a
            .send_text(&send_message(&ab, &format!("a{i}")))
            .await;
    }
    for i in 0..n {
        let sent = next_event(&mut alice_a, "message_sent", LONG).await;
        assert_eq!(sent["tempId"], json!(format!("a{i}")));
    }
    for bob in [&mut bob_b, &mut bob_c] {
        for i in 0..n {
            let m = next_event(bob, "receive_message", LONG).await;
            assert_eq!(m["content"], json!(format!("a{i}")), "in the order sent");
            assert_eq!(m["senderId"], json!(alice));
        }
        no_event(bob, "receive_message", Duration::from_millis(500)).await;
    }

    // The other way, and a read receipt back across nodes.
    bob_c.send_text(&send_message(&ab, "from bob")).await;
    let saved = next_event(&mut bob_c, "message_sent", LONG).await;
    let m = next_event(&mut alice_a, "receive_message", LONG).await;
    assert_eq!(m["content"], json!("from bob"));
    assert_eq!(m["createdAt"], saved["savedMessage"]["createdAt"]);
    // Bob's other socket (node B) is not the receiver: it gets nothing.
    no_event(&mut bob_b, "receive_message", Duration::from_millis(300)).await;
    alice_a
        .send_text(&format!(
            "42{}",
            json!(["mark_message_read", {"messageId": m["id"], "connectionId": ab}])
        ))
        .await;
    for bob in [&mut bob_b, &mut bob_c] {
        let read = next_event(bob, "message_read", LONG).await;
        assert_eq!(read["messageId"], m["id"]);
        assert_eq!(read["readBy"], json!(alice));
    }
    // A long-polling request for a session another node holds: Engine.IO's 400.
    let polling = |node: &Node, sid: &str| {
        format!(
            "http://127.0.0.1:{}/socket.io/?EIO=4&transport=polling{sid}",
            node.port
        )
    };
    let mut open = awc::Client::new()
        .get(polling(&a, ""))
        .send()
        .await
        .expect("a handshake");
    let body = String::from_utf8_lossy(&open.body().await.expect("a body")).into_owned();
    let handshake: Value = serde_json::from_str(&body[1..]).expect("an open packet");
    let sid = handshake["sid"].as_str().expect("a sid");
    let mut other = awc::Client::new()
        .get(polling(&b, &format!("&sid={sid}")))
        .send()
        .await
        .expect("an answer");
    assert_eq!(other.status().as_u16(), 400);
    let body = other.body().await.expect("a body");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("JSON"),
        json!({"code": 1, "message": "Session ID unknown"})
    );

    assert!(metric(&a, "courier_cluster_published_total").await >= n as f64);
    assert!(metric(&b, "courier_cluster_received_total").await >= n as f64);
    let (status, body) = readyz(&a).await;
    assert_eq!(status, 200, "{body}");
}

#[actix_web::test]
async fn presence_and_calls_are_cluster_wide() {
    let redis = Redis::start();
    let db = TestDb::new(Kind::Postgres).await;
    // The first node migrates the database.
    let (a, b, c) = (
        start_node(&db, &redis.url()),
        start_node(&db, &redis.url()),
        start_node(&db, &redis.url()),
    );
    let alice = db.user("alice").await;
    let bob = db.user("bob").await;
    db.connection(&alice, &bob, "ACTIVE").await;
    let mut alice_a = connect(&a, &alice).await;

    // Bob comes online on B: Alice (on A) is told, once, even when he opens a second socket
    // on C.
    let mut bob_b = connect(&b, &bob).await;
    let online = next_event(&mut alice_a, "user_online_status", LONG).await;
    assert_eq!(online["userId"], json!(bob));
    let mut bob_c = connect(&c, &bob).await;
    no_event(
        &mut alice_a,
        "user_online_status",
        Duration::from_millis(800),
    )
    .await;
    assert_eq!(redis.cli(&["SISMEMBER", "online_users", &bob]), "1");
    assert_eq!(
        user_row(&db, &bob).await.connection_count,
        2,
        "both nodes' sockets"
    );

    // Alice calls Bob: both of his sockets ring; he answers from C.
    alice_a
        .send_text(&format!(
            "421{}",
            json!(["call:initiate", {"recipientId": bob, "callType": "video", "roomName": "call-x-1"}])
        ))
        .await;
    for bob in [&mut bob_b, &mut bob_c] {
        let ring = next_event(bob, "call:incoming", LONG).await;
        assert_eq!(ring["callerId"], json!(alice));
        assert_eq!(ring["callerName"], json!("alice"));
    }
    bob_c
        .send_text(&format!(
            "42{}",
            json!(["call:answer", {"callerId": alice, "connectionId": "call-x-1"}])
        ))
        .await;
    let accepted = next_event(&mut alice_a, "call:accepted", LONG).await;
    assert_eq!(accepted["participantId"], json!(bob));

    // Bob's socket on B goes: he is still online (C).
    drop(bob_b);
    no_event(
        &mut alice_a,
        "user_offline_status",
        Duration::from_millis(1500),
    )
    .await;
    let row = user_row(&db, &bob).await;
    assert!(row.is_online);
    assert_eq!(row.connection_count, 1, "the socket left on C");
    // His last socket goes: offline, cluster-wide.
    drop(bob_c);
    let offline = next_event(&mut alice_a, "user_offline_status", LONG).await;
    assert_eq!(offline["userId"], json!(bob));
    // Calling him now fails: no node has a socket of his.
    tokio::time::sleep(Duration::from_millis(300)).await;
    alice_a
        .send_text(&format!(
            "422{}",
            json!(["call:initiate", {"recipientId": bob, "callType": "audio", "roomName": "call-x-2"}])
        ))
        .await;
    let failed = next_event(&mut alice_a, "call:failed", LONG).await;
    assert_eq!(failed["code"], json!("USER_OFFLINE"));
    assert_eq!(redis.cli(&["SISMEMBER", "online_users", &bob]), "0");
}

#[actix_web::test]
async fn a_killed_node_s_users_go_offline_and_the_others_keep_serving() {
    let redis = Redis::start();
    let db = TestDb::new(Kind::Postgres).await;
    // The first node migrates the database.
    let (a, mut b, c) = (
        start_node(&db, &redis.url()),
        start_node(&db, &redis.url()),
        start_node(&db, &redis.url()),
    );
    let alice = db.user("alice").await;
    let bob = db.user("bob").await;
    let carol = db.user("carol").await;
    db.connection(&alice, &bob, "ACTIVE").await;
    let ac = db.connection(&alice, &carol, "ACTIVE").await;
    let mut alice_a = connect(&a, &alice).await;
    let mut carol_c = connect(&c, &carol).await;
    let _bob_b = connect(&b, &bob).await;
    presence_of(&mut alice_a, "user_online_status", &bob).await;

    b.child.kill().expect("kill -9");
    let _ = b.child.wait();
    let killed = Instant::now();
    presence_of(&mut alice_a, "user_offline_status", &bob).await;
    assert!(
        killed.elapsed() < Duration::from_secs(6),
        "within the keys' expiry: {:?}",
        killed.elapsed()
    );

    // A and C still serve each other.
    carol_c.send_text(&send_message(&ac, "still here")).await;
    let m = next_event(&mut alice_a, "receive_message", LONG).await;
    assert_eq!(m["content"], json!("still here"));
}

#[actix_web::test]
async fn after_a_redis_restart_sockets_that_stayed_connected_catch_up_from_the_database() {
    let mut redis = Redis::start();
    let port = redis.port;
    let db = TestDb::new(Kind::Postgres).await;
    // The first node migrates the database.
    let (a, b) = (start_node(&db, &redis.url()), start_node(&db, &redis.url()));
    let alice = db.user("alice").await;
    let bob = db.user("bob").await;
    let carol = db.user("carol").await;
    let ab = db.connection(&alice, &bob, "ACTIVE").await;
    let ac = db.connection(&alice, &carol, "ACTIVE").await;
    let mut alice_a = connect(&a, &alice).await;
    let mut bob_a = connect(&a, &bob).await;
    let mut carol_b = connect(&b, &carol).await;
    // Before the outage: delivered live across nodes, with an offset.
    alice_a.send_text(&send_message(&ac, "before")).await;
    let (m, offset) = next_event_with_offset(&mut carol_b, "receive_message", LONG).await;
    assert_eq!(m["content"], json!("before"));
    assert!(
        offset.is_some(),
        "a message from the other node carries an offset"
    );

    redis.stop();
    // Local delivery goes on.
    alice_a.send_text(&send_message(&ab, "local")).await;
    let m = next_event(&mut bob_a, "receive_message", LONG).await;
    assert_eq!(m["content"], json!("local"));
    // Across nodes the live delivery is lost, and counted (the local one's publish for
    // Bob's sockets on other nodes too).
    let failed = "courier_cluster_publish_failed_total";
    let deadline = Instant::now() + LONG;
    while metric(&a, failed).await < 1.0 {
        assert!(Instant::now() < deadline, "the failed publish is counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = metric(&a, failed).await;
    for i in 0..3 {
        alice_a
            .send_text(&send_message(&ac, &format!("missed {i}")))
            .await;
        next_event(&mut alice_a, "message_sent", LONG).await;
    }
    while metric(&a, failed).await < before + 3.0 {
        assert!(
            Instant::now() < deadline,
            "the failed publishes are counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = readyz(&a).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("redis"), "{body}");
    no_event(&mut carol_b, "receive_message", Duration::from_millis(300)).await;

    // Redis comes back empty while Alice keeps writing: the nodes subscribe again and
    // register their users again; Carol's socket, which stayed connected, is given what it
    // missed, from the database, then live traffic: every message once, in order, with
    // offsets, though messages are committed while it catches up.
    const SENT: usize = 40;
    let writer = actix_web::rt::spawn(async move {
        for i in 0..SENT {
            alice_a
                .send_text(&send_message(&ac, &format!("racing {i}")))
                .await;
            next_event(&mut alice_a, "message_sent", LONG).await;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        alice_a
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let redis = Redis::start_on(port);
    let mut got = Vec::new();
    let mut offsets = Vec::new();
    while got.len() < 3 + SENT {
        let (m, offset) = next_event_with_offset(&mut carol_b, "receive_message", LONG).await;
        got.push(m["content"].as_str().unwrap_or_default().to_string());
        offsets.push(offset);
    }
    let expected: Vec<String> = (0..3)
        .map(|i| format!("missed {i}"))
        .chain((0..SENT).map(|i| format!("racing {i}")))
        .collect();
    assert_eq!(got, expected);
    assert!(offsets.iter().all(Option::is_some), "{offsets:?}");
    writer.await.expect("the writer finishes");
    let deadline = Instant::now() + LONG;
    loop {
        let subscribed = metric(&a, "courier_cluster_redis_subscribed").await == 1.0
            && metric(&b, "courier_cluster_redis_subscribed").await == 1.0;
        let registered = redis.cli(&["SISMEMBER", "online_users", &carol]) == "1"
            && redis.cli(&["SISMEMBER", "online_users", &alice]) == "1";
        if subscribed && registered {
            break;
        }
        assert!(Instant::now() < deadline, "subscribed and registered again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    no_event(&mut carol_b, "receive_message", Duration::from_millis(500)).await;
    let (status, body) = readyz(&a).await;
    assert_eq!(status, 200, "{body}");
    // Nobody was told anyone went offline or online meanwhile.
    no_event(
        &mut carol_b,
        "user_offline_status",
        Duration::from_millis(300),
    )
    .await;
}

#[actix_web::test]
async fn a_socket_that_missed_more_than_max_replay_is_told_and_closed() {
    let mut redis = Redis::start();
    let port = redis.port;
    let db = TestDb::new(Kind::Postgres).await;
    let a = start_node(&db, &redis.url());
    let b = start_node_with(&db, &redis.url(), &[("COURIER__RECOVERY__MAX_REPLAY", "2")]);
    let alice = db.user("alice").await;
    let carol = db.user("carol").await;
    let ac = db.connection(&alice, &carol, "ACTIVE").await;
    let mut alice_a = connect(&a, &alice).await;
    let mut carol_b = connect(&b, &carol).await;
    redis.stop();
    for i in 0..3 {
        alice_a
            .send_text(&send_message(&ac, &format!("missed {i}")))
            .await;
        next_event(&mut alice_a, "message_sent", LONG).await;
    }
    let _redis = Redis::start_on(port);
    // Three missed, two replayable: the client is told its stream is lost (its offset
    // becomes "-", so its next connection is a fresh one and it refetches), and closed.
    let deadline = Instant::now() + LONG;
    let mut resync = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match carol_b.recv_within(left).await {
            Received::Text(t) if t == "2" => carol_b.send_text("3").await,
            Received::Text(t) => {
                assert!(!t.contains("receive_message"), "nothing replayed: {t}");
                if t.starts_with(r#"42["courier:resync""#) {
                    resync = Some(t);
                }
            }
            Received::Close(_) | Received::Ended => break,
            other => panic!("waiting for the close: {other:?}"),
        }
    }
    let resync = resync.expect("courier:resync before the close");
    let event: Value = serde_json::from_str(&resync[2..]).expect("an event");
    assert_eq!(event.as_array().and_then(|a| a.last()), Some(&json!("-")));
}

#[actix_web::test]
async fn both_members_writing_at_once_through_two_nodes_each_see_the_other_in_order() {
    let redis = Redis::start();
    let db = TestDb::new(Kind::Postgres).await;
    let (a, b) = (start_node(&db, &redis.url()), start_node(&db, &redis.url()));
    let alice = db.user("alice").await;
    let bob = db.user("bob").await;
    let ab = db.connection(&alice, &bob, "ACTIVE").await;
    let mut alice_a = connect(&a, &alice).await;
    let mut bob_b = connect(&b, &bob).await;
    let n = 40;
    for i in 0..n {
        alice_a
            .send_text(&send_message(&ab, &format!("a{i}")))
            .await;
        bob_b.send_text(&send_message(&ab, &format!("b{i}"))).await;
    }
    for (me, other) in [(&mut alice_a, "b"), (&mut bob_b, "a")] {
        for i in 0..n {
            let m = next_event(me, "receive_message", LONG).await;
            assert_eq!(
                m["content"],
                json!(format!("{other}{i}")),
                "each sender in order"
            );
        }
    }
    // Everything is saved once; each sender's messages in the database's order too.
    let saved = db.messages(&ab).await;
    assert_eq!(saved.len(), 2 * n);
    for prefix in ["a", "b"] {
        let order: Vec<String> = saved
            .iter()
            .filter(|m| m.content.starts_with(prefix))
            .map(|m| m.content.clone())
            .collect();
        let expected: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
        assert_eq!(order, expected);
    }
}

#[actix_web::test]
async fn the_message_rate_limit_counts_across_nodes_in_the_node_servers_key() {
    let redis = Redis::start();
    let db = TestDb::new(Kind::Postgres).await;
    let limit = [
        ("COURIER__CHAT__RATE_LIMIT__PER_SECOND", "5"),
        ("COURIER__CHAT__RATE_LIMIT__BURST", "5"),
    ];
    let (a, b) = (
        start_node_with(&db, &redis.url(), &limit),
        start_node_with(&db, &redis.url(), &limit),
    );
    let alice = db.user("alice").await;
    let bob = db.user("bob").await;
    let ab = db.connection(&alice, &bob, "ACTIVE").await;
    let mut alice_a = connect(&a, &alice).await;
    let mut alice_b = connect(&b, &alice).await;
    // Five on A: the local bucket and the cluster's count allow them.
    for i in 0..5 {
        alice_a
            .send_text(&send_message(&ab, &format!("a{i}")))
            .await;
    }
    // Each waits for its count, and they still go on in the order she sent them.
    let mut sent = Vec::new();
    for _ in 0..5 {
        sent.push(next_event(&mut alice_a, "message_sent", LONG).await["tempId"].clone());
    }
    assert_eq!(
        sent,
        (0..5).map(|i| json!(format!("a{i}"))).collect::<Vec<_>>()
    );
    assert_eq!(
        redis.cli(&["GET", &format!("ratelimit:messages:{alice}")]),
        "5"
    );
    // On B her own bucket is full, but the cluster has counted five this second: the sixth
    // is refused at once (a message goes on only once its count is back), and not saved.
    alice_b.send_text(&send_message(&ab, "b0")).await;
    let refused = next_event(&mut alice_b, "error", LONG).await;
    assert_eq!(
        refused["message"],
        json!("You are sending messages too fast. Please wait a moment.")
    );
    let rows = db.messages(&ab).await;
    assert!(
        rows.iter().all(|m| m.content != "b0"),
        "the refused message is not saved"
    );
    // A second later the window is over.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    alice_b.send_text(&send_message(&ab, "b2")).await;
    let sent = next_event(&mut alice_b, "message_sent", LONG).await;
    assert_eq!(sent["tempId"], json!("b2"));
}

#[actix_web::test]
async fn a_node_stopped_gracefully_leaves_no_user_online() {
    let redis = Redis::start();
    let db = TestDb::new(Kind::Postgres).await;
    let (a, mut b) = (start_node(&db, &redis.url()), start_node(&db, &redis.url()));
    let alice = db.user("alice").await;
    let bob = db.user("bob").await;
    db.connection(&alice, &bob, "ACTIVE").await;
    let mut alice_a = connect(&a, &alice).await;
    let _bob_b = connect(&b, &bob).await;
    presence_of(&mut alice_a, "user_online_status", &bob).await;
    // SIGTERM: B closes Bob's socket and exits before his grace period is over.
    let status = Command::new("kill")
        .args(["-TERM", &b.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let _ = b.child.wait();
    presence_of(&mut alice_a, "user_offline_status", &bob).await;
    assert_eq!(redis.cli(&["SISMEMBER", "online_users", &bob]), "0");
}

#[actix_web::test]
async fn max_sockets_per_user_counts_the_other_nodes() {
    let redis = Redis::start();
    let db = TestDb::new(Kind::Postgres).await;
    let cap = [("COURIER__CHAT__MAX_SOCKETS_PER_USER", "2")];
    let (a, b) = (
        start_node_with(&db, &redis.url(), &cap),
        start_node_with(&db, &redis.url(), &cap),
    );
    let alice = db.user("alice").await;
    let _first = connect(&a, &alice).await;
    let _second = connect(&b, &alice).await;
    // Each CONNECT reads how many sockets she has on the other nodes before it is answered:
    // a third one, on either node, is refused at once.
    let token = Authenticator::new(SECRET, 0)
        .issue(&alice, Duration::from_secs(600))
        .expect("a token");
    for node in [&a, &b] {
        let mut third = WsClient::connect(&format!(
            "ws://127.0.0.1:{}/socket.io/?EIO=4&transport=websocket",
            node.port
        ))
        .await;
        third.recv_text().await;
        third
            .send_text(&format!(r#"40{{"token":"{token}"}}"#))
            .await;
        assert_eq!(
            third.recv_text().await,
            r#"44{"message":"Too many connections"}"#
        );
    }
}

#[actix_web::test]
async fn rediss_with_a_password_works() {
    let dir = std::env::temp_dir().join(format!("courier-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let redis = Redis::start_tls(&dir, "s3cret");
    // The certificate is self-signed: `#insecure` skips its verification (redis crate).
    let url = format!("rediss://:s3cret@127.0.0.1:{}/#insecure", redis.port);
    let db = TestDb::new(Kind::Postgres).await;
    let (a, b) = (start_node(&db, &url), start_node(&db, &url));
    let alice = db.user("alice").await;
    let bob = db.user("bob").await;
    let ab = db.connection(&alice, &bob, "ACTIVE").await;
    let mut alice_a = connect(&a, &alice).await;
    let mut bob_b = connect(&b, &bob).await;
    alice_a.send_text(&send_message(&ab, "over tls")).await;
    let m = next_event(&mut bob_b, "receive_message", LONG).await;
    assert_eq!(m["content"], json!("over tls"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A master, its replica and three sentinels watching it (quorum 2, down after 1 s), all
/// private, on free loopback ports; killed when dropped.
struct Sentinels {
    master: Redis,
    replica: Redis,
    sentinels: Vec<(Child, u16)>,
    dir: std::path::PathBuf,
}

/// The master's name the sentinels monitor.
const MASTER: &str = "mymaster";

/// `redis-sentinel` (Debian's redis-sentinel package), when installed; else one line saying
/// the test is skipped (a panic where the services are required).
fn sentinel_or_skip(test: &str) -> bool {
    let found = Command::new("redis-sentinel")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("COURIER_TEST_REQUIRE_SERVICES").is_none(),
            "redis-sentinel is not installed (apt-get install redis-sentinel)"
        );
        eprintln!(
            "{test}: skipped: redis-sentinel is not installed (apt-get install redis-sentinel)"
        );
    }
    found
}

impl Sentinels {
    fn start() -> Sentinels {
        let master = Redis::start();
        let dir = std::env::temp_dir().join(format!(
            "courier-sentinel-{}-{}",
            std::process::id(),
            master.port
        ));
        std::fs::create_dir_all(&dir).expect("a directory");
        // The replica writes what it syncs to its directory.
        let dir_arg = dir.display().to_string();
        let replica = Redis::start_with(
            free_port(),
            &[
                "--replicaof",
                "127.0.0.1",
                &master.port.to_string(),
                "--dir",
                &dir_arg,
            ],
        );
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let conf = dir.join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor {MASTER} 127.0.0.1 {} 2\n\
                     sentinel down-after-milliseconds {MASTER} 1000\n\
                     sentinel failover-timeout {MASTER} 4000\n\
                     sentinel parallel-syncs {MASTER} 1\n",
                    dir.display(),
                    master.port
                ),
            )
            .expect("sentinel.conf");
            let child = Command::new("redis-sentinel")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-sentinel runs");
            sentinels.push((child, port));
        }
        let ha = Sentinels {
            master,
            replica,
            sentinels,
            dir,
        };
        // Ready for a failover: the replica in sync, every sentinel knowing it and the two
        // other sentinels.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let synced = ha
                .replica
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up");
            let known = ha.sentinels.iter().all(|(_, port)| {
                let cli = |args: &[&str]| {
                    Command::new("redis-cli")
                        .args(["-p", &port.to_string()])
                        .args(args)
                        .output()
                        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                        .unwrap_or_default()
                };
                let replicas = cli(&["SENTINEL", "replicas", MASTER]);
                let others = cli(&["SENTINEL", "sentinels", MASTER]);
                replicas.contains(&ha.replica.port.to_string())
                    && others.matches("runid").count() == 2
            });
            if synced && known {
                return ha;
            }
            assert!(Instant::now() < deadline, "the sentinels know each other");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Courier's `redis.url` for them.
    fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(_, port)| format!("127.0.0.1:{port}"))
            .collect();
        format!("redis+sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// The port of the master the first sentinel names.
    fn master_port(port: u16) -> Option<u16> {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(["SENTINEL", "get-master-addr-by-name", MASTER])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for (child, _) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn metric_on(metrics_port: u16, name: &str) -> f64 {
    let Ok(mut response) = awc::Client::new()
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
    else {
        return 0.0;
    };
    let body = response.body().await.unwrap_or_default();
    common::metric_value(&String::from_utf8_lossy(&body), name).unwrap_or(0.0)
}

#[actix_web::test]
async fn behind_sentinels_a_killed_master_is_followed_and_what_crossed_meanwhile_is_caught_up() {
    if !sentinel_or_skip("behind_sentinels_a_killed_master_is_followed") {
        return;
    }
    let mut ha = Sentinels::start();
    let first_sentinel = ha.sentinels[0].1;
    let db = TestDb::new(Kind::Postgres).await;
    let url = ha.url();
    // The first node migrates the database.
    let (a, b) = (start_node(&db, &url), start_node(&db, &url));
    let alice = db.user("alice").await;
    let carol = db.user("carol").await;
    let ac = db.connection(&alice, &carol, "ACTIVE").await;
    let mut alice_a = connect(&a, &alice).await;
    let mut carol_b = connect(&b, &carol).await;
    alice_a.send_text(&send_message(&ac, "before")).await;
    let m = next_event(&mut carol_b, "receive_message", LONG).await;
    assert_eq!(m["content"], json!("before"));

    // Alice writes on, under the failover.
    const SENT: usize = 150;
    let writer = actix_web::rt::spawn(async move {
        for i in 0..SENT {
            alice_a
                .send_text(&send_message(&ac, &format!("m{i}")))
                .await;
            next_event(&mut alice_a, "message_sent", LONG).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        alice_a
    });
    let mut got = Vec::new();
    while got.len() < 10 {
        let m = next_event(&mut carol_b, "receive_message", LONG).await;
        got.push(m["content"].as_str().unwrap_or_default().to_string());
    }
    let old_master = ha.master.port;
    ha.master.stop();
    let killed = Instant::now();
    // Meanwhile: when the sentinels name the replica, when both nodes are subscribed to it.
    let (metrics_a, metrics_b) = (a.metrics_port, b.metrics_port);
    let timing = actix_web::rt::spawn(async move {
        let (mut switched, mut dropped) = (None, false);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if switched.is_none() {
                let named =
                    tokio::task::spawn_blocking(move || Sentinels::master_port(first_sentinel))
                        .await
                        .ok()
                        .flatten();
                if named.is_some_and(|p| p != old_master) {
                    switched = Some(killed.elapsed());
                }
            }
            let up = metric_on(metrics_a, "courier_cluster_redis_subscribed").await == 1.0
                && metric_on(metrics_b, "courier_cluster_redis_subscribed").await == 1.0;
            dropped |= !up;
            if let (Some(switched), true, true) = (switched, dropped, up) {
                return Some((switched, killed.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    });
    while got.len() < SENT {
        let m = tokio::time::timeout(LONG, next_event(&mut carol_b, "receive_message", LONG * 2))
            .await
            .unwrap_or_else(|_| panic!("{} of {SENT} received: {got:?}", got.len()));
        got.push(m["content"].as_str().unwrap_or_default().to_string());
    }
    // Every message once, in order: live, then caught up from the database, then live again.
    let expected: Vec<String> = (0..SENT).map(|i| format!("m{i}")).collect();
    assert_eq!(got, expected);
    writer.await.expect("the writer finishes");
    no_event(&mut carol_b, "receive_message", Duration::from_millis(500)).await;
    let (switched, resubscribed) = timing
        .await
        .expect("the timing task")
        .expect("the sentinels switched and both nodes subscribed again");
    eprintln!(
        "sentinel failover: the sentinels named the replica master {} ms after the master was \
         killed (down-after-milliseconds 1000); both Courier nodes were subscribed to it {} ms \
         after the kill",
        switched.as_millis(),
        resubscribed.as_millis()
    );
    // The nodes write their keys on the new master, and serve as before.
    let deadline = Instant::now() + LONG;
    while ha.replica.cli(&["SISMEMBER", "online_users", &carol]) != "1" {
        assert!(
            Instant::now() < deadline,
            "carol registered on the new master"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for node in [&a, &b] {
        let (status, body) = readyz(node).await;
        assert_eq!(status, 200, "{body}");
    }
    // Nobody was taken for gone meanwhile (the nodes' keys outlived by the failover).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        user_row(&db, &carol).await.is_online,
        "carol is still online"
    );
}

/// A Redis Cluster of three masters (no replicas), private, on free loopback ports (and their
/// bus ports, 10000 above); killed when dropped.
struct RedisCluster {
    nodes: Vec<Redis>,
    dir: std::path::PathBuf,
}

/// A free port whose cluster bus port (10000 above it) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisCluster {
    fn start() -> RedisCluster {
        let dir = std::env::temp_dir().join(format!(
            "courier-redis-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("a directory");
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let port = free_cluster_port();
            let conf = dir.join(format!("nodes-{port}.conf"));
            let dir_arg = dir.display().to_string();
            let conf_arg = conf.display().to_string();
            nodes.push(Redis::start_with(
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &conf_arg,
                    "--cluster-node-timeout",
                    "2000",
                    "--dir",
                    &dir_arg,
                ],
            ));
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(created.success(), "redis-cli --cluster create");
        let cluster = RedisCluster { nodes, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster
            .nodes
            .iter()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "the cluster is ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// Courier's `redis.url` for it.
    fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// `redis-cli -c` (following redirections) on the cluster.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-c", "-p", &self.nodes[0].port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// How many subscribers `channel` (a sharded channel) has, on every node together.
    fn shard_subscribers(&self, channel: &str) -> usize {
        self.nodes
            .iter()
            .map(|n| {
                n.cli(&["PUBSUB", "SHARDNUMSUB", channel])
                    .lines()
                    .nth(1)
                    .and_then(|l| l.trim().parse::<usize>().ok())
                    .unwrap_or(0)
            })
            .sum()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[actix_web::test]
async fn on_a_redis_cluster_nodes_speak_sharded_pub_sub() {
    let redis = RedisCluster::start();
    let db = TestDb::new(Kind::Postgres).await;
    let url = redis.url();
    let limit = [
        ("COURIER__CHAT__RATE_LIMIT__PER_SECOND", "50"),
        ("COURIER__CHAT__RATE_LIMIT__BURST", "50"),
    ];
    // The first node migrates the database.
    let (a, b) = (
        start_node_with(&db, &url, &limit),
        start_node_with(&db, &url, &limit),
    );
    let alice = db.user("alice").await;
    let bob = db.user("bob").await;
    let ab = db.connection(&alice, &bob, "ACTIVE").await;
    let mut alice_a = connect(&a, &alice).await;
    // Bob comes online on B: Alice is told, and B subscribes to his room's channel.
    let mut bob_b = connect(&b, &bob).await;
    let online = next_event(&mut alice_a, "user_online_status", LONG).await;
    assert_eq!(online["userId"], json!(bob));
    assert_eq!(redis.shard_subscribers("socket.io#/#"), 2, "both nodes");
    assert_eq!(
        redis.shard_subscribers(&format!("socket.io#/#{bob}#")),
        1,
        "bob's node only"
    );
    // The message rate limit's counter (one key, one slot) counts on the cluster.
    alice_a.send_text(&send_message(&ab, "counted")).await;
    next_event(&mut alice_a, "message_sent", LONG).await;
    assert_eq!(
        redis.cli(&["GET", &format!("ratelimit:messages:{alice}")]),
        "1"
    );
    let m = next_event(&mut bob_b, "receive_message", LONG).await;
    assert_eq!(m["content"], json!("counted"));
    // Both ways, in order, once.
    let n = 30;
    for i in 0..n {
        alice_a
            .send_text(&send_message(&ab, &format!("a{i}")))
            .await;
        bob_b.send_text(&send_message(&ab, &format!("b{i}"))).await;
    }
    for (me, other) in [(&mut alice_a, "b"), (&mut bob_b, "a")] {
        for i in 0..n {
            let m = next_event(me, "receive_message", LONG).await;
            assert_eq!(m["content"], json!(format!("{other}{i}")), "in order");
        }
        no_event(me, "receive_message", Duration::from_millis(300)).await;
    }
    // The keys Courier keeps work on a cluster: the rate counter, online_users, the counts.
    assert_eq!(redis.cli(&["SISMEMBER", "online_users", &bob]), "1");
    assert_eq!(user_row(&db, &bob).await.connection_count, 1);
    // Bob leaves: B drops his channel; Alice is told he went offline (the nodes asked each
    // other with FETCH_SOCKETS).
    drop(bob_b);
    presence_of(&mut alice_a, "user_offline_status", &bob).await;
    let deadline = Instant::now() + LONG;
    while redis.shard_subscribers(&format!("socket.io#/#{bob}#")) != 0 {
        assert!(Instant::now() < deadline, "bob's channel is dropped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(redis.cli(&["SISMEMBER", "online_users", &bob]), "0");
    for node in [&a, &b] {
        let (status, body) = readyz(node).await;
        assert_eq!(status, 200, "{body}");
    }
}
