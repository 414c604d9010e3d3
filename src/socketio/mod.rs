//! Socket.IO v5: namespaces, CONNECT, events and acknowledgements on top of Engine.IO. It
//! knows nothing of the chat: CONNECTs and events go to a [`SocketHandler`].
//!
//! - [`packet`]: the pure codec (packets, binary reassembly). No I/O.
//! - [`layer`]: [`SocketLayer`], the [`crate::engineio::EngineHandler`] that speaks
//!   Socket.IO, and the [`SocketHandler`] trait, the seam to the application.

pub mod layer;
pub mod mount;
pub mod packet;

pub use layer::{Event, LayerExt, SocketHandler, SocketIo, SocketLayer};
pub use mount::{
    Direction, Mount, Namespace, NamespaceIo, SocketCommand, SocketControl, SocketInfo,
    SocketObserver,
};
pub use packet::{Packet, PacketData};
