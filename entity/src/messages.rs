//! `messages` (Prisma model `Message`), including the optional media attachment columns.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "messages")]
#[serde(rename_all = "camelCase")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_name = "id")]
    pub id: String,
    #[sea_orm(column_name = "connectionId")]
    pub connection_id: String,
    #[sea_orm(column_name = "senderId")]
    pub sender_id: String,
    #[sea_orm(column_name = "receiverId")]
    pub receiver_id: String,
    #[sea_orm(column_name = "content")]
    pub content: String,
    #[sea_orm(column_name = "isRead")]
    pub is_read: bool,
    #[sea_orm(column_name = "createdAt")]
    pub created_at: DateTime,
    #[sea_orm(column_name = "updatedAt")]
    pub updated_at: DateTime,
    #[sea_orm(column_name = "mediaUrl")]
    pub media_url: Option<String>,
    /// `image` | `video` | `audio` | `file` (a plain string; Courier checks it when a
    /// message is sent).
    #[sea_orm(column_name = "mediaType")]
    pub media_type: Option<String>,
    #[sea_orm(column_name = "mediaName")]
    pub media_name: Option<String>,
    /// Size in bytes (Prisma `Int` = PostgreSQL `INTEGER`, 32-bit).
    #[sea_orm(column_name = "mediaSize")]
    pub media_size: Option<i32>,
    #[sea_orm(column_name = "mediaThumbnail")]
    pub media_thumbnail: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::connections::Entity",
        from = "Column::ConnectionId",
        to = "super::connections::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Connection,
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::SenderId",
        to = "super::users::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Sender,
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::ReceiverId",
        to = "super::users::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Receiver,
}

impl Related<super::connections::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Connection.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
