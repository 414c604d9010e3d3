//! Courier on other Redis deployments: TLS with a password (`rediss://`), and a Redis
//! Cluster (sharded pub/sub, the keys Courier keeps).

use std::time::Duration;

use serde_json::json;

use crate::common::db::{Kind, TestDb};
use crate::common::{eventually, send_message};
use crate::nodes::{
    connect, next_event, presence_of, readyz, start_node, start_node_with, user_row,
    write_both_ways, LONG,
};
use crate::servers::{Redis, RedisCluster};

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
    write_both_ways(&mut alice_a, &mut bob_b, &ab, 30).await;
    for me in [&mut alice_a, &mut bob_b] {
        me.no_event("receive_message", Duration::from_millis(300))
            .await;
    }
    // The keys Courier keeps work on a cluster: the rate counter, online_users, the counts.
    assert_eq!(redis.cli(&["SISMEMBER", "online_users", &bob]), "1");
    assert_eq!(user_row(&db, &bob).await.connection_count, 1);
    // Bob leaves: B drops his channel; Alice is told he went offline (the nodes asked each
    // other with FETCH_SOCKETS).
    drop(bob_b);
    presence_of(&mut alice_a, "user_offline_status", &bob).await;
    eventually("bob's channel is dropped", async || {
        redis.shard_subscribers(&format!("socket.io#/#{bob}#")) == 0
    })
    .await;
    assert_eq!(redis.cli(&["SISMEMBER", "online_users", &bob]), "0");
    for node in [&a, &b] {
        let (status, body) = readyz(node).await;
        assert_eq!(status, 200, "{body}");
    }
}
