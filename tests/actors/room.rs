//! The rooms: one order per conversation across members and sockets, `receive_message` to
//! every socket of the receiver only, read receipts not repeated, rooms only for members,
//! idle rooms that stop and come back.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::json;
use tokio::time::sleep;

use crate::common::backends::on_backends;
use crate::common::db::Kind;
use crate::common::eventually;
use crate::harness::{world, Got, Sock};

// ---------------------------------------------------------------------------------------
// One order per conversation
// ---------------------------------------------------------------------------------------

/// Both members write at once from several sockets: every socket sees the conversation's
/// events in the order of `ORDER BY "createdAt", "id"`, `createdAt` strictly increases,
/// and each socket's messages keep the order it sent them.
async fn one_order_across_members_and_sockets(kind: Kind) {
    let w = world(kind, Duration::from_secs(600)).await;
    let mut a1 = w.sock(&w.alice, "a1");
    let mut a2 = w.sock(&w.alice, "a2");
    let mut b1 = w.sock(&w.bob, "b1");
    let mut b2 = w.sock(&w.bob, "b2");
    // The registry takes the registrations before the room subscribes.
    w.registered().await;
    let n = 40;
    for i in 0..n {
        w.post(&a1, &w.ab, &format!("a1-{i}"), Some(i));
        w.post(&b1, &w.ab, &format!("b1-{i}"), Some(i));
        w.post(&a2, &w.ab, &format!("a2-{i}"), Some(i));
    }
    // What each socket saw, in order: its own messages (message_sent) and the other
    // member's (receive_message), by content.
    async fn seen(sock: &mut Sock, own: usize, theirs: usize) -> Vec<String> {
        let mut out = Vec::new();
        let (mut sent, mut received) = (0, 0);
        while sent < own || received < theirs {
            match sock.next().await {
                Got::Event(name, v) if name == "message_sent" => {
                    sent += 1;
                    out.push(v["savedMessage"]["content"].as_str().unwrap().to_string());
                }
                Got::Event(name, v) if name == "receive_message" => {
                    received += 1;
                    out.push(v["content"].as_str().unwrap().to_string());
                }
                Got::Ack(..) | Got::Done => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        out
    }
    let a1_seen = seen(&mut a1, n as usize, n as usize).await;
    let a2_seen = seen(&mut a2, n as usize, n as usize).await;
    let b1_seen = seen(&mut b1, n as usize, 2 * n as usize).await;
    let b2_seen = seen(&mut b2, 0, 2 * n as usize).await;

    let rows = w.db.messages(&w.ab).await;
    assert_eq!(rows.len(), 3 * n as usize, "every message saved once");
    for pair in rows.windows(2) {
        assert!(
            pair[0].created_at < pair[1].created_at,
            "createdAt strictly increases: {} then {}",
            pair[0].created_at,
            pair[1].created_at
        );
    }
    let order: Vec<String> = rows.iter().map(|m| m.content.clone()).collect();
    let only = |pred: &dyn Fn(&str) -> bool| -> Vec<String> {
        order.iter().filter(|c| pred(c)).cloned().collect()
    };
    // Each socket saw exactly its part of the one order, in that order.
    assert_eq!(
        a1_seen,
        only(&|c| c.starts_with("a1-") || c.starts_with("b1-"))
    );
    assert_eq!(
        a2_seen,
        only(&|c| c.starts_with("a2-") || c.starts_with("b1-"))
    );
    assert_eq!(b1_seen, order);
    assert_eq!(b2_seen, only(&|c| !c.starts_with("b1-")));
    // Each socket's messages in the order it sent them.
    for prefix in ["a1-", "a2-", "b1-"] {
        let mine = only(&|c| c.starts_with(prefix));
        let sent: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
        assert_eq!(mine, sent, "{prefix} kept its order");
    }
}

// ---------------------------------------------------------------------------------------
// Delivery
// ---------------------------------------------------------------------------------------

async fn receive_message_goes_to_every_receiver_socket_only(kind: Kind) {
    let w = world(kind, Duration::from_secs(600)).await;
    let mut a1 = w.sock(&w.alice, "a1");
    let mut a2 = w.sock(&w.alice, "a2");
    let mut b_joined = w.sock(&w.bob, "b-joined");
    let mut b_never = w.sock(&w.bob, "b-never-joined");
    let mut carol = w.sock(&w.carol, "c1");
    w.registered().await;
    w.join(&b_joined, &w.ab, Some(1));
    assert_eq!(
        b_joined.answer().await,
        vec![Got::Ack(1, json!({"ok": true, "connectionId": w.ab}))]
    );
    w.post(&a1, &w.ab, "hello", Some(7));
    let answer = a1.answer().await;
    let Got::Event(name, sent) = &answer[0] else {
        panic!("{answer:?}")
    };
    assert_eq!(name, "message_sent");
    assert_eq!(
        answer[1],
        Got::Ack(7, sent.clone()),
        "the ack is message_sent's body"
    );
    assert_eq!(sent["tempId"], json!("t-hello"));
    let saved = &sent["savedMessage"];
    assert_eq!(saved["senderId"], json!(w.alice));
    assert_eq!(saved["receiverId"], json!(w.bob));
    assert_eq!(b_joined.expect("receive_message").await, *saved);
    assert_eq!(b_never.expect("receive_message").await, *saved);
    a2.expect_silence().await;
    carol.expect_silence().await;
    a1.expect_silence().await;
}

// ---------------------------------------------------------------------------------------
// Read receipts
// ---------------------------------------------------------------------------------------

async fn read_receipts_are_not_repeated(kind: Kind) {
    let w = world(kind, Duration::from_secs(600)).await;
    let mut a = w.sock(&w.alice, "a");
    let mut b = w.sock(&w.bob, "b");
    let mut c = w.sock(&w.carol, "c");
    w.registered().await;
    w.post(&a, &w.ab, "read me", None);
    let answer = a.answer().await;
    let [Got::Event(name, sent)] = &answer[..] else {
        panic!("{answer:?}")
    };
    assert_eq!(name, "message_sent");
    let saved = sent["savedMessage"].clone();
    let id = saved["id"].as_str().unwrap().to_string();
    assert_eq!(b.expect("receive_message").await, saved);
    // The sender may not mark it; an outsider neither.
    w.mark(&a, &w.ab, &id, Some(1));
    assert_eq!(
        a.answer().await,
        vec![
            Got::Event(
                "error".into(),
                json!({"message": "You cannot mark this message as read."})
            ),
            Got::Ack(1, json!({"error": "You cannot mark this message as read."})),
        ]
    );
    w.mark(&c, &w.ab, &id, None);
    assert_eq!(
        c.expect("error").await,
        json!({"message": "You cannot mark this message as read."})
    );
    // The receiver marks it: message_read to the sender, the same as the ack.
    let notice = json!({"messageId": id, "connectionId": w.ab, "readBy": w.bob});
    w.mark(&b, &w.ab, &id, Some(2));
    assert_eq!(b.answer().await, vec![Got::Ack(2, notice.clone())]);
    assert_eq!(a.expect("message_read").await, notice);
    let first = w.db.message(&id).await.expect("row");
    assert!(first.is_read);
    assert!(first.updated_at >= first.created_at);
    // Again: acknowledged, but no second message_read and no new updatedAt.
    sleep(Duration::from_millis(20)).await;
    w.mark(&b, &w.ab, &id, Some(3));
    assert_eq!(b.answer().await, vec![Got::Ack(3, notice)]);
    a.expect_silence().await;
    assert_eq!(
        w.db.message(&id).await.expect("row").updated_at,
        first.updated_at
    );
}

// ---------------------------------------------------------------------------------------
// Rooms only for members
// ---------------------------------------------------------------------------------------

async fn no_room_for_a_non_member_or_an_unknown_id(kind: Kind) {
    let w = world(kind, Duration::from_secs(600)).await;
    let mut carol = w.sock(&w.carol, "c");
    let mut alice = w.sock(&w.alice, "a");
    let not_part = json!({"message": "You are not part of this connection."});
    let not_active = json!({"message": "Connection is not active."});
    for i in 0..3 {
        w.post(&carol, &w.ab, &format!("intruder {i}"), None);
        assert_eq!(carol.expect("error").await, not_part);
        w.join(&carol, &w.ab, None);
        assert_eq!(carol.expect("error").await, not_part);
    }
    assert_eq!(w.rooms().await, 0, "no room for a non-member");
    w.post(&alice, "late-connection", "hi", None);
    assert_eq!(alice.expect("error").await, not_active);
    assert_eq!(w.rooms().await, 0, "no room for an unknown id");
    // The unknown id is remembered for a while: created now, it is still unknown to
    // Courier (no second read), until the memory expires.
    let dave = w.db.user("dave").await;
    let (user1, user2) = if w.alice < dave {
        (&w.alice, &dave)
    } else {
        (&dave, &w.alice)
    };
    w.db.conn
        .execute_unprepared(&format!(
            "INSERT INTO connections (id, \"user1Id\", \"user2Id\", status, \"updatedAt\") \
             SELECT 'late-connection', '{user1}', '{user2}', 'ACTIVE', \"updatedAt\" \
             FROM connections WHERE id = '{}'",
            w.ab
        ))
        .await
        .expect("insert");
    w.post(&alice, "late-connection", "hi again", None);
    assert_eq!(alice.expect("error").await, not_active);
    assert_eq!(w.rooms().await, 0);
    // A member's request makes the room.
    w.post(&alice, &w.ab, "hi", None);
    alice.expect("message_sent").await;
    assert_eq!(w.rooms().await, 1);
    assert!(w
        .db
        .messages(&w.ab)
        .await
        .iter()
        .all(|m| m.sender_id == w.alice));
}

async fn idle_rooms_stop_and_come_back(kind: Kind) {
    let w = world(kind, Duration::from_millis(100)).await;
    let mut a = w.sock(&w.alice, "a");
    w.post(&a, &w.ab, "one", None);
    a.expect("message_sent").await;
    assert_eq!(w.rooms().await, 1);
    eventually("an idle room stops", async || w.rooms().await == 0).await;
    w.post(&a, &w.ab, "two", None);
    a.expect("message_sent").await;
    assert_eq!(w.rooms().await, 1);
    // A joined socket keeps its room.
    w.join(&a, &w.ab, Some(1));
    a.answer().await;
    sleep(Duration::from_millis(500)).await;
    assert_eq!(w.rooms().await, 1, "a joined room stays");
    // ...until the socket goes.
    w.chat.context.users.unregister(&a.user, &a.sid);
    eventually(
        "the room stops once its joined socket is gone",
        async || w.rooms().await == 0,
    )
    .await;
    assert_eq!(w.db.messages(&w.ab).await.len(), 2);
}

on_backends!(
    [sqlite, postgres, prisma_layout]
    one_order_across_members_and_sockets,
    receive_message_goes_to_every_receiver_socket_only,
    read_receipts_are_not_repeated,
    no_room_for_a_non_member_or_an_unknown_id,
    idle_rooms_stop_and_come_back
);
