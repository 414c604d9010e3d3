//! Database faults under load, through a TCP proxy between Courier and PostgreSQL (the
//! machine's shared server is never restarted): an outage shorter than `database.retry_for`
//! refuses nothing and every acked message is in the table exactly once; a longer one fails
//! the messages waiting with "Message failed to send." (and the failed ack), acks nothing
//! that is not committed, and Courier resumes by itself when the database returns.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::db::{Kind, TestDb};
use common::proxy::DbProxy;
use common::world::People;
use common::{spawn_app_on, TestApp, WsClient};
use serde_json::json;

struct Outcomes {
    acked: HashSet<String>,
    failed: HashSet<String>,
}

/// Sends `count` messages from `client`, one every `every`, while reading answers; calls
/// `during(i)` before the i-th send. Returns which tempIds were acked and which failed.
async fn steady_load<F, Fut>(
    client: &mut WsClient,
    ab: &str,
    count: usize,
    every: Duration,
    mut during: F,
) -> Outcomes
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut out = Outcomes {
        acked: HashSet::new(),
        failed: HashSet::new(),
    };
    for i in 0..count {
        during(i).await;
        client
            .emit(
                "send_message",
                json!({"connectionId": ab, "content": format!("m{i}"), "tempId": format!("t{i}")}),
                Some(i as u64),
            )
            .await;
        tokio::time::sleep(every).await;
    }
    // Every message gets exactly one answer: message_sent + its ack, or error + a failed ack.
    let mut answered: HashMap<u64, bool> = HashMap::new();
    while answered.len() < count {
        let (name, payload) = client.recv_packet().await;
        if let Some(id) = name.strip_prefix("ack:") {
            let id: u64 = id.parse().expect("an ack id");
            let ok = payload.get("error").is_none();
            assert!(answered.insert(id, ok).is_none(), "one answer per message");
            let temp = format!("t{id}");
            if ok {
                assert_eq!(payload["tempId"], json!(temp));
                out.acked.insert(temp);
            } else {
                assert_eq!(payload, json!({"error": "Message failed to send."}));
                out.failed.insert(temp);
            }
        } else {
            assert!(
                name == "message_sent" || name == "error",
                "unexpected {name} {payload}"
            );
        }
    }
    out
}

/// A database behind a proxy, the app on it with `database.retry_for` = `retry_for` ms, the
/// people seeded.
async fn behind_a_proxy(retry_for: &str) -> (TestDb, DbProxy, TestApp, People) {
    let db = TestDb::new(Kind::Postgres).await;
    let proxy = DbProxy::start("127.0.0.1:5432".parse().unwrap());
    let app = spawn_app_on(
        &proxy.url(&db.url),
        &[("COURIER__DATABASE__RETRY_FOR", retry_for)],
    )
    .await;
    let people = People::seed(&db).await;
    (db, proxy, app, people)
}

#[actix_web::test]
async fn an_outage_shorter_than_retry_for_refuses_nothing() {
    let (db, proxy, app, w) = behind_a_proxy("5000").await;
    let mut a = app.connect_user(&w.alice).await;
    let count = 120;
    let outcomes = steady_load(&mut a, &w.ab, count, Duration::from_millis(15), |i| {
        let proxy = &proxy;
        async move {
            if i == 40 {
                // The database restarts: every connection drops, new ones are refused for
                // a while.
                proxy.refuse(true);
                proxy.cut();
            }
            if i == 100 {
                proxy.refuse(false);
            }
        }
    })
    .await;
    assert!(outcomes.failed.is_empty(), "refused: {:?}", outcomes.failed);
    assert_eq!(outcomes.acked.len(), count);
    let mut saved = db.contents(&w.ab).await;
    assert_eq!(saved.len(), count, "every message exactly once");
    saved.sort();
    saved.dedup();
    assert_eq!(saved.len(), count, "no duplicate");
}

#[actix_web::test]
async fn a_longer_outage_fails_cleanly_and_courier_recovers() {
    let (db, proxy, app, w) = behind_a_proxy("800").await;
    let mut a = app.connect_user(&w.alice).await;
    let count = 60;
    let outcomes = steady_load(&mut a, &w.ab, count, Duration::from_millis(40), |i| {
        let proxy = &proxy;
        async move {
            if i == 10 {
                proxy.refuse(true);
                proxy.cut();
            }
            if i == 45 {
                proxy.refuse(false);
            }
        }
    })
    .await;
    assert!(
        !outcomes.failed.is_empty(),
        "a 1.4 s outage fails writes (retry_for 0.8 s)"
    );
    assert!(
        outcomes.acked.len() > 20,
        "before and after the outage messages go through: {}",
        outcomes.acked.len()
    );
    // Nothing acked that is not committed, each once.
    let saved = db.contents(&w.ab).await;
    let saved_set: HashSet<String> = saved.iter().cloned().collect();
    assert_eq!(saved.len(), saved_set.len(), "no duplicate");
    for temp in &outcomes.acked {
        let content = format!("m{}", &temp[1..]);
        assert!(saved_set.contains(&content), "{temp} acked but not saved");
    }
    // And it resumed by itself: the last messages (sent after the outage) went through.
    for i in count - 5..count {
        assert!(
            outcomes.acked.contains(&format!("t{i}")),
            "t{i} after the outage"
        );
    }
    assert!(proxy.accepted() > 1, "reconnected");
}

/// The test command sets up what it needs: on a PostgreSQL server without the tests'
/// database (`TEST_DATABASE_URL`'s), the first test to need it creates it; tests racing to
/// do so all get it.
#[actix_web::test]
async fn a_missing_test_database_is_created() {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let base = common::db::postgres_base_url();
    let (server, query) = match base.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (base.as_str(), String::new()),
    };
    let server = server.rsplit_once('/').expect("a database name").0;
    let name = format!("courier_created_{}", std::process::id());
    let url = format!("{server}/{name}{query}");
    let admin = Database::connect(format!("{server}/postgres{query}"))
        .await
        .expect("the server's postgres database");
    let drop = format!("DROP DATABASE IF EXISTS \"{name}\"");
    admin.execute_unprepared(&drop).await.expect("drop");
    assert!(
        Database::connect(url.as_str()).await.is_err(),
        "not there yet"
    );

    let made = futures_util::future::join_all(
        (0..4).map(|_| common::db::create_database_if_missing(&url)),
    )
    .await;
    for db in made {
        let db = db.expect("created or found");
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT current_database() AS name",
            ))
            .await
            .expect("query")
            .expect("a row");
        assert_eq!(row.try_get::<String>("", "name").expect("name"), name);
        db.close().await.expect("close");
    }
    admin.execute_unprepared(&drop).await.expect("drop");
}
