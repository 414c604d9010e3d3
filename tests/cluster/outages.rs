//! Outages of Redis: restarted empty (the sockets that stayed connected catch up from the
//! database, or are told and closed past `recovery.max_replay`), and behind Redis Sentinel,
//! a master killed under load (followed, and what crossed meanwhile caught up).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::db::{Kind, TestDb};
use crate::common::{eventually, send_message, Received};
use crate::nodes::{
    connect, metric, metric_on, next_event, next_event_with_offset, readyz, start_node,
    start_node_with, user_row, LONG,
};
use crate::servers::{sentinel_or_skip, Redis, Sentinels};

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
    eventually("the failed publish is counted", async || {
        metric(&a, failed).await >= 1.0
    })
    .await;
    let before = metric(&a, failed).await;
    for i in 0..3 {
        alice_a
            .send_text(&send_message(&ac, &format!("missed {i}")))
            .await;
        next_event(&mut alice_a, "message_sent", LONG).await;
    }
    eventually("the failed publishes are counted", async || {
        metric(&a, failed).await >= before + 3.0
    })
    .await;
    let (status, body) = readyz(&a).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("redis"), "{body}");
    carol_b
        .no_event("receive_message", Duration::from_millis(300))
        .await;

    // Redis comes back empty while Alice keeps writing: the nodes subscribe again and
    // register their users again; Carol's socket, which stayed connected, is given what it
    // missed, from the database, then live traffic: every message once, in order, with
    // offsets, though messages are committed while it catches up.
    const SENT: usize = 40;
    let racing = ac.clone();
    let committed = db.messages(&racing).await.len();
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
    // Some of them are committed while Redis is still down.
    eventually("messages committed during the outage", async || {
        db.messages(&racing).await.len() >= committed + 5
    })
    .await;
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
    eventually("subscribed and registered again", async || {
        let subscribed = metric(&a, "courier_cluster_redis_subscribed").await == 1.0
            && metric(&b, "courier_cluster_redis_subscribed").await == 1.0;
        let registered = redis.cli(&["SISMEMBER", "online_users", &carol]) == "1"
            && redis.cli(&["SISMEMBER", "online_users", &alice]) == "1";
        subscribed && registered
    })
    .await;
    carol_b
        .no_event("receive_message", Duration::from_millis(500))
        .await;
    let (status, body) = readyz(&a).await;
    assert_eq!(status, 200, "{body}");
    // Nobody was told anyone went offline or online meanwhile.
    carol_b
        .no_event("user_offline_status", Duration::from_millis(300))
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
    carol_b
        .no_event("receive_message", Duration::from_millis(500))
        .await;
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
    eventually("carol registered on the new master", async || {
        ha.replica.cli(&["SISMEMBER", "online_users", &carol]) == "1"
    })
    .await;
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
