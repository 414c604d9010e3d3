//! The [`SocketObserver`], told of every socket of the server (connections, rooms, events,
//! traffic), which may send commands back to a socket ([`SocketControl`]): the admin UI's
//! view of the server. It knows nothing of the application: a socket is a namespace, an
//! id, its Engine.IO session and its client.

use serde_json::Value;
use tokio::sync::mpsc;

use crate::engineio::client::ClientInfo;
use crate::engineio::transport::TransportKind;

/// A socket as an observer sees it.
#[derive(Debug, Clone, Copy)]
pub struct SocketInfo<'a> {
    pub nsp: &'a str,
    /// The socket's id in its namespace.
    pub sid: &'a str,
    /// The Engine.IO session's id (the "client").
    pub engine_sid: &'a str,
    pub client: &'a ClientInfo,
    pub transport: Option<TransportKind>,
}

/// Which way an event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client.
    Received,
    /// To the client.
    Sent,
}

/// Told of every socket of the server. Called on the sessions' threads: keep it short.
pub trait SocketObserver: Send + Sync + 'static {
    /// An Engine.IO session opened.
    fn session_opened(&self) {}
    /// An Engine.IO session closed (`reason`: Socket.IO's disconnect reason).
    fn session_closed(&self, _reason: &str) {}
    /// A message of `bytes` came in (`incoming`) or went out.
    fn traffic(&self, _incoming: bool, _bytes: usize) {}
    /// Whether sockets are to be told one by one (connections with a [`SocketControl`],
    /// rooms, events); otherwise only counted.
    fn tracks_sockets(&self) -> bool;
    /// Whether events are to be told now ([`SocketObserver::event`]): reading a sent frame's
    /// name costs a parse, skipped while nobody would see it.
    fn wants_events(&self) -> bool {
        self.tracks_sockets()
    }
    /// A socket connected; `control` reaches it while [`SocketObserver::tracks_sockets`].
    fn connected(&self, socket: &SocketInfo<'_>, control: Option<SocketControl>);
    /// A socket left (`reason`: Socket.IO's string).
    fn disconnected(&self, nsp: &str, sid: &str, reason: &str);
    /// A socket's session moved to another transport.
    fn transport_changed(&self, _nsp: &str, _sid: &str, _transport: TransportKind) {}
    /// A socket is in `room` now (the application's notion of a room).
    fn room_joined(&self, _nsp: &str, _sid: &str, _room: &str) {}
    /// An event `name` whose arguments take `arg_sizes` bytes (as JSON) each.
    fn event(&self, _dir: Direction, _nsp: &str, _sid: &str, _name: &str, _arg_sizes: &[usize]) {}
}

/// What can be done to a socket from outside.
#[derive(Debug, Clone, PartialEq)]
pub enum SocketCommand {
    /// Emits the event `name` with `args` to the socket.
    Emit { name: String, args: Vec<Value> },
    /// Disconnects the socket (`server namespace disconnect`); with `close`, its whole
    /// Engine.IO session too.
    Disconnect { close: bool },
}

/// Commands queued per socket at most; more are dropped.
pub(crate) const CONTROL_QUEUE: usize = 16;

/// Sends commands to one socket (dropped when the socket is gone or its queue is full).
#[derive(Debug, Clone)]
pub struct SocketControl(pub(super) mpsc::Sender<SocketCommand>);

impl SocketControl {
    /// Queues `command`; `false` if the socket is gone or too many commands wait.
    pub fn send(&self, command: SocketCommand) -> bool {
        self.0.try_send(command).is_ok()
    }
}

/// The namespace and the arguments (the name first) of an Engine.IO frame carrying a
/// Socket.IO event (`42[…]`, `42/nsp,[…]`).
pub(super) fn framed_event(frame: &str) -> Option<(&str, Vec<Value>)> {
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
pub(super) fn arg_sizes(args: &[Value]) -> Vec<usize> {
    args.iter().map(|a| a.to_string().len()).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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
