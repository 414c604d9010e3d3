//! The seam between Socket.IO and the application: the [`SocketHandler`] trait, and
//! [`SocketIo`], what a handler can do with its connection (answer CONNECTs, emit, ask
//! for acknowledgements, disconnect, pause reading, run futures).

use std::future::Future;

use actix::{Message, Recipient};
use bytes::Bytes;
use bytestring::ByteString;
use serde_json::Value;

use super::event::Event;
use super::layer::SocketLayer;
use super::observer::{arg_sizes, framed_event, Direction};
use super::packet::{Packet, PacketData};
use super::state::SocketState;
use crate::engineio::{ClientInfo, EngineIo, SessionClose};

/// The application on top of Socket.IO.
pub trait SocketHandler: Sized + Unpin + 'static {
    /// Messages other actors send to this socket.
    type Push: Message<Result = ()> + Send + 'static;

    /// A CONNECT to `nsp` with the handshake's `auth` payload. `Ok` accepts it; `Err(data)`
    /// refuses it with a CONNECT_ERROR carrying `data` (e.g. `{"message": "..."}`).
    fn on_connect(
        &mut self,
        nsp: &str,
        auth: Option<&Value>,
        io: &mut SocketIo<'_, '_, Self>,
    ) -> Result<(), Value>;

    /// The CONNECT to `nsp` was accepted and its reply sent: the socket may emit now.
    fn on_connected(&mut self, _nsp: &str, _io: &mut SocketIo<'_, '_, Self>) {}

    /// An event on a namespace this client is connected to.
    fn on_event(&mut self, nsp: &str, event: Event, io: &mut SocketIo<'_, '_, Self>);

    /// A message from another actor.
    fn on_push(&mut self, push: Self::Push, io: &mut SocketIo<'_, '_, Self>);

    /// The client answered an Engine.IO ping: it is alive.
    fn on_pong(&mut self, _io: &mut SocketIo<'_, '_, Self>) {}

    /// The server is shutting down and nothing more is read from the client: close once
    /// what the client asked for is done ([`SocketIo::close`]); by default at once.
    fn on_drain(&mut self, io: &mut SocketIo<'_, '_, Self>) {
        io.close();
    }

    /// The client left `nsp` (or the connection ended); `reason` is Socket.IO's string.
    fn on_disconnect(&mut self, _nsp: &str, _reason: &str) {}

    /// The Engine.IO session ended (after [`SocketHandler::on_disconnect`] for each namespace
    /// it had): let go of what the session held.
    fn on_close(&mut self) {}

    /// The client acknowledged the event the server sent with id `id` ([`SocketIo::ask`]),
    /// with `args` (binary ones as placeholders for `attachments`). By default ignored.
    fn on_ack(
        &mut self,
        _nsp: &str,
        _id: u64,
        _args: Vec<Value>,
        _attachments: Vec<Bytes>,
        _io: &mut SocketIo<'_, '_, Self>,
    ) {
    }
}

/// What a [`SocketHandler`] can do with its connection.
pub struct SocketIo<'a, 'e, A: SocketHandler> {
    pub(super) eio: &'a mut EngineIo<'e, SocketLayer<A>>,
    pub(super) state: &'a mut SocketState,
}

impl<A: SocketHandler> SocketIo<'_, '_, A> {
    /// The Engine.IO session id.
    pub fn engine_sid(&self) -> &str {
        self.eio.sid()
    }

    /// What the request that opened the session tells about the client.
    pub fn client(&self) -> &ClientInfo {
        self.eio.client()
    }

    /// Sends a packet (and its attachments).
    pub fn send(&mut self, packet: &Packet) {
        let (text, attachments) = packet.encode();
        if let Some(observer) = self.state.observer() {
            let bytes = text.len() + 1 + attachments.iter().map(Bytes::len).sum::<usize>();
            observer.traffic(false, bytes);
            if let PacketData::Event { event, args, .. }
            | PacketData::BinaryEvent { event, args, .. } = &packet.data
            {
                self.observe_sent(&packet.nsp, event, args);
            }
        }
        self.eio.send_text(&text);
        for attachment in attachments {
            self.eio.send_binary(attachment);
        }
    }

    /// Tells the tracking observer of an event sent on `nsp` (not the mounted namespace's).
    fn observe_sent(&self, nsp: &str, name: &str, args: &[Value]) {
        if let Some(tracker) = self.state.tracker().filter(|t| t.wants_events()) {
            if !self.state.is_mount(nsp) {
                if let Some(sid) = self.state.namespaces.get(nsp) {
                    tracker.event(Direction::Sent, nsp, sid, name, &arg_sizes(args));
                }
            }
        }
    }

    /// The socket is in `room` on `nsp` now (for the observer: the application's rooms).
    pub(crate) fn joined_room(&mut self, nsp: &str, room: &str) {
        if let Some(tracker) = self.state.tracker() {
            if let Some(sid) = self.state.namespaces.get(nsp) {
                tracker.room_joined(nsp, sid, room);
            }
        }
    }

    /// Emits `event` with `args` on `nsp`.
    pub fn emit(&mut self, nsp: &str, event: &str, args: Vec<Value>) {
        self.send(&Packet {
            nsp: nsp.to_string(),
            data: PacketData::Event {
                event: event.to_string(),
                args,
                id: None,
            },
        });
    }

    /// Sends `packet` (an event or a binary event, on a namespace of the application) asking
    /// the client to acknowledge it: its id, which [`SocketHandler::on_ack`] gets back.
    pub(crate) fn ask(&mut self, mut packet: Packet) -> u64 {
        let id = self.state.next_ack;
        self.state.next_ack += 1;
        match &mut packet.data {
            PacketData::Event { id: slot, .. } | PacketData::BinaryEvent { id: slot, .. } => {
                *slot = Some(id);
            }
            _ => {}
        }
        self.send(&packet);
        id
    }

    /// Disconnects the socket from `nsp` as the server (`41`, `server namespace disconnect`),
    /// once the current handler returns; with `close`, the whole Engine.IO session too.
    pub fn disconnect(&mut self, nsp: &str, close: bool) {
        self.state.disconnect = Some(Box::new((nsp.to_string(), close)));
    }

    /// Acknowledges the client's event `id` with `args`.
    pub fn ack(&mut self, nsp: &str, id: u64, args: Vec<Value>) {
        self.send(&Packet {
            nsp: nsp.to_string(),
            data: PacketData::Ack { args, id },
        });
    }

    /// The next `packets` sent may go past the session's buffer limit: a burst the client
    /// did not fall behind on (a replay of what it missed) does not make it a slow client.
    pub(crate) fn allow_burst(&mut self, packets: usize) {
        self.eio.allow_burst(packets);
    }

    /// Sends a text message already framed for Engine.IO (`42[...]` preceded by `4`),
    /// e.g. one encoded once for many recipients.
    pub(crate) fn send_framed(&mut self, frame: ByteString) {
        if let Some(observer) = self.state.observer() {
            observer.traffic(false, frame.len());
            if observer.tracks_sockets() && observer.wants_events() {
                if let Some((nsp, args)) = framed_event(&frame) {
                    if let Some(name) = args.first().and_then(Value::as_str) {
                        self.observe_sent(nsp, name, &args[1..]);
                    }
                }
            }
        }
        self.eio.send_framed(frame);
    }

    /// Closes the connection (the server is shutting down).
    pub fn close(&mut self) {
        self.eio
            .close(SessionClose::ServerClose("server shutting down"));
    }

    /// Stops taking packets from the client until [`SocketIo::resume_reading`] (see
    /// [`EngineIo::pause_reading`]): back-pressure for a client that sends faster than its
    /// requests are done.
    pub(crate) fn pause_reading(&mut self) {
        self.eio.pause_reading();
    }

    /// Takes packets from the client again.
    pub(crate) fn resume_reading(&mut self) {
        self.eio.resume_reading();
    }

    /// Runs `fut` and hands its output to `then` on this socket's task.
    pub fn spawn<Fut, F>(&mut self, fut: Fut, then: F)
    where
        Fut: Future + 'static,
        F: FnOnce(&mut A, &mut SocketIo<'_, '_, A>, Fut::Output) + 'static,
    {
        self.eio.spawn(fut, move |layer, eio, out| {
            let mut io = SocketIo {
                eio,
                state: &mut layer.state,
            };
            then(&mut layer.app, &mut io, out);
        });
    }

    /// A recipient for pushes to this socket.
    pub fn recipient(&self) -> Recipient<A::Push> {
        self.eio.recipient()
    }
}
