//! The `courier` binary stopped under load, on PostgreSQL:
//!
//! - SIGTERM: every message read from the client before the signal is committed and acked
//!   before the process exits, within `server.shutdown_timeout`, with exit code 0 (the
//!   messages in the table are exactly the ones acked);
//! - `kill -9`: every message the client got `message_sent` for is in the table.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::db::{Kind, TestDb};
use common::process::Courier;
use common::wait::eventually_within;
use common::world::People;
use common::{connect_to, Received, WsClient};
use serde_json::{json, Value};

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

/// The server on a database of its own, with a shutdown timeout of 5 s.
async fn world() -> (TestDb, Courier, People) {
    let db = TestDb::new(Kind::Postgres).await;
    let server = Courier::start(
        &[
            ("DATABASE_URL", &db.url),
            ("COURIER__SERVER__SHUTDOWN_TIMEOUT", "5"),
        ],
        None,
    );
    let people = People::seed(&db).await;
    (db, server, people)
}

async fn saved(db: &TestDb, ab: &str) -> HashSet<String> {
    db.contents(ab).await.into_iter().collect()
}

/// Reads until `n` messages are acked (`message_sent`), noting them in `acked`.
async fn acks(client: &mut WsClient, acked: &mut HashSet<String>, n: usize) {
    while acked.len() < n {
        match client.recv().await {
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
}

#[actix_web::test]
async fn sigterm_under_load_commits_and_acks_what_was_read() {
    let (db, mut server, w) = world().await;
    let mut a = connect_to(server.port, &w.alice).await;
    let count = 2000;
    for i in 0..count {
        a.send_text(&send(&w.ab, i)).await;
    }
    // Some are through; many are still in flight or unread.
    let mut acked = HashSet::new();
    acks(&mut a, &mut acked, 20).await;
    server.terminate();
    acks_until_closed(&mut a, &mut acked).await;
    // It exits by itself (a hung shutdown fails here, long after its own timeout).
    let mut exit = None;
    eventually_within(
        "the server exits by itself",
        Duration::from_secs(60),
        async || {
            exit = server.child.try_wait().expect("waits");
            exit.is_some()
        },
    )
    .await;
    assert_eq!(exit.and_then(|e| e.code()), Some(0), "a clean exit");
    let saved = saved(&db, &w.ab).await;
    assert_eq!(saved, acked, "exactly the messages acked are saved");
    assert!(
        acked.len() < count,
        "the signal came mid-way ({})",
        acked.len()
    );
}

#[actix_web::test]
async fn kill_9_under_load_loses_nothing_acked() {
    let (db, mut server, w) = world().await;
    let mut a = connect_to(server.port, &w.alice).await;
    for i in 0..2000 {
        a.send_text(&send(&w.ab, i)).await;
    }
    let mut acked = HashSet::new();
    acks(&mut a, &mut acked, 50).await;
    server.child.kill().expect("kill -9");
    let _ = server.child.wait();
    acks_until_closed(&mut a, &mut acked).await;
    let saved = saved(&db, &w.ab).await;
    for content in &acked {
        assert!(
            saved.contains(content),
            "{content} was acked but is not saved"
        );
    }
}
