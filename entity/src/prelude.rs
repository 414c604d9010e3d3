//! `use entity::prelude::*;` brings the entities in under distinct names.

pub use super::connections::{ConnectionStatus, Entity as Connections, Model as ConnectionModel};
pub use super::messages::{Entity as Messages, MediaType, Model as MessageModel};
pub use super::users::{Entity as Users, Model as UserModel};
