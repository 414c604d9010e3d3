//! Presence and calls across nodes: a user online once, whichever node his sockets are on,
//! offline once his last socket anywhere is gone; a node killed with `kill -9` (its users
//! go offline when its keys expire) or stopped gracefully (it leaves nobody online).

use std::time::Duration;

use serde_json::json;

use crate::common::db::{Kind, TestDb};
use crate::common::{eventually, send_message};
use crate::nodes::{connect, next_event, presence_of, start_node, three_nodes, user_row, LONG};
use crate::servers::Redis;

#[actix_web::test]
async fn presence_and_calls_are_cluster_wide() {
    let redis = Redis::start();
    let db = TestDb::new(Kind::Postgres).await;
    // The first node migrates the database.
    let (a, b, c) = three_nodes(&db, &redis);
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
    alice_a
        .no_event("user_online_status", Duration::from_millis(800))
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
    alice_a
        .no_event("user_offline_status", Duration::from_millis(1500))
        .await;
    let row = user_row(&db, &bob).await;
    assert!(row.is_online);
    assert_eq!(row.connection_count, 1, "the socket left on C");
    // His last socket goes: offline, cluster-wide.
    drop(bob_c);
    let offline = next_event(&mut alice_a, "user_offline_status", LONG).await;
    assert_eq!(offline["userId"], json!(bob));
    // Calling him now fails: no node has a socket of his, and he is out of online_users.
    eventually("bob out of online_users", async || {
        redis.cli(&["SISMEMBER", "online_users", &bob]) == "0"
    })
    .await;
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
    let (a, mut b, c) = three_nodes(&db, &redis);
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
    // Only the dead node's expired keys can tell: nothing else says Bob left.
    presence_of(&mut alice_a, "user_offline_status", &bob).await;

    // A and C still serve each other.
    carol_c.send_text(&send_message(&ac, "still here")).await;
    let m = next_event(&mut alice_a, "receive_message", LONG).await;
    assert_eq!(m["content"], json!("still here"));
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
    b.terminate();
    let _ = b.child.wait();
    presence_of(&mut alice_a, "user_offline_status", &bob).await;
    assert_eq!(redis.cli(&["SISMEMBER", "online_users", &bob]), "0");
}
