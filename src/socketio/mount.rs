//! A namespace of its own for another application beside the main
//! [`SocketHandler`](super::SocketHandler) ([`Mount`], [`Namespace`]: the admin UI's
//! `/admin`), and what its sockets can do with their connection ([`NamespaceIo`], through
//! [`ErasedIo`], the socket layer whatever the main handler is).
//!
//! It knows nothing of the application on the main handler: a socket is a namespace, an
//! id, its Engine.IO session and its client.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use bytestring::ByteString;
use serde_json::Value;

use super::event::Event;
use super::packet::{Packet, PacketData};
use crate::engineio::client::ClientInfo;

/// The `connect_error` message for a session from a restricted origin
/// ([`ClientInfo::restricted`]) that CONNECTs to a namespace other than the mounted one.
pub(crate) const ORIGIN_NOT_ALLOWED: &str = "Origin not allowed for this namespace";

/// Where another application is mounted, and how its sockets are made.
pub trait Mount: Send + Sync + 'static {
    /// The namespace (`/admin`).
    fn namespace(&self) -> &str;
    /// A socket for a new CONNECT to it.
    fn socket(&self) -> Box<dyn Namespace>;
}

/// One client's socket on a mounted namespace.
pub trait Namespace: Any {
    /// A CONNECT with its `auth` payload: answer with [`NamespaceIo::accept`] or
    /// [`NamespaceIo::refuse`], now or later (from [`NamespaceIo::spawn`]). Until then the
    /// CONNECT is pending: the client cannot send events there.
    fn on_connect(&mut self, auth: Option<&Value>, io: &mut NamespaceIo<'_>);
    /// An event from the client.
    fn on_event(&mut self, event: Event, io: &mut NamespaceIo<'_>);
    /// The socket is gone (`reason` is Socket.IO's string).
    fn on_disconnect(&mut self, _reason: &str) {}
}

/// A boxed future of any output.
pub(super) type AnyFuture = Pin<Box<dyn Future<Output = Box<dyn Any>>>>;
/// What runs with a spawned future's output on a mounted socket.
pub(super) type AnyThen = Box<dyn FnOnce(&mut dyn Namespace, &mut NamespaceIo<'_>, Box<dyn Any>)>;

/// The socket layer as a mounted namespace reaches it, whatever the main handler is.
pub(super) trait ErasedIo {
    fn engine_sid(&self) -> &str;
    fn client(&self) -> &ClientInfo;
    fn send(&mut self, packet: &Packet);
    fn send_framed(&mut self, frame: ByteString);
    fn spawn_erased(&mut self, fut: AnyFuture, then: AnyThen);
    fn accept(&mut self);
    fn refuse(&mut self, data: Value);
    fn leave(&mut self);
}

/// What a mounted namespace's socket can do with its connection.
pub struct NamespaceIo<'a> {
    pub(super) io: &'a mut dyn ErasedIo,
    pub(super) nsp: &'a str,
}

impl NamespaceIo<'_> {
    /// The namespace.
    pub fn nsp(&self) -> &str {
        self.nsp
    }

    /// The Engine.IO session id.
    pub fn engine_sid(&self) -> &str {
        self.io.engine_sid()
    }

    /// What the request that opened the session tells about the client.
    pub fn client(&self) -> &ClientInfo {
        self.io.client()
    }

    /// Accepts the pending CONNECT (the client gets its socket id).
    pub fn accept(&mut self) {
        self.io.accept();
    }

    /// Refuses the pending CONNECT with a CONNECT_ERROR carrying `data`.
    pub fn refuse(&mut self, data: Value) {
        self.io.refuse(data);
    }

    /// Emits `event` with `args` on the namespace.
    pub fn emit(&mut self, event: &str, args: Vec<Value>) {
        self.io.send(&Packet {
            nsp: self.nsp.to_string(),
            data: PacketData::Event {
                event: event.to_string(),
                args,
                id: None,
            },
        });
    }

    /// Acknowledges the client's event `id` with `args`.
    pub fn ack(&mut self, id: u64, args: Vec<Value>) {
        self.io.send(&Packet {
            nsp: self.nsp.to_string(),
            data: PacketData::Ack { args, id },
        });
    }

    /// Sends a frame already encoded for Engine.IO (`42/nsp,[…]` preceded by `4`).
    pub(crate) fn send_framed(&mut self, frame: ByteString) {
        self.io.send_framed(frame);
    }

    /// Disconnects the socket from the namespace (the session stays).
    pub fn disconnect(&mut self) {
        self.io.leave();
    }

    /// Runs `fut` and hands its output to `then` on this session's task, if the socket of
    /// type `N` is still there then.
    pub fn spawn<N, Fut, F>(&mut self, fut: Fut, then: F)
    where
        N: Namespace,
        Fut: Future + 'static,
        Fut::Output: 'static,
        F: FnOnce(&mut N, &mut NamespaceIo<'_>, Fut::Output) + 'static,
    {
        let fut: AnyFuture = Box::pin(async move { Box::new(fut.await) as Box<dyn Any> });
        self.io.spawn_erased(
            fut,
            Box::new(move |socket, io, out| {
                let socket: &mut dyn Any = socket;
                if let (Some(socket), Ok(out)) =
                    (socket.downcast_mut::<N>(), out.downcast::<Fut::Output>())
                {
                    then(socket, io, *out);
                }
            }),
        );
    }
}
