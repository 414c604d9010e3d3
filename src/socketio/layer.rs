//! [`SocketLayer`], the Socket.IO protocol as an Engine.IO handler: the application (a
//! [`SocketHandler`](super::SocketHandler)) and the session's [`SocketState`], and how a
//! layer is built. What it does is in [`super::receive`] (what the client sends),
//! [`super::connect`], [`super::control`] and [`super::mounted`].

use std::sync::Arc;
use std::time::Duration;

use super::packet::Decoder;
use super::state::{LayerExt, Namespaces, SocketState};

/// How long a binary packet's attachments may take by default.
pub(crate) const ATTACHMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The Socket.IO protocol as an Engine.IO handler.
pub struct SocketLayer<A> {
    pub(super) app: A,
    pub(super) state: SocketState,
}

impl<A> SocketLayer<A> {
    /// `app` on top of Socket.IO; a client that does not connect within `connect_timeout`
    /// is closed.
    pub fn new(app: A, connect_timeout: Duration) -> Self {
        SocketLayer {
            app,
            state: SocketState {
                decoder: Decoder::new(),
                namespaces: Namespaces::default(),
                connect_timeout,
                connect_timer: None,
                attachment_timeout: ATTACHMENT_TIMEOUT,
                attachment_timer: None,
                pending_connect: None,
                defer: false,
                pid: None,
                ext: None,
                mounted: None,
                next_ack: 0,
                disconnect: None,
                reserved: None,
            },
        }
    }

    /// Carries `ext` too: a mounted namespace, an observer (see [`super::mount`]).
    pub fn extend(mut self, ext: Option<Arc<LayerExt>>) -> Self {
        self.state.ext = ext;
        self
    }

    /// Closes a client whose binary packet's attachments do not all arrive within
    /// `timeout` of its header (default [`ATTACHMENT_TIMEOUT`]).
    pub(crate) fn attachment_timeout(mut self, timeout: Duration) -> Self {
        self.state.attachment_timeout = timeout;
        self
    }
}
