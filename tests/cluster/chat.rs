//! Chat across nodes: both ways, in order, once; a user with sockets on two nodes; a
//! polling request for another node's session (400 `Session ID unknown`: sticky sessions);
//! the message rate limit and the sockets per user counted across nodes.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::db::{Kind, TestDb};
use crate::common::process::Courier;
use crate::common::{send_message, token, WsClient};
use crate::nodes::{
    connect, metric, next_event, readyz, start_node, start_node_with, three_nodes, write_both_ways,
    LONG,
};
use crate::servers::Redis;

#[actix_web::test]
async fn chat_crosses_nodes_both_ways_in_order_and_once() {
    let redis = Redis::start();
    let db = TestDb::new(Kind::Postgres).await;
    // The first node migrates the database.
    let (a, b, c) = three_nodes(&db, &redis);
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
        bob.no_event("receive_message", Duration::from_millis(500))
            .await;
    }

    // The other way, and a read receipt back across nodes.
    bob_c.send_text(&send_message(&ab, "from bob")).await;
    let saved = next_event(&mut bob_c, "message_sent", LONG).await;
    let m = next_event(&mut alice_a, "receive_message", LONG).await;
    assert_eq!(m["content"], json!("from bob"));
    assert_eq!(m["createdAt"], saved["savedMessage"]["createdAt"]);
    // Bob's other socket (node B) is not the receiver: it gets nothing.
    bob_b
        .no_event("receive_message", Duration::from_millis(300))
        .await;
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
    let polling = |node: &Courier, sid: &str| {
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
    write_both_ways(&mut alice_a, &mut bob_b, &ab, n).await;
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
    let token = token(&alice);
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
