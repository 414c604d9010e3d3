//! The chat over raw WebSocket frames with several clients, on SQLite, on PostgreSQL
//! (Courier's own migrations) and on the app's Prisma layout: the whole flow, every error
//! string, nothing saved on bad input, `message_sent` only after the row exists.

mod common;

use std::time::Duration;

use common::backends::on_backends;
use common::db::{Kind, TestDb};
use common::spawn_app_on;
use common::world::world;
use serde_json::{json, Value};

const SILENCE: Duration = Duration::from_millis(300);

fn is_iso_millis(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.'
}

async fn whole_flow(kind: Kind) {
    let w = world(kind).await;
    let mut a1 = w.app.connect_user(&w.alice).await;
    let mut a2 = w.app.connect_user(&w.alice).await;
    let mut b1 = w.app.connect_user(&w.bob).await;
    let mut c1 = w.app.connect_user(&w.carol).await;

    // join_chat, acknowledged.
    a1.emit("join_chat", json!(w.ab), Some(1)).await;
    let ack = a1.expect_ack(1).await;
    assert_eq!(ack["ok"], json!(true));

    // send_message: trimmed, saved, then message_sent + ack to the sender.
    a1.emit(
        "send_message",
        json!({"connectionId": w.ab, "content": "  hello bob  ", "tempId": "tmp-1"}),
        Some(2),
    )
    .await;
    let sent = a1.expect_event("message_sent").await;
    // message_sent comes after the commit: the row is there now.
    let saved = &sent["savedMessage"];
    let id = saved["id"].as_str().expect("id").to_string();
    let row =
        w.db.message(&id)
            .await
            .expect("row exists when message_sent arrives");
    assert_eq!(row.content, "hello bob");
    assert_eq!(sent["tempId"], json!("tmp-1"));
    assert_eq!(saved["content"], json!("hello bob"));
    assert_eq!(saved["connectionId"], json!(w.ab));
    assert_eq!(saved["senderId"], json!(w.alice));
    assert_eq!(saved["receiverId"], json!(w.bob));
    assert_eq!(saved["isRead"], json!(false));
    assert_eq!(saved["mediaUrl"], Value::Null);
    assert_eq!(saved["mediaSize"], Value::Null);
    assert!(is_iso_millis(&saved["createdAt"]), "{}", saved["createdAt"]);
    assert_eq!(saved["createdAt"], saved["updatedAt"]);
    let expected_created = format!("{}Z", row.created_at.format("%Y-%m-%dT%H:%M:%S%.3f"));
    assert_eq!(
        saved["createdAt"],
        json!(expected_created),
        "same instant read back"
    );
    assert!(id.starts_with('c') && id.len() == 25, "cuid-style id {id}");
    let ack = a1.expect_ack(2).await;
    assert_eq!(ack, sent);

    // receive_message to every socket of the receiver (b1 never joined), not to the
    // sender's other sockets (the app would show them as the peer's messages).
    assert_eq!(b1.expect_event("receive_message").await, *saved);
    c1.expect_silence(SILENCE).await;
    a1.expect_silence(SILENCE).await;
    a2.expect_silence(SILENCE).await;

    // Media message without text content.
    b1.emit(
        "send_message",
        json!({"connectionId": w.ab, "content": "", "tempId": "tmp-2",
               "mediaUrl": "https://cdn.example/p.png", "mediaType": "image",
               "mediaName": "p.png", "mediaSize": 1234, "mediaThumbnail": null}),
        None,
    )
    .await;
    let sent = b1.expect_event("message_sent").await;
    assert_eq!(sent["savedMessage"]["mediaType"], json!("image"));
    assert_eq!(sent["savedMessage"]["mediaSize"], json!(1234));
    assert_eq!(sent["savedMessage"]["content"], json!(""));
    assert_eq!(
        a1.expect_event("receive_message").await,
        sent["savedMessage"]
    );
    // Both of alice's sockets receive bob's message.
    assert_eq!(
        a2.expect_event("receive_message").await,
        sent["savedMessage"]
    );

    // mark_message_read: the receiver marks; the sender's sockets hear of it.
    b1.emit(
        "mark_message_read",
        json!({"messageId": id, "connectionId": w.ab}),
        Some(3),
    )
    .await;
    let notice = json!({"messageId": id, "connectionId": w.ab, "readBy": w.bob});
    assert_eq!(b1.expect_ack(3).await, notice);
    assert_eq!(a1.expect_event("message_read").await, notice);
    assert_eq!(a2.expect_event("message_read").await, notice);
    assert!(w.db.message(&id).await.unwrap().is_read);

    // Only the receiver may mark: alice (the sender of b1's message) may not mark hers...
    let bobs = sent["savedMessage"]["id"].as_str().unwrap().to_string();
    a1.emit(
        "mark_message_read",
        json!({"messageId": id, "connectionId": w.ab}),
        Some(4),
    )
    .await;
    assert_eq!(
        a1.expect_event("error").await,
        json!({"message": "You cannot mark this message as read."})
    );
    assert_eq!(
        a1.expect_ack(4).await,
        json!({"error": "You cannot mark this message as read."})
    );
    // ...and carol, an outsider, may not mark bob's message to alice.
    c1.emit(
        "mark_message_read",
        json!({"messageId": bobs, "connectionId": w.ab}),
        None,
    )
    .await;
    assert_eq!(
        c1.expect_event("error").await,
        json!({"message": "You cannot mark this message as read."})
    );
    assert!(
        !w.db.message(&bobs).await.unwrap().is_read,
        "nothing changed"
    );
    b1.expect_silence(SILENCE).await;
}

async fn error_strings(kind: Kind) {
    let w = world(kind).await;
    let mut a = w.app.connect_user(&w.alice).await;
    let mut c = w.app.connect_user(&w.carol).await;
    let not_part = json!({"message": "You are not part of this connection."});
    let not_active = json!({"message": "Connection is not active."});

    c.emit("join_chat", json!(w.ab), Some(7)).await;
    assert_eq!(c.expect_event("error").await, not_part);
    assert_eq!(
        c.expect_ack(7).await,
        json!({"error": "You are not part of this connection."})
    );
    c.emit(
        "send_message",
        json!({"connectionId": w.ab, "content": "hi", "tempId": "x"}),
        Some(8),
    )
    .await;
    assert_eq!(c.expect_event("error").await, not_part);
    assert_eq!(
        c.expect_ack(8).await,
        json!({"error": "You are not part of this connection."})
    );

    a.emit("join_chat", json!(w.ad_ended), None).await;
    assert_eq!(a.expect_event("error").await, not_active);
    a.emit("join_chat", json!("no-such-connection"), None).await;
    assert_eq!(a.expect_event("error").await, not_active);
    a.emit(
        "send_message",
        json!({"connectionId": w.ad_ended, "content": "hi", "tempId": "x"}),
        Some(9),
    )
    .await;
    assert_eq!(a.expect_event("error").await, not_active);
    assert_eq!(
        a.expect_ack(9).await,
        json!({"error": "Connection is not active."})
    );

    // Invalid payloads: an error, an ack with the same message, the socket stays up.
    for (payload, ack) in [
        (json!("just a string"), 10),
        (
            json!({"connectionId": w.ab, "content": "   ", "tempId": "t"}),
            11,
        ),
        (
            json!({"connectionId": w.ab, "content": 42, "tempId": "t"}),
            12,
        ),
        (json!({"connectionId": w.ab, "content": "hi"}), 13),
        (
            json!({"connectionId": w.ab, "content": "x".repeat(5001), "tempId": "t"}),
            14,
        ),
        (
            json!({"connectionId": w.ab, "content": "hi", "tempId": "t", "mediaType": "pdf", "mediaUrl": "https://x/y"}),
            15,
        ),
        (
            json!({"connectionId": w.ab, "content": "hi", "tempId": "t", "mediaSize": -1, "mediaUrl": "https://x/y"}),
            16,
        ),
        (
            json!({"connectionId": w.ab, "content": "hi", "tempId": "t", "mediaUrl": "javascript:alert(1)"}),
            17,
        ),
    ] {
        a.emit("send_message", payload.clone(), Some(ack)).await;
        let error = a.expect_event("error").await;
        let message = error["message"].as_str().expect("a message").to_string();
        assert!(message.ends_with('.'), "{message} for {payload}");
        assert_eq!(a.expect_ack(ack).await, json!({"error": message}));
    }
    a.emit("mark_message_read", json!({"messageId": 5}), None)
        .await;
    assert!(a.expect_event("error").await["message"].is_string());
    a.emit("join_chat", json!(null), None).await;
    assert!(a.expect_event("error").await["message"].is_string());
    assert!(w.db.messages(&w.ab).await.is_empty(), "nothing saved");
    assert!(w.db.messages(&w.ad_ended).await.is_empty(), "nothing saved");

    // Still connected and able to chat.
    a.emit(
        "send_message",
        json!({"connectionId": w.ab, "content": "still here", "tempId": "ok"}),
        None,
    )
    .await;
    a.expect_event("message_sent").await;
    assert_eq!(w.db.messages(&w.ab).await.len(), 1);
}

async fn status_changes_behind_our_back(kind: Kind) {
    let w = world(kind).await;
    let mut a = w.app.connect_user(&w.alice).await;
    let mut b = w.app.connect_user(&w.bob).await;
    let send = |temp: &str| json!({"connectionId": w.ab, "content": "one", "tempId": temp});
    a.emit("send_message", send("1"), None).await;
    a.expect_event("message_sent").await;
    b.expect_event("receive_message").await;

    // The app blocks the connection: the room's cache says ACTIVE, the write refuses.
    w.db.set_status(&w.ab, "BLOCKED").await;
    a.emit("send_message", send("2"), Some(1)).await;
    assert_eq!(
        a.expect_event("error").await,
        json!({"message": "Connection is not active."})
    );
    a.expect_ack(1).await;
    b.expect_silence(SILENCE).await;
    assert_eq!(w.db.messages(&w.ab).await.len(), 1);

    // Re-activated: messages flow again.
    w.db.set_status(&w.ab, "ACTIVE").await;
    a.emit("send_message", send("3"), None).await;
    a.expect_event("message_sent").await;
    b.expect_event("receive_message").await;
    assert_eq!(w.db.messages(&w.ab).await.len(), 2);
}

async fn order_is_kept(kind: Kind) {
    let w = world(kind).await;
    let mut a = w.app.connect_user(&w.alice).await;
    let mut b = w.app.connect_user(&w.bob).await;
    for i in 0..30 {
        a.emit(
            "send_message",
            json!({"connectionId": w.ab, "content": format!("m{i}"), "tempId": format!("t{i}")}),
            None,
        )
        .await;
    }
    for i in 0..30 {
        let sent = a.expect_event("message_sent").await;
        assert_eq!(sent["tempId"], json!(format!("t{i}")));
        let got = b.expect_event("receive_message").await;
        assert_eq!(got["content"], json!(format!("m{i}")));
    }
    let stored = w.db.contents(&w.ab).await;
    assert_eq!(stored.len(), 30);
    let mut sorted = stored.clone();
    sorted.sort_by_key(|c| c[1..].parse::<u32>().unwrap());
    assert_eq!(stored, sorted, "saved in the order sent");
}

async fn database_failure(kind: Kind) {
    let w = world(kind).await;
    let mut a = w.app.connect_user(&w.alice).await;
    let mut b = w.app.connect_user(&w.bob).await;
    sea_orm::ConnectionTrait::execute_unprepared(
        &w.db.conn,
        "ALTER TABLE messages RENAME TO messages_away",
    )
    .await
    .expect("rename");
    a.emit(
        "send_message",
        json!({"connectionId": w.ab, "content": "lost?", "tempId": "t"}),
        Some(3),
    )
    .await;
    assert_eq!(
        a.expect_event("error").await,
        json!({"message": "Message failed to send."})
    );
    assert_eq!(
        a.expect_ack(3).await,
        json!({"error": "Message failed to send."})
    );
    a.expect_silence(SILENCE).await;
    b.expect_silence(SILENCE).await;
    sea_orm::ConnectionTrait::execute_unprepared(
        &w.db.conn,
        "ALTER TABLE messages_away RENAME TO messages",
    )
    .await
    .expect("rename back");
    a.emit(
        "send_message",
        json!({"connectionId": w.ab, "content": "back", "tempId": "t2"}),
        None,
    )
    .await;
    a.expect_event("message_sent").await;
}

/// `fetch_messages`: pages newest first through an opaque cursor, members only (any status),
/// bad arguments answered with an error and a failed ack.
async fn history_pages(kind: Kind) {
    let w = world(kind).await;
    let mut a = w.app.connect_user(&w.alice).await;
    let mut b = w.app.connect_user(&w.bob).await;
    let mut c = w.app.connect_user(&w.carol).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        a.emit(
            "send_message",
            json!({"connectionId": w.ab, "content": format!("h{i}"), "tempId": format!("t{i}")}),
            None,
        )
        .await;
        let sent = a.expect_event("message_sent").await;
        ids.push(sent["savedMessage"]["id"].as_str().expect("id").to_string());
        b.expect_event("receive_message").await;
    }
    ids.reverse(); // newest first
    let mut got = Vec::new();
    let mut before = Value::Null;
    for (ack, expected_len) in [(10u64, 3usize), (11, 3), (12, 1)] {
        b.emit(
            "fetch_messages",
            json!({"connectionId": w.ab, "limit": 3, "before": before}),
            Some(ack),
        )
        .await;
        let page = b.expect_ack(ack).await;
        let messages = page["messages"].as_array().expect("messages").clone();
        assert_eq!(messages.len(), expected_len, "{page}");
        for m in &messages {
            assert_eq!(m["connectionId"], json!(w.ab));
            assert!(is_iso_millis(&m["createdAt"]));
        }
        got.extend(
            messages
                .iter()
                .map(|m| m["id"].as_str().unwrap_or("").to_string()),
        );
        before = page["nextCursor"].clone();
    }
    assert_eq!(got, ids, "every message once, newest first");
    assert_eq!(before, Value::Null, "no page after the last");
    // The default page holds them all; the saved message's shape.
    b.emit("fetch_messages", json!({"connectionId": w.ab}), Some(13))
        .await;
    let page = b.expect_ack(13).await;
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(7));
    assert_eq!(page["messages"][0]["content"], json!("h6"));
    assert_eq!(page["messages"][0]["senderId"], json!(w.alice));

    // An ended conversation's history stays readable by its members.
    a.emit(
        "fetch_messages",
        json!({"connectionId": w.ad_ended}),
        Some(14),
    )
    .await;
    assert_eq!(
        a.expect_ack(14).await,
        json!({"messages": [], "nextCursor": null})
    );
    // Not a member: refused.
    c.emit("fetch_messages", json!({"connectionId": w.ab}), Some(15))
        .await;
    let refused = "You are not part of this connection.";
    assert_eq!(c.expect_event("error").await, json!({"message": refused}));
    assert_eq!(c.expect_ack(15).await, json!({"error": refused}));
    // Bad arguments, and no acknowledgement to answer with: an error, the socket stays up.
    for (args, message) in [
        (
            json!({"connectionId": w.ab, "limit": 101}),
            "limit must be an integer from 1 to 100.",
        ),
        (
            json!({"connectionId": w.ab, "before": "not a cursor"}),
            "Invalid cursor.",
        ),
    ] {
        b.emit("fetch_messages", args, Some(16)).await;
        assert_eq!(b.expect_event("error").await, json!({"message": message}));
        assert_eq!(b.expect_ack(16).await, json!({"error": message}));
    }
    b.emit("fetch_messages", json!({"connectionId": w.ab}), None)
        .await;
    let error = b.expect_event("error").await;
    assert!(error["message"]
        .as_str()
        .unwrap_or("")
        .contains("acknowledgement"));
    b.emit(
        "fetch_messages",
        json!({"connectionId": w.ab, "limit": 1}),
        Some(17),
    )
    .await;
    assert_eq!(b.expect_ack(17).await["messages"][0]["id"], json!(ids[0]));
}

/// A message the app wrote with a clock ahead of Courier's: the conversation's next message
/// is stamped after it all the same (its room starts above the newest stamp), so the order of
/// `createdAt` is the order of delivery; conversation events carry an offset last.
async fn stamps_follow_the_database(kind: Kind) {
    use sea_orm::{ActiveModelTrait, Set};
    let w = world(kind).await;
    let ahead = entity::now_utc_ms() + chrono::Duration::seconds(30);
    entity::messages::ActiveModel {
        id: Set("app-written-ahead".into()),
        connection_id: Set(w.ab.clone()),
        sender_id: Set(w.bob.clone()),
        receiver_id: Set(w.alice.clone()),
        content: Set("written by the app".into()),
        is_read: Set(false),
        created_at: Set(ahead),
        updated_at: Set(ahead),
        ..Default::default()
    }
    .insert(&w.db.conn)
    .await
    .expect("insert as the app");
    let mut a = w.app.connect_user(&w.alice).await;
    let mut b = w.app.connect_user(&w.bob).await;
    a.emit(
        "send_message",
        json!({"connectionId": w.ab, "content": "after", "tempId": "t"}),
        None,
    )
    .await;
    let text = b.recv_message().await;
    let args: Value = serde_json::from_str(text.strip_prefix("42").unwrap_or("")).expect("event");
    assert_eq!(args[0], json!("receive_message"));
    assert!(
        args[2].as_str().is_some_and(|o| !o.is_empty()),
        "an offset last: {text}"
    );
    let stored = w.db.messages(&w.ab).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].id, "app-written-ahead");
    assert_eq!(stored[1].content, "after");
    assert!(stored[1].created_at > ahead, "stamped after the app's row");
    a.expect_event("message_sent").await;
}

on_backends!(
    [sqlite, postgres, prisma_layout]
    whole_flow,
    error_strings,
    status_changes_behind_our_back,
    order_is_kept,
    database_failure,
    history_pages,
    stamps_follow_the_database
);

#[actix_web::test]
async fn prisma_managed_database_is_not_migrated() {
    let db = TestDb::new(Kind::PrismaPostgres).await;
    let _app = spawn_app_on(&db.url, &[]).await;
    let row = sea_orm::ConnectionTrait::query_one_raw(
        &db.conn,
        sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT to_regclass('seaql_migrations')::text AS t",
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let table: Option<String> = row.try_get("", "t").unwrap();
    assert_eq!(
        table, None,
        "no seaql_migrations in a Prisma-managed database"
    );
}
