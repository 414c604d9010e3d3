//! Commands from the observer ([`SocketCommand`]: emit, disconnect) for a socket, and the
//! disconnects the application asked for ([`SocketIo::disconnect`]), carried out by the
//! layer once the application's handler has returned.

use tokio::sync::mpsc;

use super::handler::{SocketHandler, SocketIo};
use super::layer::SocketLayer;
use super::observer::SocketCommand;
use super::packet::{Packet, PacketData};
use crate::engineio::{EngineIo, SessionClose};

impl<A: SocketHandler> SocketLayer<A> {
    /// A command from the observer for the socket `sid` on `nsp`.
    pub(super) fn command(
        &mut self,
        nsp: &str,
        command: SocketCommand,
        eio: &mut EngineIo<'_, Self>,
    ) {
        let mut io = SocketIo {
            eio,
            state: &mut self.state,
        };
        match command {
            SocketCommand::Emit { name, args } => io.emit(nsp, &name, args),
            SocketCommand::Disconnect { close } => {
                let reason = "server namespace disconnect";
                let all: Vec<String> = if close {
                    io.state
                        .namespaces
                        .0
                        .iter()
                        .map(|(n, _)| n.clone())
                        .collect()
                } else {
                    vec![nsp.to_string()]
                };
                for nsp in all {
                    if let Some(sid) = io.state.namespaces.remove(&nsp) {
                        io.send(&Packet {
                            nsp: nsp.clone(),
                            data: PacketData::Disconnect,
                        });
                        io.state.forget(&mut self.app, &nsp, &sid, reason);
                    }
                }
                io.unused_closes_later();
                if close {
                    io.eio
                        .close(SessionClose::ServerClose("disconnected by the server"));
                }
            }
        }
    }

    /// Takes the observer's commands for the socket `sid` on `nsp`, while it is there.
    pub(super) fn control_loop(
        eio: &mut EngineIo<'_, Self>,
        nsp: String,
        sid: String,
        mut rx: mpsc::Receiver<SocketCommand>,
    ) {
        let next = async move {
            let command = rx.recv().await;
            (command, rx)
        };
        eio.spawn(next, move |layer, eio, (command, rx)| {
            let Some(command) = command else {
                return;
            };
            if layer.state.namespaces.get(&nsp) != Some(sid.as_str()) {
                return;
            }
            layer.command(&nsp, command, eio);
            if layer.state.namespaces.get(&nsp) == Some(sid.as_str()) {
                Self::control_loop(eio, nsp, sid, rx);
            }
        });
    }
}
