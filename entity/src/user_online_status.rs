//! `user_online_status` (Prisma model `UserOnlineStatus`): the history of users going online
//! and offline.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "user_online_status")]
#[serde(rename_all = "camelCase")]
pub struct Model {
    /// cuid (no database default).
    #[sea_orm(primary_key, auto_increment = false, column_name = "id")]
    pub id: String,
    #[sea_orm(column_name = "userId")]
    pub user_id: String,
    #[sea_orm(column_name = "isOnline")]
    pub is_online: bool,
    #[sea_orm(column_name = "timestamp")]
    pub timestamp: DateTime,
    /// The handshake's `User-Agent`.
    #[sea_orm(column_name = "deviceInfo")]
    pub device_info: Option<String>,
    /// The client's address.
    #[sea_orm(column_name = "ipAddress")]
    pub ip_address: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
