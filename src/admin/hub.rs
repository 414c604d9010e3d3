//! [`Hub`]: what the admin UI is told. It observes every socket of the server (a
//! [`SocketObserver`]): it counts sessions, sockets per namespace, packets and bytes (the
//! `aggregatedEvents` of `server_stats`), and in development mode keeps a bounded registry of
//! sockets (their address, User-Agent, transport and rooms, never their handshake's `auth`
//! or headers besides the User-Agent) and relays what happens to them, redacted: event
//! names and argument sizes, never contents.
//!
//! Everything for the admin sockets goes through one bounded broadcast channel of frames
//! encoded once; nothing is encoded while no admin socket listens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use bytestring::ByteString;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::protocol::ADMIN_NAMESPACE;
use crate::engineio::TransportKind;
use crate::socketio::packet::event_frame;
use crate::socketio::{Direction, SocketCommand, SocketControl, SocketInfo, SocketObserver};

/// Rooms kept per tracked socket at most (besides its own).
pub(crate) const MAX_ROOMS_PER_SOCKET: usize = 64;

/// Longest room name kept, in bytes.
pub(crate) const MAX_ROOM_NAME: usize = 256;

/// The Engine.IO numbers the hub cannot see: `(sessions, sessions on long-polling)`.
pub type EngineStats = Box<dyn Fn() -> (usize, usize) + Send + Sync>;

/// A socket as the development mode tracks it.
struct Tracked {
    nsp: String,
    sid: String,
    engine_sid: String,
    address: Option<String>,
    user_agent: Option<String>,
    transport: Option<TransportKind>,
    issued: chrono::DateTime<chrono::Utc>,
    rooms: Vec<String>,
    control: Option<SocketControl>,
}

impl Tracked {
    /// The admin UI's `SerializedSocket`, redacted: the only header is the User-Agent.
    fn serialize(&self) -> Value {
        let mut rooms = vec![self.sid.clone()];
        rooms.extend(self.rooms.iter().cloned());
        let transport = self.transport.map(TransportKind::as_str);
        let mut headers = serde_json::Map::new();
        if let Some(ua) = &self.user_agent {
            headers.insert("user-agent".into(), json!(ua));
        }
        json!({
            "id": self.sid,
            "clientId": self.engine_sid,
            "transport": transport,
            "nsp": self.nsp,
            "data": {},
            "handshake": {
                "address": self.address,
                "headers": headers,
                "query": { "EIO": "4", "transport": transport },
                "issued": self.issued.timestamp_millis(),
                "secure": false,
                "time": self.issued.to_rfc2822(),
                "url": crate::engineio::SOCKET_IO_PATH,
                "xdomain": false,
            },
            "rooms": rooms,
        })
    }
}

/// Counters of the current stats interval.
#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    packets_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// What the hub keeps under its lock.
#[derive(Default)]
struct State {
    /// Connected sockets per namespace.
    namespaces: HashMap<String, usize>,
    /// Session closes of the interval, by reason (Socket.IO's few strings).
    disconnections: HashMap<String, u64>,
    /// Tracked sockets by `nsp` + ` ` + `sid` (development mode).
    sockets: HashMap<String, Tracked>,
}

/// The admin UI's view of the server.
pub struct Hub {
    development: bool,
    max_sockets: usize,
    started: Instant,
    hostname: String,
    engine: EngineStats,
    counters: Counters,
    state: Mutex<State>,
    tx: broadcast::Sender<ByteString>,
}

fn key(nsp: &str, sid: &str) -> String {
    format!("{nsp} {sid}")
}

/// Now, as the admin UI's events carry it (a JSON date).
fn now() -> Value {
    json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// The machine's name, for `server_stats`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "courier".into())
}

impl Hub {
    pub fn new(development: bool, max_sockets: usize, buffer: usize, engine: EngineStats) -> Self {
        let (tx, _) = broadcast::channel(buffer.max(1));
        Hub {
            development,
            max_sockets,
            started: Instant::now(),
            hostname: hostname(),
            engine,
            counters: Counters::default(),
            state: Mutex::new(State::default()),
            tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the maps inconsistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The frames for the admin sockets, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ByteString> {
        self.tx.subscribe()
    }

    /// Whether an admin socket listens.
    fn listened(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Sends `event` to every admin socket (nothing is encoded while none listens).
    fn broadcast(&self, event: &str, args: impl FnOnce() -> Vec<Value>) {
        if !self.listened() {
            return;
        }
        let args: Vec<String> = args().iter().map(Value::to_string).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let frame = event_frame(ADMIN_NAMESPACE, event, &args);
        // No receiver left meanwhile: nothing to do.
        let _ = self.tx.send(frame.into());
    }

    /// `server_stats`; with `take`, the interval's counts are taken (and start again).
    pub fn server_stats(&self, take: bool) -> Value {
        let (clients, polling) = (self.engine)();
        let mut aggregated = Vec::new();
        let second = chrono::Utc::now().timestamp() * 1000;
        let state = &mut *self.lock();
        if take {
            let c = &self.counters;
            for (kind, counter) in [
                ("rawConnection", &c.connections),
                ("packetsIn", &c.packets_in),
                ("packetsOut", &c.packets_out),
                ("bytesIn", &c.bytes_in),
                ("bytesOut", &c.bytes_out),
            ] {
                let count = counter.swap(0, Ordering::Relaxed);
                if count > 0 {
                    aggregated.push(json!({ "timestamp": second, "type": kind, "count": count }));
                }
            }
            for (reason, count) in state.disconnections.drain() {
                aggregated.push(json!({
                    "timestamp": second,
                    "type": "rawDisconnection",
                    "subType": reason,
                    "count": count,
                }));
            }
        }
        let mut namespaces: Vec<Value> = state
            .namespaces
            .iter()
            .map(|(name, count)| json!({ "name": name, "socketsCount": count }))
            .collect();
        namespaces.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        json!({
            "serverId": self.hostname,
            "hostname": self.hostname,
            "pid": std::process::id(),
            "uptime": self.started.elapsed().as_secs_f64(),
            "clientsCount": clients,
            "pollingClientsCount": polling,
            "aggregatedEvents": aggregated,
            "namespaces": namespaces,
        })
    }

    /// Sends `server_stats` to every admin socket (the interval's counts are taken anyway).
    pub(crate) fn tick(&self) {
        let stats = self.server_stats(true);
        self.broadcast("server_stats", || vec![stats]);
    }

    /// `all_sockets`: the tracked sockets.
    pub fn all_sockets(&self) -> Value {
        Value::Array(
            self.lock()
                .sockets
                .values()
                .map(Tracked::serialize)
                .collect(),
        )
    }

    /// The controls of the tracked sockets on `nsp` that are `filter` or in the room
    /// `filter` (all of the namespace's without one).
    fn select(&self, nsp: &str, filter: Option<&str>) -> Vec<(String, SocketControl)> {
        self.lock()
            .sockets
            .values()
            .filter(|t| t.nsp == nsp)
            .filter(|t| filter.is_none_or(|f| t.sid == f || t.rooms.iter().any(|r| r == f)))
            .filter_map(|t| Some((t.sid.clone(), t.control.clone()?)))
            .collect()
    }

    /// Sends `command` to the sockets [`Hub::select`] picks; how many took it.
    pub fn command(&self, nsp: &str, filter: Option<&str>, command: &SocketCommand) -> usize {
        self.select(nsp, filter)
            .into_iter()
            .filter(|(_, control)| control.send(command.clone()))
            .count()
    }

    /// The sockets on `nsp` (`filter` as in [`Hub::select`]) join (`join`) or leave `room`,
    /// as the admin sees them (rooms the admin emits to).
    pub(crate) fn join_or_leave(&self, nsp: &str, filter: Option<&str>, room: &str, join: bool) {
        if room.is_empty() || room.len() > MAX_ROOM_NAME {
            return;
        }
        let mut changed = Vec::new();
        {
            let mut state = self.lock();
            for t in state.sockets.values_mut().filter(|t| t.nsp == nsp) {
                let picked = filter.is_none_or(|f| t.sid == f || t.rooms.iter().any(|r| r == f));
                if !picked || room == t.sid {
                    continue;
                }
                let present = t.rooms.iter().position(|r| r == room);
                match (join, present) {
                    (true, None) if t.rooms.len() < MAX_ROOMS_PER_SOCKET => {
                        t.rooms.push(room.to_string());
                        changed.push(t.sid.clone());
                    }
                    (false, Some(at)) => {
                        t.rooms.remove(at);
                        changed.push(t.sid.clone());
                    }
                    _ => {}
                }
            }
        }
        let event = if join { "room_joined" } else { "room_left" };
        for sid in changed {
            self.broadcast(event, || vec![json!(nsp), json!(room), json!(sid), now()]);
        }
    }
}

impl SocketObserver for Hub {
    fn session_opened(&self) {
        self.counters.connections.fetch_add(1, Ordering::Relaxed);
    }

    fn session_closed(&self, reason: &str) {
        *self
            .lock()
            .disconnections
            .entry(reason.to_string())
            .or_default() += 1;
    }

    fn traffic(&self, incoming: bool, bytes: usize) {
        let c = &self.counters;
        let (packets, total) = if incoming {
            (&c.packets_in, &c.bytes_in)
        } else {
            (&c.packets_out, &c.bytes_out)
        };
        packets.fetch_add(1, Ordering::Relaxed);
        total.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn tracks_sockets(&self) -> bool {
        self.development
    }

    fn wants_events(&self) -> bool {
        self.development && self.listened()
    }

    fn connected(&self, socket: &SocketInfo<'_>, control: Option<SocketControl>) {
        let tracked = {
            let mut state = self.lock();
            *state.namespaces.entry(socket.nsp.to_string()).or_default() += 1;
            if !self.development || state.sockets.len() >= self.max_sockets {
                return;
            }
            let tracked = Tracked {
                nsp: socket.nsp.to_string(),
                sid: socket.sid.to_string(),
                engine_sid: socket.engine_sid.to_string(),
                address: socket.client.address.map(|a| a.to_string()),
                user_agent: socket.client.user_agent.clone(),
                transport: socket.transport,
                issued: chrono::Utc::now(),
                rooms: Vec::new(),
                control,
            };
            let serialized = self.listened().then(|| tracked.serialize());
            state.sockets.insert(key(socket.nsp, socket.sid), tracked);
            serialized
        };
        if let Some(serialized) = tracked {
            self.broadcast("socket_connected", || vec![serialized, now()]);
        }
    }

    fn disconnected(&self, nsp: &str, sid: &str, reason: &str) {
        let tracked = {
            let mut state = self.lock();
            if let Some(count) = state.namespaces.get_mut(nsp) {
                *count = count.saturating_sub(1);
            }
            state.sockets.remove(&key(nsp, sid)).is_some()
        };
        if tracked {
            self.broadcast("socket_disconnected", || {
                vec![json!(nsp), json!(sid), json!(reason), now()]
            });
        }
    }

    fn transport_changed(&self, nsp: &str, sid: &str, transport: TransportKind) {
        let tracked = match self.lock().sockets.get_mut(&key(nsp, sid)) {
            Some(t) => {
                t.transport = Some(transport);
                true
            }
            None => false,
        };
        if tracked {
            self.broadcast("socket_updated", || {
                vec![json!({ "id": sid, "nsp": nsp, "transport": transport.as_str() })]
            });
        }
    }

    fn room_joined(&self, nsp: &str, sid: &str, room: &str) {
        if room.is_empty() || room.len() > MAX_ROOM_NAME {
            return;
        }
        let joined = {
            let mut state = self.lock();
            match state.sockets.get_mut(&key(nsp, sid)) {
                Some(t)
                    if t.rooms.len() < MAX_ROOMS_PER_SOCKET
                        && !t.rooms.iter().any(|r| r == room) =>
                {
                    t.rooms.push(room.to_string());
                    true
                }
                _ => false,
            }
        };
        if joined {
            self.broadcast("room_joined", || {
                vec![json!(nsp), json!(room), json!(sid), now()]
            });
        }
    }

    fn event(&self, dir: Direction, nsp: &str, sid: &str, name: &str, arg_sizes: &[usize]) {
        let event = match dir {
            Direction::Received => "event_received",
            Direction::Sent => "event_sent",
        };
        self.broadcast(event, || {
            // The name, then each argument's size: never its contents.
            let mut args = vec![json!(name)];
            args.extend(
                arg_sizes
                    .iter()
                    .map(|n| json!(format!("<redacted: {n} bytes>"))),
            );
            vec![json!(nsp), json!(sid), Value::Array(args), now()]
        });
    }
}
