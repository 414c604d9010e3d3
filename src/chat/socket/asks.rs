//! [`Asked`]: the events another server sent a socket asking for the client's
//! acknowledgement, and where each acknowledgement goes.

use std::collections::HashMap;

use crate::chat::push::AckReply;

/// The acknowledgements a socket waits on, by event id.
#[derive(Default)]
pub(crate) struct Asked(HashMap<u64, AckReply>);

/// Most events asking for an acknowledgement a socket waits on; past it an event is sent
/// without asking (its sender waits out its timeout, as for a client that does not answer).
pub(super) const MAX_ASKED: usize = 256;

impl Asked {
    /// Whether as many are awaited as a socket may wait on.
    pub(crate) fn is_full(&self) -> bool {
        self.0.len() >= MAX_ASKED
    }

    /// The acknowledgement of event `id` goes to `reply`.
    pub fn insert(&mut self, id: u64, reply: AckReply) {
        self.0.insert(id, reply);
    }

    /// Where the acknowledgement of event `id` goes, if it is awaited (no longer, from now).
    pub fn take(&mut self, id: u64) -> Option<AckReply> {
        self.0.remove(&id)
    }

    /// Whether none is awaited.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
