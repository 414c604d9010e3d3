//! Socket.IO v5: namespaces, CONNECT, events and acknowledgements on top of Engine.IO. It
//! knows nothing of the chat: CONNECTs and events go to a [`SocketHandler`].
//!
//! Files, each using only those above it (and Engine.IO):
//! - [`packet`]: the pure codec (packets, binary reassembly, pre-encoded frames). No I/O.
//! - [`event`]: [`Event`], an event from the client.
//! - [`observer`]: the [`SocketObserver`] told of every socket, and [`SocketControl`].
//! - [`mount`]: a namespace of its own for another application ([`Mount`], [`Namespace`]).
//! - [`state`]: the Socket.IO state of one session; [`LayerExt`].
//! - [`layer`]: [`SocketLayer`], the [`crate::engineio::EngineHandler`] that speaks
//!   Socket.IO, and how it is built.
//! - [`handler`]: the [`SocketHandler`] trait, the seam to the application, and
//!   [`SocketIo`], what it can do with its connection.
//! - [`connect`]: CONNECT, answered at once or later, and the connect timeout.
//! - [`receive`]: decoding what the client sends and handing it on; the session's close.
//! - [`control`]: the observer's commands, and disconnects the application asked for.
//! - [`mounted`]: a session's socket on the mounted namespace.

mod connect;
mod control;
pub mod event;
pub mod handler;
pub mod layer;
pub mod mount;
mod mounted;
pub mod observer;
pub mod packet;
mod receive;
pub mod settings;
mod state;

pub use event::Event;
pub use handler::{SocketHandler, SocketIo};
pub use layer::SocketLayer;
pub use mount::{Mount, Namespace, NamespaceIo};
pub use observer::{Direction, SocketCommand, SocketControl, SocketInfo, SocketObserver};
pub use packet::{Packet, PacketData};
pub use state::LayerExt;
