//! The `connections` table: a connection's row, and a user's relations (who they share a
//! connection with, and whether it is ACTIVE). SeaORM's builder over the entity.

use entity::{connections, users};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
};

/// The status value of a connection whose members may chat.
pub const ACTIVE: &str = "ACTIVE";

/// Whether the members of `connection` may chat.
pub(crate) fn is_active(connection: &connections::Model) -> bool {
    connection.status == ACTIVE
}

/// Reads a connection.
pub(crate) async fn find_connection<C: ConnectionTrait>(
    db: &C,
    id: &str,
) -> Result<Option<connections::Model>, DbErr> {
    connections::Entity::find_by_id(id.to_string())
        .one(db)
        .await
}

/// A user's connections, as the other member and whether the connection is ACTIVE (one
/// entry per other user, ACTIVE if any of theirs is), and the user's name and image.
pub(crate) async fn relations<C: ConnectionTrait>(
    db: &C,
    user: &str,
) -> Result<(Vec<(String, bool)>, Option<String>, Option<String>), DbErr> {
    let rows: Vec<(String, String, String)> = connections::Entity::find()
        .select_only()
        .column(connections::Column::User1Id)
        .column(connections::Column::User2Id)
        .column(connections::Column::Status)
        .filter(
            Condition::any()
                .add(connections::Column::User1Id.eq(user))
                .add(connections::Column::User2Id.eq(user)),
        )
        .into_tuple()
        .all(db)
        .await?;
    let mut peers: Vec<(String, bool)> = Vec::with_capacity(rows.len());
    for (user1, user2, status) in rows {
        let peer = if user1 == user { user2 } else { user1 };
        let active = status == ACTIVE;
        match peers.iter_mut().find(|(p, _)| *p == peer) {
            Some((_, a)) => *a |= active,
            None => peers.push((peer, active)),
        }
    }
    let person: Option<(Option<String>, Option<String>)> = users::Entity::find_by_id(user)
        .select_only()
        .column(users::Column::Name)
        .column(users::Column::Image)
        .into_tuple()
        .one(db)
        .await?;
    let (name, image) = person.unwrap_or((None, None));
    Ok((peers, name, image))
}
