//! Connection state recovery, replayed from the database: what a socket that comes back
//! missed, once, in order (docs/delivery-guarantees.md).
//!
//! **Positions.** Each conversation's room stamps every write with a time that strictly
//! increases in the room's order, starting above the newest stamp the database holds for
//! the conversation: a message's `"createdAt"`, a read receipt's `"updatedAt"` (see
//! `ChatRoom::next_stamp`). So within a conversation the stamps are the delivery order,
//! whatever clocks other writers have. Across conversations there is no such order, so a
//! socket's **offset** is a vector: the stamp of the last event it got in each conversation
//! it heard from, and for the others the time the stream started (the `pid`'s base).
//!
//! **The pid** ([`Pid`]) is signed with a key derived from the shared secret, so every node
//! verifies it after any restart. It names the user, a random stream nonce and the base.
//! An **offset** ([`Offset`]) carries the same nonce, so an offset of another stream (the
//! client keeps its last offset across a fresh connection) is never used with this pid.
//!
//! **Replay** ([`replay`]): the messages the user received and the read receipts of the
//! user's messages stamped after the offset's position for their conversation, oldest
//! first, at most `recovery.max_replay` (more: not recovered). The socket registers for live
//! events **before** the replay query runs and holds them meanwhile; afterwards it sends the
//! replay, then the held events it did not replay (told apart by message id), so that
//! nothing committed meanwhile is missed or sent twice.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use entity::messages;
use hmac::{Hmac, Mac};
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::{json, Value};
use sha2::Sha256;

use super::protocol::args::MAX_ID_CHARS;
use crate::db::messages::{missed, Positions};

/// How recovery works (`[recovery]`).
#[derive(Debug, Clone, Copy)]
pub struct RecoveryOptions {
    /// CONNECT answers `{sid, pid}` and conversation events carry offsets.
    pub enabled: bool,
    /// How long after a disconnect a valid pid stands in for an expired token.
    pub max_disconnection: std::time::Duration,
    /// Most events replayed.
    pub max_replay: usize,
    /// Most conversations one offset tracks.
    pub max_conversations: usize,
    /// Most disconnected sessions' pid records kept.
    pub max_records: usize,
}

impl RecoveryOptions {
    /// Recovery off.
    pub fn off() -> Self {
        RecoveryOptions {
            enabled: false,
            max_disconnection: std::time::Duration::ZERO,
            max_replay: 0,
            max_conversations: 0,
            max_records: 0,
        }
    }
}

pub use crate::db::time::{from_millis, millis};

/// The key pids are signed with, derived from the shared secret.
#[derive(Clone)]
pub struct PidKey(Hmac<Sha256>);

impl PidKey {
    /// The key for `secret`.
    pub fn new(secret: &str) -> Self {
        PidKey(super::keys::derive(secret, b"courier recovery pid v1"))
    }
}

impl std::fmt::Debug for PidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PidKey(..)")
    }
}

/// A recovery session: whose it is, its stream nonce and where its stream started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pid {
    pub user: String,
    pub nonce: String,
    /// Milliseconds since the epoch: the position of every conversation the offset does not
    /// name.
    pub base: i64,
}

/// Longest pid accepted (a user id of at most 128 characters, signed).
const MAX_PID_CHARS: usize = 512;
/// Longest offset accepted.
const MAX_OFFSET_CHARS: usize = 64 * 1024;

impl PidKey {
    /// The signature of `payload`: 16 bytes of its HMAC, base64url.
    fn tag(&self, payload: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(payload.as_bytes());
        URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16])
    }

    /// The payload of `token` (`payload.signature`) if this key signed it.
    fn verified<'a>(&self, token: &'a str) -> Option<&'a str> {
        let (payload, tag) = token.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        if tag.len() != 16 {
            return None;
        }
        let mut mac = self.0.clone();
        mac.update(payload.as_bytes());
        mac.verify_truncated_left(&tag).ok()?;
        Some(payload)
    }
}

impl Pid {
    /// A new stream for `user` starting at `base`.
    pub fn fresh(user: &str, base: i64) -> Self {
        let mut nonce = [0u8; 9];
        crate::ids::secure_bytes(&mut nonce);
        Pid {
            user: user.to_string(),
            nonce: URL_SAFE_NO_PAD.encode(nonce),
            base,
        }
    }

    /// The signed token: `payload.signature`, both base64url.
    pub(crate) fn sign(&self, key: &PidKey) -> String {
        let payload = json!([self.user, self.nonce, self.base]).to_string();
        let payload = URL_SAFE_NO_PAD.encode(payload);
        let tag = key.tag(&payload);
        format!("{payload}.{tag}")
    }

    /// The pid of a token Courier signed; `None` for anything else.
    pub fn verify(token: &str, key: &PidKey) -> Option<Pid> {
        if token.len() > MAX_PID_CHARS {
            return None;
        }
        let payload = key.verified(token)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let (user, nonce, base): (String, String, i64) = serde_json::from_slice(&payload).ok()?;
        Some(Pid { user, nonce, base })
    }
}

/// Where a socket is in its stream: per conversation, the stamp of the last event it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Offset {
    /// The stream's nonce (its pid's).
    pub nonce: String,
    /// The position of every conversation not in `conversations`.
    pub base: i64,
    /// `(connectionId, stamp)`.
    pub conversations: Vec<(Arc<str>, i64)>,
    /// More conversations than an offset tracks: this stream no longer recovers.
    pub overflow: bool,
}

/// The offset sent once a stream tracks too many conversations.
const OVERFLOWED: &str = "-";

impl Offset {
    /// The start of `pid`'s stream.
    pub fn start(pid: &Pid) -> Self {
        Offset {
            nonce: pid.nonce.clone(),
            base: pid.base,
            conversations: Vec::new(),
            overflow: false,
        }
    }

    /// The socket got an event of `conversation` stamped `at`; positions never go back.
    /// Tracking more than `max` conversations overflows the offset.
    pub(crate) fn advance(&mut self, conversation: &Arc<str>, at: i64, max: usize) {
        if self.overflow {
            return;
        }
        if let Some((_, pos)) = self
            .conversations
            .iter_mut()
            .find(|(c, _)| **c == **conversation)
        {
            *pos = (*pos).max(at);
        } else if at <= self.base {
        } else if self.conversations.len() >= max {
            self.overflow = true;
            self.conversations.clear();
        } else {
            self.conversations.push((conversation.clone(), at));
        }
    }

    /// The string the client keeps and sends back, signed with `key` and stamped `live`
    /// (when the stream was last known to be live: the time it is sent; see
    /// [`Offset::decode`]).
    pub fn encode(&self, key: &PidKey, live: i64) -> String {
        if self.overflow {
            return OVERFLOWED.to_string();
        }
        let conversations: Vec<Value> = self
            .conversations
            .iter()
            .map(|(c, at)| json!([&**c, at]))
            .collect();
        let payload = json!([self.nonce, self.base, conversations, live]).to_string();
        let payload = URL_SAFE_NO_PAD.encode(payload);
        let tag = key.tag(&payload);
        format!("{payload}.{tag}")
    }

    /// The offset the client sent, if it is one of `pid`'s stream (and not overflowed), and
    /// the time Courier last vouched for the stream being live: the stamp of a signed offset
    /// (`None` for an offset Courier did not sign, whose positions are used but which vouches
    /// for nothing).
    pub fn decode(
        text: &str,
        pid: &Pid,
        max: usize,
        key: &PidKey,
    ) -> Option<(Offset, Option<i64>)> {
        if text.len() > MAX_OFFSET_CHARS {
            return None;
        }
        let signed = key.verified(text);
        let raw = URL_SAFE_NO_PAD
            .decode(signed.unwrap_or(text).split('.').next()?)
            .ok()?;
        let (nonce, base, list, live): (String, i64, Vec<(String, i64)>, Option<i64>) =
            match serde_json::from_slice(&raw) {
                Ok(four) => four,
                Err(_) => {
                    let (n, b, l): (String, i64, Vec<(String, i64)>) =
                        serde_json::from_slice(&raw).ok()?;
                    (n, b, l, None)
                }
            };
        if nonce != pid.nonce || list.len() > max {
            return None;
        }
        let live = live.filter(|_| signed.is_some());
        let mut conversations = Vec::with_capacity(list.len());
        for (c, at) in list {
            if c.is_empty() || c.chars().count() > MAX_ID_CHARS {
                return None;
            }
            conversations.push((Arc::from(c), at));
        }
        Some((
            Offset {
                nonce,
                base,
                conversations,
                overflow: false,
            },
            live,
        ))
    }
}

/// A replayed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Replayed {
    /// A message the user received: `receive_message`.
    Received(messages::Model),
    /// A message of the user's that the receiver read: `message_read`.
    Read(messages::Model),
}

impl Replayed {
    /// The event's stamp.
    pub fn at(&self) -> i64 {
        match self {
            Replayed::Received(m) => millis(&m.created_at),
            Replayed::Read(m) => millis(&m.updated_at),
        }
    }

    /// Tells this event apart from a live one (see [`StreamKey`]).
    pub fn key(&self) -> StreamKey {
        match self {
            Replayed::Received(m) => StreamKey::received(&m.id),
            Replayed::Read(m) => StreamKey::read(&m.id),
        }
    }
}

/// Where an event stands in its conversation's stream.
#[derive(Debug, Clone)]
pub struct Mark {
    /// The conversation.
    pub conversation: Arc<str>,
    /// Its stamp (milliseconds since the epoch; see `chat::recovery`).
    pub at: i64,
    /// Tells it apart from a replayed event.
    pub key: StreamKey,
}

/// What tells two events of a stream apart: the kind and the message id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamKey(Arc<str>);

impl StreamKey {
    /// `receive_message` (and `message_sent`) of message `id`.
    pub fn received(id: &str) -> Self {
        StreamKey(Arc::from(format!("m:{id}")))
    }

    /// `message_read` of message `id`.
    pub fn read(id: &str) -> Self {
        StreamKey(Arc::from(format!("r:{id}")))
    }

    /// The key as text (how it crosses nodes).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of [`StreamKey::as_str`]'s text; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let id = text
            .strip_prefix("m:")
            .or_else(|| text.strip_prefix("r:"))?;
        (!id.is_empty() && id.chars().count() <= MAX_ID_CHARS).then(|| StreamKey(Arc::from(text)))
    }
}

/// What `user` missed after `offset`, oldest first: the messages they received and the read
/// receipts of their messages. `None` if there are more than `max`.
pub(crate) async fn replay<C: ConnectionTrait>(
    db: &C,
    user: &str,
    offset: &Offset,
    max: usize,
) -> Result<Option<Vec<Replayed>>, DbErr> {
    let positions = Positions {
        base: offset.base,
        conversations: &offset.conversations,
    };
    let (received, read) = missed(db, user, positions, max as u64 + 1).await?;
    if received.len() + read.len() > max {
        return Ok(None);
    }
    let mut all: Vec<Replayed> = received
        .into_iter()
        .map(Replayed::Received)
        .chain(read.into_iter().map(Replayed::Read))
        .collect();
    all.sort_by(|a, b| {
        a.at().cmp(&b.at()).then_with(|| match (a, b) {
            (Replayed::Received(x), Replayed::Received(y))
            | (Replayed::Read(x), Replayed::Read(y)) => x.id.cmp(&y.id),
            (Replayed::Received(_), Replayed::Read(_)) => std::cmp::Ordering::Less,
            (Replayed::Read(_), Replayed::Received(_)) => std::cmp::Ordering::Greater,
        })
    });
    Ok(Some(all))
}

/// Where a `receive_message` frame that came from another node stands in its conversation's
/// stream, read from the saved message it carries (`id`, `connectionId`, `createdAt`), so
/// that a socket's offset follows what other nodes deliver to it too. `None` for any other
/// frame (`message_read` carries no stamp: a receipt delivered across nodes may be replayed
/// again after a reconnect).
pub(crate) fn mark_of_remote(frame: &str) -> Option<Mark> {
    let (id, conversation, at) = super::protocol::server::received_message(frame)?;
    Some(Mark {
        conversation: Arc::from(conversation),
        at,
        key: StreamKey::received(&id),
    })
}

#[cfg(test)]
impl Offset {
    /// The position of `conversation`.
    fn position(&self, conversation: &str) -> i64 {
        self.conversations
            .iter()
            .find(|(c, _)| **c == *conversation)
            .map_or(self.base, |(_, at)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_verify_only_as_signed() {
        let key = PidKey::new("secret");
        let pid = Pid::fresh("alice", 1_700_000_000_123);
        let token = pid.sign(&key);
        assert_eq!(Pid::verify(&token, &key), Some(pid.clone()));
        assert_eq!(Pid::verify(&token, &PidKey::new("other")), None);
        // Another user's name in the payload: the signature no longer matches.
        let (_, tag) = token.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(json!(["bob", pid.nonce, pid.base]).to_string());
        assert_eq!(Pid::verify(&format!("{forged}.{tag}"), &key), None);
        for bad in ["", ".", "a.b", "x".repeat(600).as_str()] {
            assert_eq!(Pid::verify(bad, &key), None);
        }
        assert_ne!(Pid::fresh("alice", 1).nonce, Pid::fresh("alice", 1).nonce);
    }

    #[test]
    fn offsets_advance_per_conversation_and_round_trip() {
        let pid = Pid::fresh("alice", 1000);
        let mut offset = Offset::start(&pid);
        let (a, b): (Arc<str>, Arc<str>) = ("conv-a".into(), "conv-b".into());
        offset.advance(&a, 1500, 4);
        offset.advance(&b, 1200, 4);
        offset.advance(&a, 1400, 4); // never back
        offset.advance(&"conv-c".into(), 900, 4); // at or below the base: nothing to track
        assert_eq!(offset.position(&a), 1500);
        assert_eq!(offset.position(&b), 1200);
        assert_eq!(offset.position("conv-c"), 1000);
        let key = PidKey::new("secret");
        let text = offset.encode(&key, 4242);
        assert_eq!(
            Offset::decode(&text, &pid, 4, &key),
            Some((offset.clone(), Some(4242)))
        );
        // Another key's signature: the positions hold, the stamp vouches for nothing.
        assert_eq!(
            Offset::decode(&text, &pid, 4, &PidKey::new("other")),
            Some((offset.clone(), None))
        );
        // A stamp changed by the client breaks the signature.
        let (payload, tag) = text.split_once('.').unwrap();
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let forged = URL_SAFE_NO_PAD.encode(raw.replace("4242", "9999"));
        assert_eq!(
            Offset::decode(&format!("{forged}.{tag}"), &pid, 4, &key).map(|(_, live)| live),
            Some(None)
        );
        // Another stream's offset, garbage, too many conversations: not used.
        assert_eq!(
            Offset::decode(&text, &Pid::fresh("alice", 1000), 4, &key),
            None
        );
        assert_eq!(Offset::decode("%%%", &pid, 4, &key), None);
        assert_eq!(Offset::decode(&text, &pid, 1, &key), None);
        // Overflow: the offset stops recovering.
        offset.advance(&"conv-d".into(), 2000, 2);
        assert!(offset.overflow);
        assert_eq!(offset.encode(&key, 1), "-");
        assert_eq!(Offset::decode("-", &pid, 4, &key), None);
    }

    #[test]
    fn remote_receive_message_frames_carry_their_mark() {
        let frame = r#"42["receive_message",{"id":"m1","connectionId":"c1","createdAt":"2026-01-18T04:59:38.123Z","content":"x"}]"#;
        let mark = mark_of_remote(frame).expect("a mark");
        assert_eq!(&*mark.conversation, "c1");
        assert_eq!(mark.at, 1_768_712_378_123);
        assert_eq!(mark.key, StreamKey::received("m1"));
        assert!(mark_of_remote(r#"42["message_read",{"messageId":"m1"}]"#).is_none());
    }

    #[test]
    fn millis_round_trip() {
        let t = entity::now_utc_ms();
        assert_eq!(from_millis(millis(&t)), t);
    }
}
