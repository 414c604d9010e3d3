//! The database: the one store of every query Courier makes, on the app's tables (Prisma's
//! names; SQLite or PostgreSQL).
//!
//! - [`connect`]: opening it ([`connect()`](connect::connect), Prisma's URL parameters, the
//!   errors a deployer sees); [`migrate`]: the migration policy; [`seed`]: `seed-demo`.
//! - [`messages`], [`connections`], [`users`]: the queries, one file per table. The batch
//!   statements the chat's `Persistence` actor commits are hand-written (multi-row, with
//!   their checks inside, one round trip per batch: see [`messages`]); everything else is
//!   SeaORM's builder over the entities in `entity/`.
//! - [`params`]: what the hand-written statements share; [`time`]: database times;
//!   [`retry`]: riding out a database that is briefly gone.
//!
//! May use: `entity`, `migration`, `ids`, and the settings it reads (`config`'s database
//! section). Every write of the chat goes through its `Persistence` actor.

pub mod connect;
pub mod connections;
pub mod messages;
pub mod migrate;
pub(crate) mod params;
pub mod retry;
pub mod seed;
pub mod settings;
pub mod time;
pub mod users;

pub use connect::{
    check_schema, connect, open, open_error, options, split_params, split_schema, UrlParams,
};
pub use migrate::migrate;
pub use retry::{is_transient, retrying};
