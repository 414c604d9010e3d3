//! The `courier` binary stopped under load, on PostgreSQL:
//!
//! - SIGTERM: every message read from the client before the signal is committed and acked
//!   before the process exits, within `server.shutdown_timeout`, with exit code 0 (the
//!   messages in the table are exactly the ones acked);
//! - `kill -9`: every message the client got `message_sent` for is in the table.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::db::{Kind, TestDb};
use common::{Received, WsClient, SECRET};
use courier::auth::Authenticator;
use serde_json::{json, Value};

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(db: &TestDb) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", "0")
        .env("SOCKET_SECRET", SECRET)
        .env("DATABASE_URL", &db.url)
        .env("COURIER__SERVER__HOST", "127.0.0.1")
        .env("COURIER__METRICS__BIND", "127.0.0.1:0")
        .env("COURIER__SERVER__SHUTDOWN_TIMEOUT", "5")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("courier starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Some(at) = line.rfind(':') {
                    if line.contains("listening on http://") {
                        if let Ok(port) = line[at + 1..].trim().parse::<u16>() {
                            let _ = tx.send(port);
                            sent = true;
                        }
                    }
                }
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("courier listens");
    Server { child, port }
}

async fn connect(port: u16, user: &str) -> WsClient {
    let mut client = WsClient::connect(&format!(
        "ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    ))
    .await;
    client.recv_text().await;
    let token = Authenticator::new(SECRET, 0)
        .issue(user, Duration::from_secs(60))
        .expect("a token");
    client
        .send_text(&format!(r#"40{{"token":"{token}"}}"#))
        .await;
    assert!(client.recv_text().await.starts_with("40"));
    client
}

fn send(connection_id: &str, i: usize) -> String {
    format!(
        "42{}",
        json!(["send_message", {"connectionId": connection_id, "content": format!("m{i}"), "tempId": format!("t{i}")}])
    )
}

/// Reads until the connection ends; the contents acked (`message_sent`).
async fn acks_until_closed(client: &mut WsClient, acked: &mut HashSet<String>) {
    loop {
        match client.recv_within(Duration::from_secs(15)).await {
            Received::Text(t) if t == "2" => client.send_text("3").await,
            Received::Text(t) => {
                if let Some(rest) = t.strip_prefix("42") {
                    let v: Value = serde_json::from_str(rest).expect("an event");
                    if v[0] == json!("message_sent") {
                        acked.insert(
                            v[1]["savedMessage"]["content"]
                                .as_str()
                                .unwrap()
                                .to_string(),
                        );
                    }
                }
            }
            Received::Close(_) | Received::Ended => return,
            Received::Timeout => panic!("the server neither answered nor closed"),
            _ => {}
        }
    }
}

async fn world() -> (TestDb, Server, String, String) {
    let db = TestDb::new(Kind::Postgres).await;
    let server = start(&db);
    let alice = db.user("alice").await;
    let bob = db.user("bob").await;
    let ab = db.connection(&alice, &bob, "ACTIVE").await;
    (db, server, alice, ab)
}

async fn saved(db: &TestDb, ab: &str) -> HashSet<String> {
    db.messages(ab)
        .await
        .into_iter()
        .map(|m| m.content)
        .collect()
}

#[actix_web::test]
async fn sigterm_under_load_commits_and_acks_what_was_read() {
    let (db, mut server, alice, ab) = world().await;
    let mut a = connect(server.port, &alice).await;
    let count = 2000;
    for i in 0..count {
        a.send_text(&send(&ab, i)).await;
    }
    // Some are through; many are still in flight or unread.
    let mut acked = HashSet::new();
    while acked.len() < 20 {
        match a.recv().await {
            Received::Text(t) if t.starts_with(r#"42["message_sent""#) => {
                let v: Value = serde_json::from_str(&t[2..]).unwrap();
                acked.insert(
                    v[1]["savedMessage"]["content"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                );
            }
            Received::Text(_) => {}
            other => panic!("{other:?}"),
        }
    }
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    acks_until_closed(&mut a, &mut acked).await;
    let exit = server.child.wait().expect("exits");
    assert_eq!(exit.code(), Some(0), "a clean exit");
    assert!(
        signalled.elapsed() < Duration::from_secs(8),
        "within the shutdown timeout: {:?}",
        signalled.elapsed()
    );
    let saved = saved(&db, &ab).await;
    assert_eq!(saved, acked, "exactly the messages acked are saved");
    assert!(
        acked.len() < count,
        "the signal came mid-way ({})",
        acked.len()
    );
}

#[actix_web::test]
async fn kill_9_under_load_loses_nothing_acked() {
    let (db, mut server, alice, ab) = world().await;
    let mut a = connect(server.port, &alice).await;
    for i in 0..2000 {
        a.send_text(&send(&ab, i)).await;
    }
    let mut acked = HashSet::new();
    while acked.len() < 50 {
        match a.recv().await {
            Received::Text(t) if t.starts_with(r#"42["message_sent""#) => {
                let v: Value = serde_json::from_str(&t[2..]).unwrap();
                acked.insert(
                    v[1]["savedMessage"]["content"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                );
            }
            Received::Text(_) => {}
            other => panic!("{other:?}"),
        }
    }
    server.child.kill().expect("kill -9");
    let _ = server.child.wait();
    acks_until_closed(&mut a, &mut acked).await;
    let saved = saved(&db, &ab).await;
    for content in &acked {
        assert!(
            saved.contains(content),
            "{content} was acked but is not saved"
        );
    }
}
