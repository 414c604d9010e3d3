//! `courier seed-demo`: two users and an ACTIVE connection between them, so a new user can
//! chat in two terminals within a minute.

use entity::{connections, users};
use sea_orm::{ActiveModelTrait, DatabaseConnection, DbErr, Set, TransactionTrait};

use crate::ids;

/// The domain of the demo users' emails: `alice.<id>@demo.courier.invalid`, `bob.<id>@…`
/// (`.invalid` is reserved: no such address can exist).
pub(crate) const EMAIL_DOMAIN: &str = "demo.courier.invalid";

/// What `seed-demo` created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demo {
    /// The first user's id (named "Alice").
    pub alice: String,
    /// The second user's id (named "Bob").
    pub bob: String,
    /// The ACTIVE connection between them.
    pub connection: String,
}

/// Creates two users and an ACTIVE connection between them (in one transaction).
pub async fn seed_demo(db: &DatabaseConnection) -> Result<Demo, DbErr> {
    let txn = db.begin().await?;
    let now = entity::now_utc_ms();
    let mut ids = Vec::new();
    for name in ["Alice", "Bob"] {
        let id = ids::cuid();
        users::ActiveModel {
            id: Set(id.clone()),
            email: Set(format!("{}.{id}@{EMAIL_DOMAIN}", name.to_lowercase())),
            name: Set(Some(name.to_string())),
            full_name: Set(Some(format!("{name} Demo"))),
            created_at: Set(now),
            last_seen_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        ids.push(id);
    }
    let (alice, bob) = (ids[0].clone(), ids[1].clone());
    // The app stores the smaller id as user1Id.
    let (user1, user2) = if alice < bob {
        (alice.clone(), bob.clone())
    } else {
        (bob.clone(), alice.clone())
    };
    let connection = ids::cuid();
    connections::ActiveModel {
        id: Set(connection.clone()),
        user1_id: Set(user1),
        user2_id: Set(user2),
        status: Set("ACTIVE".into()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(Demo {
        alice,
        bob,
        connection,
    })
}
