//! [`ChatSocket`]: the chat as one browser socket sees it, the `SocketHandler` of every
//! connection to Courier's `/socket.io/` endpoint, in parts:
//!
//! - [`chat_socket`]: the socket, its state (in owned parts) and its `SocketHandler` methods;
//! - [`connect`]: CONNECT to `/` with a valid `auth.token` (other namespaces are refused, as
//!   the Node server does), the user's socket slot, the registration, connection state
//!   recovery (a valid `pid` of the same user, its `offset`: the replay before live events);
//! - [`events`]: the dispatcher: each event parsed, authorized, turned into its request for
//!   the actor that owns what it changes, answered;
//! - [`window`] (the state) and [`flow`] (what the socket does with it): back-pressure: every request that goes to a room takes a slot of the
//!   socket's window (`chat.send_window`) until its answer comes back; a request that writes
//!   also takes a permit of the database's write queue (`database.write_queue`). While the
//!   window is full or a permit is awaited, the socket stops reading from its client; it
//!   reads on as answers come back. A busy server slows clients down; it never refuses their
//!   messages;
//! - [`stream`] (the state) and [`replay`] (what the socket does with it): the recovery stream: the offset every conversation event carries, its
//!   stamp, the replay and the catch-up after the link to other nodes was down;
//! - [`asks`]: events from other servers that ask for the client's acknowledgement.

pub mod asks;
pub(crate) mod chat_socket;
pub mod connect;
pub mod events;
pub mod flow;
pub(crate) mod replay;
pub mod stream;
pub mod window;

pub use chat_socket::{ChatSocket, TOO_MANY_CONNECTIONS};
pub use flow::write_permits;
