//! The `Persistence` actor: owns the SeaORM connection and serializes writes.
//!
//! Writes go through one writer loop: a bounded queue of jobs, each with its own reply
//! channel, executed one after another (never as concurrently running futures). A reply is
//! sent only after the write has committed. When the queue is full, callers wait: a slow
//! database pushes back instead of growing memory. Callers only see typed messages
//! ([`SaveMessage`], [`MarkRead`]) and their replies, so the loop can later take several
//! queued jobs into one transaction (group commit) without changing them.
//!
//! Reads ([`LoadConnection`]) do not queue behind writes; they use the connection pool
//! directly.
//!
//! [`Shutdown`] closes the queue, lets the loop finish every job already queued (sending
//! their replies) and resolves when it is done.

use actix::{Actor, Context, Handler, Message, ResponseFuture};
use chrono::NaiveDateTime;
use entity::{connections, messages};
use log::{debug, error, info};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{mpsc, oneshot, watch};

use super::sql;

/// Why a persistence request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersistError {
    /// The database refused or failed the statement.
    Database(String),
    /// Persistence is shutting down.
    Unavailable,
}

impl From<DbErr> for PersistError {
    fn from(e: DbErr) -> Self {
        PersistError::Database(e.to_string())
    }
}

/// What became of a [`SaveMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveOutcome {
    /// The row is committed.
    Saved,
    /// The connection is not ACTIVE or the sender/receiver are not its members: nothing
    /// was written.
    Refused,
}

/// Insert a message if its connection is ACTIVE and sender and receiver are its members.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<SaveOutcome, PersistError>")]
pub struct SaveMessage(pub messages::Model);

/// Mark a message read by its receiver; replies with the sender's id, or `None` when the
/// message does not exist, is not in that connection, or `reader` is not its receiver.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<String>, PersistError>")]
pub struct MarkRead {
    pub message_id: String,
    pub connection_id: String,
    pub reader: String,
    pub now: NaiveDateTime,
}

/// Read a connection.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<connections::Model>, PersistError>")]
pub struct LoadConnection(pub String);

/// Finish every queued write, then stop taking new ones.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

enum WriteOp {
    Save(messages::Model),
    MarkRead(MarkRead),
}

enum WriteReply {
    Save(oneshot::Sender<Result<SaveOutcome, PersistError>>),
    MarkRead(oneshot::Sender<Result<Option<String>, PersistError>>),
}

struct Job {
    op: WriteOp,
    reply: WriteReply,
}

/// The persistence actor.
pub struct Persistence {
    db: DatabaseConnection,
    queue_capacity: usize,
    queue: Option<mpsc::Sender<Job>>,
    /// Turns `true` once the writer loop has finished every job.
    drained: watch::Receiver<bool>,
}

impl Persistence {
    /// Persistence over `db` with at most `queue_capacity` queued writes.
    pub fn new(db: DatabaseConnection, queue_capacity: usize) -> Self {
        Persistence {
            db,
            queue_capacity: queue_capacity.max(1),
            queue: None,
            drained: watch::channel(true).1,
        }
    }

    fn enqueue<T: Send + 'static>(
        &self,
        op: WriteOp,
        reply: impl FnOnce(oneshot::Sender<Result<T, PersistError>>) -> WriteReply,
    ) -> ResponseFuture<Result<T, PersistError>> {
        let queue = self.queue.clone();
        let (tx, rx) = oneshot::channel();
        let job = Job {
            op,
            reply: reply(tx),
        };
        Box::pin(async move {
            let queue = queue.ok_or(PersistError::Unavailable)?;
            // Waits while the queue is full: back-pressure to the caller.
            queue
                .send(job)
                .await
                .map_err(|_| PersistError::Unavailable)?;
            rx.await.map_err(|_| PersistError::Unavailable)?
        })
    }
}

/// The writer loop: one job at a time, reply after commit.
async fn write_loop(
    db: DatabaseConnection,
    mut queue: mpsc::Receiver<Job>,
    drained: watch::Sender<bool>,
) {
    while let Some(job) = queue.recv().await {
        match (job.op, job.reply) {
            (WriteOp::Save(message), WriteReply::Save(reply)) => {
                let result = sql::insert_message_if_active(&db, &message)
                    .await
                    .map(|inserted| {
                        if inserted {
                            SaveOutcome::Saved
                        } else {
                            SaveOutcome::Refused
                        }
                    })
                    .map_err(|e| {
                        error!("saving message {} failed: {e}", message.id);
                        PersistError::from(e)
                    });
                let _ = reply.send(result);
            }
            (WriteOp::MarkRead(m), WriteReply::MarkRead(reply)) => {
                let result = sql::mark_read(&db, &m.message_id, &m.connection_id, &m.reader, m.now)
                    .await
                    .map_err(|e| {
                        error!("marking message {} read failed: {e}", m.message_id);
                        PersistError::from(e)
                    });
                let _ = reply.send(result);
            }
            _ => error!("persistence: a job with a mismatched reply was dropped"),
        }
    }
    debug!("persistence writer drained");
    drained.send_replace(true);
}

impl Actor for Persistence {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        let (tx, rx) = mpsc::channel(self.queue_capacity);
        let (drained_tx, drained_rx) = watch::channel(false);
        self.queue = Some(tx);
        self.drained = drained_rx;
        actix::spawn(write_loop(self.db.clone(), rx, drained_tx));
    }
}

impl Handler<SaveMessage> for Persistence {
    type Result = ResponseFuture<Result<SaveOutcome, PersistError>>;

    fn handle(&mut self, msg: SaveMessage, _ctx: &mut Self::Context) -> Self::Result {
        self.enqueue(WriteOp::Save(msg.0), WriteReply::Save)
    }
}

impl Handler<MarkRead> for Persistence {
    type Result = ResponseFuture<Result<Option<String>, PersistError>>;

    fn handle(&mut self, msg: MarkRead, _ctx: &mut Self::Context) -> Self::Result {
        self.enqueue(WriteOp::MarkRead(msg), WriteReply::MarkRead)
    }
}

impl Handler<LoadConnection> for Persistence {
    type Result = ResponseFuture<Result<Option<connections::Model>, PersistError>>;

    fn handle(&mut self, msg: LoadConnection, _ctx: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        Box::pin(async move { Ok(sql::find_connection(&db, &msg.0).await?) })
    }
}

impl Handler<Shutdown> for Persistence {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Shutdown, _ctx: &mut Self::Context) -> Self::Result {
        // Dropping our sender ends the loop once every queued job (and every caller still
        // waiting to enqueue, which holds a clone) is done. Every Shutdown waits for that.
        self.queue = None;
        let mut drained = self.drained.clone();
        Box::pin(async move {
            let _ = drained.wait_for(|drained| *drained).await;
            info!("persistence: all queued writes finished");
        })
    }
}
