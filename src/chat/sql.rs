//! The chat's SQL, on the app's tables (Prisma's names).
//!
//! Writes carry their own checks: a message is inserted with `INSERT … SELECT … FROM
//! connections WHERE id = … AND status = 'ACTIVE' AND <sender and receiver are its members>`,
//! so a connection the app has just ended or blocked refuses the write (zero rows) without a
//! read per message.

use chrono::NaiveDateTime;
use entity::{connections, messages};
use sea_orm::sea_query::{Cond, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait};

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

/// Inserts `message` if its connection is ACTIVE and its sender and receiver are the
/// connection's two members; `Ok(false)` (nothing written) otherwise.
pub async fn insert_message_if_active<C: ConnectionTrait>(
    db: &C,
    message: &messages::Model,
) -> Result<bool, DbErr> {
    use connections::Column as C;
    use messages::Column as M;
    let sender = message.sender_id.as_str();
    let receiver = message.receiver_id.as_str();
    let select = Query::select()
        .expr(Expr::val(message.id.clone()))
        .column((connections::Entity, C::Id))
        .expr(Expr::val(sender.to_string()))
        .expr(Expr::val(receiver.to_string()))
        .expr(Expr::val(message.content.clone()))
        .expr(Expr::val(message.is_read))
        .expr(Expr::val(message.created_at))
        .expr(Expr::val(message.updated_at))
        .expr(Expr::val(message.media_url.clone()))
        .expr(Expr::val(message.media_type.clone()))
        .expr(Expr::val(message.media_name.clone()))
        .expr(Expr::val(message.media_size))
        .expr(Expr::val(message.media_thumbnail.clone()))
        .from(connections::Entity)
        .and_where(Expr::col((connections::Entity, C::Id)).eq(message.connection_id.clone()))
        .and_where(Expr::col((connections::Entity, C::Status)).eq(ACTIVE))
        .cond_where(
            Cond::any()
                .add(
                    Cond::all()
                        .add(Expr::col((connections::Entity, C::User1Id)).eq(sender))
                        .add(Expr::col((connections::Entity, C::User2Id)).eq(receiver)),
                )
                .add(
                    Cond::all()
                        .add(Expr::col((connections::Entity, C::User2Id)).eq(sender))
                        .add(Expr::col((connections::Entity, C::User1Id)).eq(receiver)),
                ),
        )
        .to_owned();
    let insert = Query::insert()
        .into_table(messages::Entity)
        .columns([
            M::Id,
            M::ConnectionId,
            M::SenderId,
            M::ReceiverId,
            M::Content,
            M::IsRead,
            M::CreatedAt,
            M::UpdatedAt,
            M::MediaUrl,
            M::MediaType,
            M::MediaName,
            M::MediaSize,
            M::MediaThumbnail,
        ])
        .select_from(select)
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .to_owned();
    let result = db.execute(&insert).await?;
    Ok(result.rows_affected() == 1)
}

/// Marks a message read if `reader` is its receiver and it belongs to `connection_id`;
/// returns its sender, or `None` when nothing matched (and nothing changed).
pub async fn mark_read<C: ConnectionTrait>(
    db: &C,
    message_id: &str,
    connection_id: &str,
    reader: &str,
    now: NaiveDateTime,
) -> Result<Option<String>, DbErr> {
    use messages::Column as M;
    let update = Query::update()
        .table(messages::Entity)
        .value(M::IsRead, true)
        .value(M::UpdatedAt, now)
        .and_where(Expr::col(M::Id).eq(message_id))
        .and_where(Expr::col(M::ConnectionId).eq(connection_id))
        .and_where(Expr::col(M::ReceiverId).eq(reader))
        .to_owned();
    if db.execute(&update).await?.rows_affected() == 0 {
        return Ok(None);
    }
    Ok(messages::Entity::find_by_id(message_id.to_string())
        .one(db)
        .await?
        .map(|m| m.sender_id))
}
