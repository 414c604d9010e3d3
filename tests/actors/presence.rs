//! Presence in the user shards: a user's first socket makes them online to their peers, a
//! socket that comes back within the grace period changes nothing, the last one gone makes
//! them offline.

use std::time::Duration;

use crate::common::eventually;
use serde_json::json;

use crate::common::backends::on_backends;
use crate::harness::world;

// ---------------------------------------------------------------------------------------
// Presence in the user shards
// ---------------------------------------------------------------------------------------

/// A user's first socket makes them online to their peers (not to others); sockets that come
/// and go within `presence.offline_grace` (200 ms here) change nothing for the peers; the
/// last one gone makes them offline after it.
async fn presence_in_the_user_shards(kind: crate::common::db::Kind) {
    let w = world(kind, Duration::from_secs(600)).await;
    let mut bob = w.sock(&w.bob, "b");
    bob.skip_presence = false;
    let mut carol = w.sock(&w.carol, "c");
    carol.skip_presence = false;
    w.registered().await;
    let a1 = w.sock(&w.alice, "a1");
    let online = bob.expect("user_online_status").await;
    assert_eq!(online["userId"], json!(w.alice));
    assert_eq!(online["isOnline"], json!(true));
    // A second socket, the first gone, a new one within the grace period: silence.
    let a2 = w.sock(&w.alice, "a2");
    w.chat.context.users.unregister(&a1.user, &a1.sid);
    w.chat.context.users.unregister(&a2.user, &a2.sid);
    eventually("alice has no socket left", async || {
        w.chat.context.users.socket_count(&w.alice).await == 0
    })
    .await;
    let a3 = w.sock(&w.alice, "a3");
    bob.expect_silence().await;
    assert_eq!(w.chat.context.users.socket_count(&w.alice).await, 1);
    w.chat.context.users.unregister(&a3.user, &a3.sid);
    let offline = bob.expect("user_offline_status").await;
    assert_eq!(offline["userId"], json!(w.alice));
    assert_eq!(offline["isOnline"], json!(false));
    // Carol shares no connection with alice: told nothing (only her own peers would be).
    carol.expect_silence().await;
}

on_backends!([sqlite, postgres, prisma_layout] presence_in_the_user_shards);
