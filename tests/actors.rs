//! The chat's actors on their own (`#[actix::test]`), over real databases: the room shards,
//! `ChatRoom` (one order per conversation, delivery to every socket of the receiver), the
//! user registry, and `Persistence` (group commit, a bad row failing alone, ids made once,
//! read receipts not repeated, shutdown). Sockets are fake actors recording every push.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler};
use common::db::{Kind, MessagesLock, TestDb};
use courier::auth::Authenticator;
use courier::chat::join_chat::Join;
use courier::chat::mark_message_read::MarkRequest;
use courier::chat::persistence::{
    InsertOutcome, Persistence, QueueDepth, Shutdown, Write, WriteOp, WriteResult, Written,
};
use courier::chat::push::{Caller, ChatPush};
use courier::chat::room::{ChatRoom, RoomIdle, StopRoom};
use courier::chat::send_message::{message_id, parse, Post, SendMessage};
use courier::chat::{
    Chat, ChatMetrics, ChatOptions, MessageIdKey, PidKey, PresenceOptions, RecoveryOptions,
};
use courier::config::{PresenceScope, RateSettings};
use entity::messages;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout};

/// Longest wait for something that must happen.
const WAIT: Duration = Duration::from_secs(10);
/// How long "nothing arrives" is watched.
const SILENCE: Duration = Duration::from_millis(300);
const SECRET: &str = "actor-test-secret";

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

/// What a fake socket received, decoded.
#[derive(Debug, Clone, PartialEq)]
enum Got {
    /// An event `42["name",arg]` (delivered, or the answer to a request).
    Event(String, Value),
    /// An ack `43<id>[arg]`.
    Ack(u64, Value),
    /// A request was answered (the window slot freed), after its frames above.
    Done,
}

fn decode_frame(frame: &str) -> Got {
    if let Some(rest) = frame.strip_prefix("42") {
        let v: Value = serde_json::from_str(rest).expect("an event frame holds JSON");
        let name = v[0].as_str().expect("an event name").to_string();
        Got::Event(name, v[1].clone())
    } else if let Some(rest) = frame.strip_prefix("43") {
        let at = rest.find('[').expect("an ack frame has arguments");
        let id = rest[..at].parse().expect("an ack id");
        let v: Value = serde_json::from_str(&rest[at..]).expect("ack arguments are JSON");
        Got::Ack(id, v[0].clone())
    } else {
        panic!("unexpected frame {frame}")
    }
}

/// The test's side of a fake socket.
struct Sock {
    user: Arc<str>,
    sid: Arc<str>,
    addr: Addr<Recorder>,
    rx: mpsc::UnboundedReceiver<ChatPush>,
    got: Vec<Got>,
    /// Presence events are dropped (tests of other things see them arrive at any time).
    skip_presence: bool,
}

fn is_presence(got: &Got) -> bool {
    matches!(got, Got::Event(name, _) if name.starts_with("user_o"))
}

impl Sock {
    fn new(user: &str, sid: &str) -> Sock {
        let (tx, rx) = mpsc::unbounded_channel();
        Sock {
            user: user.into(),
            sid: sid.into(),
            addr: Recorder { tx }.start(),
            rx,
            got: Vec::new(),
            skip_presence: true,
        }
    }

    fn caller(&self, ack: Option<u64>) -> Caller {
        Caller {
            sid: self.sid.clone(),
            push: self.addr.clone().recipient(),
            ack,
        }
    }

    /// The next thing received; panics after [`WAIT`].
    async fn next(&mut self) -> Got {
        loop {
            if !self.got.is_empty() {
                return self.got.remove(0);
            }
            match timeout(WAIT, self.rx.recv()).await {
                Ok(Some(ChatPush::Deliver(frame) | ChatPush::Stream(frame, _))) => {
                    let got = decode_frame(&frame);
                    if !(self.skip_presence && is_presence(&got)) {
                        self.got.push(got);
                    }
                }
                Ok(Some(ChatPush::Done { event, ack, .. })) => {
                    self.got.extend(event.iter().map(|f| decode_frame(f)));
                    self.got.extend(ack.iter().map(|f| decode_frame(f)));
                    self.got.push(Got::Done);
                }
                // The socket layer's observer is told of rooms joined; the rest comes from
                // other nodes (none here).
                Ok(Some(
                    ChatPush::Joined(_)
                    | ChatPush::RemoteLink(_)
                    | ChatPush::CatchUp
                    | ChatPush::Packet(_)
                    | ChatPush::Ask { .. }
                    | ChatPush::Disconnect { .. }
                    | ChatPush::TakenOver,
                )) => {}
                Ok(None) => panic!("socket {} closed", self.sid),
                Err(_) => panic!("socket {} received nothing within {WAIT:?}", self.sid),
            }
        }
    }

    /// The next event, which must be `name` (skipping `Done` markers); its argument.
    async fn expect(&mut self, name: &str) -> Value {
        loop {
            match self.next().await {
                Got::Done => continue,
                Got::Event(n, v) if n == name => return v,
                other => panic!("socket {}: expected {name}, got {other:?}", self.sid),
            }
        }
    }

    /// Events until (and including) the next `Done`.
    async fn answer(&mut self) -> Vec<Got> {
        let mut out = Vec::new();
        loop {
            match self.next().await {
                Got::Done => return out,
                got => out.push(got),
            }
        }
    }

    async fn expect_silence(&mut self) {
        let until = tokio::time::Instant::now() + SILENCE;
        while let Ok(Some(push)) = tokio::time::timeout_at(until, self.rx.recv()).await {
            if let ChatPush::Deliver(frame) = &push {
                if self.skip_presence && is_presence(&decode_frame(frame)) {
                    continue;
                }
            }
            panic!("socket {} expected silence, got {push:?}", self.sid);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------------------

struct World {
    db: TestDb,
    chat: Chat,
    /// The chat's series.
    registry: prometheus::Registry,
    key: MessageIdKey,
    alice: String,
    bob: String,
    carol: String,
    ab: String,
}

async fn world(kind: Kind, idle: Duration) -> World {
    let db = TestDb::new(kind).await;
    if kind != Kind::PrismaPostgres {
        migration::prepare(&db.conn, migration::MigrateMode::Always)
            .await
            .expect("migrations run");
    }
    let alice = db.user("alice").await;
    let bob = db.user("bob").await;
    let carol = db.user("carol").await;
    let ab = db.connection(&alice, &bob, "ACTIVE").await;
    let conn = db.connect(8).await;
    let key = MessageIdKey::new(SECRET);
    let registry = prometheus::Registry::new();
    let metrics = Arc::new(ChatMetrics::new(&registry).expect("metrics register"));
    let chat = Chat::start(
        conn,
        Arc::new(Authenticator::new(SECRET, 0)),
        key.clone(),
        PidKey::new(SECRET),
        &ChatOptions {
            shards: 2,
            room_idle_timeout: idle,
            batch_max: 512,
            writers: 2,
            retry_for: Duration::from_secs(5),
            write_queue: 4096,
            max_content_chars: 5000,
            max_notice_ids: 10_000,
            send_window: 32,
            rate_limit: RateSettings {
                per_second: 0.0,
                burst: 1,
            },
            call_rate: RateSettings {
                per_second: 10.0,
                burst: 20,
            },
            max_sockets_per_user: 32,
            presence: PresenceOptions {
                writes: true,
                offline_grace: 200,
                legacy_events: false,
                scope: PresenceScope::Peers,
                peers_ttl: 60_000,
                stale_after: 90_000,
                heartbeat_flush: 10_000,
            },
            metrics,
            remote: None,
            recovery: RecoveryOptions::off(),
        },
    );
    World {
        db,
        chat,
        registry,
        key,
        alice,
        bob,
        carol,
        ab,
    }
}

impl World {
    fn sock(&self, user: &str, sid: &str) -> Sock {
        let sock = Sock::new(user, sid);
        self.chat.context.users.register(
            &sock.user,
            &sock.sid,
            sock.addr.clone().recipient(),
            Default::default(),
        );
        sock
    }

    fn message(&self, connection_id: &str, content: &str, temp_id: &str) -> SendMessage {
        parse(
            &[json!({"connectionId": connection_id, "content": content, "tempId": temp_id})],
            5000,
        )
        .expect("a valid message")
    }

    /// `send_message` from `sock`, as the socket would send it to the room.
    fn post(&self, sock: &Sock, connection_id: &str, content: &str, ack: Option<u64>) {
        let message = self.message(connection_id, content, &format!("t-{content}"));
        self.post_message(sock, message, ack);
    }

    fn post_message(&self, sock: &Sock, message: SendMessage, ack: Option<u64>) {
        let id = message_id(&self.key, &sock.user, &message);
        let connection_id: Arc<str> = message.connection_id.as_str().into();
        self.chat.context.rooms.route(
            connection_id,
            sock.user.clone(),
            Box::new(Post {
                caller: sock.caller(ack),
                sender: sock.user.clone(),
                id,
                message,
                permit: None,
                accepted: std::time::Instant::now(),
            }),
        );
    }

    fn mark(&self, sock: &Sock, connection_id: &str, message_id: &str, ack: Option<u64>) {
        self.chat.context.rooms.route(
            connection_id.into(),
            sock.user.clone(),
            Box::new(MarkRequest {
                caller: sock.caller(ack),
                reader: sock.user.clone(),
                message_id: message_id.to_string(),
                permit: None,
            }),
        );
    }

    fn join(&self, sock: &Sock, connection_id: &str, ack: Option<u64>) {
        self.chat.context.rooms.route(
            connection_id.into(),
            sock.user.clone(),
            Box::new(Join {
                caller: sock.caller(ack),
            }),
        );
    }

    async fn rooms(&self) -> usize {
        self.chat.context.rooms.count().await
    }

    /// A connection of its own to the test's database.
    async fn other_session(&self) -> DatabaseConnection {
        self.db.connect(4).await
    }

    async fn lock(&self) -> MessagesLock {
        self.db.lock_messages().await
    }

    /// Waits until the user registry has taken every registration and unregistration made
    /// so far: a question to each user's shard is answered after what was sent before it.
    async fn registered(&self) {
        for user in [&self.alice, &self.bob, &self.carol] {
            self.chat.context.users.socket_count(user).await;
        }
    }

    /// Waits until persistence holds exactly `n` writes (queued or being committed).
    async fn queued(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let depth = self.chat.persistence.send(QueueDepth).await.unwrap();
            if depth == n {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "persistence holds {depth} writes, not {n}"
            );
            sleep(Duration::from_millis(10)).await;
        }
    }

    /// The value of the series `name` (with its labels, as `/metrics` writes them).
    fn metric(&self, name: &str) -> f64 {
        use prometheus::Encoder;
        let mut text = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut text)
            .expect("metrics encode");
        let text = String::from_utf8(text).expect("utf-8");
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no series {name} in\n{text}"))
            .parse()
            .expect("a number")
    }
}

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

/// A fake room collecting what persistence answers.
struct Results {
    tx: mpsc::UnboundedSender<Written>,
}

impl Actor for Results {
    type Context = Context<Self>;
}

impl Handler<Written> for Results {
    type Result = ();

    fn handle(&mut self, msg: Written, _ctx: &mut Self::Context) {
        let _ = self.tx.send(msg);
    }
}

/// A room's shard that never stops it.
struct NoShard;

impl Actor for NoShard {
    type Context = Context<Self>;
}

impl Handler<RoomIdle> for NoShard {
    type Result = ();

    fn handle(&mut self, _msg: RoomIdle, _ctx: &mut Self::Context) {}
}

fn model(w: &World, content: &str) -> messages::Model {
    let now = entity::now_utc_ms();
    messages::Model {
        id: courier::ids::cuid(),
        connection_id: w.ab.clone(),
        sender_id: w.alice.clone(),
        receiver_id: w.bob.clone(),
        content: content.into(),
        is_read: false,
        created_at: now,
        updated_at: now,
        media_url: None,
        media_type: None,
        media_name: None,
        media_size: None,
        media_thumbnail: None,
    }
}

async fn collect(rx: &mut mpsc::UnboundedReceiver<Written>, n: usize) -> HashMap<u64, WriteResult> {
    let mut out = HashMap::new();
    while out.len() < n {
        let Written(results) = timeout(WAIT, rx.recv())
            .await
            .expect("results in time")
            .expect("results");
        out.extend(results);
    }
    out
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
    sleep(Duration::from_millis(200)).await;
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
    let saved: Vec<String> =
        w.db.messages(&w.ab)
            .await
            .into_iter()
            .map(|m| m.content)
            .collect();
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
    sleep(Duration::from_millis(100)).await;
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
    let saved: Vec<String> =
        w.db.messages(&w.ab)
            .await
            .into_iter()
            .map(|m| m.content)
            .collect();
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
    // A room of its own for the conversation, outside the shards, stopped mid-write.
    let room = ChatRoom::new(
        w.ab.as_str().into(),
        [w.alice.as_str().into(), w.bob.as_str().into()],
        999,
        courier::chat::room::RoomDeps {
            persistence: w.chat.persistence.clone().recipient(),
            users: w.chat.context.users.clone(),
            db: w.other_session().await,
            idle_timeout: Duration::from_secs(600),
            retry_for: Duration::from_secs(5),
            metrics: Arc::new(ChatMetrics::off()),
        },
        NoShard.start().recipient(),
    )
    .start();
    sleep(Duration::from_millis(50)).await;
    room.do_send(Post {
        caller: a.caller(Some(1)),
        sender: a.user.clone(),
        id: id.clone(),
        message: message.clone(),
        permit: None,
        accepted: std::time::Instant::now(),
    });
    sleep(Duration::from_millis(100)).await;
    room.do_send(StopRoom);
    sleep(Duration::from_millis(100)).await;
    assert!(!room.connected(), "the room stopped");
    lock.release().await;
    // The write committed although its room is gone.
    let mut saved = None;
    for _ in 0..100 {
        saved = w.db.message(&id).await;
        if saved.is_some() {
            break;
        }
        sleep(Duration::from_millis(50)).await;
    }
    let saved = saved.expect("the write committed");
    a.expect_silence().await;
    b.expect_silence().await;
    // The client retries: the original row, one row in all, no second delivery.
    w.post_message(&a, message, Some(2));
    let sent = a.expect("message_sent").await;
    assert_eq!(sent["savedMessage"]["id"], json!(id));
    assert_eq!(
        sent["savedMessage"]["createdAt"],
        json!(courier::chat::message_json::iso_millis(&saved.created_at))
    );
    assert_eq!(w.db.messages(&w.ab).await.len(), 1);
    b.expect_silence().await;
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
    let mut stopped = false;
    for _ in 0..50 {
        sleep(Duration::from_millis(50)).await;
        if w.rooms().await == 0 {
            stopped = true;
            break;
        }
    }
    assert!(stopped, "an idle room stops");
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
    let mut stopped = false;
    for _ in 0..50 {
        sleep(Duration::from_millis(50)).await;
        if w.rooms().await == 0 {
            stopped = true;
            break;
        }
    }
    assert!(stopped, "the room stops once its joined socket is gone");
    assert_eq!(w.db.messages(&w.ab).await.len(), 2);
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

// ---------------------------------------------------------------------------------------
// Presence in the user shards
// ---------------------------------------------------------------------------------------

/// A user's first socket makes them online to their peers (not to others); sockets that come
/// and go within `presence.offline_grace` (200 ms here) change nothing for the peers; the
/// last one gone makes them offline after it.
async fn presence_in_the_user_shards(kind: Kind) {
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
    sleep(Duration::from_millis(50)).await;
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

macro_rules! on_backends {
    ($($name:ident),*) => {
        mod sqlite {
            use super::*;
            $( #[actix::test] async fn $name() { super::$name(Kind::Sqlite).await } )*
        }
        mod postgres {
            use super::*;
            $( #[actix::test] async fn $name() { super::$name(Kind::Postgres).await } )*
        }
        mod prisma_layout {
            use super::*;
            $( #[actix::test] async fn $name() { super::$name(Kind::PrismaPostgres).await } )*
        }
    };
}

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
    let mut stopped = false;
    for _ in 0..100 {
        if w.metric("courier_rooms_alive") == 0.0 {
            stopped = true;
            break;
        }
        sleep(Duration::from_millis(50)).await;
    }
    assert!(stopped, "the idle room stopped and is no longer counted");
}

on_backends!(
    metrics_count_what_the_chat_does,
    one_order_across_members_and_sockets,
    receive_message_goes_to_every_receiver_socket_only,
    a_bad_row_fails_alone,
    a_retry_of_a_committed_id_is_a_success,
    a_room_stopped_mid_write_makes_no_duplicate,
    read_receipts_are_not_repeated,
    no_room_for_a_non_member_or_an_unknown_id,
    idle_rooms_stop_and_come_back,
    presence_in_the_user_shards
);
