//! The `courier` nodes of the cluster tests (processes on one private Redis and one
//! database), their clients and their operators' port.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::db::TestDb;
use crate::common::process::Courier;
use crate::common::{connect_to, metric_value, send_message, WsClient};
use crate::servers::Redis;

/// Longest wait for an event that must come.
pub const LONG: Duration = Duration::from_secs(10);

/// A node on `db` and the Redis at `redis_url`, once it listens and is subscribed.
pub fn start_node(db: &TestDb, redis_url: &str) -> Courier {
    start_node_with(db, redis_url, &[])
}

/// Three nodes on `redis`, started one after the other (the first migrates the database).
pub fn three_nodes(db: &TestDb, redis: &Redis) -> (Courier, Courier, Courier) {
    let url = redis.url();
    (
        start_node(db, &url),
        start_node(db, &url),
        start_node(db, &url),
    )
}

/// [`start_node`] with `env` on top.
pub fn start_node_with(db: &TestDb, redis_url: &str, env: &[(&str, &str)]) -> Courier {
    let mut all = vec![
        ("DATABASE_URL", db.url.as_str()),
        ("REDIS_URL", redis_url),
        ("COURIER__REDIS__PRESENCE_TTL", "2000"),
        ("COURIER__REDIS__REFRESH", "400"),
        ("COURIER__PRESENCE__OFFLINE_GRACE", "300"),
        ("COURIER__SERVER__WORKERS", "1"),
        ("COURIER__CHAT__SHARDS", "2"),
    ];
    all.extend_from_slice(env);
    Courier::start(&all, Some("cluster: subscribed"))
}

/// A socket of `user` on `node`, seeing presence events.
pub async fn connect(node: &Courier, user: &str) -> WsClient {
    let mut client = connect_to(node.port, user).await;
    client.skip_presence = false;
    client
}

/// The next event named `name`, skipping others (pings answered); panics after `wait`.
pub async fn next_event(client: &mut WsClient, name: &str, wait: Duration) -> Value {
    next_event_with_offset(client, name, wait).await.0
}

/// The next event named `name` (others skipped): its first argument and its offset (the
/// last argument, when it has two).
pub async fn next_event_with_offset(
    client: &mut WsClient,
    name: &str,
    wait: Duration,
) -> (Value, Option<String>) {
    let args = client.next_event(name, wait).await;
    let offset = args.get(1).and_then(Value::as_str).map(str::to_string);
    (args.first().cloned().unwrap_or(Value::Null), offset)
}

/// Alice and Bob write `n` messages each at once (`a0`…, `b0`…) through their nodes: each
/// receives the other's, in the order sent.
pub async fn write_both_ways(alice: &mut WsClient, bob: &mut WsClient, ab: &str, n: usize) {
    for i in 0..n {
        alice.send_text(&send_message(ab, &format!("a{i}"))).await;
        bob.send_text(&send_message(ab, &format!("b{i}"))).await;
    }
    for (me, other) in [(alice, "b"), (bob, "a")] {
        for i in 0..n {
            let m = next_event(me, "receive_message", LONG).await;
            assert_eq!(
                m["content"],
                json!(format!("{other}{i}")),
                "each sender in order"
            );
        }
    }
}

/// Waits for the presence event `name` of `user` (others' are skipped).
pub async fn presence_of(client: &mut WsClient, name: &str, user: &str) {
    loop {
        if next_event(client, name, LONG).await["userId"] == json!(user) {
            return;
        }
    }
}

/// The value of the series `name` on `node` (0 when it has none); the node must answer.
pub async fn metric(node: &Courier, name: &str) -> f64 {
    let text = scrape(node.metrics_port).await.expect("metrics answer");
    metric_value(&text, name).unwrap_or(0.0)
}

/// The value of the series `name` on the operators' port `metrics_port` (0 when nothing
/// answers, or there is no such series).
pub async fn metric_on(metrics_port: u16, name: &str) -> f64 {
    let text = scrape(metrics_port).await.unwrap_or_default();
    metric_value(&text, name).unwrap_or(0.0)
}

/// `/metrics` on the operators' port `metrics_port`, if it answers.
async fn scrape(metrics_port: u16) -> Option<String> {
    let mut response = awc::Client::new()
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .ok()?;
    let body = response.body().await.ok()?;
    Some(String::from_utf8_lossy(&body).into_owned())
}

/// `/readyz` of `node`: its status and body.
pub async fn readyz(node: &Courier) -> (u16, String) {
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

/// A user's row.
pub async fn user_row(db: &TestDb, id: &str) -> entity::users::Model {
    use sea_orm::EntityTrait;
    entity::users::Entity::find_by_id(id.to_string())
        .one(&db.conn)
        .await
        .expect("read users")
        .expect("the user")
}
