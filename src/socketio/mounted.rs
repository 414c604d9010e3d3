//! A session's socket on the mounted namespace (see [`super::mount`]): its CONNECT, the
//! calls into it, and [`ErasedIo`], the socket layer as that socket reaches it whatever the
//! main handler is.

use bytestring::ByteString;
use serde_json::Value;

use super::handler::{SocketHandler, SocketIo};
use super::mount::{AnyFuture, AnyThen, ErasedIo, Namespace, NamespaceIo};
use super::packet::{Packet, PacketData};
use super::state::MountedSocket;
use crate::engineio::ClientInfo;

impl<A: SocketHandler> SocketIo<'_, '_, A> {
    /// A CONNECT to the mounted namespace: a new socket there, which answers it.
    pub(super) fn connect_mounted(&mut self, auth: Option<&Value>) {
        let Some(mount) = self.state.ext.as_ref().and_then(|e| e.mount.clone()) else {
            return;
        };
        self.state.mounted = Some(Box::new(MountedSocket {
            socket: Some(mount.socket()),
            pending: true,
        }));
        self.run_mounted(|socket, io| socket.on_connect(auth, io));
    }

    /// Runs `f` on the mounted namespace's socket, if there is one.
    pub(super) fn run_mounted(&mut self, f: impl FnOnce(&mut dyn Namespace, &mut NamespaceIo<'_>)) {
        let Some(nsp) = self.state.mount_name() else {
            return;
        };
        let Some(mut socket) = self.state.mounted.as_mut().and_then(|m| m.socket.take()) else {
            return;
        };
        f(
            &mut *socket,
            &mut NamespaceIo {
                io: self,
                nsp: &nsp,
            },
        );
        // Put back, unless the socket left meanwhile.
        if let Some(mounted) = self.state.mounted.as_mut() {
            if mounted.socket.is_none() {
                mounted.socket = Some(socket);
            }
        }
    }
}

impl<A: SocketHandler> ErasedIo for SocketIo<'_, '_, A> {
    fn engine_sid(&self) -> &str {
        self.eio.sid()
    }

    fn client(&self) -> &ClientInfo {
        self.eio.client()
    }

    fn send(&mut self, packet: &Packet) {
        SocketIo::send(self, packet);
    }

    fn send_framed(&mut self, frame: ByteString) {
        SocketIo::send_framed(self, frame);
    }

    fn spawn_erased(&mut self, fut: AnyFuture, then: AnyThen) {
        self.eio.spawn(fut, move |layer, eio, out| {
            let mut io = SocketIo {
                eio,
                state: &mut layer.state,
            };
            io.run_mounted(|socket, io| then(socket, io, out));
        });
    }

    fn accept(&mut self) {
        let Some(mounted) = self.state.mounted.as_mut().filter(|m| m.pending) else {
            return;
        };
        mounted.pending = false;
        if let Some(nsp) = self.state.mount_name() {
            // A pid set for the main handler's deferred CONNECT stays for it.
            let pid = self.state.pid.take();
            SocketIo::accept(self, nsp);
            self.state.pid = pid;
        }
    }

    fn refuse(&mut self, data: Value) {
        if !self.state.mounted.as_ref().is_some_and(|m| m.pending) {
            return;
        }
        self.state.mounted = None;
        if let Some(nsp) = self.state.mount_name() {
            SocketIo::send(
                self,
                &Packet {
                    nsp,
                    data: PacketData::ConnectError(data),
                },
            );
        }
    }

    fn leave(&mut self) {
        let Some(nsp) = self.state.mount_name() else {
            return;
        };
        self.state.mounted = None;
        if let Some(sid) = self.state.namespaces.remove(&nsp) {
            SocketIo::send(
                self,
                &Packet {
                    nsp: nsp.clone(),
                    data: PacketData::Disconnect,
                },
            );
            if let Some(observer) = self.state.observer() {
                observer.disconnected(&nsp, &sid, "server namespace disconnect");
            }
            self.unused_closes_later();
        }
    }
}
