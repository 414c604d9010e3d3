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
use std::sync::Arc;
use std::time::Duration;

use actix::{Message, Recipient, SpawnHandle};
use bytes::Bytes;
use log::debug;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::mount::{
    AnyFuture, AnyThen, Direction, ErasedIo, Mount, Namespace, NamespaceIo, SocketCommand,
    SocketControl, SocketInfo, SocketObserver, CONTROL_QUEUE, ORIGIN_NOT_ALLOWED,
};
use super::packet::{Decoded, Decoder, Packet, PacketData};
use crate::engineio::{ClientInfo, EngineHandler, EngineIo, EngineMessage, SessionClose};
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

    fn get(&self, nsp: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == nsp)
            .map(|(_, sid)| sid.as_str())
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
    /// The mounted namespace and the observer, if any (one pointer: usually neither).
    ext: Option<Arc<LayerExt>>,
    /// This session's socket on the mounted namespace, from its CONNECT on.
    mounted: Option<Box<MountedSocket>>,
    /// The id of the next event the server asks the client to acknowledge.
    next_ack: u64,
    /// A disconnect the application asked for ([`SocketIo::disconnect`]): the namespace,
    /// and whether the whole session closes.
    disconnect: Option<Box<(String, bool)>>,
    /// The socket id a CONNECT being answered will have ([`SocketIo::reserve_socket_id`]):
    /// its namespace and the id.
    reserved: Option<Box<(String, String)>>,
}

/// What the socket layer carries besides the main handler: another application on a
/// namespace of its own, and an observer of every socket (see [`super::mount`]).
#[derive(Default)]
pub struct LayerExt {
    pub mount: Option<Arc<dyn Mount>>,
    pub observer: Option<Arc<dyn SocketObserver>>,
}

/// A session's socket on the mounted namespace.
struct MountedSocket {
    /// `None` while it is being called.
    socket: Option<Box<dyn Namespace>>,
    /// Its CONNECT waits for an answer.
    pending: bool,
}

impl SocketState {
    fn is_mount(&self, nsp: &str) -> bool {
        self.ext
            .as_ref()
            .and_then(|e| e.mount.as_ref())
            .is_some_and(|m| m.namespace() == nsp)
    }

    fn mount_name(&self) -> Option<String> {
        Some(self.ext.as_ref()?.mount.as_ref()?.namespace().to_string())
    }

    fn observer(&self) -> Option<Arc<dyn SocketObserver>> {
        self.ext.as_ref()?.observer.clone()
    }

    /// The observer, if it tracks sockets one by one.
    fn tracker(&self) -> Option<&Arc<dyn SocketObserver>> {
        self.ext
            .as_ref()?
            .observer
            .as_ref()
            .filter(|o| o.tracks_sockets())
    }

    /// The socket left `nsp` (already out of `namespaces`): the application and the observer
    /// are told.
    fn forget<A: SocketHandler>(&mut self, app: &mut A, nsp: &str, sid: &str, reason: &str) {
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

/// The namespace and the arguments (the name first) of an Engine.IO frame carrying a
/// Socket.IO event (`42[…]`, `42/nsp,[…]`).
fn framed_event(frame: &str) -> Option<(&str, Vec<Value>)> {
    let rest = frame.strip_prefix("42")?;
    let (nsp, rest) = match rest.strip_prefix('/') {
        Some(_) => rest.split_once(',')?,
        None => ("/", rest),
    };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let args: Vec<Value> = serde_json::from_str(rest).ok()?;
    Some((nsp, args))
}

/// The size of each argument as JSON, in bytes.
fn arg_sizes(args: &[Value]) -> Vec<usize> {
    args.iter().map(|a| a.to_string().len()).collect()
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
    pub fn attachment_timeout(mut self, timeout: Duration) -> Self {
        self.state.attachment_timeout = timeout;
        self
    }

    /// Closes the session if no namespace is connected `connect_timeout` from now: a session
    /// that never connected, or whose last namespace was left (a signed-in client must not
    /// hold an Engine.IO session with nothing on it, see `engineio.max_sessions`).
    fn arm_connect_timer(state: &mut SocketState, io: &mut EngineIo<'_, Self>) {
        if state.connect_timer.is_some() {
            return;
        }
        state.connect_timer = Some(io.run_later(state.connect_timeout, |layer, io| {
            layer.state.connect_timer = None;
            if layer.state.namespaces.is_empty() {
                debug!(
                    "session {}: no Socket.IO namespace connected in time",
                    io.sid()
                );
                io.close(SessionClose::ServerClose("connect timeout"));
            }
        }));
    }

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
            PacketData::Connect(auth) => {
                let mount = io.state.is_mount(&nsp);
                if io.state.namespaces.contains_key(&nsp)
                    || io.state.pending_connect.as_deref() == Some(nsp.as_str())
                    || (mount && io.state.mounted.is_some())
                {
                    debug!(
                        "session {}: duplicate CONNECT to {nsp} ignored",
                        io.eio.sid()
                    );
                    return;
                }
                if mount {
                    io.connect_mounted(auth.as_ref());
                    return;
                }
                if io.eio.client().restricted {
                    // A session from an origin allowed for the mounted namespace only.
                    debug!(
                        "session {}: CONNECT to {nsp} from a restricted origin refused",
                        io.eio.sid()
                    );
                    io.send(&Packet {
                        nsp,
                        data: PacketData::ConnectError(json!({ "message": ORIGIN_NOT_ALLOWED })),
                    });
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
    fn after_app(&mut self, eio: &mut EngineIo<'_, Self>) {
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

    /// A command from the observer for the socket `sid` on `nsp`.
    fn command(&mut self, nsp: &str, command: SocketCommand, eio: &mut EngineIo<'_, Self>) {
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
    fn control_loop(
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

    /// With no namespace connected any more, the session closes after `connect_timeout`
    /// unless a namespace is connected again meanwhile.
    fn unused_closes_later(&mut self) {
        if self.state.namespaces.is_empty() {
            SocketLayer::<A>::arm_connect_timer(self.state, self.eio);
        }
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
        let sid = match self.state.reserved.take() {
            Some(reserved) if reserved.0 == nsp => reserved.1,
            other => {
                self.state.reserved = other;
                ids::session_id()
            }
        };
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
        self.state.namespaces.insert(nsp.clone(), sid.clone());
        if let Some(timer) = self.state.connect_timer.take() {
            self.eio.cancel(timer);
        }
        // Accepted by the application: no longer a stranger's session.
        self.eio.established();
        if let Some(observer) = self.state.observer() {
            let control = observer.tracks_sockets().then(|| {
                let (tx, rx) = mpsc::channel(CONTROL_QUEUE);
                SocketLayer::control_loop(self.eio, nsp.clone(), sid.clone(), rx);
                SocketControl(tx)
            });
            let info = SocketInfo {
                nsp: &nsp,
                sid: &sid,
                engine_sid: self.eio.sid(),
                client: self.eio.client(),
                transport: self.eio.transport(),
            };
            observer.connected(&info, control);
        }
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
    pub fn joined_room(&mut self, nsp: &str, room: &str) {
        if let Some(tracker) = self.state.tracker() {
            if let Some(sid) = self.state.namespaces.get(nsp) {
                tracker.room_joined(nsp, sid, room);
            }
        }
    }

    /// A CONNECT to the mounted namespace: a new socket there, which answers it.
    fn connect_mounted(&mut self, auth: Option<&Value>) {
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
    fn run_mounted(&mut self, f: impl FnOnce(&mut dyn Namespace, &mut NamespaceIo<'_>)) {
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

    /// The socket's id on `nsp` (what the client sees as `socket.id`): once connected there,
    /// or, while its CONNECT is being answered, the id it will have.
    pub fn reserve_socket_id(&mut self, nsp: &str) -> String {
        if let Some(sid) = self.state.namespaces.get(nsp) {
            return sid.to_string();
        }
        match &self.state.reserved {
            Some(reserved) if reserved.0 == nsp => reserved.1.clone(),
            _ => {
                let sid = ids::session_id();
                self.state.reserved = Some(Box::new((nsp.to_string(), sid.clone())));
                sid
            }
        }
    }

    /// Sends `packet` (an event or a binary event, on a namespace of the application) asking
    /// the client to acknowledge it: its id, which [`SocketHandler::on_ack`] gets back.
    pub fn ask(&mut self, mut packet: Packet) -> u64 {
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

    /// Sends a text message already framed for Engine.IO (`42[...]` preceded by `4`),
    /// e.g. one encoded once for many recipients.
    pub fn send_framed(&mut self, frame: bytestring::ByteString) {
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

    fn send_framed(&mut self, frame: bytestring::ByteString) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framed_events_are_read_back() {
        let (nsp, args) = framed_event(r#"42["message",{"a":1}]"#).unwrap();
        assert_eq!(nsp, "/");
        assert_eq!(args, vec![json!("message"), json!({"a": 1})]);
        let (nsp, args) = framed_event(r#"42/admin,12["x"]"#).unwrap();
        assert_eq!(nsp, "/admin");
        assert_eq!(args, vec![json!("x")]);
        assert!(framed_event(r#"43["x"]"#).is_none());
        assert!(framed_event(r#"42/admin"#).is_none());
        assert!(framed_event(r#"42[bad"#).is_none());
        assert_eq!(arg_sizes(&[json!("abc"), json!({"a":1})]), vec![5, 7]);
    }
}
