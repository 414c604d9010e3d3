//! The Socket.IO state of one Engine.IO session ([`SocketState`]): its decoder, the
//! namespaces it is connected to ([`Namespaces`]), its CONNECT being answered, its timers,
//! its socket on the mounted namespace; and what the layer carries besides the main
//! handler ([`LayerExt`]: a mounted namespace, an observer).

use std::sync::Arc;
use std::time::Duration;

use actix::SpawnHandle;

use super::mount::{Mount, Namespace};
use super::observer::SocketObserver;
use super::packet::Decoder;

/// The namespaces a client is connected to, and its socket id in each: a short list.
#[derive(Default)]
pub(super) struct Namespaces(pub(super) Vec<(String, String)>);

impl Namespaces {
    pub(super) fn contains_key(&self, nsp: &str) -> bool {
        self.0.iter().any(|(n, _)| n == nsp)
    }

    pub(super) fn insert(&mut self, nsp: String, sid: String) {
        if !self.contains_key(&nsp) {
            self.0.push((nsp, sid));
        }
    }

    pub(super) fn get(&self, nsp: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == nsp)
            .map(|(_, sid)| sid.as_str())
    }

    pub(super) fn remove(&mut self, nsp: &str) -> Option<String> {
        let at = self.0.iter().position(|(n, _)| n == nsp)?;
        Some(self.0.swap_remove(at).1)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn drain(&mut self) -> std::vec::Drain<'_, (String, String)> {
        self.0.drain(..)
    }
}

/// Socket.IO state of one Engine.IO session.
pub(super) struct SocketState {
    pub(super) decoder: Decoder,
    /// Connected namespaces and their Socket.IO socket ids (a client has one or two).
    pub(super) namespaces: Namespaces,
    pub(super) connect_timeout: Duration,
    pub(super) connect_timer: Option<SpawnHandle>,
    /// How long a binary packet's attachments may take, and the timer running for the
    /// packet being received.
    pub(super) attachment_timeout: Duration,
    pub(super) attachment_timer: Option<SpawnHandle>,
    /// A CONNECT the application answers later
    /// ([`SocketIo::defer_connect`](super::SocketIo::defer_connect)): its namespace.
    pub(super) pending_connect: Option<String>,
    /// What the application asked for: answer later, and the `pid` of the answer.
    pub(super) defer: bool,
    pub(super) pid: Option<String>,
    /// The mounted namespace and the observer, if any (one pointer: usually neither).
    pub(super) ext: Option<Arc<LayerExt>>,
    /// This session's socket on the mounted namespace, from its CONNECT on.
    pub(super) mounted: Option<Box<MountedSocket>>,
    /// The id of the next event the server asks the client to acknowledge.
    pub(super) next_ack: u64,
    /// A disconnect the application asked for
    /// ([`SocketIo::disconnect`](super::SocketIo::disconnect)): the namespace, and whether
    /// the whole session closes.
    pub(super) disconnect: Option<Box<(String, bool)>>,
    /// The socket id a CONNECT being answered will have
    /// ([`SocketIo::reserve_socket_id`](super::SocketIo::reserve_socket_id)): its namespace
    /// and the id.
    pub(super) reserved: Option<Box<(String, String)>>,
}

/// What the socket layer carries besides the main handler: another application on a
/// namespace of its own, and an observer of every socket (see [`super::mount`] and
/// [`super::observer`]).
#[derive(Default)]
pub struct LayerExt {
    pub mount: Option<Arc<dyn Mount>>,
    pub observer: Option<Arc<dyn SocketObserver>>,
}

/// A session's socket on the mounted namespace.
pub(super) struct MountedSocket {
    /// `None` while it is being called.
    pub(super) socket: Option<Box<dyn Namespace>>,
    /// Its CONNECT waits for an answer.
    pub(super) pending: bool,
}

impl SocketState {
    pub(super) fn is_mount(&self, nsp: &str) -> bool {
        self.ext
            .as_ref()
            .and_then(|e| e.mount.as_ref())
            .is_some_and(|m| m.namespace() == nsp)
    }

    pub(super) fn mount_name(&self) -> Option<String> {
        Some(self.ext.as_ref()?.mount.as_ref()?.namespace().to_string())
    }

    pub(super) fn observer(&self) -> Option<Arc<dyn SocketObserver>> {
        self.ext.as_ref()?.observer.clone()
    }

    /// The observer, if it tracks sockets one by one.
    pub(super) fn tracker(&self) -> Option<&Arc<dyn SocketObserver>> {
        self.ext
            .as_ref()?
            .observer
            .as_ref()
            .filter(|o| o.tracks_sockets())
    }
}
