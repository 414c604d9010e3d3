//! A bounded queue between a session and its transport that costs nothing while empty.
//!
//! `tokio::sync::mpsc` allocates a block of 32 slots when a channel is made and keeps it for
//! the channel's life: 1.5–1.8 KiB for each of a session's two queues, held by every idle
//! socket. This queue keeps its items in a `VecDeque` that is allocated on the first item and
//! given back once the queue is empty again, behind one small shared state. It offers what
//! the sessions use of tokio's API: [`Sender::try_send`], [`Sender::send`],
//! [`Sender::reserve`], [`Receiver::recv`] and [`Receiver::poll_recv`]; senders may be
//! cloned, and the receiver sees the end once every sender is gone (and senders see it once
//! the receiver is gone).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Why [`Sender::try_send`] did not queue its item.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The queue holds `capacity` items.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

/// The receiver is gone.
#[derive(Debug, PartialEq, Eq)]
pub struct SendError<T>(pub T);

struct State<T> {
    items: VecDeque<T>,
    senders: usize,
    receiver_alive: bool,
    /// The receiver, waiting for an item.
    receiver: Option<Waker>,
    /// Senders waiting for room (woken all at once: there are one or two).
    senders_waiting: Vec<Waker>,
}

struct Shared<T> {
    /// The most items the queue holds (set once: read without the lock).
    capacity: usize,
    state: Mutex<State<T>>,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding this lock cannot leave the state inconsistent (each change
        // is one push, pop or flag): keep going with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A bounded queue of at most `capacity` items (at least 1).
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        capacity: capacity.max(1),
        state: Mutex::new(State {
            items: VecDeque::new(),
            senders: 1,
            receiver_alive: true,
            receiver: None,
            senders_waiting: Vec::new(),
        }),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// The sending end; cloning it adds a sender.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("queue::Sender")
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders -= 1;
        if state.senders == 0 {
            if let Some(waker) = state.receiver.take() {
                drop(state);
                waker.wake();
            }
        }
    }
}

/// Room for one item, reserved by [`Sender::reserve`].
pub struct Permit<'a, T> {
    sender: &'a Sender<T>,
}

impl<T> Permit<'_, T> {
    /// Queues `item` (the receiver may have gone meanwhile: then it is dropped).
    pub fn send(self, item: T) {
        let _ = self.sender.push(item, usize::MAX);
    }
}

impl<T> Sender<T> {
    /// The most items the queue holds.
    pub fn max_capacity(&self) -> usize {
        self.shared.capacity
    }

    /// The items queued now.
    pub fn len(&self) -> usize {
        self.shared.lock().items.len()
    }

    /// Whether no item is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        !self.shared.lock().receiver_alive
    }

    /// Queues `item` unless the queue is full or the receiver is gone.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        self.push(item, self.shared.capacity)
    }

    /// Queues `item` unless `limit` items (rather than the capacity) are queued already or
    /// the receiver is gone.
    pub fn try_send_within(&self, item: T, limit: usize) -> Result<(), TrySendError<T>> {
        self.push(item, limit)
    }

    fn push(&self, item: T, limit: usize) -> Result<(), TrySendError<T>> {
        let mut state = self.shared.lock();
        if !state.receiver_alive {
            return Err(TrySendError::Closed(item));
        }
        if state.items.len() >= limit {
            return Err(TrySendError::Full(item));
        }
        state.items.push_back(item);
        let waker = state.receiver.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Whether there is room (`Ready(true)`), the receiver is gone (`Ready(false)`), or
    /// neither yet (`Pending`, woken when either changes).
    fn poll_room(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut state = self.shared.lock();
        if !state.receiver_alive {
            return Poll::Ready(false);
        }
        if state.items.len() < self.shared.capacity {
            return Poll::Ready(true);
        }
        if !state
            .senders_waiting
            .iter()
            .any(|w| w.will_wake(cx.waker()))
        {
            state.senders_waiting.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Waits for room for one item; an error once the receiver is gone.
    pub async fn reserve(&self) -> Result<Permit<'_, T>, SendError<()>> {
        if poll_fn(|cx| self.poll_room(cx)).await {
            Ok(Permit { sender: self })
        } else {
            Err(SendError(()))
        }
    }

    /// Waits for room, then queues `item`; an error (with the item) once the receiver is
    /// gone.
    pub async fn send(&self, item: T) -> Result<(), SendError<T>> {
        if !poll_fn(|cx| self.poll_room(cx)).await {
            return Err(SendError(item));
        }
        self.push(item, usize::MAX).map_err(|e| match e {
            TrySendError::Full(item) | TrySendError::Closed(item) => SendError(item),
        })
    }
}

/// The receiving end.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("queue::Receiver")
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.receiver_alive = false;
        let items = std::mem::take(&mut state.items);
        let waiting = std::mem::take(&mut state.senders_waiting);
        drop(state);
        drop(items);
        waiting.into_iter().for_each(Waker::wake);
    }
}

impl<T> Receiver<T> {
    /// The next item; `None` once the queue is empty and every sender is gone.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.shared.lock();
        match state.items.pop_front() {
            Some(item) => {
                if state.items.is_empty() {
                    // Give the allocation back: an idle socket holds no buffer.
                    state.items = VecDeque::new();
                }
                let waiting = std::mem::take(&mut state.senders_waiting);
                drop(state);
                waiting.into_iter().for_each(Waker::wake);
                Poll::Ready(Some(item))
            }
            None if state.senders == 0 => Poll::Ready(None),
            None => {
                match &state.receiver {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => state.receiver = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    /// Waits for the next item; `None` once the queue is empty and every sender is gone.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_arrive_in_order_and_the_end_is_seen() {
        let (tx, mut rx) = channel(4);
        let tx2 = tx.clone();
        tx.try_send(1).unwrap();
        tx2.send(2).await.unwrap();
        tx.reserve().await.unwrap().send(3);
        drop(tx);
        drop(tx2);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_and_a_waiting_sender_gets_room() {
        let (tx, mut rx) = channel(2);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
        let sender = tokio::spawn(async move {
            tx.send(3).await.unwrap();
            tx
        });
        assert_eq!(rx.recv().await, Some(1));
        let tx = sender.await.unwrap();
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(tx.try_send(4), Ok(()));
    }

    #[tokio::test]
    async fn senders_see_the_receiver_go() {
        let (tx, rx) = channel::<u8>(1);
        tx.try_send(1).unwrap();
        let waiting = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(2).await })
        };
        tokio::task::yield_now().await;
        drop(rx);
        assert_eq!(waiting.await.unwrap(), Err(SendError(2)));
        assert_eq!(tx.try_send(3), Err(TrySendError::Closed(3)));
        assert!(tx.reserve().await.is_err());
    }

    #[test]
    fn an_empty_queue_holds_no_buffer() {
        let (tx, mut rx) = channel(8);
        for i in 0..5 {
            tx.try_send(i).unwrap();
        }
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        for i in 0..5 {
            assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(i)));
        }
        assert_eq!(rx.shared.lock().items.capacity(), 0);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
    }
}
