//! [`Window`]: a socket's send window: the requests it has in flight, whether one waits for
//! the database's write permit, and the checks (the cluster's rate count) its requests wait on
//! in the client's order. `chat::socket::flow` pauses reading from the client while it is full.

use std::collections::VecDeque;

/// The send window: a socket's requests in flight and what they wait for; `T` is what runs
/// once a request's check is back.
pub struct Window<T> {
    /// Requests sent and not answered yet.
    pub(super) in_flight: usize,
    /// A request waiting for a write permit (at most one: reading is paused meanwhile).
    pub(super) blocked: bool,
    /// The server is shutting down: close once nothing is in flight.
    pub(super) draining: bool,
    /// Requests waiting for a check (the cluster's rate count), in the client's order.
    ordered: Option<Box<Ordered<T>>>,
}

/// Requests waiting for their checks, run in the order they came whatever order the checks
/// come back in.
struct Ordered<T> {
    /// The number of the first waiting request.
    first: u64,
    slots: VecDeque<(Option<bool>, T)>,
}

impl<T> Default for Window<T> {
    fn default() -> Self {
        Window {
            in_flight: 0,
            blocked: false,
            draining: false,
            ordered: None,
        }
    }
}

impl<T> Window<T> {
    /// Whether the client should be read no further: `send_window` requests in flight, or
    /// one waiting for a write permit.
    pub(crate) fn is_full(&self, send_window: usize) -> bool {
        self.blocked || self.in_flight >= send_window
    }

    /// Whether a draining socket has nothing left in flight.
    pub fn drained(&self) -> bool {
        self.draining && self.in_flight == 0
    }

    /// A request waits for its check, after every one queued before it (it counts as in
    /// flight meanwhile); its number, to [`Window::checked`] it.
    pub fn queue(&mut self, then: T) -> u64 {
        let ordered = self.ordered.get_or_insert_with(|| {
            Box::new(Ordered {
                first: 0,
                slots: VecDeque::new(),
            })
        });
        let number = ordered.first + ordered.slots.len() as u64;
        ordered.slots.push_back((None, then));
        self.in_flight += 1;
        number
    }

    /// The check of request `number` is back.
    pub fn checked(&mut self, number: u64, passed: bool) {
        if let Some(ordered) = &mut self.ordered {
            let at = number.wrapping_sub(ordered.first) as usize;
            if let Some(slot) = ordered.slots.get_mut(at) {
                slot.0 = Some(passed);
            }
        }
    }

    /// The first waiting request, if its check is back (it no longer counts as in flight).
    pub(crate) fn next_checked(&mut self) -> Option<(bool, T)> {
        let ordered = self
            .ordered
            .as_mut()
            .filter(|o| matches!(o.slots.front(), Some((Some(_), _))))?;
        let (passed, then) = ordered.slots.pop_front()?;
        ordered.first += 1;
        if ordered.slots.is_empty() {
            self.ordered = None;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        passed.map(|passed| (passed, then))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_run_in_the_order_requests_came() {
        let mut window = Window::default();
        let (a, b) = (window.queue("a"), window.queue("b"));
        assert_eq!(window.in_flight, 2);
        assert!(window.is_full(2));
        window.checked(b, true);
        assert_eq!(window.next_checked(), None, "b waits for a");
        window.checked(a, false);
        assert_eq!(window.next_checked(), Some((false, "a")));
        assert_eq!(window.next_checked(), Some((true, "b")));
        assert_eq!(window.in_flight, 0);
        assert!(!window.is_full(2));
    }
}
