//! CONNECT: a client joins a namespace. The application answers at once or later
//! ([`SocketIo::defer_connect`], [`SocketIo::accept_connect`]), with the socket id it may
//! have reserved and the recovery `pid`; a session with no namespace connected closes after
//! `connect_timeout`.

use log::debug;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::handler::{SocketHandler, SocketIo};
use super::layer::SocketLayer;
use super::mount::ORIGIN_NOT_ALLOWED;
use super::observer::{SocketControl, SocketInfo, CONTROL_QUEUE};
use super::packet::{Packet, PacketData};
use super::state::SocketState;
use crate::engineio::{EngineIo, SessionClose};
use crate::ids;

impl<A: SocketHandler> SocketLayer<A> {
    /// Closes the session if no namespace is connected `connect_timeout` from now: a session
    /// that never connected, or whose last namespace was left (a signed-in client must not
    /// hold an Engine.IO session with nothing on it, see `engineio.max_sessions`).
    pub(super) fn arm_connect_timer(state: &mut SocketState, io: &mut EngineIo<'_, Self>) {
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

    /// A CONNECT from the client: for the mounted namespace, refused (a session from a
    /// restricted origin), or for the application, which accepts it now or later
    /// ([`SocketIo::defer_connect`]) or refuses it.
    pub(super) fn connect(
        app: &mut A,
        nsp: String,
        auth: Option<Value>,
        io: &mut SocketIo<'_, '_, A>,
    ) {
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
        match app.on_connect(&nsp, auth.as_ref(), io) {
            Ok(()) if io.state.defer => {
                io.state.defer = false;
                io.state.pending_connect = Some(nsp);
            }
            Ok(()) => {
                io.accept(nsp.clone());
                app.on_connected(&nsp, io);
            }
            Err(data) => io.send(&Packet {
                nsp,
                data: PacketData::ConnectError(data),
            }),
        }
    }
}

impl<A: SocketHandler> SocketIo<'_, '_, A> {
    /// Called in [`SocketHandler::on_connect`] before returning `Ok`: the CONNECT is answered
    /// later, with [`SocketIo::accept_connect`] or [`SocketIo::refuse_connect`] (e.g. once a
    /// database read is done). Until then the namespace is not connected; a repeated CONNECT
    /// is ignored and the connect timeout keeps running.
    pub(crate) fn defer_connect(&mut self) {
        self.state.defer = true;
    }

    /// With no namespace connected any more, the session closes after `connect_timeout`
    /// unless a namespace is connected again meanwhile.
    pub(super) fn unused_closes_later(&mut self) {
        if self.state.namespaces.is_empty() {
            SocketLayer::<A>::arm_connect_timer(self.state, self.eio);
        }
    }

    /// Adds `pid` (connection state recovery's private session id) to the CONNECT answer
    /// being made: `{sid, pid}`.
    pub(crate) fn set_pid(&mut self, pid: String) {
        self.state.pid = Some(pid);
    }

    /// Accepts the deferred CONNECT to `nsp` (with the pid set by [`SocketIo::set_pid`], if
    /// any); `false` if there is none.
    pub(crate) fn accept_connect(&mut self, nsp: &str) -> bool {
        if self.state.pending_connect.as_deref() != Some(nsp) {
            return false;
        }
        self.state.pending_connect = None;
        self.accept(nsp.to_string());
        true
    }

    /// Refuses the deferred CONNECT to `nsp` with a CONNECT_ERROR carrying `data`.
    pub(crate) fn refuse_connect(&mut self, nsp: &str, data: Value) {
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
    pub(super) fn accept(&mut self, nsp: String) {
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

    /// The socket's id on `nsp` (what the client sees as `socket.id`): once connected there,
    /// or, while its CONNECT is being answered, the id it will have.
    pub(crate) fn reserve_socket_id(&mut self, nsp: &str) -> String {
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
}
