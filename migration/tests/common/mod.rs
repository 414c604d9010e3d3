//! Helpers shared by the SQLite and PostgreSQL integration tests.
#![allow(dead_code)]

use chrono::{NaiveDate, NaiveDateTime};
use entity::{connections, messages, users};
use migration::sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, ModelTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Set,
};

/// 2026-01-02T03:04:05.678 (has milliseconds, like Prisma's TIMESTAMP(3)).
pub fn ts(milli: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 1, 2)
        .unwrap()
        .and_hms_milli_opt(3, 4, 5, milli)
        .unwrap()
}

/// Inserts two users, a connection and two messages through the entities, reads them back
/// and checks that everything round-trips; also checks DB defaults, the unique constraint and
/// ON DELETE CASCADE. `prefix` keeps ids unique if called twice on one database.
pub async fn entity_round_trip(db: &DatabaseConnection, prefix: &str) {
    let t = ts(678);
    let id = |s: &str| format!("{prefix}{s}");

    let alice = users::ActiveModel {
        id: Set(id("alice")),
        email: Set(format!("{prefix}alice@example.com")),
        name: Set(Some("alice".into())),
        full_name: Set(Some("Alice Example".into())),
        image: Set(None),
        is_online: Set(true),
        last_seen_at: Set(t),
        connection_count: Set(2),
        last_heartbeat_at: Set(t),
        created_at: Set(t),
        updated_at: Set(t),
    }
    .insert(db)
    .await
    .expect("insert alice");
    assert_eq!(alice.last_seen_at, t);
    assert!(alice.is_online);
    assert_eq!(alice.connection_count, 2);
    assert_eq!(alice.last_heartbeat_at, t);
    assert_eq!(alice.full_name.as_deref(), Some("Alice Example"));

    // Only the required columns: the rest come from database defaults.
    let bob = users::ActiveModel {
        id: Set(id("bob")),
        email: Set(format!("{prefix}bob@example.com")),
        updated_at: Set(t),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert bob");
    assert!(!bob.is_online, "isOnline defaults to false");
    assert_eq!(bob.connection_count, 0, "connectionCount defaults to 0");
    assert_eq!(bob.name, None);
    assert_eq!(bob.image, None);

    // Unique email.
    let dup = users::ActiveModel {
        id: Set(id("bob2")),
        email: Set(format!("{prefix}bob@example.com")),
        updated_at: Set(t),
        ..Default::default()
    }
    .insert(db)
    .await;
    assert!(
        dup.is_err(),
        "users_email_key must reject a duplicate email"
    );

    let conn = connections::ActiveModel {
        id: Set(id("conn")),
        user1_id: Set(alice.id.clone()),
        user2_id: Set(bob.id.clone()),
        created_at: Set(t),
        updated_at: Set(t),
        ..Default::default() // status from the DB default
    }
    .insert(db)
    .await
    .expect("insert connection");
    assert_eq!(conn.status, "ACTIVE");
    assert_eq!(
        conn.parsed_status(),
        Some(entity::connections::ConnectionStatus::Active)
    );
    assert_eq!(conn.other_participant(&alice.id), Some(bob.id.as_str()));

    let dup = connections::ActiveModel {
        id: Set(id("conn2")),
        user1_id: Set(alice.id.clone()),
        user2_id: Set(bob.id.clone()),
        status: Set("ENDED".into()),
        created_at: Set(t),
        updated_at: Set(t),
    }
    .insert(db)
    .await;
    assert!(
        dup.is_err(),
        "connections_user1Id_user2Id_key must reject a duplicate pair"
    );

    let m1 = messages::ActiveModel {
        id: Set(id("m1")),
        connection_id: Set(conn.id.clone()),
        sender_id: Set(alice.id.clone()),
        receiver_id: Set(bob.id.clone()),
        content: Set("hello".into()),
        is_read: Set(false),
        created_at: Set(t),
        updated_at: Set(t),
        media_url: Set(None),
        media_type: Set(None),
        media_name: Set(None),
        media_size: Set(None),
        media_thumbnail: Set(None),
    }
    .insert(db)
    .await
    .expect("insert m1");
    let m2 = messages::ActiveModel {
        id: Set(id("m2")),
        connection_id: Set(conn.id.clone()),
        sender_id: Set(bob.id.clone()),
        receiver_id: Set(alice.id.clone()),
        content: Set(String::new()),
        created_at: Set(ts(679)),
        updated_at: Set(ts(679)),
        media_url: Set(Some("https://cdn.example.com/a.png".into())),
        media_type: Set(Some("image".into())),
        media_name: Set(Some("a.png".into())),
        media_size: Set(Some(123_456)),
        media_thumbnail: Set(Some("https://cdn.example.com/a_t.png".into())),
        ..Default::default() // isRead from the DB default
    }
    .insert(db)
    .await
    .expect("insert m2");
    assert!(!m2.is_read);
    assert_eq!(m2.media_type.as_deref(), Some("image"));

    let found = messages::Entity::find()
        .filter(messages::Column::ConnectionId.eq(conn.id.clone()))
        .order_by_asc(messages::Column::CreatedAt)
        .all(db)
        .await
        .expect("select messages");
    assert_eq!(found, vec![m1.clone(), m2.clone()]);
    assert_eq!(found[0].created_at, t);
    assert_eq!(found[0].media_url, None);
    assert_eq!(found[0].media_size, None);

    let related = conn
        .find_related(messages::Entity)
        .order_by_asc(messages::Column::CreatedAt)
        .all(db)
        .await
        .expect("find_related");
    assert_eq!(related, found);

    // Timestamp comparisons in SQL work.
    let later = messages::Entity::find()
        .filter(messages::Column::CreatedAt.gt(t))
        .all(db)
        .await
        .unwrap();
    assert_eq!(later, vec![m2.clone()]);

    // Mark as read.
    let res = messages::Entity::update_many()
        .col_expr(
            messages::Column::IsRead,
            migration::sea_orm::sea_query::Expr::value(true),
        )
        .filter(messages::Column::ReceiverId.eq(bob.id.clone()))
        .filter(messages::Column::IsRead.eq(false))
        .exec(db)
        .await
        .unwrap();
    assert_eq!(res.rows_affected, 1);
    let m1_again = messages::Entity::find_by_id(m1.id.clone())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert!(m1_again.is_read);

    // Serialized with the app's camelCase keys.
    let json = serde_json::to_value(&m2).unwrap();
    assert_eq!(json["connectionId"], conn.id.as_str());
    assert_eq!(json["mediaSize"], 123_456);
    assert_eq!(json["createdAt"], "2026-01-02T03:04:05.679");

    // ON DELETE CASCADE: deleting bob removes the connection and its messages.
    users::Entity::delete_by_id(bob.id.clone())
        .exec(db)
        .await
        .unwrap();
    assert_eq!(
        connections::Entity::find_by_id(conn.id.clone())
            .count(db)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        messages::Entity::find()
            .filter(messages::Column::ConnectionId.eq(conn.id.clone()))
            .count(db)
            .await
            .unwrap(),
        0
    );
    users::Entity::delete_by_id(alice.id.clone())
        .exec(db)
        .await
        .unwrap();
}
