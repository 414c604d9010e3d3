//! The `Persistence` actor: the one writer to the database, committing in groups.
//!
//! Rooms hand it [`Write`]s (a message to insert, a message to mark read), each tagged with
//! the room's sequence number. It keeps them in arrival order and commits them in batches,
//! at most `database.writers` batches at a time (one on SQLite, which has one writer):
//!
//! - A batch is every write waiting, up to `database.batch_max`, except the writes of rooms
//!   that have a batch being committed: **a room's writes are committed one batch after
//!   another, in its order**, so each conversation's commit order is its room's order, while
//!   other conversations' writes need not wait behind that commit. When nothing is waiting, a
//!   write is committed at once, alone (latency at low load stays one round trip). Batches
//!   grow only when writes queue up behind commits.
//! - A batch is one transaction of multi-row statements (`chat::sql`): the inserts, then
//!   the mark-reads. Each write gets exactly one [`WriteResult`], sent to its room only
//!   after the commit, grouped per room ([`Written`]), in sequence order.
//! - A batch that fails is retried write by write, so that one bad row (a foreign key gone
//!   because the app deleted a user, say) fails alone.
//! - Ids are made before the write and inserted with `ON CONFLICT DO NOTHING`: a write whose
//!   row is already there (a retry) is a success with that row, never a second row.
//!
//! [`Shutdown`] resolves once every write received so far is committed (or failed) and
//! answered.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, ResponseFuture,
    WrapFuture,
};
use entity::messages;
use log::{debug, error, warn};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use tokio::sync::{watch, OwnedSemaphorePermit};

use chrono::NaiveDateTime;

use crate::chat::metrics::ChatMetrics;
use crate::db::is_transient;
use crate::db::messages::{self as message_rows, MarkReadRow, MAX_BATCH};
use crate::db::retry::retrying;
use crate::db::users::{self as user_rows, PresenceRow};

/// What to write.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Insert a message, if its connection is ACTIVE and sender and receiver are members.
    Insert(messages::Model),
    /// Mark a message read by its receiver.
    MarkRead(MarkReadRow),
    /// A user's presence (at most one per user in a batch: each user's changes are written
    /// one after another).
    Presence(PresenceRow),
    /// `"lastHeartbeatAt"` of users heard from.
    Heartbeats {
        users: Vec<String>,
        at: NaiveDateTime,
    },
    /// Users a stopped server left online, set offline if their heartbeat is still before
    /// `cutoff` (the presence sweep).
    StaleOffline {
        users: Vec<String>,
        cutoff: NaiveDateTime,
        now: NaiveDateTime,
    },
}

/// A write for the database, from a room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Write {
    /// Tells the room's writes apart from other rooms' (one [`Written`] per room per batch).
    pub room: u64,
    /// Where the result goes.
    pub reply: Recipient<Written>,
    /// The room's sequence number of this write, echoed in the result.
    pub seq: u64,
    /// The write.
    pub op: WriteOp,
    /// Held until the write is done: the socket's share of `database.write_queue`.
    pub permit: Option<OwnedSemaphorePermit>,
}

/// What became of an insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The row is committed.
    Inserted,
    /// A row with this id was there already, for the same sender and connection (a retry):
    /// that row.
    Existing(Box<messages::Model>),
    /// The connection is not ACTIVE (or is gone, or the two users are not its members):
    /// nothing was written.
    Refused,
    /// The database failed; nothing was written.
    Failed,
}

/// What became of a mark-read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkOutcome {
    /// Marked read now; the message's sender.
    Marked { sender: String },
    /// The reader's message was read already: nothing changed.
    AlreadyRead,
    /// The message is not the reader's (or not in that connection, or gone).
    NotAllowed,
    /// The reader's unread message, on a connection that is not ACTIVE.
    NotActive,
    /// The database failed; nothing changed.
    Failed,
}

/// What became of a write to `users`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserOutcome {
    /// Written.
    Updated,
    /// The user has no row: nothing written.
    NoSuchUser,
    /// The database failed.
    Failed,
}

/// The result of one [`Write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteResult {
    Insert(InsertOutcome),
    Mark(MarkOutcome),
    User(UserOutcome),
    /// How many users the sweep set offline (`None`: the write failed).
    Swept(Option<usize>),
}

impl WriteResult {
    fn failed(op: &WriteOp) -> Self {
        match op {
            WriteOp::Insert(_) => WriteResult::Insert(InsertOutcome::Failed),
            WriteOp::MarkRead(_) => WriteResult::Mark(MarkOutcome::Failed),
            WriteOp::Presence(_) | WriteOp::Heartbeats { .. } => {
                WriteResult::User(UserOutcome::Failed)
            }
            WriteOp::StaleOffline { .. } => WriteResult::Swept(None),
        }
    }
}

/// Results for one room, in its sequence order: `(seq, result)`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Written(pub Vec<(u64, WriteResult)>);

/// Resolves once every write received so far is done and answered.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// How many writes are waiting or being committed (for tests and metrics).
#[derive(Debug, Clone, Message)]
#[rtype(result = "usize")]
pub struct QueueDepth;

/// The persistence actor.
pub struct Persistence {
    db: DatabaseConnection,
    batch_max: usize,
    retry_for: Duration,
    queue: VecDeque<Write>,
    /// Most batches committed at a time.
    writers: usize,
    /// The batches being committed: an id, their rooms and how many writes they hold.
    in_flight: Vec<(u64, HashSet<u64>, usize)>,
    /// The id of the next batch.
    next_id: u64,
    /// `true` while nothing is queued or being committed.
    idle: watch::Sender<bool>,
    /// Batch sizes and commit times.
    metrics: Arc<ChatMetrics>,
}

impl Persistence {
    /// Persistence over `db`, committing at most `batch_max` writes together and retrying
    /// a failed connection for up to `retry_for`.
    pub fn new(db: DatabaseConnection, batch_max: usize, retry_for: Duration) -> Self {
        Persistence {
            db,
            batch_max: batch_max.clamp(1, MAX_BATCH),
            retry_for,
            queue: VecDeque::new(),
            writers: 1,
            in_flight: Vec::new(),
            next_id: 0,
            idle: watch::Sender::new(true),
            metrics: Arc::new(ChatMetrics::off()),
        }
    }

    /// Counts batches in `metrics`.
    pub fn metrics(mut self, metrics: Arc<ChatMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Commits at most `writers` batches at a time (at least 1).
    pub fn writers(mut self, writers: usize) -> Self {
        self.writers = writers.max(1);
        self
    }

    /// Writes waiting or being committed.
    fn depth(&self) -> usize {
        self.queue.len() + self.in_flight.iter().map(|(_, _, n)| n).sum::<usize>()
    }

    /// The next batch: the writes waiting (up to `batch_max`) of the rooms that have no batch
    /// being committed, in order; the others stay queued, in order.
    fn take_batch(&mut self) -> Option<(Vec<Write>, HashSet<u64>)> {
        let busy: HashSet<u64> = self
            .in_flight
            .iter()
            .flat_map(|(_, rooms, _)| rooms.iter().copied())
            .collect();
        if busy.is_empty() {
            let take = self.queue.len().min(self.batch_max);
            let batch: Vec<Write> = self.queue.drain(..take).collect();
            let rooms = batch.iter().map(|w| w.room).collect();
            return (!batch.is_empty()).then_some((batch, rooms));
        }
        let mut batch = Vec::new();
        let mut rest = VecDeque::with_capacity(self.queue.len());
        for write in self.queue.drain(..) {
            if batch.len() < self.batch_max && !busy.contains(&write.room) {
                batch.push(write);
            } else {
                rest.push_back(write);
            }
        }
        self.queue = rest;
        let rooms = batch.iter().map(|w| w.room).collect();
        (!batch.is_empty()).then_some((batch, rooms))
    }

    /// Starts committing batches while fewer than `writers` are being committed.
    fn next_batch(&mut self, ctx: &mut Context<Self>) {
        while self.in_flight.len() < self.writers && !self.queue.is_empty() {
            let Some((batch, rooms)) = self.take_batch() else {
                break;
            };
            let id = self.next_id;
            self.next_id += 1;
            self.in_flight.push((id, rooms, batch.len()));
            let db = self.db.clone();
            let retry_for = self.retry_for;
            let metrics = self.metrics.clone();
            let fut = async move {
                let started = Instant::now();
                let results = commit(&db, &batch, retry_for).await;
                let took = started.elapsed();
                metrics.batch(batch.len(), took);
                debug!("persistence: {} writes committed in {took:?}", batch.len());
                (batch, results)
            };
            ctx.spawn(fut.into_actor(self).map(move |(batch, results), act, ctx| {
                act.in_flight.retain(|(b, _, _)| *b != id);
                answer(batch, results);
                act.next_batch(ctx);
            }));
        }
        self.idle.send_replace(self.depth() == 0);
    }
}

/// Sends every result to its room, grouped per room, in the batch's order (which is each
/// room's sequence order); releases the writes' permits.
fn answer(batch: Vec<Write>, results: Vec<WriteResult>) {
    type Results = Vec<(u64, WriteResult)>;
    let mut per_room: HashMap<u64, (Recipient<Written>, Results)> = HashMap::new();
    for (write, result) in batch.into_iter().zip(results) {
        let Write {
            room, reply, seq, ..
        } = write;
        per_room
            .entry(room)
            .or_insert_with(|| (reply, Vec::new()))
            .1
            .push((seq, result));
    }
    for (_, (reply, results)) in per_room {
        reply.do_send(Written(results));
    }
}

/// Commits `batch`; one result per write, in order. A failure of the connection is retried
/// with backoff for up to `retry_for`; a batch that fails for another reason is retried write
/// by write, so that only the writes that fail on their own are failed.
async fn commit(db: &DatabaseConnection, batch: &[Write], retry_for: Duration) -> Vec<WriteResult> {
    let ops: Vec<&WriteOp> = batch.iter().map(|w| &w.op).collect();
    match retrying(retry_for, || write_all(db, &ops)).await {
        Ok(results) => results,
        Err(e) if ops.len() > 1 && !is_transient(&e) => {
            warn!(
                "persistence: a batch of {} writes failed ({e}); retrying them one by one",
                ops.len()
            );
            let mut results = Vec::with_capacity(ops.len());
            for op in &ops {
                let one = retrying(retry_for, || write_all(db, std::slice::from_ref(op))).await;
                results.push(match one {
                    Ok(mut one) => one.pop().unwrap_or_else(|| WriteResult::failed(op)),
                    Err(e) => {
                        error!("persistence: a write failed: {e}");
                        WriteResult::failed(op)
                    }
                });
            }
            results
        }
        Err(e) => {
            error!("persistence: {} writes failed: {e}", ops.len());
            ops.iter().map(|op| WriteResult::failed(op)).collect()
        }
    }
}

/// Writes `ops` in one transaction; one result per op, in order.
async fn write_all(db: &DatabaseConnection, ops: &[&WriteOp]) -> Result<Vec<WriteResult>, DbErr> {
    let mut batch = Batch::default();
    for op in ops {
        match op {
            WriteOp::Insert(m) => batch.inserts.push(m),
            WriteOp::MarkRead(r) => batch.marks.push(r),
            WriteOp::Presence(p) => batch.presence.push(p),
            WriteOp::Heartbeats { users, at } => {
                batch.heartbeats.extend(users.iter());
                batch.heartbeat_at = Some(*at);
            }
            WriteOp::StaleOffline { users, cutoff, now } => {
                batch.stale.push((users, *cutoff, *now))
            }
        }
    }
    let written = if batch.statements() > 1 {
        let txn = db.begin().await?;
        let written = batch.write(&txn).await?;
        txn.commit().await?;
        written
    } else {
        batch.write(db).await?
    };
    let mut inserts = classify_inserts(db, &batch.inserts, written.inserted)
        .await?
        .into_iter();
    let mut marks = classify_marks(db, &batch.marks, written.marked)
        .await?
        .into_iter();
    let mut swept = written.swept.into_iter();
    Ok(ops
        .iter()
        .map(|op| match op {
            WriteOp::Insert(_) => inserts
                .next()
                .map_or(WriteResult::failed(op), WriteResult::Insert),
            WriteOp::MarkRead(_) => marks
                .next()
                .map_or(WriteResult::failed(op), WriteResult::Mark),
            WriteOp::Presence(p) => WriteResult::User(if written.users.contains(&p.user) {
                UserOutcome::Updated
            } else {
                UserOutcome::NoSuchUser
            }),
            WriteOp::Heartbeats { .. } => WriteResult::User(UserOutcome::Updated),
            WriteOp::StaleOffline { .. } => WriteResult::Swept(swept.next()),
        })
        .collect())
}

/// One batch's writes, by kind.
#[derive(Default)]
struct Batch<'a> {
    inserts: Vec<&'a messages::Model>,
    marks: Vec<&'a MarkReadRow>,
    presence: Vec<&'a PresenceRow>,
    heartbeats: Vec<&'a String>,
    heartbeat_at: Option<NaiveDateTime>,
    /// The presence sweep's: users, cutoff, now.
    stale: Vec<(&'a [String], NaiveDateTime, NaiveDateTime)>,
}

/// What a batch's statements wrote.
struct BatchWritten {
    inserted: Vec<String>,
    marked: Vec<(String, String)>,
    users: Vec<String>,
    /// How many users each sweep set offline.
    swept: Vec<usize>,
}

impl Batch<'_> {
    /// How many statements the batch takes (more than one: a transaction).
    fn statements(&self) -> usize {
        [
            self.inserts.len(),
            self.marks.len(),
            self.presence.len(),
            self.heartbeats.len(),
        ]
        .iter()
        .filter(|n| **n > 0)
        .count()
            // A sweep is an update and its history rows: in a transaction even alone.
            + 2 * self.stale.len()
    }

    async fn write<C: ConnectionTrait>(&self, db: &C) -> Result<BatchWritten, DbErr> {
        let inserted = message_rows::insert_messages(db, &self.inserts).await?;
        let marked = message_rows::mark_read(db, &self.marks).await?;
        let users = user_rows::write_presence(db, &self.presence).await?;
        if let Some(at) = self.heartbeat_at {
            user_rows::write_heartbeats(db, &self.heartbeats, at).await?;
        }
        let mut swept = Vec::with_capacity(self.stale.len());
        for (users, cutoff, now) in &self.stale {
            swept.push(user_rows::set_stale_offline(db, users, *cutoff, *now).await?);
        }
        Ok(BatchWritten {
            inserted,
            marked,
            users,
            swept,
        })
    }
}

/// The outcome of each insert, given the ids the statement wrote. A row with the same id
/// written twice in one batch counts once; rows not written are looked up.
async fn classify_inserts<C: ConnectionTrait>(
    db: &C,
    rows: &[&messages::Model],
    inserted: Vec<String>,
) -> Result<Vec<InsertOutcome>, DbErr> {
    let mut fresh: HashMap<String, usize> = HashMap::new();
    for id in inserted {
        *fresh.entry(id).or_default() += 1;
    }
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut missing = Vec::new();
    for m in rows {
        match fresh.get_mut(&m.id).filter(|n| **n > 0) {
            Some(n) => {
                *n -= 1;
                outcomes.push(Some(InsertOutcome::Inserted));
            }
            None => {
                missing.push(m.id.clone());
                outcomes.push(None);
            }
        }
    }
    let found: HashMap<String, messages::Model> = message_rows::find_messages(db, &missing)
        .await?
        .into_iter()
        .map(|m| (m.id.clone(), m))
        .collect();
    Ok(rows
        .iter()
        .zip(outcomes)
        .map(|(m, outcome)| {
            outcome.unwrap_or_else(|| match found.get(&m.id) {
                // Our own row, from an attempt whose commit we did not hear back from: the
                // room gave it this `createdAt`, which no other write has.
                Some(row) if row == *m => InsertOutcome::Inserted,
                Some(row)
                    if row.sender_id == m.sender_id && row.connection_id == m.connection_id =>
                {
                    InsertOutcome::Existing(Box::new(row.clone()))
                }
                _ => InsertOutcome::Refused,
            })
        })
        .collect())
}

/// The outcome of each mark-read, given the `(id, sender)` pairs the statement changed;
/// rows not changed are looked up to tell a repeat from a refusal.
async fn classify_marks<C: ConnectionTrait>(
    db: &C,
    rows: &[&MarkReadRow],
    marked: Vec<(String, String)>,
) -> Result<Vec<MarkOutcome>, DbErr> {
    let mut fresh: HashMap<String, String> = marked.into_iter().collect();
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut missing = Vec::new();
    for r in rows {
        match fresh.remove(&r.message_id) {
            Some(sender) => outcomes.push(Some(MarkOutcome::Marked { sender })),
            None => {
                missing.push(r.message_id.clone());
                outcomes.push(None);
            }
        }
    }
    let states: HashMap<String, message_rows::ReadState> =
        message_rows::find_read_states(db, &missing)
            .await?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
    Ok(rows
        .iter()
        .zip(outcomes)
        .map(|(r, outcome)| {
            outcome.unwrap_or_else(|| match states.get(&r.message_id) {
                Some(s) if s.receiver_id == r.reader && s.connection_id == r.connection_id => {
                    if s.is_read && s.updated_at == r.now {
                        // Ours, from an attempt whose commit we did not hear back from.
                        MarkOutcome::Marked {
                            sender: s.sender_id.clone(),
                        }
                    } else if s.is_read {
                        MarkOutcome::AlreadyRead
                    } else if s.status.as_deref() != Some(crate::db::connections::ACTIVE) {
                        MarkOutcome::NotActive
                    } else {
                        MarkOutcome::NotAllowed
                    }
                }
                _ => MarkOutcome::NotAllowed,
            })
        })
        .collect())
}

impl Actor for Persistence {
    type Context = Context<Self>;
}

impl Handler<Write> for Persistence {
    type Result = ();

    fn handle(&mut self, write: Write, ctx: &mut Self::Context) {
        self.queue.push_back(write);
        self.idle.send_replace(false);
        self.next_batch(ctx);
    }
}

impl Handler<QueueDepth> for Persistence {
    type Result = usize;

    fn handle(&mut self, _msg: QueueDepth, _ctx: &mut Self::Context) -> usize {
        self.depth()
    }
}

impl Handler<Shutdown> for Persistence {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Shutdown, _ctx: &mut Self::Context) -> Self::Result {
        let mut idle = self.idle.subscribe();
        Box::pin(async move {
            let _ = idle.wait_for(|idle| *idle).await;
            log::info!("persistence: every write received is done");
        })
    }
}
