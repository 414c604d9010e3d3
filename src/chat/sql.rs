//! The chat's SQL, on the app's tables (Prisma's names), for SQLite and PostgreSQL.
//!
//! Writes are multi-row statements that carry their own checks, so that a batch of many
//! messages is one round trip and a connection the app has just ended or blocked refuses
//! the write without a read per message. On PostgreSQL the rows travel as one array per
//! column (`unnest($1::text[], …)`), so a statement's text does not depend on how many rows
//! it carries and is prepared and planned once; on SQLite they are a `VALUES` list:
//!
//! - [`insert_messages`]: one `INSERT … SELECT … FROM (VALUES …) JOIN "connections"`; a row
//!   is written only if its connection is `ACTIVE` and its sender and receiver are the
//!   connection's two members; `ON CONFLICT ("id") DO NOTHING` makes a retry of an id that
//!   is already there write nothing; `RETURNING "id"` tells which rows were written.
//! - [`mark_read`]: one `UPDATE … FROM (VALUES …)`: only the receiver, only on an `ACTIVE`
//!   connection, only a message not read yet (`"isRead" = false`); `RETURNING` the rows
//!   changed and their senders.
//!
//! Rows a statement did not write are looked up afterwards ([`find_messages`],
//! [`find_read_states`]) to tell a retry from a refusal.

use chrono::NaiveDateTime;
use entity::{connections, messages};
use sea_orm::sea_query::ArrayType;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QuerySelect,
    Statement, Value,
};

/// The status value of a connection whose members may chat.
pub const ACTIVE: &str = "ACTIVE";

/// Whether the members of `connection` may chat.
pub fn is_active(connection: &connections::Model) -> bool {
    connection.status == ACTIVE
}

/// Reads a connection.
pub async fn find_connection<C: ConnectionTrait>(
    db: &C,
    id: &str,
) -> Result<Option<connections::Model>, DbErr> {
    connections::Entity::find_by_id(id.to_string())
        .one(db)
        .await
}

/// Ids asked about in one statement at most.
const IDS_PER_QUERY: usize = 1000;

/// The check in front of a deletion or clearing notice from `caller` on `connection_id`:
/// `None` unless the connection is ACTIVE; else, of `deleted` (a deletion's message ids),
/// those that were deleted: the ids still in the conversation that `caller` did not send
/// are left out (the app deletes a user's own messages before it tells).
pub async fn notice_check<C: ConnectionTrait>(
    db: &C,
    connection_id: &str,
    caller: &str,
    deleted: Option<&[String]>,
) -> Result<Option<Vec<String>>, DbErr> {
    match find_connection(db, connection_id).await? {
        Some(connection) if is_active(&connection) => {}
        _ => return Ok(None),
    }
    let Some(ids) = deleted else {
        return Ok(Some(Vec::new()));
    };
    let mut kept_back = std::collections::HashSet::new();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let present: Vec<String> = messages::Entity::find()
            .select_only()
            .column(messages::Column::Id)
            .filter(messages::Column::ConnectionId.eq(connection_id))
            .filter(messages::Column::SenderId.ne(caller))
            .filter(messages::Column::Id.is_in(chunk.iter().cloned()))
            .into_tuple()
            .all(db)
            .await?;
        kept_back.extend(present);
    }
    Ok(Some(
        ids.iter()
            .filter(|id| !kept_back.contains(*id))
            .cloned()
            .collect(),
    ))
}

/// Placeholders for one backend: `$1, $2, …` on PostgreSQL, `?` on SQLite.
struct Params {
    backend: DbBackend,
    values: Vec<Value>,
}

impl Params {
    fn new(backend: DbBackend, capacity: usize) -> Self {
        Params {
            backend,
            values: Vec::with_capacity(capacity),
        }
    }

    /// Binds `value` and writes its placeholder into `sql`.
    fn bind(&mut self, sql: &mut String, value: impl Into<Value>) {
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => {
                sql.push('$');
                sql.push_str(&self.values.len().to_string());
            }
            _ => sql.push('?'),
        }
    }

    /// A `VALUES` list of `rows`, each row's values bound by `row`.
    fn values<T>(&mut self, sql: &mut String, rows: &[T], mut row: impl FnMut(&mut Row<'_>, &T)) {
        sql.push_str("VALUES ");
        for (i, item) in rows.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            let mut r = Row {
                params: self,
                sql,
                first: true,
            };
            row(&mut r, item);
            sql.push(')');
        }
    }

    fn statement(self, sql: String) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, self.values)
    }
}

/// One row of a `VALUES` list being written.
struct Row<'a> {
    params: &'a mut Params,
    sql: &'a mut String,
    first: bool,
}

impl Row<'_> {
    fn push(&mut self, value: impl Into<Value>) {
        if !self.first {
            self.sql.push(',');
        }
        self.first = false;
        self.params.bind(self.sql, value);
    }
}

/// Columns bound per message by [`insert_messages`] (PostgreSQL allows 65535 parameters in
/// a statement, SQLite 32766).
pub const INSERT_PARAMS_PER_ROW: usize = 11;

/// A PostgreSQL array of `items` of type `ty`. The driver binds arrays without NULL
/// elements only: nullable columns travel with a mask (see [`insert_messages`]).
fn pg_array(ty: ArrayType, items: impl Iterator<Item = Value>) -> Value {
    Value::Array(ty, Some(Box::new(items.collect())))
}

/// A text array; absent values become `""` (their NULL travels in a mask).
fn text_array<'a>(items: impl Iterator<Item = Option<&'a String>>) -> Value {
    pg_array(
        ArrayType::String,
        items.map(|s| Value::String(Some(s.cloned().unwrap_or_default()))),
    )
}

/// The rows of [`insert_messages`]: `v.id`, `v.conn`, `v.sender`, `v.receiver`,
/// `v.content`, `v.created`, then the media columns.
const INSERT_HEAD: &str = r#"INSERT INTO "messages" ("id","connectionId","senderId","receiverId","content","isRead","createdAt","updatedAt","mediaUrl","mediaType","mediaName","mediaSize","mediaThumbnail") SELECT v.id, c."id", v.sender, v.receiver, v.content, false, v.created, v.created, v.media_url, v.media_type, v.media_name, v.media_size, v.media_thumbnail FROM "#;

/// The checks of [`insert_messages`]: the connection is ACTIVE, sender and receiver are its
/// members; an id already there is skipped.
const INSERT_TAIL: &str = r#" JOIN "connections" AS c ON c."id" = v.conn WHERE c."status" = 'ACTIVE' AND ((c."user1Id" = v.sender AND c."user2Id" = v.receiver) OR (c."user2Id" = v.sender AND c."user1Id" = v.receiver)) ON CONFLICT ("id") DO NOTHING RETURNING "id""#;

/// Inserts `rows` in one statement (see the module doc); returns the ids written.
pub async fn insert_messages<C: ConnectionTrait>(
    db: &C,
    rows: &[&messages::Model],
) -> Result<Vec<String>, DbErr> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let statement = match backend {
        DbBackend::Postgres => {
            let text = |f: &dyn Fn(&messages::Model) -> Option<&String>| {
                text_array(rows.iter().map(|m| f(m)))
            };
            // Which of the nullable media columns each row has: bit 1 mediaUrl, 2 mediaType,
            // 4 mediaName, 8 mediaSize, 16 mediaThumbnail.
            let present = rows.iter().map(|m| {
                let bits = [
                    m.media_url.is_some(),
                    m.media_type.is_some(),
                    m.media_name.is_some(),
                    m.media_size.is_some(),
                    m.media_thumbnail.is_some(),
                ];
                let mask = bits
                    .iter()
                    .enumerate()
                    .fold(0i32, |mask, (i, on)| mask | (i32::from(*on) << i));
                Value::Int(Some(mask))
            });
            let values = vec![
                text(&|m| Some(&m.id)),
                text(&|m| Some(&m.connection_id)),
                text(&|m| Some(&m.sender_id)),
                text(&|m| Some(&m.receiver_id)),
                text(&|m| Some(&m.content)),
                pg_array(
                    ArrayType::ChronoDateTime,
                    rows.iter()
                        .map(|m| Value::ChronoDateTime(Some(m.created_at))),
                ),
                text(&|m| m.media_url.as_ref()),
                text(&|m| m.media_type.as_ref()),
                text(&|m| m.media_name.as_ref()),
                pg_array(
                    ArrayType::Int,
                    rows.iter()
                        .map(|m| Value::Int(Some(m.media_size.unwrap_or(0)))),
                ),
                text(&|m| m.media_thumbnail.as_ref()),
                pg_array(ArrayType::Int, present),
            ];
            let sql = format!(
                "{INSERT_HEAD}(SELECT id, conn, sender, receiver, content, created, \
                 CASE WHEN present & 1 <> 0 THEN url END AS media_url, \
                 CASE WHEN present & 2 <> 0 THEN kind END AS media_type, \
                 CASE WHEN present & 4 <> 0 THEN name END AS media_name, \
                 CASE WHEN present & 8 <> 0 THEN size END AS media_size, \
                 CASE WHEN present & 16 <> 0 THEN thumbnail END AS media_thumbnail \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                 $6::timestamp[], $7::text[], $8::text[], $9::text[], $10::int4[], $11::text[], \
                 $12::int4[]) AS u(id, conn, sender, receiver, content, created, url, kind, name, \
                 size, thumbnail, present)) AS v{INSERT_TAIL}"
            );
            Statement::from_sql_and_values(backend, sql, values)
        }
        _ => {
            let mut p = Params::new(backend, rows.len() * INSERT_PARAMS_PER_ROW);
            let mut sql = String::from(INSERT_HEAD);
            sql.push_str("(SELECT column1 AS id, column2 AS conn, column3 AS sender, column4 AS receiver, column5 AS content, column6 AS created, column7 AS media_url, column8 AS media_type, column9 AS media_name, column10 AS media_size, column11 AS media_thumbnail FROM (");
            p.values(&mut sql, rows, |r, m| {
                r.push(m.id.clone());
                r.push(m.connection_id.clone());
                r.push(m.sender_id.clone());
                r.push(m.receiver_id.clone());
                r.push(m.content.clone());
                r.push(m.created_at);
                r.push(m.media_url.clone());
                r.push(m.media_type.clone());
                r.push(m.media_name.clone());
                r.push(m.media_size);
                r.push(m.media_thumbnail.clone());
            });
            sql.push_str(")) AS v");
            sql.push_str(INSERT_TAIL);
            p.statement(sql)
        }
    };
    let returned = db.query_all_raw(statement).await?;
    returned
        .iter()
        .map(|row| row.try_get::<String>("", "id"))
        .collect()
}

/// A request to mark a message read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkReadRow {
    pub message_id: String,
    pub connection_id: String,
    pub reader: String,
    pub now: NaiveDateTime,
}

/// Marks `rows` read in one statement (see the module doc); returns `(id, senderId)` of the
/// messages changed.
pub async fn mark_read<C: ConnectionTrait>(
    db: &C,
    rows: &[&MarkReadRow],
) -> Result<Vec<(String, String)>, DbErr> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    const HEAD: &str = r#"UPDATE "messages" AS m SET "isRead" = true, "updatedAt" = v.at FROM "#;
    const TAIL: &str = r#", "connections" AS c WHERE m."id" = v.id AND m."connectionId" = v.conn AND m."receiverId" = v.reader AND m."isRead" = false AND c."id" = m."connectionId" AND c."status" = 'ACTIVE' RETURNING "#;
    let backend = db.get_database_backend();
    let statement = match backend {
        DbBackend::Postgres => {
            let text = |f: fn(&MarkReadRow) -> &String| text_array(rows.iter().map(|r| Some(f(r))));
            let values = vec![
                text(|r| &r.message_id),
                text(|r| &r.connection_id),
                text(|r| &r.reader),
                pg_array(
                    ArrayType::ChronoDateTime,
                    rows.iter().map(|r| Value::ChronoDateTime(Some(r.now))),
                ),
            ];
            // The target's columns are qualified here (`c` has an "id" too).
            let sql = format!(
                r#"{HEAD}unnest($1::text[], $2::text[], $3::text[], $4::timestamp[]) AS v(id, conn, reader, at){TAIL}m."id", m."senderId""#
            );
            Statement::from_sql_and_values(backend, sql, values)
        }
        _ => {
            let mut p = Params::new(backend, rows.len() * 4);
            let mut sql = String::from(HEAD);
            sql.push_str(
                "(SELECT column1 AS id, column2 AS conn, column3 AS reader, column4 AS at FROM (",
            );
            p.values(&mut sql, rows, |r, row| {
                r.push(row.message_id.clone());
                r.push(row.connection_id.clone());
                r.push(row.reader.clone());
                r.push(row.now);
            });
            sql.push_str(")) AS v");
            sql.push_str(TAIL);
            // SQLite refuses qualified names in RETURNING, which sees the target only.
            sql.push_str(r#""id", "senderId""#);
            p.statement(sql)
        }
    };
    let returned = db.query_all_raw(statement).await?;
    returned
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<String>("", "id")?,
                row.try_get::<String>("", "senderId")?,
            ))
        })
        .collect()
}

/// The messages with these ids that exist.
pub async fn find_messages<C: ConnectionTrait>(
    db: &C,
    ids: &[String],
) -> Result<Vec<messages::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    messages::Entity::find()
        .filter(messages::Column::Id.is_in(ids.iter().cloned()))
        .all(db)
        .await
}

/// What decides a mark-read that changed nothing: the message's receiver, connection,
/// whether it is read, and its connection's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadState {
    pub id: String,
    pub connection_id: String,
    pub sender_id: String,
    pub receiver_id: String,
    pub is_read: bool,
    pub updated_at: NaiveDateTime,
    pub status: Option<String>,
}

/// The read states of the messages with these ids that exist.
pub async fn find_read_states<C: ConnectionTrait>(
    db: &C,
    ids: &[String],
) -> Result<Vec<ReadState>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found = messages::Entity::find()
        .filter(messages::Column::Id.is_in(ids.iter().cloned()))
        .find_also_related(connections::Entity)
        .all(db)
        .await?;
    Ok(found
        .into_iter()
        .map(|(m, c)| ReadState {
            id: m.id,
            connection_id: m.connection_id,
            sender_id: m.sender_id,
            receiver_id: m.receiver_id,
            is_read: m.is_read,
            updated_at: m.updated_at,
            status: c.map(|c| c.status),
        })
        .collect())
}

/// `SELECT 1`: whether the database answers.
pub async fn ping<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    db.query_one_raw(Statement::from_string(backend, "SELECT 1"))
        .await
        .map(|_| ())
}

/// A user's presence to write: `online` `Some` for going online or offline (then
/// `"isOnline"` and `"lastSeenAt"`, and `"lastHeartbeatAt"` when online), `None` for the
/// number of sockets only; always `"connectionCount"` and `"updatedAt"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceRow {
    pub user: String,
    pub online: Option<bool>,
    pub count: i32,
    pub at: NaiveDateTime,
    /// The `user_online_status` row to add with it.
    pub history: Option<HistoryRow>,
}

/// A `user_online_status` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub id: String,
    pub online: bool,
    pub at: NaiveDateTime,
    pub device: Option<String>,
    pub ip: Option<String>,
}

/// The target's `"id"` in a `RETURNING` of an `UPDATE … FROM` (see [`mark_read`]).
fn returning_id(backend: DbBackend, alias: &str) -> String {
    match backend {
        DbBackend::Postgres => format!(r#"{alias}."id""#),
        _ => r#""id""#.to_string(),
    }
}

/// Writes `rows` (one per user at most) in two statements; returns the users whose row
/// exists. History rows are added only for users that exist.
pub async fn write_presence<C: ConnectionTrait>(
    db: &C,
    rows: &[&PresenceRow],
) -> Result<Vec<String>, DbErr> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let mut p = Params::new(backend, rows.len() * 5);
    let mut sql = String::from(
        r#"UPDATE "users" AS u SET "isOnline" = CASE WHEN v.column2 THEN v.column3 ELSE u."isOnline" END, "lastSeenAt" = CASE WHEN v.column2 THEN v.column4 ELSE u."lastSeenAt" END, "lastHeartbeatAt" = CASE WHEN v.column2 AND v.column3 THEN v.column4 ELSE u."lastHeartbeatAt" END, "connectionCount" = v.column5, "updatedAt" = v.column4 FROM ("#,
    );
    p.values(&mut sql, rows, |r, row| {
        r.push(row.user.clone());
        r.push(row.online.is_some());
        r.push(row.online.unwrap_or(false));
        r.push(row.at);
        r.push(row.count);
    });
    sql.push_str(r#") AS v WHERE u."id" = v.column1 RETURNING "#);
    sql.push_str(&returning_id(backend, "u"));
    let found: Vec<String> = db
        .query_all_raw(p.statement(sql))
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "id"))
        .collect::<Result<_, _>>()?;
    let history: Vec<(&String, &HistoryRow)> = rows
        .iter()
        .filter_map(|r| r.history.as_ref().map(|h| (&r.user, h)))
        .collect();
    if !history.is_empty() {
        let mut p = Params::new(backend, history.len() * 6);
        let mut sql = String::from(
            r#"INSERT INTO "user_online_status" ("id","userId","isOnline","timestamp","deviceInfo","ipAddress") SELECT v.column1, u."id", v.column3, v.column4, v.column5, v.column6 FROM ("#,
        );
        p.values(&mut sql, &history, |r, (user, h)| {
            r.push(h.id.clone());
            r.push((*user).clone());
            r.push(h.online);
            r.push(h.at);
            r.push(h.device.clone());
            r.push(h.ip.clone());
        });
        sql.push_str(r#") AS v JOIN "users" AS u ON u."id" = v.column2"#);
        db.execute_raw(p.statement(sql)).await?;
    }
    Ok(found)
}

/// `"lastHeartbeatAt"` (and `"updatedAt"`) = `at` for `users`, in one statement.
pub async fn write_heartbeats<C: ConnectionTrait>(
    db: &C,
    users: &[&String],
    at: NaiveDateTime,
) -> Result<(), DbErr> {
    if users.is_empty() {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let mut p = Params::new(backend, users.len() + 1);
    let mut sql = String::from(r#"UPDATE "users" SET "lastHeartbeatAt" = "#);
    p.bind(&mut sql, at);
    sql.push_str(r#", "updatedAt" = "#);
    p.bind(&mut sql, at);
    sql.push_str(r#" WHERE "id" IN ("#);
    for (i, user) in users.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        p.bind(&mut sql, (*user).clone());
    }
    sql.push(')');
    db.execute_raw(p.statement(sql)).await.map(|_| ())
}

/// A user's connections, as the other member and whether the connection is ACTIVE (one
/// entry per other user, ACTIVE if any of theirs is), and the user's name and image.
pub async fn relations<C: ConnectionTrait>(
    db: &C,
    user: &str,
) -> Result<(Vec<(String, bool)>, Option<String>, Option<String>), DbErr> {
    let backend = db.get_database_backend();
    let mut p = Params::new(backend, 2);
    let mut sql = String::from(r#"SELECT CASE WHEN "user1Id" = "#);
    p.bind(&mut sql, user.to_string());
    sql.push_str(r#" THEN "user2Id" ELSE "user1Id" END AS "peer", "status" FROM "connections" WHERE "user1Id" = "#);
    p.bind(&mut sql, user.to_string());
    sql.push_str(r#" OR "user2Id" = "#);
    p.bind(&mut sql, user.to_string());
    let rows = db.query_all_raw(p.statement(sql)).await?;
    let mut peers: Vec<(String, bool)> = Vec::with_capacity(rows.len());
    for row in rows {
        let peer: String = row.try_get("", "peer")?;
        let status: String = row.try_get("", "status")?;
        let active = status == ACTIVE;
        match peers.iter_mut().find(|(p, _)| *p == peer) {
            Some((_, a)) => *a |= active,
            None => peers.push((peer, active)),
        }
    }
    let mut p = Params::new(backend, 1);
    let mut sql = String::from(r#"SELECT "name", "image" FROM "users" WHERE "id" = "#);
    p.bind(&mut sql, user.to_string());
    let (name, image) = match db.query_one_raw(p.statement(sql)).await? {
        Some(row) => (row.try_get("", "name")?, row.try_get("", "image")?),
        None => (None, None),
    };
    Ok((peers, name, image))
}

/// Users marked online whose `"lastHeartbeatAt"` is before `cutoff` (at most 1000).
pub async fn stale_online_users<C: ConnectionTrait>(
    db: &C,
    cutoff: NaiveDateTime,
) -> Result<Vec<String>, DbErr> {
    let backend = db.get_database_backend();
    let mut p = Params::new(backend, 1);
    let mut sql = String::from(
        r#"SELECT "id" FROM "users" WHERE "isOnline" = true AND "lastHeartbeatAt" < "#,
    );
    p.bind(&mut sql, cutoff);
    sql.push_str(" LIMIT 1000");
    db.query_all_raw(p.statement(sql))
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "id"))
        .collect()
}

/// Sets `users` offline if they are still online with a heartbeat before `cutoff`, with a
/// history row each; returns how many changed.
pub async fn set_stale_offline<C: ConnectionTrait>(
    db: &C,
    users: &[String],
    cutoff: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<usize, DbErr> {
    let backend = db.get_database_backend();
    let mut p = Params::new(backend, users.len() + 3);
    let mut sql = String::from(
        r#"UPDATE "users" SET "isOnline" = false, "connectionCount" = 0, "lastSeenAt" = "#,
    );
    p.bind(&mut sql, now);
    sql.push_str(r#", "updatedAt" = "#);
    p.bind(&mut sql, now);
    sql.push_str(r#" WHERE "isOnline" = true AND "lastHeartbeatAt" < "#);
    p.bind(&mut sql, cutoff);
    sql.push_str(r#" AND "id" IN ("#);
    for (i, user) in users.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        p.bind(&mut sql, user.clone());
    }
    sql.push_str(r#") RETURNING "id""#);
    let changed: Vec<String> = db
        .query_all_raw(p.statement(sql))
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "id"))
        .collect::<Result<_, _>>()?;
    if !changed.is_empty() {
        let history: Vec<HistoryRow> = changed
            .iter()
            .map(|_| HistoryRow {
                id: crate::ids::cuid(),
                online: false,
                at: now,
                device: None,
                ip: None,
            })
            .collect();
        let rows: Vec<(&String, &HistoryRow)> = changed.iter().zip(history.iter()).collect();
        let mut p = Params::new(backend, rows.len() * 4);
        let mut sql = String::from(
            r#"INSERT INTO "user_online_status" ("id","userId","isOnline","timestamp") "#,
        );
        p.values(&mut sql, &rows, |r, (user, h)| {
            r.push(h.id.clone());
            r.push((*user).clone());
            r.push(false);
            r.push(h.at);
        });
        db.execute_raw(p.statement(sql)).await?;
    }
    Ok(changed.len())
}

/// Whether the database has the presence columns and the history table (an app older than
/// its presence migration does not).
pub async fn has_presence_columns<C: ConnectionTrait>(db: &C) -> bool {
    let backend = db.get_database_backend();
    let probes = [
        r#"SELECT "isOnline", "lastSeenAt", "connectionCount", "lastHeartbeatAt" FROM "users" WHERE 1 = 0"#,
        r#"SELECT "id", "userId", "isOnline", "timestamp", "deviceInfo", "ipAddress" FROM "user_online_status" WHERE 1 = 0"#,
    ];
    for probe in probes {
        if db
            .query_all_raw(Statement::from_string(backend, probe))
            .await
            .is_err()
        {
            return false;
        }
    }
    true
}
