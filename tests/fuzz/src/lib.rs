//! The parts of Courier that the fuzz targets exercise, compiled from Courier's own source
//! files so that the targets depend on neither actix nor the database.
//!
//! The modules mirror Courier's layout (`crate::engineio::packet`,
//! `crate::socketio::packet`, `crate::chat::*`), so paths inside the included files resolve as they do in
//! Courier. A target for another module adds it here the same way.

pub mod chat;
pub mod engineio;
pub mod socketio;
