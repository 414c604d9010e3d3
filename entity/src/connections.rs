//! `connections` (Prisma model `Connection`): a chat pairing of two users.

use std::fmt;
use std::str::FromStr;

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "connections")]
#[serde(rename_all = "camelCase")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_name = "id")]
    pub id: String,
    #[sea_orm(column_name = "user1Id")]
    pub user1_id: String,
    #[sea_orm(column_name = "user2Id")]
    pub user2_id: String,
    /// `ACTIVE` | `ENDED` | `BLOCKED` (kept as a plain string so an unexpected value in the
    /// database never breaks decoding; see [`Model::parsed_status`] / [`ConnectionStatus`]).
    #[sea_orm(column_name = "status")]
    pub status: String,
    #[sea_orm(column_name = "createdAt")]
    pub created_at: DateTime,
    #[sea_orm(column_name = "updatedAt")]
    pub updated_at: DateTime,
}

impl Model {
    /// The status parsed into [`ConnectionStatus`]; `None` for an unknown value.
    pub fn parsed_status(&self) -> Option<ConnectionStatus> {
        self.status.parse().ok()
    }

    /// Whether `user_id` is one of the two participants.
    pub fn has_participant(&self, user_id: &str) -> bool {
        self.user1_id == user_id || self.user2_id == user_id
    }

    /// The other participant, if `user_id` is one of them.
    pub fn other_participant(&self, user_id: &str) -> Option<&str> {
        if self.user1_id == user_id {
            Some(&self.user2_id)
        } else if self.user2_id == user_id {
            Some(&self.user1_id)
        } else {
            None
        }
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::User1Id",
        to = "super::users::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    User1,
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::User2Id",
        to = "super::users::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    User2,
    #[sea_orm(has_many = "super::messages::Entity")]
    Messages,
}

impl Related<super::messages::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Messages.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// Values of `connections.status` (Prisma enum stored as TEXT).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionStatus {
    Active,
    Ended,
    Blocked,
}

impl ConnectionStatus {
    /// The database / wire representation: `"ACTIVE"`, `"ENDED"`, `"BLOCKED"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Ended => "ENDED",
            Self::Blocked => "BLOCKED",
        }
    }
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown [`ConnectionStatus`] string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownConnectionStatus(pub String);

impl fmt::Display for UnknownConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown connection status {:?}", self.0)
    }
}

impl std::error::Error for UnknownConnectionStatus {}

impl FromStr for ConnectionStatus {
    type Err = UnknownConnectionStatus;

    /// Exact match on `ACTIVE` / `ENDED` / `BLOCKED` (what Prisma writes).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ACTIVE" => Ok(Self::Active),
            "ENDED" => Ok(Self::Ended),
            "BLOCKED" => Ok(Self::Blocked),
            other => Err(UnknownConnectionStatus(other.to_owned())),
        }
    }
}

impl From<ConnectionStatus> for String {
    fn from(s: ConnectionStatus) -> Self {
        s.as_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip() {
        for s in [
            ConnectionStatus::Active,
            ConnectionStatus::Ended,
            ConnectionStatus::Blocked,
        ] {
            assert_eq!(s.as_str().parse::<ConnectionStatus>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert!("active".parse::<ConnectionStatus>().is_err());
        assert!("".parse::<ConnectionStatus>().is_err());
    }
}
