//! `use entity::prelude::*;` brings the entities in under distinct names.

pub use super::connections::{ConnectionStatus, Entity as Connections, Model as ConnectionModel};
pub use super::messages::{Entity as Messages, Model as MessageModel};
pub use super::user_online_status::{Entity as UserOnlineStatus, Model as UserOnlineStatusModel};
pub use super::users::{Entity as Users, Model as UserModel};
