//! Admission: bounds on what clients that have not authenticated can make the server hold.
//!
//! Every new session needs a [`Ticket`]. A ticket is refused (HTTP 503 with
//! `{"code":6,"message":"Server busy"}`, before anything is allocated) when
//!
//! - the endpoint holds `max_sessions` sessions;
//! - `max_pending` sessions have not been established yet (established: the layer above says
//!   so, e.g. after a Socket.IO CONNECT with a valid token), or `max_pending_per_address`
//!   from the client's address, so one client cannot fill the global cap for everyone;
//! - the client's address opens sessions faster than `handshake_rate`.
//!
//! A ticket gives its place back when its session ends. Refusals are logged at info with
//! the client's address, at most one line per cause every [`LOG_EVERY`] (the rest counted
//! and summed up), so an attack does not flood the log.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::info;

use crate::rate::{KeyedLimiter, RateSettings};

/// The bounds.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    /// Sessions at most.
    pub max_sessions: usize,
    /// Sessions not established yet, at most.
    pub max_pending: usize,
    /// Sessions not established yet from one client address, at most.
    pub max_pending_per_address: usize,
    /// New sessions per client address.
    pub handshake_rate: RateSettings,
    /// The per-address bounds do not apply to loopback addresses (local tools, load
    /// generators, a reverse proxy on the same host, whose clients `server.trusted_proxies`
    /// names); the global bounds do.
    pub exempt_loopback: bool,
    /// New sessions are refused while fewer than this many file descriptors remain below
    /// the process's open-file limit (0: no reserve).
    pub fd_reserve: usize,
}

impl AdmissionLimits {
    /// No bound at all (for tests and the conformance server).
    pub fn unbounded() -> Self {
        AdmissionLimits {
            max_sessions: usize::MAX,
            max_pending: usize::MAX,
            max_pending_per_address: usize::MAX,
            handshake_rate: RateSettings {
                per_second: 0.0,
                burst: 0,
            },
            exempt_loopback: true,
            fd_reserve: 0,
        }
    }
}

/// Why a ticket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// `max_sessions` reached.
    TooManySessions,
    /// `max_pending` reached.
    TooManyPending,
    /// `max_pending_per_address` reached for this address.
    TooManyFromAddress,
    /// The address opens sessions faster than `handshake_rate`.
    TooFast,
    /// Fewer than `fd_reserve` file descriptors remain.
    FewFiles,
}

impl Refusal {
    /// A short name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TooManySessions => "too many sessions",
            Refusal::TooManyPending => "too many sessions not yet connected",
            Refusal::TooManyFromAddress => "too many sessions not yet connected from one address",
            Refusal::TooFast => "too many handshakes from one address",
            Refusal::FewFiles => "too few file descriptors left (engineio.fd_reserve)",
        }
    }

    /// The `cause` label of `courier_handshakes_refused_total`: the limit's setting.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Refusal::TooManySessions => "max_sessions",
            Refusal::TooManyPending => "max_pending_sessions",
            Refusal::TooManyFromAddress => "max_pending_per_address",
            Refusal::TooFast => "handshake_rate",
            Refusal::FewFiles => "fd_reserve",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    pending: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// The admission of one endpoint.
pub(crate) struct Admission {
    limits: AdmissionLimits,
    counts: Mutex<Counts>,
    rate: KeyedLimiter<IpAddr>,
    log: RefusalLog,
    files: Files,
}

/// How many file descriptors the process may still open, counted in `/proc/self/fd` (Linux)
/// at most every [`Files::RECOUNT_NEAR`] when few remain and every [`Files::RECOUNT_FAR`]
/// otherwise; between counts, each admitted session is taken to use one more (so the
/// estimate errs towards refusing).
struct Files {
    /// When last counted, the count, and the sessions admitted since.
    state: Mutex<Option<(Instant, usize, usize)>>,
    /// The descriptors open now (one directory entry each: not cheap), where known.
    open: fn() -> Option<usize>,
    /// The soft open-file limit (one system call), where known.
    limit: fn() -> Option<usize>,
}

impl Files {
    const RECOUNT_NEAR: Duration = Duration::from_millis(100);
    const RECOUNT_FAR: Duration = Duration::from_secs(1);

    /// Descriptors left below the limit, about (`None` where they cannot be counted); the
    /// caller is about to use one more.
    fn left(&self, reserve: usize, now: Instant) -> Option<usize> {
        let limit = (self.limit)()?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, open, since)) = state.as_mut() {
            let left = limit.saturating_sub(*open + *since);
            let every = if left > 4 * reserve {
                Self::RECOUNT_FAR
            } else {
                Self::RECOUNT_NEAR
            };
            if now.duration_since(*at) < every {
                *since += 1;
                return Some(left);
            }
        }
        let open = (self.open)()?;
        *state = Some((now, open, 1));
        Some(limit.saturating_sub(open))
    }
}

fn open_files() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

fn open_file_limit() -> Option<usize> {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?.0;
    Some(usize::try_from(soft).unwrap_or(usize::MAX))
}

impl Admission {
    /// Admission within `limits`.
    pub fn new(limits: AdmissionLimits) -> Arc<Self> {
        Arc::new(Admission {
            limits,
            counts: Mutex::new(Counts::default()),
            rate: KeyedLimiter::new(limits.handshake_rate),
            log: RefusalLog::new("handshakes"),
            files: Files {
                state: Mutex::new(None),
                open: open_files,
                limit: open_file_limit,
            },
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A panic while holding the lock cannot leave the counts inconsistent.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ticket for a new session from `address`, or why not.
    pub(crate) fn admit(self: &Arc<Self>, address: Option<IpAddr>) -> Result<Ticket, Refusal> {
        let refusal = self.check(address);
        if let Err(refusal) = refusal {
            self.log.refused(refusal.as_str(), address);
            return Err(refusal);
        }
        let exempt = self.limits.exempt_loopback && address.is_some_and(|a| a.is_loopback());
        Ok(Ticket {
            admission: self.clone(),
            // The address a ticket counts against (none for an exempt one).
            address: address.filter(|_| !exempt),
            pending: true,
        })
    }

    fn check(&self, address: Option<IpAddr>) -> Result<(), Refusal> {
        let limits = &self.limits;
        if limits.fd_reserve > 0
            && self
                .files
                .left(limits.fd_reserve, Instant::now())
                .is_some_and(|left| left < limits.fd_reserve)
        {
            return Err(Refusal::FewFiles);
        }
        let mut counts = self.counts();
        if counts.total >= limits.max_sessions {
            return Err(Refusal::TooManySessions);
        }
        if counts.pending >= limits.max_pending {
            return Err(Refusal::TooManyPending);
        }
        let per_address = address.filter(|a| !(limits.exempt_loopback && a.is_loopback()));
        if let Some(address) = per_address {
            if counts.per_address.get(&address).copied().unwrap_or(0)
                >= limits.max_pending_per_address
            {
                return Err(Refusal::TooManyFromAddress);
            }
            if !self.rate.allow(&address) {
                return Err(Refusal::TooFast);
            }
            *counts.per_address.entry(address).or_default() += 1;
        }
        counts.total += 1;
        counts.pending += 1;
        Ok(())
    }

    /// `(sessions, sessions not established)` now.
    pub fn load(&self) -> (usize, usize) {
        let counts = self.counts();
        (counts.total, counts.pending)
    }

    fn release_pending(&self, counts: &mut Counts, address: Option<IpAddr>) {
        counts.pending = counts.pending.saturating_sub(1);
        if let Some(address) = address {
            if let Some(n) = counts.per_address.get_mut(&address) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.per_address.remove(&address);
                }
            }
        }
    }
}

/// A session's place; given back when dropped.
pub struct Ticket {
    admission: Arc<Admission>,
    address: Option<IpAddr>,
    pending: bool,
}

impl Ticket {
    /// The session is established: it no longer counts as pending.
    pub(crate) fn established(&mut self) {
        if self.pending {
            self.pending = false;
            let admission = self.admission.clone();
            let mut counts = admission.counts();
            admission.release_pending(&mut counts, self.address);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let admission = self.admission.clone();
        let mut counts = admission.counts();
        counts.total = counts.total.saturating_sub(1);
        if self.pending {
            admission.release_pending(&mut counts, self.address);
        }
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("address", &self.address)
            .field("pending", &self.pending)
            .finish()
    }
}

/// How often a kind of refusal is logged at most.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

/// Refusals logged at info, at most once per cause every [`LOG_EVERY`]; the others are
/// counted and summed up in the next line.
pub struct RefusalLog {
    what: &'static str,
    state: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl RefusalLog {
    /// A log of refused `what` (e.g. "handshakes", "connects").
    pub fn new(what: &'static str) -> Self {
        RefusalLog {
            what,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Records a refusal for `cause` from `address`; logs it unless one was logged for that
    /// cause within [`LOG_EVERY`]. Returns whether it logged.
    pub fn refused(&self, cause: &'static str, address: Option<IpAddr>) -> bool {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, held) = state.entry(cause).or_insert((now - LOG_EVERY * 2, 0));
        if now.duration_since(*last) < LOG_EVERY {
            *held += 1;
            return false;
        }
        let address = address.map_or_else(|| "an unknown address".to_string(), |a| a.to_string());
        if *held > 0 {
            info!(
                "refused {} from {address}: {cause} ({} more refused for this in the last {:?})",
                self.what, held, LOG_EVERY
            );
        } else {
            info!("refused {} from {address}: {cause}", self.what);
        }
        *last = now;
        *held = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn limits() -> AdmissionLimits {
        AdmissionLimits {
            max_sessions: 5,
            max_pending: 4,
            max_pending_per_address: 2,
            handshake_rate: RateSettings {
                per_second: 0.0,
                burst: 0,
            },
            exempt_loopback: true,
            fd_reserve: 0,
        }
    }

    fn files(open: fn() -> Option<usize>) -> Files {
        Files {
            state: Mutex::new(None),
            open,
            limit: || Some(1000),
        }
    }

    #[test]
    fn the_descriptors_left_are_counted_again_often_once_few_remain() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static OPEN: AtomicUsize = AtomicUsize::new(100);
        static COUNTS: AtomicUsize = AtomicUsize::new(0);
        let f = files(|| {
            COUNTS.fetch_add(1, Ordering::SeqCst);
            Some(OPEN.load(Ordering::SeqCst))
        });
        let t0 = Instant::now();
        assert_eq!(f.left(50, t0), Some(900));
        // Far from the reserve: estimated (one more per admitted session) for a second.
        assert_eq!(f.left(50, t0 + Duration::from_millis(500)), Some(899));
        assert_eq!(COUNTS.load(Ordering::SeqCst), 1);
        // Counted again after a second: sessions closed meanwhile give their files back.
        OPEN.store(860, Ordering::SeqCst);
        assert_eq!(f.left(50, t0 + Duration::from_millis(1100)), Some(140));
        // Near the reserve (140 <= 4 * 50): counted again every 100 ms.
        assert_eq!(f.left(50, t0 + Duration::from_millis(1150)), Some(139));
        OPEN.store(990, Ordering::SeqCst);
        assert_eq!(f.left(50, t0 + Duration::from_millis(1250)), Some(10));
        assert_eq!(COUNTS.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn handshakes_are_refused_within_the_reserve_of_descriptors() {
        let a = Admission::new(AdmissionLimits {
            // More than this process may open: every handshake is within the reserve.
            fd_reserve: usize::MAX / 2,
            ..limits()
        });
        if open_file_limit().is_none() || open_files().is_none() {
            return; // Not Linux: nothing is counted, nothing refused.
        }
        assert_eq!(a.admit(ip("10.0.0.1")).unwrap_err(), Refusal::FewFiles);
        assert_eq!(Refusal::FewFiles.label(), "fd_reserve");
        let open = Admission::new(AdmissionLimits {
            fd_reserve: 1,
            ..limits()
        });
        assert!(open.admit(ip("10.0.0.1")).is_ok(), "far from the limit");
    }

    #[test]
    fn loopback_is_exempt_from_the_per_address_bounds_only_if_configured() {
        let a = Admission::new(limits());
        let _t: Vec<Ticket> = (0..4).map(|_| a.admit(ip("127.0.0.1")).unwrap()).collect();
        assert_eq!(
            a.admit(ip("127.0.0.1")).unwrap_err(),
            Refusal::TooManyPending
        );
        let strict = Admission::new(AdmissionLimits {
            exempt_loopback: false,
            ..limits()
        });
        let _t: Vec<Ticket> = (0..2)
            .map(|_| strict.admit(ip("127.0.0.1")).unwrap())
            .collect();
        assert_eq!(
            strict.admit(ip("127.0.0.1")).unwrap_err(),
            Refusal::TooManyFromAddress
        );
    }

    #[test]
    fn one_address_cannot_fill_the_global_cap() {
        let a = Admission::new(limits());
        let t1 = a.admit(ip("10.0.0.1")).unwrap();
        let _t2 = a.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            a.admit(ip("10.0.0.1")).unwrap_err(),
            Refusal::TooManyFromAddress
        );
        // Others still get in.
        let _t3 = a.admit(ip("10.0.0.2")).unwrap();
        let _t4 = a.admit(ip("10.0.0.3")).unwrap();
        assert_eq!(
            a.admit(ip("10.0.0.4")).unwrap_err(),
            Refusal::TooManyPending
        );
        // A session that connects no longer counts as pending.
        let mut t1 = t1;
        t1.established();
        let _t5 = a.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(a.load(), (5, 4));
        assert_eq!(
            a.admit(ip("10.0.0.9")).unwrap_err(),
            Refusal::TooManySessions
        );
        drop(t1);
        assert_eq!(a.load(), (4, 4));
    }

    #[test]
    fn places_come_back_when_sessions_end() {
        let a = Admission::new(limits());
        let tickets: Vec<Ticket> = (0..2).map(|_| a.admit(ip("10.0.0.1")).unwrap()).collect();
        assert!(a.admit(ip("10.0.0.1")).is_err());
        drop(tickets);
        assert_eq!(a.load(), (0, 0));
        assert!(a.admit(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn handshakes_are_rate_limited_per_address() {
        let a = Admission::new(AdmissionLimits {
            handshake_rate: RateSettings {
                per_second: 1.0,
                burst: 2,
            },
            ..AdmissionLimits::unbounded()
        });
        let _t: Vec<Ticket> = (0..2).map(|_| a.admit(ip("10.0.0.1")).unwrap()).collect();
        assert_eq!(a.admit(ip("10.0.0.1")).unwrap_err(), Refusal::TooFast);
        assert!(a.admit(ip("10.0.0.2")).is_ok());
    }

    #[test]
    fn refusals_are_logged_once_per_cause_and_interval() {
        let log = RefusalLog::new("handshakes");
        assert!(log.refused("x", ip("10.0.0.1")));
        assert!(!log.refused("x", ip("10.0.0.1")));
        assert!(!log.refused("x", ip("10.0.0.2")));
        assert!(log.refused("y", None), "another cause is logged on its own");
    }
}
