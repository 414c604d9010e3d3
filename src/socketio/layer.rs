//! The Socket.IO layer: namespaces, handshake, events and acknowledgements on top of an
//! Engine.IO session.
//!
//! [`SocketLayer`] is the [`EngineHandler`] of a session that carries Socket.IO. It decodes
//! packets (reassembling binary ones), enforces `connect_timeout`, keeps the namespaces this
//! client joined and hands CONNECTs and events to the application's [`SocketHandler`].
//!
//! Two kinds of bad input, two answers: a packet that breaks the protocol (undecodable, an
//! event payload that is not a non-empty array, a bad ack id, an event for a namespace the
//! client never joined) closes the transport; a well-formed event with bad arguments is the
//! application's business (it answers with an `error` event and the socket stays up).

use std::future::Future;
use std::time::Duration;

use actix::{Message, Recipient, SpawnHandle};
use bytes::Bytes;
use log::debug;
use serde_json::{json, Value};

use super::packet::{Decoded, Decoder, Packet, PacketData};
use crate::engineio::{EngineHandler, EngineIo, EngineMessage, SessionClose};
use crate::ids;

/// An event from the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event name.
    pub name: String,
    /// The arguments after the name (binary ones as `{"_placeholder":true,"num":N}`).
    pub args: Vec<Value>,
    /// The acknowledgement id, when the client asked for one.
    pub ack: Option<u64>,
    /// Binary attachments, indexed by the placeholders' `num`.
    pub attachments: Vec<Bytes>,
}

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
}

/// The namespaces a client is connected to, and its socket id in each: a short list.
#[derive(Default)]
struct Namespaces(Vec<(String, String)>);

impl Namespaces {
    fn contains_key(&self, nsp: &str) -> bool {
        self.0.iter().any(|(n, _)| n == nsp)
    }

    fn insert(&mut self, nsp: String, sid: String) {
        if !self.contains_key(&nsp) {
            self.0.push((nsp, sid));
        }
    }

    fn remove(&mut self, nsp: &str) -> Option<String> {
        let at = self.0.iter().position(|(n, _)| n == nsp)?;
        Some(self.0.swap_remove(at).1)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn drain(&mut self) -> std::vec::Drain<'_, (String, String)> {
        self.0.drain(..)
    }
}

/// Socket.IO state of one Engine.IO session.
struct SocketState {
    decoder: Decoder,
    /// Connected namespaces and their Socket.IO socket ids (a client has one or two).
    namespaces: Namespaces,
    connect_timeout: Duration,
    connect_timer: Option<SpawnHandle>,
    /// How long a binary packet's attachments may take, and the timer running for the
    /// packet being received.
    attachment_timeout: Duration,
    attachment_timer: Option<SpawnHandle>,
    /// A CONNECT the application answers later ([`SocketIo::defer_connect`]): its namespace.
    pending_connect: Option<String>,
    /// What the application asked for: answer later, and the `pid` of the answer.
    defer: bool,
    pid: Option<String>,
}

/// How long a binary packet's attachments may take by default.
pub const ATTACHMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The Socket.IO protocol as an Engine.IO handler.
pub struct SocketLayer<A: SocketHandler> {
    app: A,
    state: SocketState,
}

impl<A: SocketHandler> SocketLayer<A> {
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
            },
        }
    }

    /// Closes a client whose binary packet's attachments do not all arrive within
    /// `timeout` of its header (default [`ATTACHMENT_TIMEOUT`]).
    pub fn attachment_timeout(mut self, timeout: Duration) -> Self {
        self.state.attachment_timeout = timeout;
        self
    }

    fn handle_packet(&mut self, packet: Packet, eio: &mut EngineIo<'_, Self>) {
        let Packet { nsp, data } = packet;
        let mut io = SocketIo {
            eio,
            state: &mut self.state,
        };
        match data {
            PacketData::Connect(auth) => {
                if io.state.namespaces.contains_key(&nsp)
                    || io.state.pending_connect.as_deref() == Some(nsp.as_str())
                {
                    debug!(
                        "session {}: duplicate CONNECT to {nsp} ignored",
                        io.eio.sid()
                    );
                    return;
                }
                io.state.defer = false;
                io.state.pid = None;
                match self.app.on_connect(&nsp, auth.as_ref(), &mut io) {
                    Ok(()) if io.state.defer => {
                        io.state.defer = false;
                        io.state.pending_connect = Some(nsp);
                    }
                    Ok(()) => {
                        io.accept(nsp.clone());
                        self.app.on_connected(&nsp, &mut io);
                    }
                    Err(data) => io.send(&Packet {
                        nsp,
                        data: PacketData::ConnectError(data),
                    }),
                }
            }
            PacketData::Disconnect => {
                // The client left the namespace: no answer, the Engine.IO session goes on.
                if io.state.namespaces.remove(&nsp).is_some() {
                    self.app.on_disconnect(&nsp, "client namespace disconnect");
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
            PacketData::Ack { id, .. } | PacketData::BinaryAck { id, .. } => {
                // The server never asks for acknowledgements yet.
                debug!("session {}: unexpected ack {id} ignored", io.eio.sid());
            }
            PacketData::ConnectError(_) => io.eio.close(SessionClose::ProtocolError(
                "CONNECT_ERROR from a client".into(),
            )),
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
        let event = Event {
            name,
            args,
            ack,
            attachments,
        };
        app.on_event(&nsp, event, io);
    }
}

impl<A: SocketHandler> EngineHandler for SocketLayer<A> {
    type Push = A::Push;

    fn on_open(&mut self, io: &mut EngineIo<'_, Self>) {
        let timeout = self.state.connect_timeout;
        self.state.connect_timer = Some(io.run_later(timeout, |layer, io| {
            layer.state.connect_timer = None;
            if layer.state.namespaces.is_empty() {
                debug!("session {}: no Socket.IO CONNECT in time", io.sid());
                io.close(SessionClose::ServerClose("connect timeout"));
            }
        }));
    }

    fn on_message(&mut self, message: EngineMessage, io: &mut EngineIo<'_, Self>) {
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
            eio,
            state: &mut self.state,
        };
        self.app.on_push(push, &mut io);
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
        for (nsp, _) in self.state.namespaces.drain() {
            self.app.on_disconnect(&nsp, reason);
        }
        // A CONNECT still being answered: the application let go of what it took for it.
        if let Some(nsp) = self.state.pending_connect.take() {
            self.app.on_disconnect(&nsp, reason);
        }
    }
}

/// The reason string Socket.IO gives a disconnect caused by the Engine.IO session closing.
pub fn disconnect_reason(close: &SessionClose) -> &'static str {
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

/// What a [`SocketHandler`] can do with its connection.
pub struct SocketIo<'a, 'e, A: SocketHandler> {
    eio: &'a mut EngineIo<'e, SocketLayer<A>>,
    state: &'a mut SocketState,
}

impl<A: SocketHandler> SocketIo<'_, '_, A> {
    /// The Engine.IO session id.
    pub fn engine_sid(&self) -> &str {
        self.eio.sid()
    }

    /// What the request that opened the session tells about the client.
    pub fn client(&self) -> &crate::engineio::ClientInfo {
        self.eio.client()
    }

    /// Called in [`SocketHandler::on_connect`] before returning `Ok`: the CONNECT is answered
    /// later, with [`SocketIo::accept_connect`] or [`SocketIo::refuse_connect`] (e.g. once a
    /// database read is done). Until then the namespace is not connected; a repeated CONNECT
    /// is ignored and the connect timeout keeps running.
    pub fn defer_connect(&mut self) {
        self.state.defer = true;
    }

    /// Adds `pid` (connection state recovery's private session id) to the CONNECT answer
    /// being made: `{sid, pid}`.
    pub fn set_pid(&mut self, pid: String) {
        self.state.pid = Some(pid);
    }

    /// Accepts the deferred CONNECT to `nsp` (with the pid set by [`SocketIo::set_pid`], if
    /// any); `false` if there is none.
    pub fn accept_connect(&mut self, nsp: &str) -> bool {
        if self.state.pending_connect.as_deref() != Some(nsp) {
            return false;
        }
        self.state.pending_connect = None;
        self.accept(nsp.to_string());
        true
    }

    /// Refuses the deferred CONNECT to `nsp` with a CONNECT_ERROR carrying `data`.
    pub fn refuse_connect(&mut self, nsp: &str, data: Value) {
        if self.state.pending_connect.as_deref() != Some(nsp) {
            return;
        }
        self.state.pending_connect = None;
        self.send(&Packet {
            nsp: nsp.to_string(),
            data: PacketData::ConnectError(data),
        });
    }

    /// Answers a CONNECT to `nsp`: `{sid}` (and `pid` if set) and the namespace is connected.
    fn accept(&mut self, nsp: String) {
        let sid = ids::session_id();
        let packet = Packet {
            nsp: nsp.clone(),
            data: PacketData::Connect(Some(json!({ "sid": sid }))),
        };
        match self.state.pid.take() {
            // `{"sid":…,"pid":…}`, in the order socket.io writes them.
            Some(pid) => {
                let (text, _) = packet.encode();
                let body = text.strip_suffix('}').unwrap_or(&text);
                let pid = Value::from(pid).to_string();
                self.eio.send_text(&format!(r#"{body},"pid":{pid}}}"#));
            }
            None => self.send(&packet),
        }
        self.state.namespaces.insert(nsp, sid);
        if let Some(timer) = self.state.connect_timer.take() {
            self.eio.cancel(timer);
        }
        // Accepted by the application: no longer a stranger's session.
        self.eio.established();
    }

    /// Sends a packet (and its attachments).
    pub fn send(&mut self, packet: &Packet) {
        let (text, attachments) = packet.encode();
        self.eio.send_text(&text);
        for attachment in attachments {
            self.eio.send_binary(attachment);
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

    /// Acknowledges the client's event `id` with `args`.
    pub fn ack(&mut self, nsp: &str, id: u64, args: Vec<Value>) {
        self.send(&Packet {
            nsp: nsp.to_string(),
            data: PacketData::Ack { args, id },
        });
    }

    /// Sends a text message already framed for Engine.IO (`42[...]` preceded by `4`),
    /// e.g. one encoded once for many recipients.
    pub fn send_framed(&mut self, frame: bytestring::ByteString) {
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
    pub fn pause_reading(&mut self) {
        self.eio.pause_reading();
    }

    /// Takes packets from the client again.
    pub fn resume_reading(&mut self) {
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
