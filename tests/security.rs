//! What an attacker's probe of a running Courier found open (issue 17), each closed, through
//! the real server over raw WebSocket frames: call signalling and deletion/clearing notices
//! only between the two users of an ACTIVE connection, a BLOCKED connection that stops
//! ringing at once, notices that name only messages that were deleted, with a bound and the
//! per-user rate limit. (The sessions a user may hold are in `tests/limits.rs`, the admin
//! login in `tests/admin.rs`, the recovery pid in `tests/interop/recovery.test.mjs`.)

mod common;

use std::time::Duration;

use common::backends::on_backends;
use common::db::Kind;
use common::world::{world, world_with};
use serde_json::{json, Value};

const SILENCE: Duration = Duration::from_millis(400);

fn not_connected() -> Value {
    json!({"reason": "You are not connected with this user.", "code": "NOT_CONNECTED"})
}

/// The call relays (answer, reject, end, ICE) of `from` to `to`.
fn relays(to: &str) -> Vec<(&'static str, Value)> {
    vec![
        (
            "call:answer",
            json!({"callerId": to, "connectionId": "call-x"}),
        ),
        (
            "call:reject",
            json!({"callerId": to, "connectionId": "call-x"}),
        ),
        (
            "call:end",
            json!({"participantId": to, "connectionId": "call-x"}),
        ),
        (
            "call:ice-candidate",
            json!({"to": to, "connectionId": "call-x", "candidate": {"candidate": "c"}}),
        ),
    ]
}

/// Item 3: `call:answer`, `call:reject`, `call:end`, `call:ice-candidate` are relayed only
/// between the users of an ACTIVE connection (they were for any status before).
async fn call_relays_need_an_active_connection(kind: Kind) {
    let w = world(kind).await;
    let mut alice = w.app.connect_user(&w.alice).await;
    for (other, _, status) in w.not_active() {
        let mut peer = w.app.connect_user(other).await;
        for (event, payload) in relays(other) {
            alice.emit(event, payload, Some(7)).await;
            assert_eq!(
                alice.expect_event("call:failed").await,
                not_connected(),
                "{event} to a {status} connection"
            );
            assert_eq!(
                alice.expect_ack(7).await,
                json!({"error": "You are not connected with this user."})
            );
        }
        for (event, payload) in relays(&w.alice) {
            peer.emit(event, payload, None).await;
            assert_eq!(
                peer.expect_event("call:failed").await,
                not_connected(),
                "{event} from a {status} connection"
            );
        }
        peer.expect_silence(SILENCE).await;
    }
    alice.expect_silence(SILENCE).await;
    // Between the users of the ACTIVE connection they are relayed.
    let mut bob = w.app.connect_user(&w.bob).await;
    alice
        .emit(
            "call:ice-candidate",
            json!({"to": w.bob, "connectionId": "call-x", "candidate": {"candidate": "c"}}),
            None,
        )
        .await;
    assert_eq!(
        bob.expect_event("call:ice-candidate").await["from"],
        json!(w.alice)
    );
}

/// Item 4: once the app sets a connection BLOCKED, `call:initiate` no longer rings, at once
/// (with `presence.peers_ttl` at its default of a minute).
async fn a_blocked_connection_stops_ringing_at_once(kind: Kind) {
    let w = world(kind).await;
    let mut alice = w.app.connect_user(&w.alice).await;
    let mut bob = w.app.connect_user(&w.bob).await;
    let ring = json!({"recipientId": w.bob, "callType": "audio", "roomName": "call-r-1"});
    alice.emit("call:initiate", ring.clone(), Some(1)).await;
    assert_eq!(alice.expect_ack(1).await, json!({"ok": true}));
    assert_eq!(
        bob.expect_event("call:incoming").await["callerId"],
        json!(w.alice)
    );
    alice
        .emit(
            "call:end",
            json!({"participantId": w.bob, "connectionId": "call-r-1"}),
            None,
        )
        .await;
    bob.expect_event("call:ended").await;
    alice.expect_event("call:ended").await;

    w.db.set_status(&w.ab, "BLOCKED").await;
    alice.emit("call:initiate", ring, Some(2)).await;
    assert_eq!(alice.expect_event("call:failed").await, not_connected());
    assert_eq!(
        alice.expect_ack(2).await,
        json!({"error": "You are not connected with this user."})
    );
    bob.expect_silence(SILENCE).await;
}

/// Item 5: `delete_messages` and `clear_conversation` tell the other member only on an
/// ACTIVE connection (before, a BLOCKED user's made-up deletions reached the user who
/// blocked them, and ENDED and PENDING connections got `conversation_cleared`).
async fn notices_go_out_on_active_connections_only(kind: Kind) {
    let w = world(kind).await;
    let mut alice = w.app.connect_user(&w.alice).await;
    for (other, connection, status) in w.not_active() {
        let mut peer = w.app.connect_user(other).await;
        let delete = json!({"connectionId": connection, "messageIds": ["made-up-1"]});
        let clear = json!({"connectionId": connection});
        for (client, who) in [(&mut peer, "the peer"), (&mut alice, "alice")] {
            for (event, payload) in [
                ("delete_messages", delete.clone()),
                ("clear_conversation", clear.clone()),
            ] {
                client.emit(event, payload, Some(3)).await;
                assert_eq!(
                    client.expect_event("error").await,
                    json!({"message": "Connection is not active."}),
                    "{event} from {who} on a {status} connection"
                );
                assert_eq!(
                    client.expect_ack(3).await,
                    json!({"error": "Connection is not active."})
                );
            }
        }
        peer.expect_silence(SILENCE).await;
    }
    alice.expect_silence(SILENCE).await;
}

/// Item 5: the ids of messages still in the conversation that the caller did not send were
/// not deleted, and are left out of `messages_deleted` (the app deletes the rows before it
/// emits, so ids that are gone, made up or not, are passed on).
async fn notices_name_only_what_was_deleted(kind: Kind) {
    let w = world_with(kind, &[("COURIER__CHAT__MAX_NOTICE_IDS", "3")]).await;
    let mut alice = w.app.connect_user(&w.alice).await;
    let mut bob = w.app.connect_user(&w.bob).await;
    let send = |content: &str| json!({"connectionId": w.ab, "content": content, "tempId": content});
    alice.emit("send_message", send("mine"), None).await;
    let mine = alice.expect_event("message_sent").await["savedMessage"]["id"].clone();
    bob.expect_event("receive_message").await;
    bob.emit("send_message", send("theirs"), None).await;
    let theirs = bob.expect_event("message_sent").await["savedMessage"]["id"].clone();
    alice.expect_event("receive_message").await;

    alice
        .emit(
            "delete_messages",
            json!({"connectionId": w.ab, "messageIds": [theirs, mine, "gone-1"]}),
            Some(4),
        )
        .await;
    assert_eq!(alice.expect_ack(4).await, json!({"ok": true}));
    assert_eq!(
        bob.expect_event("messages_deleted").await,
        json!({"connectionId": w.ab, "messageIds": [mine, "gone-1"], "deletedBy": w.alice})
    );
    // Only ids that were not deleted: nobody is told.
    alice
        .emit(
            "delete_messages",
            json!({"connectionId": w.ab, "messageIds": [theirs]}),
            Some(5),
        )
        .await;
    assert_eq!(alice.expect_ack(5).await, json!({"ok": true}));
    bob.expect_silence(SILENCE).await;
    // More ids than chat.max_notice_ids (3): an error, nobody told.
    alice
        .emit(
            "delete_messages",
            json!({"connectionId": w.ab, "messageIds": ["a", "b", "c", "d"]}),
            None,
        )
        .await;
    assert_eq!(
        alice.expect_event("error").await,
        json!({"message": "messageIds must be a non-empty array of at most 3 message ids."})
    );
    bob.expect_silence(SILENCE).await;
}

/// Item 5: with `chat.rate_limit` on, the notices count against it as messages do.
async fn notices_are_under_the_message_rate_limit(kind: Kind) {
    let w = world_with(
        kind,
        &[
            ("COURIER__CHAT__RATE_LIMIT__PER_SECOND", "0.01"),
            ("COURIER__CHAT__RATE_LIMIT__BURST", "2"),
        ],
    )
    .await;
    let mut alice = w.app.connect_user(&w.alice).await;
    let mut bob = w.app.connect_user(&w.bob).await;
    let clear = json!({"connectionId": w.ab});
    alice.emit("clear_conversation", clear.clone(), None).await;
    alice
        .emit(
            "delete_messages",
            json!({"connectionId": w.ab, "messageIds": ["gone"]}),
            None,
        )
        .await;
    bob.expect_event("conversation_cleared").await;
    bob.expect_event("messages_deleted").await;
    alice.emit("clear_conversation", clear, Some(6)).await;
    let too_fast = "You are sending messages too fast. Please wait a moment.";
    assert_eq!(
        alice.expect_event("error").await,
        json!({ "message": too_fast })
    );
    assert_eq!(alice.expect_ack(6).await, json!({ "error": too_fast }));
    bob.expect_silence(SILENCE).await;
}

on_backends!(
    [sqlite, prisma_layout]
    call_relays_need_an_active_connection,
    a_blocked_connection_stops_ringing_at_once,
    notices_go_out_on_active_connections_only,
    notices_name_only_what_was_deleted,
    notices_are_under_the_message_rate_limit
);
