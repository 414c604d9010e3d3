//! What the client sends, through the Socket.IO layer: [`SocketLayer`] as the
//! [`EngineHandler`] of its session. It decodes packets (reassembling binary ones, whose
//! attachments must arrive within `attachment_timeout`), keeps the namespaces the client
//! joined and hands events, acknowledgements and disconnects to the application (or to the
//! mounted namespace), and tells it when the session closes.
//!
//! Two kinds of bad input, two answers: a packet that breaks the protocol (undecodable, an
//! event payload that is not a non-empty array, a bad ack id, an event for a namespace the
//! client never joined) closes the transport; a well-formed event with bad arguments is the
//! application's business (it answers with an `error` event and the socket stays up).

use bytes::Bytes;
use log::debug;
use serde_json::Value;

use super::event::Event;
use super::handler::{SocketHandler, SocketIo};
use super::layer::SocketLayer;
use super::observer::{arg_sizes, Direction, SocketCommand};
use super::packet::{Decoded, Packet, PacketData};
use super::state::SocketState;
use crate::engineio::{EngineHandler, EngineIo, EngineMessage, SessionClose};

impl<A: SocketHandler> SocketLayer<A> {
    /// A packet from the client.
    fn handle_packet(&mut self, packet: Packet, eio: &mut EngineIo<'_, Self>) {
        let Packet { nsp, data } = packet;
        let data = match data {
            PacketData::Ack { id, args } => return self.acked(nsp, id, args, Vec::new(), eio),
            PacketData::BinaryAck {
                id,
                args,
                attachments,
            } => return self.acked(nsp, id, args, attachments, eio),
            other => other,
        };
        let mut io = SocketIo {
            eio,
            state: &mut self.state,
        };
        match data {
            PacketData::Connect(auth) => Self::connect(&mut self.app, nsp, auth, &mut io),
            PacketData::Disconnect => {
                // The client left the namespace: no answer, the Engine.IO session goes on.
                if let Some(sid) = io.state.namespaces.remove(&nsp) {
                    io.state
                        .forget(&mut self.app, &nsp, &sid, "client namespace disconnect");
                    io.unused_closes_later();
                }
            }
            PacketData::Event {
                event, args, id, ..
            } => Self::dispatch(&mut self.app, nsp, event, args, id, Vec::new(), &mut io),
            PacketData::BinaryEvent {
                event,
                args,
                id,
                attachments,
            } => Self::dispatch(&mut self.app, nsp, event, args, id, attachments, &mut io),
            // Handled above.
            PacketData::Ack { .. } | PacketData::BinaryAck { .. } => {}
            PacketData::ConnectError(_) => io.eio.close(SessionClose::ProtocolError(
                "CONNECT_ERROR from a client".into(),
            )),
        }
    }

    /// An acknowledgement from the client: for the application, on its namespaces.
    fn acked(
        &mut self,
        nsp: String,
        id: u64,
        args: Vec<Value>,
        attachments: Vec<Bytes>,
        eio: &mut EngineIo<'_, Self>,
    ) {
        if self.state.is_mount(&nsp) || self.state.namespaces.get(&nsp).is_none() {
            return debug!("session {}: ack {id} on {nsp} ignored", eio.sid());
        }
        let mut io = SocketIo {
            eio: &mut *eio,
            state: &mut self.state,
        };
        self.app.on_ack(&nsp, id, args, attachments, &mut io);
        self.after_app(eio);
    }

    /// Carries out what the application asked for that needs the layer itself.
    pub(super) fn after_app(&mut self, eio: &mut EngineIo<'_, Self>) {
        if let Some(request) = self.state.disconnect.take() {
            let (nsp, close) = *request;
            self.command(&nsp, SocketCommand::Disconnect { close }, eio);
        }
    }

    fn dispatch(
        app: &mut A,
        nsp: String,
        name: String,
        args: Vec<Value>,
        ack: Option<u64>,
        attachments: Vec<Bytes>,
        io: &mut SocketIo<'_, '_, A>,
    ) {
        if !io.state.namespaces.contains_key(&nsp) {
            io.eio.close(SessionClose::ProtocolError(format!(
                "event for namespace {nsp} before CONNECT"
            )));
            return;
        }
        if let Some(tracker) = io.state.tracker().filter(|t| t.wants_events()) {
            if !io.state.is_mount(&nsp) {
                let sid = io.state.namespaces.get(&nsp).unwrap_or_default();
                tracker.event(Direction::Received, &nsp, sid, &name, &arg_sizes(&args));
            }
        }
        let event = Event {
            name,
            args,
            ack,
            attachments,
        };
        if io.state.is_mount(&nsp) {
            io.run_mounted(|socket, io| socket.on_event(event, io));
        } else {
            app.on_event(&nsp, event, io);
        }
    }
}

impl SocketState {
    /// The socket left `nsp` (already out of `namespaces`): the application and the observer
    /// are told.
    pub(super) fn forget<A: SocketHandler>(
        &mut self,
        app: &mut A,
        nsp: &str,
        sid: &str,
        reason: &str,
    ) {
        if self.is_mount(nsp) {
            if let Some(mut socket) = self.mounted.take().and_then(|m| m.socket) {
                socket.on_disconnect(reason);
            }
        } else {
            app.on_disconnect(nsp, reason);
        }
        if let Some(observer) = self.observer() {
            observer.disconnected(nsp, sid, reason);
        }
    }
}

impl<A: SocketHandler> EngineHandler for SocketLayer<A> {
    type Push = A::Push;

    fn on_open(&mut self, io: &mut EngineIo<'_, Self>) {
        if let Some(observer) = self.state.observer() {
            observer.session_opened();
        }
        Self::arm_connect_timer(&mut self.state, io);
    }

    fn on_message(&mut self, message: EngineMessage, io: &mut EngineIo<'_, Self>) {
        if let Some(ext) = &self.state.ext {
            if let Some(observer) = &ext.observer {
                let bytes = match &message {
                    EngineMessage::Text(text) => text.len(),
                    EngineMessage::Binary(data) => data.len(),
                };
                observer.traffic(true, bytes);
            }
        }
        let decoded = match message {
            EngineMessage::Text(text) => self.state.decoder.decode_text(&text),
            EngineMessage::Binary(data) => self.state.decoder.decode_binary(data),
        };
        if let Some(timer) = self.state.attachment_timer.take() {
            // The binary packet being received got its next message (or failed).
            io.cancel(timer);
        }
        match decoded {
            Ok(Decoded::Packet(packet)) => self.handle_packet(packet, io),
            Ok(Decoded::Incomplete) if self.state.namespaces.is_empty() => {
                // Attachments are held until the packet is complete: only for a client
                // that connected, not for anybody who opened a session.
                io.close(SessionClose::ProtocolError(
                    "a binary packet before CONNECT".into(),
                ));
            }
            Ok(Decoded::Incomplete) => {
                let timeout = self.state.attachment_timeout;
                self.state.attachment_timer = Some(io.run_later(timeout, |layer, io| {
                    layer.state.attachment_timer = None;
                    io.close(SessionClose::ProtocolError(
                        "a binary packet's attachments took too long".into(),
                    ));
                }));
            }
            Err(e) => {
                debug!("session {}: bad Socket.IO packet: {e}", io.sid());
                io.close(SessionClose::ProtocolError(e.to_string()));
            }
        }
    }

    fn on_push(&mut self, push: Self::Push, eio: &mut EngineIo<'_, Self>) {
        let mut io = SocketIo {
            eio: &mut *eio,
            state: &mut self.state,
        };
        self.app.on_push(push, &mut io);
        self.after_app(eio);
    }

    fn on_upgrade(&mut self, eio: &mut EngineIo<'_, Self>) {
        if let (Some(tracker), Some(transport)) = (self.state.tracker(), eio.transport()) {
            for (nsp, sid) in &self.state.namespaces.0 {
                tracker.transport_changed(nsp, sid, transport);
            }
        }
    }

    fn on_pong(&mut self, eio: &mut EngineIo<'_, Self>) {
        let mut io = SocketIo {
            eio,
            state: &mut self.state,
        };
        self.app.on_pong(&mut io);
    }

    fn on_drain(&mut self, eio: &mut EngineIo<'_, Self>) {
        let mut io = SocketIo {
            eio,
            state: &mut self.state,
        };
        self.app.on_drain(&mut io);
    }

    fn on_close(&mut self, reason: &SessionClose) {
        let reason = disconnect_reason(reason);
        let namespaces: Vec<(String, String)> = self.state.namespaces.drain().collect();
        for (nsp, sid) in namespaces {
            self.state.forget(&mut self.app, &nsp, &sid, reason);
        }
        self.state.mounted = None;
        if let Some(observer) = self.state.observer() {
            observer.session_closed(reason);
        }
        // A CONNECT still being answered: the application let go of what it took for it.
        if let Some(nsp) = self.state.pending_connect.take() {
            self.app.on_disconnect(&nsp, reason);
        }
        self.app.on_close();
    }
}

/// The reason string Socket.IO gives a disconnect caused by the Engine.IO session closing.
pub(crate) fn disconnect_reason(close: &SessionClose) -> &'static str {
    match close {
        SessionClose::TransportClose => "transport close",
        SessionClose::TransportError(_) | SessionClose::TooLarge | SessionClose::SlowClient => {
            "transport error"
        }
        SessionClose::PingTimeout => "ping timeout",
        SessionClose::ProtocolError(_) => "parse error",
        SessionClose::ServerClose(_) => "server shutting down",
    }
}
