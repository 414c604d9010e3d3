//! `messages` (Prisma model `Message`), including the optional media attachment columns.

use std::fmt;
use std::str::FromStr;

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
    /// `image` | `video` | `audio` | `file` (plain string; see [`MediaType`]).
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

impl Model {
    /// The media type parsed into [`MediaType`]; `None` when absent or unknown.
    pub fn parsed_media_type(&self) -> Option<MediaType> {
        self.media_type.as_deref().and_then(|s| s.parse().ok())
    }
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

/// Values of `messages.mediaType`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaType {
    Image,
    Video,
    Audio,
    File,
}

impl MediaType {
    /// `"image"`, `"video"`, `"audio"`, `"file"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::File => "file",
        }
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown [`MediaType`] string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownMediaType(pub String);

impl fmt::Display for UnknownMediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown media type {:?}", self.0)
    }
}

impl std::error::Error for UnknownMediaType {}

impl FromStr for MediaType {
    type Err = UnknownMediaType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "image" => Ok(Self::Image),
            "video" => Ok(Self::Video),
            "audio" => Ok(Self::Audio),
            "file" => Ok(Self::File),
            other => Err(UnknownMediaType(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_round_trip() {
        for m in [
            MediaType::Image,
            MediaType::Video,
            MediaType::Audio,
            MediaType::File,
        ] {
            assert_eq!(m.as_str().parse::<MediaType>(), Ok(m));
        }
        assert!("IMAGE".parse::<MediaType>().is_err());
    }
}
