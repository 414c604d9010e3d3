//! Persistence, the one writer: group commit (the writes queued behind a commit go in one
//! transaction), a bad row failing alone, a waiting commit holding up only its own
//! conversation, ids made once (a retry, a room stopped mid-write), and a shutdown that waits
//! for every queued write.

use std::time::Duration;

use actix::Actor;
use courier::chat::keys::message_id;
use courier::chat::persistence::{
    InsertOutcome, Persistence, Shutdown, Write, WriteOp, WriteResult, Written,
};
use courier::chat::room::actor::StopRoom;
use courier::chat::room::{ChatRoom, Post};
use courier::chat::ChatMetrics;
use entity::messages;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout};

use crate::common::backends::on_backends;
use crate::common::db::Kind;
use crate::common::eventually;
use crate::harness::{collect, model, queued, world, NoShard, Results, Sock, Spy, WAIT};

// ---------------------------------------------------------------------------------------
// Group commit
// ---------------------------------------------------------------------------------------

/// While a commit waits on a lock, the writes behind it queue up and go in one transaction:
/// the rows share their inserting transaction (PostgreSQL's `xmin`).
#[actix::test]
async fn queued_messages_are_committed_in_one_transaction() {
    let w = world(Kind::Postgres, Duration::from_secs(600)).await;
    // A socket the registry does not know (its answers come through its caller): no
    // presence write joins the queue, so the queue holds exactly the messages.
    let mut a = Sock::new(&w.alice, "a");
    let lock = w.lock().await;
    let n = 30;
    for i in 0..n {
        w.post(&a, &w.ab, &format!("m{i}"), None);
    }
    // Every write has reached persistence (one waits on the lock, the others behind it).
    w.queued(n as usize).await;
    a.expect_silence().await;
    lock.release().await;
    for _ in 0..n {
        a.expect("message_sent").await;
    }
    let row = w
        .db
        .conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            r#"SELECT count(*) AS rows, count(DISTINCT xmin::text) AS xacts FROM "messages" WHERE "connectionId" = $1"#,
            [w.ab.clone().into()],
        ))
        .await
        .expect("query")
        .expect("a row");
    let rows: i64 = row.try_get("", "rows").unwrap();
    let xacts: i64 = row.try_get("", "xacts").unwrap();
    assert_eq!(rows, n);
    // The first write went alone (nothing was queued yet); all the others waited behind it
    // and went together.
    assert_eq!(xacts, 2, "{n} messages in {xacts} transactions");
}

/// A batch with a row the database refuses (a constraint of the app's, say) and good rows:
/// each gets its own outcome, the good ones are saved.
async fn a_bad_row_fails_alone(kind: Kind) {
    let w = world(kind, Duration::from_secs(600)).await;
    let ddl = match kind {
        Kind::Sqlite => {
            "CREATE TRIGGER refuse_bad BEFORE INSERT ON messages WHEN NEW.content = 'bad' \
             BEGIN SELECT RAISE(ABORT, 'bad row'); END"
        }
        _ => "ALTER TABLE messages ADD CONSTRAINT refuse_bad CHECK (content <> 'bad')",
    };
    w.db.conn.execute_unprepared(ddl).await.expect("constraint");
    let persistence = Persistence::new(w.other_session().await, 64, Duration::from_secs(5)).start();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let room = Results { tx }.start().recipient::<Written>();
    let lock = w.lock().await;
    let contents = ["first", "good1", "bad", "good2", "good3"];
    let models: Vec<messages::Model> = contents.iter().map(|c| model(&w, c)).collect();
    for (seq, m) in models.iter().enumerate() {
        persistence.do_send(Write {
            room: 1,
            reply: room.clone(),
            seq: seq as u64,
            op: WriteOp::Insert(m.clone()),
            permit: None,
        });
    }
    // Every write has reached persistence (the first waits on the lock, the others behind
    // it): they go in one batch.
    queued(&persistence, contents.len()).await;
    lock.release().await;
    let results = collect(&mut rx, contents.len()).await;
    for (seq, content) in contents.iter().enumerate() {
        let expected = if *content == "bad" {
            InsertOutcome::Failed
        } else {
            InsertOutcome::Inserted
        };
        assert_eq!(
            results[&(seq as u64)],
            WriteResult::Insert(expected),
            "{content}"
        );
    }
    let saved = w.db.contents(&w.ab).await;
    assert_eq!(saved.len(), 4);
    assert!(!saved.contains(&"bad".to_string()));
}

/// With two writers, a conversation whose commit waits does not hold up another's, and a
/// conversation's own writes are never committed out of its order (PostgreSQL: SQLite
/// commits one batch at a time).
#[actix::test]
async fn a_waiting_commit_holds_up_only_its_own_conversation() {
    use sea_orm::{ActiveModelTrait, TransactionTrait};
    let w = world(Kind::Postgres, Duration::from_secs(600)).await;
    let persistence = Persistence::new(w.other_session().await, 64, Duration::from_secs(5))
        .writers(2)
        .start();
    let (tx_a, mut rx_a) = mpsc::unbounded_channel();
    let room_a = Results { tx: tx_a }.start().recipient::<Written>();
    let (tx_b, mut rx_b) = mpsc::unbounded_channel();
    let room_b = Results { tx: tx_b }.start().recipient::<Written>();
    // Another session inserts the id of room A's first write and does not commit: that
    // write waits on the unique index.
    let blocked = model(&w, "a1");
    let other = w.other_session().await;
    let held = other.begin().await.expect("a transaction");
    messages::ActiveModel::from(blocked.clone())
        .insert(&held)
        .await
        .expect("the row, uncommitted");
    let write =
        |room: u64, reply: &actix::Recipient<Written>, seq: u64, m: messages::Model| Write {
            room,
            reply: reply.clone(),
            seq,
            op: WriteOp::Insert(m),
            permit: None,
        };
    persistence.do_send(write(1, &room_a, 0, blocked.clone()));
    // Taken into a batch of its own, which waits on the index.
    queued(&persistence, 1).await;
    persistence.do_send(write(1, &room_a, 1, model(&w, "a2")));
    persistence.do_send(write(2, &room_b, 0, model(&w, "b1")));
    // Room B's write is committed while room A's first one waits (the outcomes are checked
    // once the other transaction is gone, so that a failure does not leave it holding).
    let b = timeout(Duration::from_secs(5), rx_b.recv()).await;
    let a_early = timeout(Duration::from_millis(300), rx_a.recv()).await;
    held.rollback().await.expect("rolled back");
    let Ok(Some(Written(b))) = b else {
        panic!("room B's write waited for room A's");
    };
    assert_eq!(b, vec![(0, WriteResult::Insert(InsertOutcome::Inserted))]);
    assert!(a_early.is_err(), "room A's writes wait for its first one");
    // Room A's writes, in its order: its second was not committed before its first.
    let Written(first) = timeout(WAIT, rx_a.recv())
        .await
        .expect("in time")
        .expect("results");
    let mut results = first;
    if results.len() < 2 {
        let Written(more) = timeout(WAIT, rx_a.recv())
            .await
            .expect("in time")
            .expect("results");
        results.extend(more);
    }
    assert_eq!(
        results,
        vec![
            (0, WriteResult::Insert(InsertOutcome::Inserted)),
            (1, WriteResult::Insert(InsertOutcome::Inserted)),
        ]
    );
    let saved = w.db.contents(&w.ab).await;
    assert_eq!(saved.len(), 3, "{saved:?}");
}

// ---------------------------------------------------------------------------------------
// Ids made once
// ---------------------------------------------------------------------------------------

/// A write of an id that is already there is a success with that row, never a second row.
async fn a_retry_of_a_committed_id_is_a_success(kind: Kind) {
    let w = world(kind, Duration::from_secs(600)).await;
    let persistence = Persistence::new(w.other_session().await, 64, Duration::from_secs(5)).start();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let room = Results { tx }.start().recipient::<Written>();
    let original = model(&w, "once");
    let mut retry = original.clone();
    retry.created_at += chrono::Duration::seconds(5);
    retry.updated_at = retry.created_at;
    for (seq, m) in [(0, &original), (1, &retry), (2, &original)] {
        persistence.do_send(Write {
            room: 1,
            reply: room.clone(),
            seq,
            op: WriteOp::Insert(m.clone()),
            permit: None,
        });
    }
    let results = collect(&mut rx, 3).await;
    assert_eq!(results[&0], WriteResult::Insert(InsertOutcome::Inserted));
    let stored = w.db.message(&original.id).await.expect("saved");
    // A client's retry (the room gave it another createdAt): the original row.
    assert_eq!(
        results[&1],
        WriteResult::Insert(InsertOutcome::Existing(Box::new(stored.clone())))
    );
    // The very same write again (what Persistence does when a commit's outcome was lost):
    // recognised as ours, so its room still delivers it.
    assert_eq!(results[&2], WriteResult::Insert(InsertOutcome::Inserted));
    assert_eq!(stored.created_at, original.created_at, "the original row");
    assert_eq!(w.db.messages(&w.ab).await.len(), 1);
    // The same id from another sender is not a success with someone else's row.
    let mut forged = original.clone();
    forged.sender_id = w.bob.clone();
    forged.receiver_id = w.alice.clone();
    persistence.do_send(Write {
        room: 1,
        reply: room.clone(),
        seq: 3,
        op: WriteOp::Insert(forged),
        permit: None,
    });
    let results = collect(&mut rx, 1).await;
    assert_eq!(results[&3], WriteResult::Insert(InsertOutcome::Refused));
}

/// A room stopped while its write waits: the write still commits once; the client's retry
/// (same message, same id) through a new room is answered with that row, and nothing is
/// saved twice or delivered twice.
async fn a_room_stopped_mid_write_makes_no_duplicate(kind: Kind) {
    let w = world(kind, Duration::from_secs(600)).await;
    let mut a = w.sock(&w.alice, "a");
    let mut b = w.sock(&w.bob, "b");
    w.registered().await;
    let message = w.message(&w.ab, "survives", "t-1");
    let id = message_id(&w.key, &w.alice, &message);
    let lock = w.lock().await;
    // A room of its own for the conversation, outside the shards, stopped mid-write; its
    // writes go to the chat's persistence through a spy.
    let (seen, mut written) = mpsc::unbounded_channel();
    let spy = Spy {
        to: w.chat.persistence.clone().recipient(),
        seen,
    };
    let room = ChatRoom::new(
        w.ab.as_str().into(),
        [w.alice.as_str().into(), w.bob.as_str().into()],
        999,
        courier::chat::room::RoomDeps {
            persistence: spy.start().recipient(),
            users: w.chat.context.users.clone(),
            db: w.other_session().await,
            idle_timeout: Duration::from_secs(600),
            retry_for: Duration::from_secs(5),
            metrics: Arc::new(ChatMetrics::off()),
        },
        NoShard.start().recipient(),
    )
    .start();
    // (Held while the room loads, then handed to persistence.)
    room.do_send(Post {
        caller: a.caller(Some(1)),
        sender: a.user.clone(),
        id: id.clone(),
        message: message.clone(),
        permit: None,
        accepted: std::time::Instant::now(),
    });
    timeout(WAIT, written.recv())
        .await
        .expect("the room hands the write to persistence")
        .expect("the spy runs");
    room.do_send(StopRoom);
    eventually("the room stopped", async || !room.connected()).await;
    lock.release().await;
    // The write committed although its room is gone.
    eventually("the write committed", async || {
        w.db.message(&id).await.is_some()
    })
    .await;
    let saved = w.db.message(&id).await.expect("the write committed");
    a.expect_silence().await;
    b.expect_silence().await;
    // The client retries: the original row, one row in all, no second delivery.
    w.post_message(&a, message, Some(2));
    let sent = a.expect("message_sent").await;
    assert_eq!(sent["savedMessage"]["id"], json!(id));
    assert_eq!(
        sent["savedMessage"]["createdAt"],
        json!(courier::chat::protocol::message_json::iso_millis(
            &saved.created_at
        ))
    );
    assert_eq!(w.db.messages(&w.ab).await.len(), 1);
    b.expect_silence().await;
}

// ---------------------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------------------

#[actix::test]
async fn shutdown_waits_for_every_queued_write() {
    let w = world(Kind::Postgres, Duration::from_secs(600)).await;
    // A socket the registry does not know: no presence write joins the queue. Every post
    // reaches persistence (one waits on the lock, the others behind it) before the shutdown
    // is asked for.
    let a = Sock::new(&w.alice, "a");
    let lock = w.lock().await;
    for i in 0..20 {
        w.post(&a, &w.ab, &format!("m{i}"), None);
    }
    w.queued(20).await;
    let shutdown = w.chat.persistence.send(Shutdown);
    let released = async {
        sleep(Duration::from_millis(300)).await;
        assert!(
            w.db.messages(&w.ab).await.is_empty(),
            "still waiting on the lock"
        );
        lock.release().await;
    };
    let (done, ()) = futures_util::future::join(timeout(WAIT, shutdown), released).await;
    done.expect("shutdown resolves")
        .expect("persistence answers");
    assert_eq!(
        w.db.messages(&w.ab).await.len(),
        20,
        "every queued write is in"
    );
}

on_backends!(
    [sqlite, postgres, prisma_layout]
    a_bad_row_fails_alone,
    a_retry_of_a_committed_id_is_a_success,
    a_room_stopped_mid_write_makes_no_duplicate
);
