//! What the chat does shows in its series.

use std::time::Duration;

use crate::common::backends::on_backends;
use crate::common::db::Kind;
use crate::common::eventually;
use crate::harness::world;

/// What the chat does shows in its series: messages saved, a retry counted as a duplicate
/// (not saved again), refusals by reason, read receipts, batches, the ack latency, users
/// online and rooms alive.
async fn metrics_count_what_the_chat_does(kind: Kind) {
    let w = world(kind, Duration::from_millis(300)).await;
    let mut a = w.sock(&w.alice, "a");
    let mut b = w.sock(&w.bob, "b");
    let mut c = w.sock(&w.carol, "c");
    w.registered().await;
    assert_eq!(w.metric("courier_users_online"), 3.0);
    assert_eq!(w.metric("courier_rooms_alive"), 0.0);
    let message = w.message(&w.ab, "counted", "t-counted");
    w.post_message(&a, message.clone(), None);
    let sent = a.expect("message_sent").await;
    let id = sent["savedMessage"]["id"].as_str().unwrap().to_string();
    b.expect("receive_message").await;
    assert_eq!(w.metric("courier_rooms_alive"), 1.0);
    // The retry: answered with the row, counted as a duplicate.
    w.post_message(&a, message, None);
    a.expect("message_sent").await;
    // Carol is no member: refused.
    w.post(&c, &w.ab, "intruder", None);
    c.expect("error").await;
    w.mark(&b, &w.ab, &id, None);
    a.expect("message_read").await;
    assert_eq!(w.metric("courier_messages_saved_total"), 1.0);
    assert_eq!(w.metric("courier_messages_duplicate_total"), 1.0);
    assert_eq!(
        w.metric(r#"courier_messages_refused_total{reason="not_member"}"#),
        1.0
    );
    assert_eq!(w.metric("courier_messages_failed_total"), 0.0);
    assert_eq!(w.metric("courier_read_receipts_total"), 1.0);
    assert_eq!(w.metric("courier_message_ack_seconds_count"), 2.0);
    // Two inserts and a mark (and the presence writes), committed in batches.
    assert!(w.metric("courier_persistence_batch_size_sum") >= 3.0);
    assert!(w.metric("courier_persistence_commit_seconds_count") >= 1.0);
    // Everyone leaves: nobody online; the idle room stops.
    for sock in [&a, &b, &c] {
        w.chat.context.users.unregister(&sock.user, &sock.sid);
    }
    w.registered().await;
    assert_eq!(w.metric("courier_users_online"), 0.0);
    eventually(
        "the idle room stopped and is no longer counted",
        async || w.metric("courier_rooms_alive") == 0.0,
    )
    .await;
}

on_backends!([sqlite, postgres, prisma_layout] metrics_count_what_the_chat_does);
