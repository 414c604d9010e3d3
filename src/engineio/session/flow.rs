//! Whether a session takes what its client sends: the handler may pause reading, and a
//! paused WebSocket session stops reading its socket ([`Gate`], [`GatedInbound`]).

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::engineio::queue as mpsc;
use futures_util::Stream;

use crate::engineio::transport::Inbound;

/// Whether the session takes what the client sends.
#[derive(Default)]
pub(super) struct Flow {
    /// The handler paused reading.
    pub(super) paused: bool,
    /// Shared with the inbound stream: closed while a WebSocket session is paused.
    pub(super) gate: Rc<Gate>,
}

/// Stops the inbound stream from yielding (so the WebSocket reader blocks on the bounded
/// channel and stops reading the socket).
#[derive(Default)]
pub(super) struct Gate {
    closed: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Gate {
    pub(super) fn set_closed(&self, closed: bool) {
        self.closed.set(closed);
        if !closed {
            if let Some(waker) = self.waker.borrow_mut().take() {
                waker.wake();
            }
        }
    }
}

/// The session's inbound channel as a stream that yields nothing while the gate is closed.
pub(super) struct GatedInbound {
    pub(super) rx: mpsc::Receiver<Inbound>,
    pub(super) gate: Rc<Gate>,
}

impl Stream for GatedInbound {
    type Item = Inbound;

    fn poll_next(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Option<Inbound>> {
        let this = self.get_mut();
        if this.gate.closed.get() {
            *this.gate.waker.borrow_mut() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        this.rx.poll_recv(cx)
    }
}
