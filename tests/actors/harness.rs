//! The fake sockets and the world of the actor tests: the chat's actors started on their own
//! over [`People`], sockets standing in as actors that record every push, rooms standing in
//! for what persistence answers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, Recipient};
use courier::auth::Authenticator;
use courier::chat::keys::message_id;
use courier::chat::persistence::{Persistence, QueueDepth, Write, WriteResult, Written};
use courier::chat::protocol::send_message::{parse, SendMessage};
use courier::chat::push::{Caller, ChatPush};
use courier::chat::room::actor::RoomIdle;
use courier::chat::room::{Join, MarkRequest, Post};
use courier::chat::{
    Chat, ChatMetrics, ChatOptions, MessageIdKey, PidKey, PresenceOptions, RecoveryOptions,
};
use courier::config::{PresenceScope, PresenceSettings, RateSettings};
use entity::messages;
use sea_orm::DatabaseConnection;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::common::db::{Kind, MessagesLock, TestDb};
use crate::common::world::People;
use crate::common::{eventually, SECRET};

/// Longest wait for something that must happen.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long "nothing arrives" is watched.
pub const SILENCE: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------
// Fake sockets
// ---------------------------------------------------------------------------------------

/// An actor standing for a chat socket: forwards every push to the test.
pub struct Recorder {
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
pub enum Got {
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
pub struct Sock {
    pub user: Arc<str>,
    pub sid: Arc<str>,
    pub addr: Addr<Recorder>,
    rx: mpsc::UnboundedReceiver<ChatPush>,
    got: Vec<Got>,
    /// Presence events are dropped (tests of other things see them arrive at any time).
    pub skip_presence: bool,
}

fn is_presence(got: &Got) -> bool {
    matches!(got, Got::Event(name, _) if name.starts_with("user_o"))
}

impl Sock {
    pub fn new(user: &str, sid: &str) -> Sock {
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

    pub fn caller(&self, ack: Option<u64>) -> Caller {
        Caller {
            sid: self.sid.clone(),
            push: self.addr.clone().recipient(),
            ack,
        }
    }

    /// The next thing received; panics after [`WAIT`].
    pub async fn next(&mut self) -> Got {
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
    pub async fn expect(&mut self, name: &str) -> Value {
        loop {
            match self.next().await {
                Got::Done => continue,
                Got::Event(n, v) if n == name => return v,
                other => panic!("socket {}: expected {name}, got {other:?}", self.sid),
            }
        }
    }

    /// Events until (and including) the next `Done`.
    pub async fn answer(&mut self) -> Vec<Got> {
        let mut out = Vec::new();
        loop {
            match self.next().await {
                Got::Done => return out,
                got => out.push(got),
            }
        }
    }

    pub async fn expect_silence(&mut self) {
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

/// The chat's actors over [`People`]; reads as its people (`w.alice`, `w.ab`).
pub struct World {
    pub db: TestDb,
    pub chat: Chat,
    /// The chat's series.
    pub registry: prometheus::Registry,
    pub key: MessageIdKey,
    pub people: People,
}

impl std::ops::Deref for World {
    type Target = People;

    fn deref(&self) -> &People {
        &self.people
    }
}

/// The world on a database of `kind` (migrated, unless it is the Prisma layout), rooms
/// stopping after `idle`.
pub async fn world(kind: Kind, idle: Duration) -> World {
    let db = TestDb::new(kind).await;
    if kind != Kind::PrismaPostgres {
        migration::prepare(&db.conn, migration::MigrateMode::Always)
            .await
            .expect("migrations run");
    }
    let people = People::seed(&db).await;
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
                settings: PresenceSettings {
                    offline_grace: 200,
                    legacy_events: false,
                    scope: PresenceScope::Peers,
                    peers_ttl: 60_000,
                    stale_after: 90_000,
                    heartbeat_flush: 10_000,
                },
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
        people,
    }
}

impl World {
    pub fn sock(&self, user: &str, sid: &str) -> Sock {
        let sock = Sock::new(user, sid);
        self.chat.context.users.register(
            &sock.user,
            &sock.sid,
            sock.addr.clone().recipient(),
            Default::default(),
        );
        sock
    }

    pub fn message(&self, connection_id: &str, content: &str, temp_id: &str) -> SendMessage {
        parse(
            &[json!({"connectionId": connection_id, "content": content, "tempId": temp_id})],
            5000,
        )
        .expect("a valid message")
    }

    /// `send_message` from `sock`, as the socket would send it to the room.
    pub fn post(&self, sock: &Sock, connection_id: &str, content: &str, ack: Option<u64>) {
        let message = self.message(connection_id, content, &format!("t-{content}"));
        self.post_message(sock, message, ack);
    }

    pub fn post_message(&self, sock: &Sock, message: SendMessage, ack: Option<u64>) {
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

    pub fn mark(&self, sock: &Sock, connection_id: &str, message_id: &str, ack: Option<u64>) {
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

    pub fn join(&self, sock: &Sock, connection_id: &str, ack: Option<u64>) {
        self.chat.context.rooms.route(
            connection_id.into(),
            sock.user.clone(),
            Box::new(Join {
                caller: sock.caller(ack),
            }),
        );
    }

    pub async fn rooms(&self) -> usize {
        self.chat.context.rooms.count().await
    }

    /// A connection of its own to the test's database.
    pub async fn other_session(&self) -> DatabaseConnection {
        self.db.connect(4).await
    }

    pub async fn lock(&self) -> MessagesLock {
        self.db.lock_messages().await
    }

    /// Waits until the user registry has taken every registration and unregistration made
    /// so far: a question to each user's shard is answered after what was sent before it.
    pub async fn registered(&self) {
        for user in [&self.alice, &self.bob, &self.carol] {
            self.chat.context.users.socket_count(user).await;
        }
    }

    /// Waits until the chat's persistence holds exactly `n` writes (queued or being
    /// committed).
    pub async fn queued(&self, n: usize) {
        queued(&self.chat.persistence, n).await
    }

    /// The value of the series `name` (with its labels, as `/metrics` writes them).
    pub fn metric(&self, name: &str) -> f64 {
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
/// A fake room collecting what persistence answers.
pub struct Results {
    pub tx: mpsc::UnboundedSender<Written>,
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
pub struct NoShard;

impl Actor for NoShard {
    type Context = Context<Self>;
}

impl Handler<RoomIdle> for NoShard {
    type Result = ();

    fn handle(&mut self, _msg: RoomIdle, _ctx: &mut Self::Context) {}
}

pub fn model(w: &World, content: &str) -> messages::Model {
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

pub async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Written>,
    n: usize,
) -> HashMap<u64, WriteResult> {
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

/// Waits until `persistence` holds exactly `n` writes (queued or being committed: a write is
/// taken into a batch as soon as it arrives, while a writer is free).
pub async fn queued(persistence: &Addr<Persistence>, n: usize) {
    let what = format!("persistence holds {n} writes");
    eventually(&what, async || {
        persistence
            .send(QueueDepth)
            .await
            .expect("persistence answers")
            == n
    })
    .await;
}

/// A stand-in for persistence that tells the test of every write, then hands it on.
pub struct Spy {
    pub to: Recipient<Write>,
    pub seen: mpsc::UnboundedSender<()>,
}

impl Actor for Spy {
    type Context = Context<Self>;
}

impl Handler<Write> for Spy {
    type Result = ();

    fn handle(&mut self, msg: Write, _ctx: &mut Self::Context) {
        let _ = self.seen.send(());
        self.to.do_send(msg);
    }
}
