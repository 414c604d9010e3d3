//! Which recovery pids have a live socket on this node, and when the others' sessions
//! disconnected: what lets a pid stand in for an expired token only within
//! `recovery.max_disconnection` after the disconnect of its own session, and what makes one
//! pid never have two live sockets (a new connection with the pid of a live session takes
//! that session over: the old transport is closed).
//!
//! Records are kept per stream nonce (the pid's): live while a socket of this node carries
//! the stream, then disconnected for `recovery.max_disconnection`, then forgotten (a sweep
//! every quarter of that). At most `recovery.max_records` disconnected records are kept;
//! past it a disconnect is not recorded, and its pid is judged by the stamp its offset
//! carries, as on a node that never saw it (`chat::recovery`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix::Recipient;

use super::push::ChatPush;
use crate::chat::metrics::ChatMetrics;
use crate::ids::shard_of;

/// A live socket carrying a stream.
#[derive(Clone)]
struct Live {
    /// Its Engine.IO session id.
    session: Arc<str>,
    push: Recipient<ChatPush>,
}

enum State {
    Live(Live),
    /// Disconnected at.
    Gone(Instant),
}

struct Record {
    user: Arc<str>,
    state: State,
}

/// What this node knows of a pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidState {
    /// A socket here carries it now.
    Live,
    /// Its session here disconnected this long ago.
    Gone(Duration),
    /// Nothing (never seen here, forgotten, or another user's).
    Unknown,
}

/// The pid records of this node.
pub struct PidSessions {
    maps: Vec<Mutex<HashMap<Arc<str>, Record>>>,
    /// Disconnected records kept.
    gone: AtomicUsize,
    max_gone: usize,
    keep: Duration,
    metrics: Arc<ChatMetrics>,
}

impl PidSessions {
    /// Records kept `keep` after their disconnect, at most `max_gone` of them.
    pub fn new(keep: Duration, max_gone: usize, metrics: Arc<ChatMetrics>) -> Arc<Self> {
        Arc::new(PidSessions {
            maps: (0..16).map(|_| Mutex::new(HashMap::new())).collect(),
            gone: AtomicUsize::new(0),
            max_gone,
            keep,
            metrics,
        })
    }

    fn map(&self, nonce: &str) -> MutexGuard<'_, HashMap<Arc<str>, Record>> {
        // No update leaves a record half done across a panic point.
        self.maps[shard_of(nonce, self.maps.len())]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn forget_gone(&self) {
        self.gone.fetch_sub(1, Ordering::AcqRel);
        self.metrics.recovery_records(-1);
    }

    /// What this node knows of `user`'s pid `nonce`.
    pub fn state(&self, nonce: &str, user: &str) -> PidState {
        match self.map(nonce).get(nonce) {
            Some(record) if *record.user == *user => match &record.state {
                State::Live(live) if live.push.connected() => PidState::Live,
                // A socket that stopped without saying so vouches for nothing.
                State::Live(_) => PidState::Unknown,
                State::Gone(at) => PidState::Gone(at.elapsed()),
            },
            _ => PidState::Unknown,
        }
    }

    /// The socket of Engine.IO session `session` carries `user`'s stream `nonce` from now on;
    /// the socket that carried it until now, if another one still did (to be closed).
    pub fn carry(
        &self,
        nonce: &str,
        user: &Arc<str>,
        session: &Arc<str>,
        push: Recipient<ChatPush>,
    ) -> Option<Recipient<ChatPush>> {
        let live = Live {
            session: session.clone(),
            push,
        };
        let mut map = self.map(nonce);
        match map.get_mut(nonce) {
            Some(record) if record.user == *user => {
                match std::mem::replace(&mut record.state, State::Live(live)) {
                    State::Live(old) => (old.session != *session).then_some(old.push),
                    State::Gone(_) => {
                        drop(map);
                        self.forget_gone();
                        None
                    }
                }
            }
            // Another user's record cannot be taken over; a nonce is random, so this is a
            // forgery that the signature check let through only if the key leaked.
            Some(_) => None,
            None => {
                map.insert(
                    Arc::from(nonce),
                    Record {
                        user: user.clone(),
                        state: State::Live(live),
                    },
                );
                None
            }
        }
    }

    /// The socket of session `session` no longer carries `nonce` (it disconnected): the
    /// record says when, unless another socket took the stream over meanwhile.
    pub fn disconnected(&self, nonce: &str, session: &str) {
        let mut map = self.map(nonce);
        let Some(record) = map.get_mut(nonce) else {
            return;
        };
        if !matches!(&record.state, State::Live(live) if *live.session == *session) {
            return;
        }
        let kept = self
            .gone
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_gone).then_some(n + 1)
            })
            .is_ok();
        if kept {
            record.state = State::Gone(Instant::now());
            self.metrics.recovery_records(1);
        } else {
            map.remove(nonce);
        }
    }

    /// Another node's socket carries `nonce` now: the socket here that did, if any (to be
    /// closed); the record is forgotten (the stream's disconnect is the other node's to
    /// record).
    pub(crate) fn taken_elsewhere(&self, nonce: &str) -> Option<Recipient<ChatPush>> {
        let mut map = self.map(nonce);
        match map.get(nonce).map(|r| &r.state) {
            Some(State::Live(_)) => match map.remove(nonce).map(|r| r.state) {
                Some(State::Live(live)) => Some(live.push),
                _ => None,
            },
            _ => None,
        }
    }

    /// Forgets the records disconnected longer than they are kept.
    pub(crate) fn sweep(&self) {
        for map in &self.maps {
            let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
            let mut forgotten = 0;
            map.retain(|_, r| match &r.state {
                State::Gone(at) => {
                    let keep = at.elapsed() <= self.keep;
                    forgotten += usize::from(!keep);
                    keep
                }
                State::Live(live) => live.push.connected(),
            });
            for _ in 0..forgotten {
                self.forget_gone();
            }
        }
    }

    /// Records kept: `(live, disconnected)`.
    pub fn counts(&self) -> (usize, usize) {
        let all: usize = self
            .maps
            .iter()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum();
        let gone = self.gone.load(Ordering::Acquire);
        (all.saturating_sub(gone), gone)
    }

    /// How often [`PidSessions::sweep`] should run.
    pub(crate) fn sweep_every(&self) -> Duration {
        (self.keep / 4).max(Duration::from_millis(50))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::push::Sink;
    use actix::Actor;

    #[actix::test]
    async fn a_pid_is_live_then_gone_then_forgotten_and_taken_over_when_live() {
        let pids = PidSessions::new(Duration::from_millis(30), 10, Arc::new(ChatMetrics::off()));
        let (alice, s1, s2): (Arc<str>, Arc<str>, Arc<str>) =
            ("alice".into(), "s1".into(), "s2".into());
        let push = Sink.start().recipient();
        assert_eq!(pids.state("n", "alice"), PidState::Unknown);
        assert!(pids.carry("n", &alice, &s1, push.clone()).is_none());
        assert_eq!(pids.state("n", "alice"), PidState::Live);
        assert_eq!(
            pids.state("n", "bob"),
            PidState::Unknown,
            "bound to its user"
        );
        // A second connection with the live pid takes it over: the first is handed back.
        assert!(pids.carry("n", &alice, &s2, push.clone()).is_some());
        // The first session's disconnect changes nothing: s2 carries it.
        pids.disconnected("n", "s1");
        assert_eq!(pids.state("n", "alice"), PidState::Live);
        pids.disconnected("n", "s2");
        assert!(matches!(pids.state("n", "alice"), PidState::Gone(_)));
        assert_eq!(pids.counts(), (0, 1));
        std::thread::sleep(Duration::from_millis(40));
        pids.sweep();
        assert_eq!(pids.state("n", "alice"), PidState::Unknown);
        assert_eq!(pids.counts(), (0, 0));
    }

    #[actix::test]
    async fn disconnected_records_are_bounded() {
        let pids = PidSessions::new(Duration::from_secs(60), 1, Arc::new(ChatMetrics::off()));
        let alice: Arc<str> = "alice".into();
        let push = Sink.start().recipient();
        for (nonce, session) in [("a", "s1"), ("b", "s2")] {
            pids.carry(nonce, &alice, &session.into(), push.clone());
            pids.disconnected(nonce, session);
        }
        assert!(matches!(pids.state("a", "alice"), PidState::Gone(_)));
        assert_eq!(
            pids.state("b", "alice"),
            PidState::Unknown,
            "past max_records"
        );
        assert_eq!(pids.counts(), (0, 1));
    }
}
