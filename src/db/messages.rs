//! The `messages` table (Prisma's names, SQLite and PostgreSQL): the writes the chat batches,
//! hand-written, and the reads (the history, the recovery replay, a notice's check),
//! SeaORM's builder over the entity.
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

use std::collections::HashSet;
use std::sync::Arc;

use chrono::NaiveDateTime;
use entity::{connections, messages};
use sea_orm::sea_query::ArrayType;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, Value,
};

use super::connections::{find_connection, is_active};
use super::params::{pg_array, text_array, Params};
use super::time::from_millis;

/// Columns bound per message by [`insert_messages`] (PostgreSQL allows 65535 parameters in
/// a statement, SQLite 32766).
pub(crate) const INSERT_PARAMS_PER_ROW: usize = 11;

/// The most writes one batch may hold: PostgreSQL takes at most 65535 parameters in a
/// statement, SQLite 32766.
pub(crate) const MAX_BATCH: usize = 32766 / INSERT_PARAMS_PER_ROW;

/// The rows of [`insert_messages`]: `v.id`, `v.conn`, `v.sender`, `v.receiver`,
/// `v.content`, `v.created`, then the media columns.
const INSERT_HEAD: &str = r#"INSERT INTO "messages" ("id","connectionId","senderId","receiverId","content","isRead","createdAt","updatedAt","mediaUrl","mediaType","mediaName","mediaSize","mediaThumbnail") SELECT v.id, c."id", v.sender, v.receiver, v.content, false, v.created, v.created, v.media_url, v.media_type, v.media_name, v.media_size, v.media_thumbnail FROM "#;

/// The checks of [`insert_messages`]: the connection is ACTIVE, sender and receiver are its
/// members; an id already there is skipped.
const INSERT_TAIL: &str = r#" JOIN "connections" AS c ON c."id" = v.conn WHERE c."status" = 'ACTIVE' AND ((c."user1Id" = v.sender AND c."user2Id" = v.receiver) OR (c."user2Id" = v.sender AND c."user1Id" = v.receiver)) ON CONFLICT ("id") DO NOTHING RETURNING "id""#;

/// Inserts `rows` in one statement (see the module doc); returns the ids written.
pub(crate) async fn insert_messages<C: ConnectionTrait>(
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
pub(crate) async fn find_messages<C: ConnectionTrait>(
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
pub(crate) struct ReadState {
    pub id: String,
    pub connection_id: String,
    pub sender_id: String,
    pub receiver_id: String,
    pub is_read: bool,
    pub updated_at: NaiveDateTime,
    pub status: Option<String>,
}

/// The read states of the messages with these ids that exist.
pub(crate) async fn find_read_states<C: ConnectionTrait>(
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

/// Ids asked about in one statement at most.
const IDS_PER_QUERY: usize = 1000;

/// The check in front of a deletion or clearing notice from `caller` on `connection_id`:
/// `None` unless the connection is ACTIVE; else, of `deleted` (a deletion's message ids),
/// those that were deleted: the ids still in the conversation that `caller` did not send
/// are left out (the app deletes a user's own messages before it tells).
pub(crate) async fn notice_check<C: ConnectionTrait>(
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
    let mut kept_back = HashSet::new();
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

/// A page of a conversation's history for `user`: at most `limit` messages older than
/// `before` (`createdAt` in milliseconds and the id, ties broken by id), newest first, and
/// whether there are more; `None` if `user` is not a member of the connection (whatever its
/// status). One query on the app's `messages_connectionId_idx`.
pub(crate) async fn history_page<C: ConnectionTrait>(
    db: &C,
    user: &str,
    connection_id: &str,
    before: Option<(i64, &str)>,
    limit: u64,
) -> Result<Option<(Vec<messages::Model>, bool)>, DbErr> {
    match find_connection(db, connection_id).await? {
        Some(c) if c.has_participant(user) => {}
        _ => return Ok(None),
    }
    let mut query =
        messages::Entity::find().filter(messages::Column::ConnectionId.eq(connection_id));
    if let Some((at, id)) = before {
        let at = from_millis(at);
        query = query.filter(
            Condition::any()
                .add(messages::Column::CreatedAt.lt(at))
                .add(
                    Condition::all()
                        .add(messages::Column::CreatedAt.eq(at))
                        .add(messages::Column::Id.lt(id)),
                ),
        );
    }
    let mut rows = query
        .order_by_desc(messages::Column::CreatedAt)
        .order_by_desc(messages::Column::Id)
        .limit(limit + 1)
        .all(db)
        .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    Ok(Some((rows, more)))
}

/// Where a stream stands: the position (a stamp, in milliseconds) of each conversation it
/// names, and of every other one.
#[derive(Debug, Clone, Copy)]
pub struct Positions<'a> {
    pub base: i64,
    pub conversations: &'a [(Arc<str>, i64)],
}

/// The condition "`column` is after the position of the row's conversation".
fn after(column: messages::Column, positions: Positions<'_>) -> Condition {
    let mut any = Condition::any();
    let named: Vec<String> = positions
        .conversations
        .iter()
        .map(|(c, _)| c.to_string())
        .collect();
    for (c, at) in positions.conversations {
        any = any.add(
            Condition::all()
                .add(messages::Column::ConnectionId.eq(c.to_string()))
                .add(column.gt(from_millis(*at))),
        );
    }
    let mut rest = Condition::all().add(column.gt(from_millis(positions.base)));
    if !named.is_empty() {
        rest = rest.add(messages::Column::ConnectionId.is_not_in(named));
    }
    any.add(rest)
}

/// What `user` missed after `positions`: the messages they received (by `"createdAt"`) and
/// their messages read since (by `"updatedAt"`), each oldest first, at most `limit` of each.
pub async fn missed<C: ConnectionTrait>(
    db: &C,
    user: &str,
    positions: Positions<'_>,
    limit: u64,
) -> Result<(Vec<messages::Model>, Vec<messages::Model>), DbErr> {
    let received = messages::Entity::find()
        .filter(messages::Column::ReceiverId.eq(user))
        .filter(after(messages::Column::CreatedAt, positions))
        .order_by_asc(messages::Column::CreatedAt)
        .order_by_asc(messages::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    let read = messages::Entity::find()
        .filter(messages::Column::SenderId.eq(user))
        .filter(messages::Column::IsRead.eq(true))
        .filter(after(messages::Column::UpdatedAt, positions))
        .order_by_asc(messages::Column::UpdatedAt)
        .order_by_asc(messages::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    Ok((received, read))
}

/// The newest stamp of a conversation: its newest `"createdAt"` or `"updatedAt"`.
pub(crate) async fn newest_stamp<C: ConnectionTrait>(
    db: &C,
    connection_id: &str,
) -> Result<Option<NaiveDateTime>, DbErr> {
    let row: Option<(Option<NaiveDateTime>, Option<NaiveDateTime>)> = messages::Entity::find()
        .select_only()
        .column_as(messages::Column::CreatedAt.max(), "created")
        .column_as(messages::Column::UpdatedAt.max(), "updated")
        .filter(messages::Column::ConnectionId.eq(connection_id))
        .into_tuple()
        .one(db)
        .await?;
    Ok(row.and_then(|(c, u)| c.max(u)))
}
