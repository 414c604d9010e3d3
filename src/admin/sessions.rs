//! The admin UI's login sessions: an id handed to the UI after a good password, so that a
//! reload logs in again without it (`auth: {sessionId}`), until `admin.session_ttl`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ids;

/// Login sessions, at most `max`, each valid for `ttl` from its login.
pub struct Sessions {
    ttl: Duration,
    max: usize,
    map: Mutex<HashMap<String, Instant>>,
}

/// Longest session id accepted (ours are 20 characters).
const MAX_ID: usize = 64;

impl Sessions {
    pub fn new(ttl: Duration, max: usize) -> Self {
        Sessions {
            ttl,
            max: max.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new session (the oldest is forgotten past `max`).
    pub fn create(&self) -> String {
        self.create_at(Instant::now())
    }

    fn create_at(&self, now: Instant) -> String {
        let id = ids::session_id();
        let mut map = self.lock();
        let ttl = self.ttl;
        map.retain(|_, since| now.saturating_duration_since(*since) < ttl);
        while map.len() >= self.max {
            let Some(oldest) = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(id.clone(), now);
        id
    }

    /// Whether `id` is a live session (an expired one is forgotten).
    pub(crate) fn is_valid(&self, id: &str) -> bool {
        self.is_valid_at(id, Instant::now())
    }

    fn is_valid_at(&self, id: &str, now: Instant) -> bool {
        if id.is_empty() || id.len() > MAX_ID {
            return false;
        }
        let mut map = self.lock();
        match map.get(id) {
            Some(since) if now.saturating_duration_since(*since) < self.ttl => true,
            Some(_) => {
                map.remove(id);
                false
            }
            None => false,
        }
    }

    /// Sessions kept now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_are_bounded() {
        let sessions = Sessions::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        let a = sessions.create_at(t0);
        assert!(sessions.is_valid_at(&a, t0 + Duration::from_secs(9)));
        assert!(!sessions.is_valid_at(&a, t0 + Duration::from_secs(10)));
        assert!(
            !sessions.is_valid_at(&a, t0),
            "an expired session is forgotten"
        );
        assert!(!sessions.is_valid_at("nope", t0));
        assert!(!sessions.is_valid_at("", t0));
        let b = sessions.create_at(t0);
        let c = sessions.create_at(t0 + Duration::from_secs(1));
        let d = sessions.create_at(t0 + Duration::from_secs(2));
        assert_eq!(sessions.len(), 2);
        assert!(
            !sessions.is_valid_at(&b, t0 + Duration::from_secs(2)),
            "the oldest went"
        );
        assert!(sessions.is_valid_at(&c, t0 + Duration::from_secs(2)));
        assert!(sessions.is_valid_at(&d, t0 + Duration::from_secs(2)));
    }
}
