//! Presence, heartbeats, call signalling, deletion and clearing notices and the per-user
//! rate limit, through the real server over raw WebSocket frames, on SQLite, PostgreSQL and
//! the app's unchanged Prisma layout.

mod common;

use std::time::Duration;

use common::backends::on_backends;
use common::db::{Kind, TestDb};
use common::world::{self, World};
use common::{eventually, spawn_app_on};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{json, Value};

const SILENCE: Duration = Duration::from_millis(400);
const GRACE_MS: u64 = 400;

/// The world with short presence timings (plus `extra`).
async fn world_with(kind: Kind, extra: &[(&str, &str)]) -> World {
    let grace = GRACE_MS.to_string();
    let mut overrides = vec![
        ("COURIER__PRESENCE__OFFLINE_GRACE", grace.as_str()),
        ("COURIER__PRESENCE__HEARTBEAT_FLUSH", "200"),
        ("COURIER__PRESENCE__PEERS_TTL", "200"),
    ];
    overrides.extend_from_slice(extra);
    world::world_with(kind, &overrides).await
}

async fn world(kind: Kind) -> World {
    world_with(kind, &[]).await
}

/// The user's history rows: `(isOnline, deviceInfo, ipAddress)`, oldest first.
async fn history(db: &TestDb, user: &str) -> Vec<(bool, Option<String>, Option<String>)> {
    db.conn
        .query_all_raw(Statement::from_string(
            db.conn.get_database_backend(),
            format!(
                r#"SELECT "isOnline" AS o, "deviceInfo" AS d, "ipAddress" AS i FROM "user_online_status" WHERE "userId" = '{user}' ORDER BY "timestamp", "id""#
            ),
        ))
        .await
        .expect("query")
        .iter()
        .map(|r| {
            (
                r.try_get("", "o").unwrap(),
                r.try_get("", "d").unwrap(),
                r.try_get("", "i").unwrap(),
            )
        })
        .collect()
}

fn iso(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 24 && s.ends_with('Z'))
}

// ---------------------------------------------------------------------------------------
// Presence
// ---------------------------------------------------------------------------------------

async fn presence_goes_to_peers_only(kind: Kind) {
    let w = world(kind).await;
    let mut bob = w.app.watcher(&w.bob).await;
    let mut carol = w.app.watcher(&w.carol).await;
    let mut dave = w.app.watcher(&w.dave).await;
    let _alice = w.app.connect_user(&w.alice).await;
    let online = bob.expect_event("user_online_status").await;
    assert_eq!(online["userId"], json!(w.alice));
    assert_eq!(online["isOnline"], json!(true));
    assert!(
        iso(&online["lastSeenAt"]) && iso(&online["timestamp"]),
        "{online}"
    );
    assert_eq!(online.as_object().unwrap().len(), 4, "{online}");
    // A stranger, and a user whose connection with alice has ended, are told nothing.
    carol.expect_silence(SILENCE).await;
    dave.expect_silence(SILENCE).await;
    // The columns and the history row (the test client's User-Agent, the loopback address).
    assert_eq!(w.db.presence(&w.alice).await, (true, 1));
    let rows = history(&w.db, &w.alice).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0].0);
    assert_eq!(rows[0].1.as_deref(), Some(common::USER_AGENT), "deviceInfo");
    assert_eq!(rows[0].2.as_deref(), Some("127.0.0.1"));
}

async fn a_reload_within_the_grace_period_does_not_flap(kind: Kind) {
    // The new socket must come within the grace period: a longer one here, so that a
    // loaded machine's slow reconnect does not count as leaving.
    const RELOAD_GRACE_MS: u64 = 1500;
    let grace = RELOAD_GRACE_MS.to_string();
    let w = world_with(kind, &[("COURIER__PRESENCE__OFFLINE_GRACE", &grace)]).await;
    let mut bob = w.app.watcher(&w.bob).await;
    let a1 = w.app.connect_user(&w.alice).await;
    bob.expect_event("user_online_status").await;
    let a2 = w.app.connect_user(&w.alice).await;
    eventually("two sockets counted", async || {
        w.db.presence(&w.alice).await == (true, 2)
    })
    .await;
    drop(a1);
    eventually("one socket counted", async || {
        w.db.presence(&w.alice).await == (true, 1)
    })
    .await;
    // The page reloads: the last socket goes and a new one comes within the grace period.
    drop(a2);
    tokio::time::sleep(Duration::from_millis(GRACE_MS / 4)).await;
    let a3 = w.app.connect_user(&w.alice).await;
    // Past the first socket's grace period: nothing.
    bob.expect_silence(Duration::from_millis(RELOAD_GRACE_MS + 500))
        .await;
    assert_eq!(w.db.presence(&w.alice).await, (true, 1));
    assert_eq!(
        history(&w.db, &w.alice).await.len(),
        1,
        "no flap in the history"
    );
    // Gone for good: offline after the grace period.
    drop(a3);
    let offline = bob.expect_event("user_offline_status").await;
    assert_eq!(offline["userId"], json!(w.alice));
    assert_eq!(offline["isOnline"], json!(false));
    assert!(iso(&offline["lastSeenAt"]));
    assert_eq!(w.db.presence(&w.alice).await, (false, 0));
    let rows = history(&w.db, &w.alice).await;
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![true, false]
    );
}

async fn legacy_events_and_scope_all(kind: Kind) {
    let w = world_with(
        kind,
        &[
            ("COURIER__PRESENCE__LEGACY_EVENTS", "true"),
            ("COURIER__PRESENCE__SCOPE", "all"),
        ],
    )
    .await;
    let mut carol = w.app.watcher(&w.carol).await;
    // Carol is told of herself first (everyone is).
    assert_eq!(
        carol.expect_event("user_online_status").await["userId"],
        json!(w.carol)
    );
    assert_eq!(
        carol.expect_event("user_online").await,
        json!({"userId": w.carol})
    );
    let _alice = w.app.connect_user(&w.alice).await;
    // "all": a stranger is told too (the Node server's behaviour), in both forms.
    assert_eq!(
        carol.expect_event("user_online_status").await["userId"],
        json!(w.alice)
    );
    assert_eq!(
        carol.expect_event("user_online").await,
        json!({"userId": w.alice})
    );
}

/// After a crash, users marked online with an old heartbeat are set offline at start
/// (with a history row, and no events).
async fn stale_users_are_swept_at_start(kind: Kind) {
    let db = TestDb::new(kind).await;
    // A first server creates the tables (or not, on the Prisma layout).
    drop(spawn_app_on(&db.url, &[]).await);
    let ghost = db.user("ghost").await;
    let fresh = db.user("fresh").await;
    let backend = db.conn.get_database_backend();
    let old = "2020-01-01 00:00:00";
    db.conn
        .execute_unprepared(&format!(
            r#"UPDATE "users" SET "isOnline" = true, "connectionCount" = 3, "lastHeartbeatAt" = '{old}' WHERE "id" = '{ghost}'"#
        ))
        .await
        .unwrap();
    let now = match backend {
        DbBackend::Postgres => "now() AT TIME ZONE 'utc'",
        _ => "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    };
    db.conn
        .execute_unprepared(&format!(
            r#"UPDATE "users" SET "isOnline" = true, "connectionCount" = 1, "lastHeartbeatAt" = {now} WHERE "id" = '{fresh}'"#
        ))
        .await
        .unwrap();
    let _app = spawn_app_on(&db.url, &[]).await;
    eventually("the ghost is swept", async || {
        db.presence(&ghost).await == (false, 0)
    })
    .await;
    assert_eq!(history(&db, &ghost).await.len(), 1);
    assert_eq!(
        db.presence(&fresh).await,
        (true, 1),
        "a recent heartbeat is not stale"
    );
}

async fn heartbeats_keep_last_heartbeat_fresh(kind: Kind) {
    let w = world(kind).await;
    let mut alice = w.app.connect_user(&w.alice).await;
    eventually("online", async || w.db.presence(&w.alice).await.0).await;
    let read = || async {
        let row =
            w.db.conn
                .query_one_raw(Statement::from_string(
                    w.db.conn.get_database_backend(),
                    format!(
                        r#"SELECT "lastHeartbeatAt" AS h FROM "users" WHERE "id" = '{}'"#,
                        w.alice
                    ),
                ))
                .await
                .unwrap()
                .unwrap();
        row.try_get::<chrono::NaiveDateTime>("", "h").unwrap()
    };
    w.db.conn
        .execute_unprepared(&format!(
            r#"UPDATE "users" SET "lastHeartbeatAt" = '2020-01-01 00:00:00' WHERE "id" = '{}'"#,
            w.alice
        ))
        .await
        .unwrap();
    alice.emit("heartbeat", json!(null), Some(1)).await;
    assert_eq!(alice.expect_ack(1).await, json!({"ok": true}));
    eventually("lastHeartbeatAt refreshed", async || {
        read().await.and_utc().timestamp() > 1_700_000_000
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------

async fn call_signalling(kind: Kind) {
    let w = world(kind).await;
    let mut alice = w.app.connect_user(&w.alice).await;
    let mut carol = w.app.connect_user(&w.carol).await;
    let room = format!("call-{}-1767225600000", w.ab);

    // Bob is offline.
    alice
        .emit(
            "call:initiate",
            json!({"recipientId": w.bob, "callType": "video", "roomName": room}),
            None,
        )
        .await;
    assert_eq!(
        alice.expect_event("call:failed").await,
        json!({"reason": "Recipient is offline", "code": "USER_OFFLINE"})
    );

    let mut bob1 = w.app.connect_user(&w.bob).await;
    let mut bob2 = w.app.connect_user(&w.bob).await;
    w.registered(&[(&w.bob, 2)]).await;
    alice
        .emit(
            "call:initiate",
            json!({"recipientId": w.bob, "callType": "video", "roomName": room}),
            Some(1),
        )
        .await;
    assert_eq!(alice.expect_ack(1).await, json!({"ok": true}));
    for bob in [&mut bob1, &mut bob2] {
        let incoming = bob.expect_event("call:incoming").await;
        assert_eq!(incoming["callerId"], json!(w.alice));
        assert_eq!(incoming["callerName"], json!("alice"));
        assert_eq!(incoming["callerImage"], Value::Null);
        assert_eq!(incoming["callType"], json!("video"));
        assert_eq!(incoming["roomName"], json!(room));
        assert_eq!(
            incoming["connectionId"],
            json!(room),
            "the room name, verbatim"
        );
        assert!(iso(&incoming["timestamp"]));
    }

    // Answer, ICE candidates both ways, reject, end.
    bob1.emit(
        "call:answer",
        json!({"callerId": w.alice, "connectionId": room}),
        None,
    )
    .await;
    let accepted = alice.expect_event("call:accepted").await;
    assert_eq!(accepted["participantId"], json!(w.bob));
    assert_eq!(accepted["connectionId"], json!(room));
    let candidate =
        json!({"candidate": "candidate:1 1 UDP 2122 192.0.2.1 54321 typ host", "sdpMid": "0"});
    alice
        .emit(
            "call:ice-candidate",
            json!({"to": w.bob, "connectionId": room, "candidate": candidate}),
            None,
        )
        .await;
    for bob in [&mut bob1, &mut bob2] {
        assert_eq!(
            bob.expect_event("call:ice-candidate").await,
            json!({"from": w.alice, "connectionId": room, "candidate": candidate})
        );
    }
    bob2.emit(
        "call:reject",
        json!({"callerId": w.alice, "connectionId": room}),
        None,
    )
    .await;
    assert_eq!(
        alice.expect_event("call:rejected").await["participantId"],
        json!(w.bob)
    );
    assert_eq!(
        bob2.expect_event("call:rejected").await["participantId"],
        json!(w.alice),
        "the rejecting socket hears back"
    );
    // The app ends the connection mid-call: the call can still be ended...
    w.db.set_status(&w.ab, "ENDED").await;
    tokio::time::sleep(Duration::from_millis(300)).await; // past presence.peers_ttl
    alice
        .emit(
            "call:end",
            json!({"participantId": w.bob, "connectionId": room}),
            None,
        )
        .await;
    assert_eq!(
        bob1.expect_event("call:ended").await["participantId"],
        json!(w.alice)
    );
    let back = alice.expect_event("call:ended").await;
    assert_eq!(back["participantId"], json!(w.bob));
    assert_eq!(back["connectionId"], json!(room));
    // ...but no new call rings.
    alice
        .emit(
            "call:initiate",
            json!({"recipientId": w.bob, "callType": "audio", "roomName": room}),
            None,
        )
        .await;
    let not_connected =
        json!({"reason": "You are not connected with this user.", "code": "NOT_CONNECTED"});
    assert_eq!(alice.expect_event("call:failed").await, not_connected);

    // A stranger can neither ring nor reach anyone; nothing is relayed.
    carol
        .emit(
            "call:initiate",
            json!({"recipientId": w.alice, "callType": "audio", "roomName": "x"}),
            None,
        )
        .await;
    assert_eq!(carol.expect_event("call:failed").await, not_connected);
    carol
        .emit(
            "call:ice-candidate",
            json!({"to": w.alice, "connectionId": "x", "candidate": {}}),
            None,
        )
        .await;
    assert_eq!(carol.expect_event("call:failed").await, not_connected);
    // An ended connection (dave) with no call in progress relays nothing; "" ends with
    // nobody told.
    alice
        .emit(
            "call:end",
            json!({"participantId": w.dave, "connectionId": ""}),
            None,
        )
        .await;
    assert_eq!(alice.expect_event("call:failed").await, not_connected);
    alice
        .emit("call:end", json!({"connectionId": ""}), None)
        .await;
    let back = alice.expect_event("call:ended").await;
    assert!(back.get("participantId").is_none(), "{back}");
    // Malformed.
    for (event, payload) in [
        ("call:initiate", json!({"recipientId": w.bob})),
        ("call:answer", json!("nope")),
        (
            "call:ice-candidate",
            json!({"to": w.bob, "candidate": "text"}),
        ),
    ] {
        alice.emit(event, payload, Some(9)).await;
        assert_eq!(
            alice.expect_event("call:failed").await,
            json!({"reason": "Invalid call payload.", "code": "INVALID_PAYLOAD"})
        );
        assert_eq!(
            alice.expect_ack(9).await,
            json!({"error": "Invalid call payload."})
        );
    }
    alice.expect_silence(SILENCE).await;
    bob1.expect_silence(SILENCE).await;
    carol.expect_silence(SILENCE).await;
}

/// A socket may relay at most `chat.call_rate` call events.
async fn call_events_are_rate_capped(kind: Kind) {
    let w = world_with(
        kind,
        &[
            ("COURIER__CHAT__CALL_RATE__PER_SECOND", "1"),
            ("COURIER__CHAT__CALL_RATE__BURST", "3"),
        ],
    )
    .await;
    let mut alice = w.app.connect_user(&w.alice).await;
    let mut bob = w.app.connect_user(&w.bob).await;
    w.registered(&[(&w.alice, 1), (&w.bob, 1)]).await;
    for _ in 0..5 {
        alice
            .emit(
                "call:ice-candidate",
                json!({"to": w.bob, "connectionId": "r", "candidate": {"c": 1}}),
                None,
            )
            .await;
    }
    for _ in 0..3 {
        bob.expect_event("call:ice-candidate").await;
    }
    for _ in 0..2 {
        assert_eq!(
            alice.expect_event("call:failed").await["code"],
            json!("RATE_LIMITED")
        );
    }
    bob.expect_silence(SILENCE).await;
}

// ---------------------------------------------------------------------------------------
// Notices
// ---------------------------------------------------------------------------------------

async fn deletion_and_clearing_notices_go_to_the_other_member(kind: Kind) {
    let w = world(kind).await;
    let mut a1 = w.app.connect_user(&w.alice).await;
    let mut a2 = w.app.connect_user(&w.alice).await;
    let mut b1 = w.app.connect_user(&w.bob).await;
    let mut carol = w.app.connect_user(&w.carol).await;
    let mut dave = w.app.connect_user(&w.dave).await;
    w.registered(&[(&w.alice, 2), (&w.bob, 1), (&w.carol, 1), (&w.dave, 1)])
        .await;
    a1.emit(
        "delete_messages",
        json!({"connectionId": w.ab, "messageIds": ["m1", "m2"], "deletedBy": "forged"}),
        Some(1),
    )
    .await;
    assert_eq!(a1.expect_ack(1).await, json!({"ok": true}));
    assert_eq!(
        b1.expect_event("messages_deleted").await,
        json!({"connectionId": w.ab, "messageIds": ["m1", "m2"], "deletedBy": w.alice})
    );
    b1.emit("clear_conversation", json!({"connectionId": w.ab}), None)
        .await;
    for a in [&mut a1, &mut a2] {
        assert_eq!(
            a.expect_event("conversation_cleared").await,
            json!({"connectionId": w.ab, "clearedBy": w.bob})
        );
    }
    // Not on a connection that is not ACTIVE (tests/security.rs has every status).
    a1.emit(
        "clear_conversation",
        json!({"connectionId": w.ad_ended}),
        None,
    )
    .await;
    assert_eq!(
        a1.expect_event("error").await,
        json!({"message": "Connection is not active."})
    );
    // A non-member, an unknown connection, a malformed payload: an error, nobody told.
    carol
        .emit(
            "delete_messages",
            json!({"connectionId": w.ab, "messageIds": ["m1"]}),
            Some(2),
        )
        .await;
    assert_eq!(
        carol.expect_event("error").await,
        json!({"message": "You are not part of this connection."})
    );
    assert_eq!(
        carol.expect_ack(2).await,
        json!({"error": "You are not part of this connection."})
    );
    carol
        .emit("clear_conversation", json!({"connectionId": "nope"}), None)
        .await;
    assert_eq!(
        carol.expect_event("error").await,
        json!({"message": "Connection is not active."})
    );
    a1.emit(
        "delete_messages",
        json!({"connectionId": w.ab, "messageIds": []}),
        None,
    )
    .await;
    assert!(a1.expect_event("error").await["message"].is_string());
    a2.expect_silence(SILENCE).await;
    b1.expect_silence(SILENCE).await;
    dave.expect_silence(SILENCE).await;
}

// ---------------------------------------------------------------------------------------
// Rate limit
// ---------------------------------------------------------------------------------------

async fn the_rate_limit_refuses_bursts_when_on(kind: Kind) {
    let w = world_with(
        kind,
        &[
            ("COURIER__CHAT__RATE_LIMIT__PER_SECOND", "1"),
            ("COURIER__CHAT__RATE_LIMIT__BURST", "3"),
        ],
    )
    .await;
    // Two sockets of one user share the bucket.
    let mut a1 = w.app.connect_user(&w.alice).await;
    let mut a2 = w.app.connect_user(&w.alice).await;
    let send = |i: usize| json!({"connectionId": w.ab, "content": format!("m{i}"), "tempId": format!("t{i}")});
    a1.emit("send_message", send(0), None).await;
    a1.emit("send_message", send(1), None).await;
    a2.emit("send_message", send(2), None).await;
    a1.expect_event("message_sent").await;
    a1.expect_event("message_sent").await;
    a2.expect_event("message_sent").await;
    a2.emit("send_message", send(3), Some(4)).await;
    assert_eq!(
        a2.expect_event("error").await,
        json!({"message": "You are sending messages too fast. Please wait a moment."})
    );
    assert_eq!(
        a2.expect_ack(4).await,
        json!({"error": "You are sending messages too fast. Please wait a moment."})
    );
    assert_eq!(
        w.db.messages(&w.ab).await.len(),
        3,
        "the refused one is not saved"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a1.emit("send_message", send(5), None).await;
    a1.expect_event("message_sent").await;
}

async fn no_rate_limit_by_default(kind: Kind) {
    let w = world(kind).await;
    let mut a = w.app.connect_user(&w.alice).await;
    for i in 0..20 {
        a.emit(
            "send_message",
            json!({"connectionId": w.ab, "content": format!("m{i}"), "tempId": format!("t{i}")}),
            None,
        )
        .await;
    }
    for _ in 0..20 {
        a.expect_event("message_sent").await;
    }
    assert_eq!(w.db.messages(&w.ab).await.len(), 20);
}

on_backends!(
    [sqlite, postgres, prisma_layout]
    presence_goes_to_peers_only,
    a_reload_within_the_grace_period_does_not_flap,
    legacy_events_and_scope_all,
    stale_users_are_swept_at_start,
    heartbeats_keep_last_heartbeat_fresh,
    call_signalling,
    call_events_are_rate_capped,
    deletion_and_clearing_notices_go_to_the_other_member,
    the_rate_limit_refuses_bursts_when_on,
    no_rate_limit_by_default
);

/// A Prisma-managed database older than the app's presence migration: no DDL, one
/// warning, no presence writes; the chat and the presence events work.
#[actix_web::test]
async fn a_database_without_presence_columns_still_chats() {
    let db = TestDb::new(Kind::PrismaPostgres).await;
    db.conn
        .execute_unprepared(
            r#"DROP TABLE "user_online_status"; ALTER TABLE "users" DROP COLUMN "connectionCount", DROP COLUMN "lastHeartbeatAt", DROP COLUMN "isOnline", DROP COLUMN "lastSeenAt""#,
        )
        .await
        .expect("an older layout");
    let app = spawn_app_on(&db.url, &[]).await;
    // The entities map the presence columns: seed with plain SQL.
    db.conn
        .execute_unprepared(
            r#"INSERT INTO "users" ("id", "email", "name", "updatedAt") VALUES ('old-a', 'a@x', 'a', now()), ('old-b', 'b@x', 'b', now());
               INSERT INTO "connections" ("id", "user1Id", "user2Id", "updatedAt") VALUES ('old-ab', 'old-a', 'old-b', now())"#,
        )
        .await
        .expect("seed");
    let (alice, bob, ab) = ("old-a", "old-b", "old-ab");
    let mut b = app.watcher(bob).await;
    let mut a = app.connect_user(alice).await;
    assert_eq!(
        b.expect_event("user_online_status").await["userId"],
        json!(alice)
    );
    a.emit(
        "send_message",
        json!({"connectionId": ab, "content": "hi", "tempId": "t"}),
        None,
    )
    .await;
    a.expect_event("message_sent").await;
    assert_eq!(
        b.expect_event("receive_message").await["content"],
        json!("hi")
    );
    let columns = db
        .conn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'users' AND table_schema = current_schema() AND column_name IN ('isOnline','connectionCount')",
        ))
        .await
        .unwrap();
    assert!(columns.is_empty(), "no DDL on a Prisma-managed database");
}

/// A valid token whose user has no row in `users`: the socket works.
#[actix_web::test]
async fn a_user_without_a_row_still_connects() {
    let w = world(Kind::Postgres).await;
    let mut ghost = w.app.connect_user("no-such-user").await;
    ghost.emit("heartbeat", json!(null), Some(1)).await;
    assert_eq!(ghost.expect_ack(1).await, json!({"ok": true}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(history(&w.db, "no-such-user").await.is_empty());
}
