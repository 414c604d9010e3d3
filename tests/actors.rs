//! The chat's actors on their own, over a real (SQLite) database: `ChatRoom` and
//! `RoomRegistry` (routing, membership and status checks, idle stop), `Persistence` (reply
//! after commit, serialized writes, refusals, back-pressure, draining shutdown, mark-read)
//! and `UserRegistry` (fan-out to a user's sockets). Sockets are fake actors that record
//! every `ChatPush` they are given.

mod common;

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler};
use chrono::NaiveDateTime;
use common::db::{Kind, TestDb};
use courier::chat::message_json::message_json;
use courier::chat::payload::{Media, SendMessage};
use courier::chat::persistence::{
    MarkRead, PersistError, Persistence, SaveMessage, SaveOutcome, Shutdown,
};
use courier::chat::room::{
    ChatError, ChatRoom, GetRoom, Join, JoinedCount, Leave, PostMessage, RoomCount, RoomDeps,
    RoomRegistry,
};
use courier::chat::users::{RegisterSocket, SocketCount, ToUser, UnregisterSocket, UserRegistry};
use courier::chat::ChatPush;
use entity::messages;
use futures_util::future::{join, join_all};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout, Instant};

/// Longest wait for something that must happen.
const WAIT: Duration = Duration::from_secs(5);
/// How long "nothing arrives" is watched.
const SILENCE: Duration = Duration::from_millis(200);
/// Rooms that are not about idleness never stop during a test.
const LONG_IDLE: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------------------
// Fake sockets
// ---------------------------------------------------------------------------------------

/// An actor standing for a chat socket: forwards every push to the test.
struct Recorder {
    tx: mpsc::UnboundedSender<ChatPush>,
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

impl Handler<ChatPush> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: ChatPush, _ctx: &mut Self::Context) {
        let _ = self.tx.send(msg);
    }
}

/// The test's side of a fake socket.
struct FakeSocket {
    user: String,
    sid: Arc<str>,
    addr: Addr<Recorder>,
    rx: mpsc::UnboundedReceiver<ChatPush>,
}

impl FakeSocket {
    fn new(user: &str, sid: &str) -> FakeSocket {
        let (tx, rx) = mpsc::unbounded_channel();
        FakeSocket {
            user: user.to_string(),
            sid: Arc::from(sid),
            addr: Recorder { tx }.start(),
            rx,
        }
    }

    fn register(&self) -> RegisterSocket {
        RegisterSocket {
            user_id: self.user.clone(),
            sid: self.sid.clone(),
            recipient: self.addr.clone().recipient(),
        }
    }

    fn unregister(&self) -> UnregisterSocket {
        UnregisterSocket {
            user_id: self.user.clone(),
            sid: self.sid.clone(),
        }
    }

    fn join(&self) -> Join {
        Join {
            user_id: self.user.clone(),
            sid: self.sid.clone(),
            recipient: self.addr.clone().recipient(),
        }
    }

    fn post(&self, connection_id: &str, content: &str) -> PostMessage {
        PostMessage {
            user_id: self.user.clone(),
            sid: self.sid.clone(),
            message: send_message(connection_id, content),
        }
    }

    /// The next push, decoded to `(event, argument)`; panics after [`WAIT`].
    async fn next(&mut self) -> (String, Value) {
        match timeout(WAIT, self.rx.recv()).await {
            Ok(Some(push)) => decode(push),
            Ok(None) => panic!("socket {} closed", self.sid),
            Err(_) => panic!("socket {} received nothing within {WAIT:?}", self.sid),
        }
    }

    /// The next push, which must be `event`; returns its argument.
    async fn expect(&mut self, event: &str) -> Value {
        let (name, payload) = self.next().await;
        assert_eq!(name, event, "socket {}: payload {payload}", self.sid);
        payload
    }

    /// Asserts nothing arrives within [`SILENCE`].
    async fn expect_silence(&mut self) {
        if let Ok(Some(push)) = timeout(SILENCE, self.rx.recv()).await {
            panic!(
                "socket {} expected silence, got {:?}",
                self.sid,
                decode(push)
            );
        }
    }
}

/// `(event, first argument)` of a push: a `ChatPush` is an Engine.IO message
/// (`4`) holding a Socket.IO EVENT on `/` (`2[...]`).
fn decode(push: ChatPush) -> (String, Value) {
    let text: &str = &push.0;
    let body = text
        .strip_prefix('4')
        .and_then(|rest| rest.strip_prefix('2'))
        .unwrap_or_else(|| panic!("not an Engine.IO message with an event: {text}"));
    let array: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("frame {text} is not JSON: {e}"));
    let name = array[0]
        .as_str()
        .unwrap_or_else(|| panic!("no event name in {text}"))
        .to_string();
    assert_eq!(array.as_array().map(Vec::len), Some(2), "frame {text}");
    (name, array[1].clone())
}

fn send_message(connection_id: &str, content: &str) -> SendMessage {
    SendMessage {
        connection_id: connection_id.to_string(),
        content: content.to_string(),
        temp_id: format!("temp-{content}"),
        media: Media::default(),
    }
}

// ---------------------------------------------------------------------------------------
// Database and actors
// ---------------------------------------------------------------------------------------

/// A migrated SQLite database with four users and their connections:
/// alice–bob ACTIVE, alice–carol ENDED, alice–dave BLOCKED, bob–carol ACTIVE.
struct World {
    db: TestDb,
    alice: String,
    bob: String,
    carol: String,
    dave: String,
    ab: String,
    ac_ended: String,
    ad_blocked: String,
    bc: String,
}

async fn world() -> World {
    let db = TestDb::new(Kind::Sqlite).await;
    migration::prepare(&db.conn, migration::MigrateMode::Always)
        .await
        .expect("migrations run");
    let alice = db.user("alice").await;
    let bob = db.user("bob").await;
    let carol = db.user("carol").await;
    let dave = db.user("dave").await;
    let ab = db.connection(&alice, &bob, "ACTIVE").await;
    let ac_ended = db.connection(&alice, &carol, "ENDED").await;
    let ad_blocked = db.connection(&alice, &dave, "BLOCKED").await;
    let bc = db.connection(&bob, &carol, "ACTIVE").await;
    World {
        db,
        alice,
        bob,
        carol,
        dave,
        ab,
        ac_ended,
        ad_blocked,
        bc,
    }
}

impl World {
    /// Persistence over a connection of its own (not the test's).
    async fn persistence(&self, capacity: usize) -> Addr<Persistence> {
        let conn = Database::connect(self.db.url.as_str())
            .await
            .expect("persistence connects");
        Persistence::new(conn, capacity).start()
    }

    /// Persistence and a user registry, with room dependencies over them.
    async fn chat(&self, idle_timeout: Duration) -> Chat {
        let persistence = self.persistence(16).await;
        let users = UserRegistry::default().start();
        let deps = RoomDeps {
            save: persistence.clone().recipient(),
            load: persistence.clone().recipient(),
            users: users.clone().recipient(),
            idle_timeout,
        };
        Chat { users, deps }
    }

    /// Every row of `messages`, in insertion order.
    async fn all_message_ids(&self) -> Vec<String> {
        self.db
            .conn
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT id FROM messages ORDER BY rowid",
            ))
            .await
            .expect("read messages")
            .iter()
            .map(|row| row.try_get::<String>("", "id").expect("id column"))
            .collect()
    }

    /// A message row, not yet saved.
    fn model(
        &self,
        connection_id: &str,
        sender: &str,
        receiver: &str,
        content: &str,
    ) -> messages::Model {
        model_at(
            connection_id,
            sender,
            receiver,
            content,
            entity::now_utc_ms(),
        )
    }
}

fn model_at(
    connection_id: &str,
    sender: &str,
    receiver: &str,
    content: &str,
    at: NaiveDateTime,
) -> messages::Model {
    messages::Model {
        id: courier::ids::cuid(),
        connection_id: connection_id.to_string(),
        sender_id: sender.to_string(),
        receiver_id: receiver.to_string(),
        content: content.to_string(),
        is_read: false,
        created_at: at,
        updated_at: at,
        media_url: None,
        media_type: None,
        media_name: None,
        media_size: None,
        media_thumbnail: None,
    }
}

struct Chat {
    users: Addr<UserRegistry>,
    deps: RoomDeps,
}

impl Chat {
    fn room(&self, connection_id: &str) -> Addr<ChatRoom> {
        ChatRoom::new(connection_id.to_string(), self.deps.clone(), None).start()
    }

    async fn register(&self, sockets: &[&FakeSocket]) {
        for socket in sockets {
            self.users
                .send(socket.register())
                .await
                .expect("user registry alive");
        }
    }
}

async fn post(room: &Addr<ChatRoom>, msg: PostMessage) -> Result<messages::Model, ChatError> {
    timeout(WAIT, room.send(msg))
        .await
        .expect("the room answers in time")
        .expect("the room is alive")
}

async fn join_room(room: &Addr<ChatRoom>, msg: Join) -> Result<(), ChatError> {
    timeout(WAIT, room.send(msg))
        .await
        .expect("the room answers in time")
        .expect("the room is alive")
}

async fn joined(room: &Addr<ChatRoom>) -> usize {
    timeout(WAIT, room.send(JoinedCount))
        .await
        .expect("the room answers in time")
        .expect("the room is alive")
}

async fn save(
    persistence: &Addr<Persistence>,
    model: messages::Model,
) -> Result<SaveOutcome, PersistError> {
    timeout(WAIT, persistence.send(SaveMessage(model)))
        .await
        .expect("persistence answers in time")
        .expect("persistence is alive")
}

/// Polls `cond` every 20 ms until it holds; panics after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if cond().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// ChatRoom
// ---------------------------------------------------------------------------------------

#[actix::test]
async fn room_routes_a_saved_message_to_the_receiver_and_the_senders_other_sockets() {
    let w = world().await;
    let chat = w.chat(LONG_IDLE).await;
    let mut a1 = FakeSocket::new(&w.alice, "a1");
    let mut a2 = FakeSocket::new(&w.alice, "a2");
    let mut b1 = FakeSocket::new(&w.bob, "b1");
    let mut b2 = FakeSocket::new(&w.bob, "b2");
    let mut c1 = FakeSocket::new(&w.carol, "c1");
    chat.register(&[&a1, &a2, &b1, &b2, &c1]).await;
    let room = chat.room(&w.ab);

    let saved = post(&room, a1.post(&w.ab, "hello bob"))
        .await
        .expect("alice may post to an ACTIVE connection");
    assert_eq!(saved.connection_id, w.ab);
    assert_eq!(saved.sender_id, w.alice);
    assert_eq!(saved.receiver_id, w.bob);
    assert_eq!(saved.content, "hello bob");
    assert!(!saved.is_read);
    assert_eq!(
        w.db.message(&saved.id).await.as_ref(),
        Some(&saved),
        "the reply is the committed row"
    );

    let expected = message_json(&saved);
    for socket in [&mut b1, &mut b2, &mut a2] {
        let got = socket.expect("receive_message").await;
        assert_eq!(got, expected, "socket {}", socket.sid);
        assert_eq!(got["id"], json!(saved.id));
        assert_eq!(got["content"], json!("hello bob"));
    }
    for socket in [&mut a1, &mut b1, &mut b2, &mut a2, &mut c1] {
        socket.expect_silence().await;
    }

    // The other way round: bob's B2 sends; alice's two sockets and bob's B1 get it.
    let reply = post(&room, b2.post(&w.ab, "hi alice"))
        .await
        .expect("bob may post");
    assert_eq!(reply.sender_id, w.bob);
    assert_eq!(reply.receiver_id, w.alice);
    for socket in [&mut a1, &mut a2, &mut b1] {
        let got = socket.expect("receive_message").await;
        assert_eq!(got, message_json(&reply), "socket {}", socket.sid);
    }
    for socket in [&mut b2, &mut c1, &mut a1, &mut a2, &mut b1] {
        socket.expect_silence().await;
    }
    let rows = w.db.messages(&w.ab).await;
    assert_eq!(rows, vec![saved, reply]);
}

#[actix::test]
async fn room_refuses_a_non_member_and_saves_nothing() {
    let w = world().await;
    let chat = w.chat(LONG_IDLE).await;
    let a1 = FakeSocket::new(&w.alice, "a1");
    let mut b1 = FakeSocket::new(&w.bob, "b1");
    let mut c1 = FakeSocket::new(&w.carol, "c1");
    chat.register(&[&a1, &b1, &c1]).await;
    let room = chat.room(&w.ab);

    // Before the room knows the connection (read from the database)...
    assert_eq!(
        post(&room, c1.post(&w.ab, "let me in")).await,
        Err(ChatError::NotMember)
    );
    assert!(w.db.messages(&w.ab).await.is_empty());

    // ...and once it has cached it (after a member's message).
    let saved = post(&room, a1.post(&w.ab, "hello"))
        .await
        .expect("alice may post");
    assert_eq!(b1.expect("receive_message").await["id"], json!(saved.id));
    assert_eq!(
        post(&room, c1.post(&w.ab, "let me in again")).await,
        Err(ChatError::NotMember)
    );
    assert_eq!(join_room(&room, c1.join()).await, Err(ChatError::NotMember));
    assert_eq!(joined(&room).await, 0);
    assert_eq!(w.all_message_ids().await, vec![saved.id]);
    b1.expect_silence().await;
    c1.expect_silence().await;
}

#[actix::test]
async fn room_refuses_ended_blocked_and_missing_connections() {
    let w = world().await;
    let chat = w.chat(LONG_IDLE).await;
    let a1 = FakeSocket::new(&w.alice, "a1");
    let mut c1 = FakeSocket::new(&w.carol, "c1");
    let mut d1 = FakeSocket::new(&w.dave, "d1");
    chat.register(&[&a1, &c1, &d1]).await;

    for connection_id in [
        w.ac_ended.as_str(),
        w.ad_blocked.as_str(),
        "no-such-connection",
    ] {
        let room = chat.room(connection_id);
        assert_eq!(
            post(&room, a1.post(connection_id, "anyone there?")).await,
            Err(ChatError::NotActive),
            "post to {connection_id}"
        );
        assert_eq!(
            join_room(&room, a1.join()).await,
            Err(ChatError::NotActive),
            "join {connection_id}"
        );
        assert_eq!(joined(&room).await, 0, "{connection_id}");
        // Asking again (now with whatever the room cached) is refused the same way.
        assert_eq!(
            post(&room, a1.post(connection_id, "still there?")).await,
            Err(ChatError::NotActive),
            "second post to {connection_id}"
        );
    }
    // The other members of the ended / blocked connections, too.
    let room = chat.room(&w.ac_ended);
    assert_eq!(
        post(&room, c1.post(&w.ac_ended, "hi")).await,
        Err(ChatError::NotActive)
    );
    assert_eq!(join_room(&room, c1.join()).await, Err(ChatError::NotActive));
    let room = chat.room(&w.ad_blocked);
    assert_eq!(
        post(&room, d1.post(&w.ad_blocked, "hi")).await,
        Err(ChatError::NotActive)
    );
    assert_eq!(join_room(&room, d1.join()).await, Err(ChatError::NotActive));
    assert_eq!(joined(&room).await, 0);

    assert!(w.all_message_ids().await.is_empty(), "nothing was saved");
    c1.expect_silence().await;
    d1.expect_silence().await;
}

#[actix::test]
async fn room_join_and_leave_on_an_active_connection() {
    let w = world().await;
    let chat = w.chat(LONG_IDLE).await;
    let a1 = FakeSocket::new(&w.alice, "a1");
    let a2 = FakeSocket::new(&w.alice, "a2");
    let b1 = FakeSocket::new(&w.bob, "b1");
    let room = chat.room(&w.ab);

    assert_eq!(joined(&room).await, 0);
    assert_eq!(join_room(&room, a1.join()).await, Ok(()));
    assert_eq!(joined(&room).await, 1);
    // The same socket joining again is still one socket.
    assert_eq!(join_room(&room, a1.join()).await, Ok(()));
    assert_eq!(joined(&room).await, 1);
    assert_eq!(join_room(&room, a2.join()).await, Ok(()));
    assert_eq!(join_room(&room, b1.join()).await, Ok(()));
    assert_eq!(joined(&room).await, 3);

    room.send(Leave {
        sid: a1.sid.clone(),
    })
    .await
    .unwrap();
    assert_eq!(joined(&room).await, 2);
    room.send(Leave {
        sid: a1.sid.clone(),
    })
    .await
    .unwrap();
    assert_eq!(joined(&room).await, 2, "leaving twice changes nothing");
    room.send(Leave {
        sid: a2.sid.clone(),
    })
    .await
    .unwrap();
    room.send(Leave {
        sid: b1.sid.clone(),
    })
    .await
    .unwrap();
    assert_eq!(joined(&room).await, 0);
    assert!(
        w.all_message_ids().await.is_empty(),
        "joining writes nothing"
    );
}

#[actix::test]
async fn room_write_checks_the_status_even_when_the_room_cached_active() {
    let w = world().await;
    let chat = w.chat(LONG_IDLE).await;
    let a1 = FakeSocket::new(&w.alice, "a1");
    let mut b1 = FakeSocket::new(&w.bob, "b1");
    chat.register(&[&a1, &b1]).await;
    let room = chat.room(&w.ab);

    let first = post(&room, a1.post(&w.ab, "one"))
        .await
        .expect("ACTIVE: saved");
    assert_eq!(b1.expect("receive_message").await["id"], json!(first.id));

    for status in ["ENDED", "BLOCKED"] {
        // The app changes the status without telling Courier.
        w.db.set_status(&w.ab, status).await;
        assert_eq!(
            post(&room, a1.post(&w.ab, "refused")).await,
            Err(ChatError::NotActive),
            "after the connection became {status}"
        );
        assert_eq!(
            post(&room, a1.post(&w.ab, "refused again")).await,
            Err(ChatError::NotActive),
            "still {status}"
        );
        assert_eq!(join_room(&room, a1.join()).await, Err(ChatError::NotActive));
        b1.expect_silence().await;

        w.db.set_status(&w.ab, "ACTIVE").await;
        let again = post(&room, a1.post(&w.ab, &format!("back from {status}")))
            .await
            .expect("re-activated: saved");
        assert_eq!(b1.expect("receive_message").await["id"], json!(again.id));
    }
    let contents: Vec<String> =
        w.db.messages(&w.ab)
            .await
            .into_iter()
            .map(|m| m.content)
            .collect();
    assert_eq!(contents, ["one", "back from ENDED", "back from BLOCKED"]);
    assert_eq!(w.all_message_ids().await.len(), 3);
}

#[actix::test]
async fn idle_rooms_stop_and_leave_the_registry_while_joined_rooms_stay() {
    let w = world().await;
    let chat = w.chat(Duration::from_millis(100)).await;
    let rooms = RoomRegistry::new(chat.deps.clone()).start();
    let b1 = FakeSocket::new(&w.bob, "b1");
    let a1 = FakeSocket::new(&w.alice, "a1");
    chat.register(&[&a1, &b1]).await;

    let idle = rooms.send(GetRoom::new(w.ab.clone())).await.unwrap();
    let busy = rooms.send(GetRoom::new(w.bc.clone())).await.unwrap();
    assert_eq!(rooms.send(GetRoom::new(w.ab.clone())).await.unwrap(), idle);
    assert_ne!(idle, busy);
    assert_eq!(rooms.send(RoomCount).await.unwrap(), 2);
    assert_eq!(join_room(&busy, b1.join()).await, Ok(()));
    // The idle room did something once, too.
    post(&idle, a1.post(&w.ab, "before going idle"))
        .await
        .expect("saved");

    eventually(WAIT, "the idle room stops", || {
        let idle = idle.clone();
        async move { !idle.connected() }
    })
    .await;
    eventually(WAIT, "the registry forgets the idle room", || {
        let rooms = rooms.clone();
        async move { rooms.send(RoomCount).await.unwrap() == 1 }
    })
    .await;

    // Well past several idle periods, the joined room is still there.
    sleep(Duration::from_millis(500)).await;
    assert!(busy.connected(), "a room with a joined socket stays");
    assert_eq!(joined(&busy).await, 1);
    assert_eq!(rooms.send(RoomCount).await.unwrap(), 1);
    assert_eq!(rooms.send(GetRoom::new(w.bc.clone())).await.unwrap(), busy);

    // Asking for the stopped room's connection starts a fresh one, which works.
    let fresh = rooms.send(GetRoom::new(w.ab.clone())).await.unwrap();
    assert_ne!(fresh, idle);
    assert!(fresh.connected());
    post(&fresh, a1.post(&w.ab, "after the restart"))
        .await
        .expect("the fresh room saves");
    assert_eq!(w.db.messages(&w.ab).await.len(), 2);

    // Once its socket leaves, the other room goes idle too.
    busy.send(Leave {
        sid: b1.sid.clone(),
    })
    .await
    .unwrap();
    eventually(WAIT, "every room stops", || {
        let rooms = rooms.clone();
        async move { rooms.send(RoomCount).await.unwrap() == 0 }
    })
    .await;
    assert!(!busy.connected());
    assert!(!fresh.connected());
}

// ---------------------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------------------

#[actix::test]
async fn persistence_replies_only_after_the_row_is_committed() {
    let w = world().await;
    let persistence = w.persistence(16).await;
    for i in 0..5 {
        let model = w.model(&w.ab, &w.alice, &w.bob, &format!("committed {i}"));
        assert_eq!(
            save(&persistence, model.clone()).await,
            Ok(SaveOutcome::Saved)
        );
        // The test's connection is not persistence's: it sees the row at once.
        assert_eq!(w.db.message(&model.id).await, Some(model));
    }
    // And so does a brand-new connection.
    let other = Database::connect(w.db.url.as_str()).await.unwrap();
    let count = other
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT COUNT(*) AS n FROM messages",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(count, 5);
}

#[actix::test]
async fn persistence_writes_concurrent_saves_one_by_one_in_send_order() {
    let w = world().await;
    let persistence = w.persistence(8).await;
    let base = entity::now_utc_ms();
    let models: Vec<messages::Model> = (0..50)
        .map(|i| {
            let (sender, receiver) = if i % 2 == 0 {
                (&w.alice, &w.bob)
            } else {
                (&w.bob, &w.alice)
            };
            model_at(
                &w.ab,
                sender,
                receiver,
                &format!("m{i}"),
                base + chrono::Duration::milliseconds(i),
            )
        })
        .collect();
    save_all_at_once(&persistence, &models, "all 50 saves answer in time").await;
    let sent_ids: Vec<String> = models.iter().map(|m| m.id.clone()).collect();
    assert_eq!(
        w.all_message_ids().await,
        sent_ids,
        "rows are inserted in the order they were sent"
    );
    assert_eq!(w.db.messages(&w.ab).await, models);
}

#[actix::test]
async fn persistence_refuses_inactive_connections_and_wrong_members() {
    let w = world().await;
    let persistence = w.persistence(16).await;
    let refused = [
        ("ENDED", w.model(&w.ac_ended, &w.alice, &w.carol, "x")),
        (
            "ENDED, other way",
            w.model(&w.ac_ended, &w.carol, &w.alice, "x"),
        ),
        ("BLOCKED", w.model(&w.ad_blocked, &w.alice, &w.dave, "x")),
        (
            "missing",
            w.model("no-such-connection", &w.alice, &w.bob, "x"),
        ),
        (
            "receiver not a member",
            w.model(&w.ab, &w.alice, &w.carol, "x"),
        ),
        ("sender not a member", w.model(&w.ab, &w.carol, &w.bob, "x")),
        ("sender to self", w.model(&w.ab, &w.alice, &w.alice, "x")),
        ("neither a member", w.model(&w.ab, &w.carol, &w.dave, "x")),
        (
            "members of another one",
            w.model(&w.ab, &w.bob, &w.carol, "x"),
        ),
    ];
    for (case, model) in refused {
        assert_eq!(
            save(&persistence, model.clone()).await,
            Ok(SaveOutcome::Refused),
            "{case}"
        );
        assert_eq!(w.db.message(&model.id).await, None, "{case}");
    }
    assert!(w.all_message_ids().await.is_empty());

    // The same actor still saves a proper message afterwards.
    let ok = w.model(&w.ab, &w.bob, &w.alice, "fine");
    assert_eq!(save(&persistence, ok.clone()).await, Ok(SaveOutcome::Saved));
    assert_eq!(w.all_message_ids().await, vec![ok.id]);
}

/// Sends every save before awaiting any; all must answer `Saved` within `WAIT`.
async fn save_all_at_once(persistence: &Addr<Persistence>, models: &[messages::Model], what: &str) {
    let pending: Vec<_> = models
        .iter()
        .map(|m| persistence.send(SaveMessage(m.clone())))
        .collect();
    let replies = timeout(WAIT, join_all(pending)).await.expect(what);
    for (i, reply) in replies.into_iter().enumerate() {
        assert_eq!(reply.unwrap(), Ok(SaveOutcome::Saved), "save {i}");
    }
}

#[actix::test]
async fn persistence_with_a_queue_of_one_completes_every_concurrent_write() {
    let w = world().await;
    let persistence = w.persistence(1).await;
    let models: Vec<messages::Model> = (0..20)
        .map(|i| w.model(&w.ab, &w.alice, &w.bob, &format!("q{i}")))
        .collect();
    save_all_at_once(&persistence, &models, "back-pressure, not a stall").await;
    let mut stored = w.all_message_ids().await;
    let mut sent: Vec<String> = models.into_iter().map(|m| m.id).collect();
    stored.sort();
    sent.sort();
    assert_eq!(stored, sent);
}

#[actix::test]
async fn persistence_shutdown_finishes_every_queued_save_then_refuses_new_ones() {
    let w = world().await;
    // A small queue: at shutdown, some saves are queued and others still wait to enqueue.
    let persistence = w.persistence(2).await;
    let models: Vec<messages::Model> = (0..20)
        .map(|i| w.model(&w.ab, &w.alice, &w.bob, &format!("s{i}")))
        .collect();
    let saves = join_all(
        models
            .iter()
            .map(|m| persistence.send(SaveMessage(m.clone())))
            .collect::<Vec<_>>(),
    );
    // `join` polls the saves first, so every one of them is in the mailbox before Shutdown.
    let shutdown = async {
        persistence.send(Shutdown).await.expect("shutdown answers");
        // What is committed when Shutdown resolves.
        w.all_message_ids().await.len()
    };
    let (replies, rows_at_shutdown) = timeout(WAIT, join(saves, shutdown))
        .await
        .expect("shutdown drains in time");
    assert_eq!(
        rows_at_shutdown, 20,
        "Shutdown resolves after every queued write"
    );
    for (i, reply) in replies.into_iter().enumerate() {
        assert_eq!(
            reply.unwrap(),
            Ok(SaveOutcome::Saved),
            "save {i} was not lost"
        );
    }
    let stored = w.db.messages(&w.ab).await;
    assert_eq!(stored.len(), 20);
    for m in &models {
        assert_eq!(w.db.message(&m.id).await.as_ref(), Some(m));
    }

    let late = w.model(&w.ab, &w.alice, &w.bob, "too late");
    assert_eq!(
        save(&persistence, late.clone()).await,
        Err(PersistError::Unavailable)
    );
    let mark = MarkRead {
        message_id: models[0].id.clone(),
        connection_id: w.ab.clone(),
        reader: w.bob.clone(),
        now: entity::now_utc_ms(),
    };
    assert_eq!(
        timeout(WAIT, persistence.send(mark))
            .await
            .unwrap()
            .unwrap(),
        Err(PersistError::Unavailable)
    );
    assert_eq!(w.db.message(&late.id).await, None);
    assert!(!w.db.message(&models[0].id).await.unwrap().is_read);
    assert_eq!(w.all_message_ids().await.len(), 20);
}

#[actix::test]
async fn persistence_mark_read_only_by_the_receiver() {
    let w = world().await;
    let persistence = w.persistence(16).await;
    let m1 = w.model(&w.ab, &w.alice, &w.bob, "read me");
    let m2 = w.model(&w.ab, &w.alice, &w.bob, "not for you");
    assert_eq!(save(&persistence, m1.clone()).await, Ok(SaveOutcome::Saved));
    assert_eq!(save(&persistence, m2.clone()).await, Ok(SaveOutcome::Saved));

    let mark = |message_id: &str, connection_id: &str, reader: &str, now: NaiveDateTime| {
        let msg = MarkRead {
            message_id: message_id.to_string(),
            connection_id: connection_id.to_string(),
            reader: reader.to_string(),
            now,
        };
        let persistence = persistence.clone();
        async move {
            timeout(WAIT, persistence.send(msg))
                .await
                .expect("mark-read answers in time")
                .expect("persistence is alive")
        }
    };

    let later = m1.created_at + chrono::Duration::seconds(30);
    assert_eq!(
        mark(&m1.id, &w.ab, &w.bob, later).await,
        Ok(Some(w.alice.clone()))
    );
    let read = w.db.message(&m1.id).await.unwrap();
    assert!(read.is_read);
    assert_eq!(read.updated_at, later);
    assert_eq!(read.created_at, m1.created_at);
    assert_eq!(read.content, m1.content);

    // Anyone else, the wrong connection, or a missing message: None, nothing changes.
    let refused = [
        (
            "the sender",
            m2.id.as_str(),
            w.ab.as_str(),
            w.alice.as_str(),
        ),
        (
            "a stranger",
            m2.id.as_str(),
            w.ab.as_str(),
            w.carol.as_str(),
        ),
        (
            "wrong connection",
            m2.id.as_str(),
            w.bc.as_str(),
            w.bob.as_str(),
        ),
        (
            "missing message",
            "no-such-message",
            w.ab.as_str(),
            w.bob.as_str(),
        ),
    ];
    for (case, id, connection_id, reader) in refused {
        assert_eq!(
            mark(id, connection_id, reader, later).await,
            Ok(None),
            "{case}"
        );
    }
    assert_eq!(w.db.message(&m2.id).await, Some(m2), "m2 unchanged");
    assert_eq!(w.db.message(&m1.id).await, Some(read), "m1 unchanged");
}

// ---------------------------------------------------------------------------------------
// UserRegistry
// ---------------------------------------------------------------------------------------

fn ping(n: i32) -> ChatPush {
    ChatPush::event("ping_test", json!({ "n": n }))
}

async fn to_user(users: &Addr<UserRegistry>, user: &str, except: Option<&FakeSocket>, n: i32) {
    users
        .send(ToUser {
            user_id: user.to_string(),
            except: except.map(|s| s.sid.clone()),
            push: ping(n),
        })
        .await
        .expect("user registry alive");
}

async fn socket_count(users: &Addr<UserRegistry>, user: &str) -> usize {
    users
        .send(SocketCount(user.to_string()))
        .await
        .expect("user registry alive")
}

#[actix::test]
async fn user_registry_fans_out_to_each_socket_of_a_user() {
    let users = UserRegistry::default().start();
    let mut s1 = FakeSocket::new("alice", "s1");
    let mut s2 = FakeSocket::new("alice", "s2");
    let mut s3 = FakeSocket::new("alice", "s3");
    let mut t1 = FakeSocket::new("bob", "t1");
    for s in [&s1, &s2, &s3, &t1] {
        users.send(s.register()).await.unwrap();
    }
    assert_eq!(socket_count(&users, "alice").await, 3);
    assert_eq!(socket_count(&users, "bob").await, 1);
    assert_eq!(socket_count(&users, "nobody").await, 0);

    to_user(&users, "alice", None, 1).await;
    for s in [&mut s1, &mut s2, &mut s3] {
        assert_eq!(s.next().await, ("ping_test".to_string(), json!({ "n": 1 })));
    }
    for s in [&mut s1, &mut s2, &mut s3, &mut t1] {
        s.expect_silence().await;
    }

    to_user(&users, "alice", Some(&s2), 2).await;
    assert_eq!(s1.expect("ping_test").await, json!({ "n": 2 }));
    assert_eq!(s3.expect("ping_test").await, json!({ "n": 2 }));
    for s in [&mut s1, &mut s2, &mut s3, &mut t1] {
        s.expect_silence().await;
    }

    // Bob's pushes are bob's only.
    to_user(&users, "bob", None, 3).await;
    assert_eq!(t1.expect("ping_test").await, json!({ "n": 3 }));
    // A frame is passed through as it is.
    users
        .send(ToUser {
            user_id: "bob".into(),
            except: None,
            push: ChatPush(r#"42["framed",{"k":1}]"#.into()),
        })
        .await
        .unwrap();
    assert_eq!(t1.expect("framed").await, json!({ "k": 1 }));
    for s in [&mut s1, &mut s2, &mut s3, &mut t1] {
        s.expect_silence().await;
    }

    users.send(s1.unregister()).await.unwrap();
    users.send(s2.unregister()).await.unwrap();
    assert_eq!(socket_count(&users, "alice").await, 1);
    to_user(&users, "alice", None, 4).await;
    assert_eq!(s3.expect("ping_test").await, json!({ "n": 4 }));
    // Excluding the last socket leaves nobody.
    to_user(&users, "alice", Some(&s3), 5).await;
    for s in [&mut s1, &mut s2, &mut s3, &mut t1] {
        s.expect_silence().await;
    }

    users.send(s3.unregister()).await.unwrap();
    // Unregistering again, or a socket that never registered, is harmless.
    users.send(s3.unregister()).await.unwrap();
    users
        .send(UnregisterSocket {
            user_id: "nobody".into(),
            sid: Arc::from("x"),
        })
        .await
        .unwrap();
    assert_eq!(socket_count(&users, "alice").await, 0);
    to_user(&users, "alice", None, 6).await;
    to_user(&users, "nobody", None, 7).await;
    for s in [&mut s1, &mut s2, &mut s3, &mut t1] {
        s.expect_silence().await;
    }
    // Bob is untouched by all of it.
    assert_eq!(socket_count(&users, "bob").await, 1);
    to_user(&users, "bob", None, 8).await;
    assert_eq!(t1.expect("ping_test").await, json!({ "n": 8 }));
}
