//! [`AdminSocket`]: one admin UI connected to `/admin`.
//!
//! The CONNECT's `auth` is `{sessionId}` (a live login session: accepted at once) or
//! `{username, password}`: the password is checked against `admin.password_hash` with bcrypt
//! on the blocking pool, not on the session's thread, at most `admin.login_rate` times per
//! client address; a bad login gets `connect_error` "invalid credentials". Accepted, the
//! socket gets `session` (after a password), `config`, `server_stats`, `all_sockets` (in
//! development mode), then whatever the hub broadcasts.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytestring::ByteString;
use log::{debug, info, warn};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::app::Admin;
use super::protocol::{INVALID_CREDENTIALS, TOO_MANY_ADMINS, TOO_MANY_ATTEMPTS};
use crate::socketio::{Event, Namespace, NamespaceIo, SocketCommand};

/// Tells an admin socket's loops apart from those of the one before it on the session.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// A place among `max` counted by a counter (admin sockets, password checks), given back
/// when dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(counter: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Slot(counter.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One admin UI's socket.
pub(crate) struct AdminSocket {
    admin: Arc<Admin>,
    epoch: u64,
    slot: Option<Slot>,
}

fn refusal(message: &str) -> Value {
    json!({ "message": message })
}

impl AdminSocket {
    pub fn new(admin: Arc<Admin>) -> Self {
        AdminSocket {
            admin,
            epoch: EPOCH.fetch_add(1, Ordering::Relaxed),
            slot: None,
        }
    }

    /// Takes a place among `admin.max_connections`.
    fn take_slot(&mut self) -> bool {
        self.slot = Slot::take(&self.admin.connections, self.admin.max_connections);
        self.slot.is_some()
    }

    /// Logged in: accepts the CONNECT and sends what the UI starts with.
    fn accept(&mut self, session: Option<String>, io: &mut NamespaceIo<'_>) {
        if !self.take_slot() {
            info!(
                "admin: a login from {:?} refused: admin.max_connections reached",
                io.client().address
            );
            io.refuse(refusal(TOO_MANY_ADMINS));
            return;
        }
        // Listening before anything is read, so that no event falls in between.
        let rx = self.admin.hub.subscribe();
        io.accept();
        if let Some(session) = session {
            io.emit("session", vec![json!(session)]);
        }
        io.emit(
            "config",
            vec![json!({ "supportedFeatures": self.admin.features() })],
        );
        io.emit("server_stats", vec![self.admin.hub.server_stats(false)]);
        if self.admin.development {
            io.emit("all_sockets", vec![self.admin.hub.all_sockets()]);
        }
        self.listen(rx, io);
    }

    /// Relays the hub's frames, one at a time, for as long as this socket is there.
    fn listen(&self, mut rx: broadcast::Receiver<ByteString>, io: &mut NamespaceIo<'_>) {
        let epoch = self.epoch;
        let next = async move {
            let frame = rx.recv().await;
            (frame, rx)
        };
        io.spawn(next, move |me: &mut AdminSocket, io, (frame, rx)| {
            if me.epoch != epoch {
                return;
            }
            match frame {
                Ok(frame) => io.send_framed(frame),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    debug!("admin socket {}: {missed} events dropped", io.engine_sid());
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
            me.listen(rx, io);
        });
    }

    /// The UI's actions: `emit`, `join`, `leave`, `_disconnect`.
    fn act(&self, event: &Event, io: &NamespaceIo<'_>) {
        let arg = |i: usize| event.args.get(i);
        let string = |i: usize| arg(i).and_then(Value::as_str);
        let Some(nsp) = string(0) else {
            return;
        };
        let hub = &self.admin.hub;
        match event.name.as_str() {
            "emit" => {
                // (nsp, filter, event, ...args)
                let Some(name) = string(2) else {
                    return;
                };
                let command = SocketCommand::Emit {
                    name: name.to_string(),
                    args: event.args.iter().skip(3).cloned().collect(),
                };
                let n = hub.command(nsp, string(1), &command);
                info!(
                    "admin {}: emitted {name:?} to {n} sockets of {nsp}",
                    io.engine_sid()
                );
            }
            "join" | "leave" => {
                // (nsp, room, filter)
                let Some(room) = string(1) else {
                    return;
                };
                hub.join_or_leave(nsp, string(2), room, event.name == "join");
            }
            "_disconnect" => {
                // (nsp, close, filter)
                let close = arg(1).and_then(Value::as_bool).unwrap_or(false);
                let n = hub.command(nsp, string(2), &SocketCommand::Disconnect { close });
                info!(
                    "admin {}: disconnected {n} sockets of {nsp}",
                    io.engine_sid()
                );
            }
            other => debug!("admin {}: unknown event {other:?}", io.engine_sid()),
        }
    }
}

impl Namespace for AdminSocket {
    fn on_connect(&mut self, auth: Option<&Value>, io: &mut NamespaceIo<'_>) {
        let auth = auth.and_then(Value::as_object);
        let field = |name: &str| auth.and_then(|a| a.get(name)).and_then(Value::as_str);
        if let Some(session) = field("sessionId") {
            if self.admin.sessions.is_valid(session) {
                debug!("admin {}: logged in with a session", io.engine_sid());
                self.accept(None, io);
                return;
            }
        }
        let (Some(username), Some(password)) = (field("username"), field("password")) else {
            io.refuse(refusal(INVALID_CREDENTIALS));
            return;
        };
        let address = io.client().address;
        if !self.admin.logins.allow(&address) {
            info!("admin: a login from {address:?} refused: admin.login_rate");
            io.refuse(refusal(TOO_MANY_ATTEMPTS));
            return;
        }
        let Some(place) = self.admin.gate.enter() else {
            info!("admin: a login from {address:?} refused: admin.login_queue is full");
            io.refuse(refusal(TOO_MANY_ATTEMPTS));
            return;
        };
        // Compared after the hash, whatever the name: the time taken tells nothing.
        let username_ok = username == self.admin.username;
        let password = password.to_string();
        let hash = self.admin.password_hash.clone();
        let admin = self.admin.clone();
        let check = async move {
            admin
                .gate
                .check(place, move || match bcrypt::verify(password, &hash) {
                    Ok(ok) => ok && username_ok,
                    Err(e) => {
                        warn!("admin: the password could not be checked: {e}");
                        false
                    }
                })
                .await
        };
        io.spawn(check, move |me: &mut AdminSocket, io, verified| {
            let ok = verified.unwrap_or_else(|e| {
                warn!("admin: the password check did not run: {e}");
                false
            });
            if ok {
                info!("admin: login from {address:?}");
                let session = me.admin.sessions.create();
                me.accept(Some(session), io);
            } else {
                info!("admin: a login from {address:?} refused: invalid credentials");
                io.refuse(refusal(INVALID_CREDENTIALS));
            }
        });
    }

    fn on_event(&mut self, event: Event, io: &mut NamespaceIo<'_>) {
        if self.admin.readonly || !self.admin.development {
            debug!(
                "admin {}: {:?} ignored (admin.readonly, or not in development mode)",
                io.engine_sid(),
                event.name
            );
            return;
        }
        self.act(&event, io);
    }

    fn on_disconnect(&mut self, _reason: &str) {
        self.slot = None;
    }
}
