//! `fetch_messages({connectionId, before?, limit?})`: a conversation's history over the
//! socket.
//!
//! Members only, whatever the connection's status (the app shows ended conversations'
//! history). The answer is the acknowledgement `{messages, nextCursor}`: at most `limit`
//! (1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]) saved messages, newest first, older than
//! the opaque cursor `before` (from a previous answer's `nextCursor`; absent: the newest),
//! and `nextCursor` for the page after them, `null` when there is none. One indexed query
//! (`messages_connectionId_idx`, see docs/delivery-guarantees.md, "History"); a request without an acknowledgement, or with
//! bad arguments, gets an `error` event (and a failed ack).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use super::args::{connection_id, object, ArgError, INVALID_PAYLOAD};

/// Most messages in one answer.
pub const MAX_LIMIT: u64 = 100;
/// Messages in an answer when `limit` is absent.
pub(crate) const DEFAULT_LIMIT: u64 = 50;

const INVALID_LIMIT: &str = "limit must be an integer from 1 to 100.";
const INVALID_CURSOR: &str = "Invalid cursor.";
/// The answer to a `fetch_messages` that asked for no acknowledgement.
pub(crate) const NEEDS_ACK: &str =
    "fetch_messages answers with an acknowledgement: emit it with one.";

/// Where a page starts: older than this message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// `createdAt` in milliseconds since the epoch.
    pub at: i64,
    /// The message id (ties on `createdAt`).
    pub id: String,
}

impl Cursor {
    /// The opaque text the client gets.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.at, self.id))
    }

    /// The cursor a client sent back.
    pub fn decode(text: &str) -> Option<Cursor> {
        if text.len() > 512 {
            return None;
        }
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(text).ok()?).ok()?;
        let (at, id) = raw.split_once(':')?;
        if id.is_empty() {
            return None;
        }
        Some(Cursor {
            at: at.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// The arguments of `fetch_messages`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchMessages {
    pub connection_id: String,
    pub before: Option<Cursor>,
    pub limit: u64,
}

/// Parses `fetch_messages`.
pub fn parse(args: &[Value]) -> Result<FetchMessages, ArgError> {
    let obj = object(args, INVALID_PAYLOAD)?;
    let connection_id = connection_id(obj)?;
    let before = match obj.get("before") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Cursor::decode(s).ok_or(ArgError::fixed(INVALID_CURSOR))?),
        Some(_) => return Err(ArgError::fixed(INVALID_CURSOR)),
    };
    let limit = match obj.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or(ArgError::fixed(INVALID_LIMIT))?,
    };
    Ok(FetchMessages {
        connection_id,
        before,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::super::args::refusal;
    use super::*;
    use serde_json::json;

    fn err(args: Value) -> String {
        refusal(parse(&[args]))
    }

    #[test]
    fn fetch_messages_parses() {
        let r = parse(&[json!({"connectionId": "c1"})]).unwrap();
        assert_eq!(r.limit, DEFAULT_LIMIT);
        assert_eq!(r.before, None);
        let cursor = Cursor {
            at: 1_767_000_000_123,
            id: "cm1".into(),
        };
        let r = parse(&[json!({"connectionId": "c1", "limit": 100, "before": cursor.encode()})])
            .unwrap();
        assert_eq!(r.limit, 100);
        assert_eq!(r.before, Some(cursor));
        for limit in [json!(0), json!(101), json!(1.5), json!("5"), json!(-1)] {
            assert_eq!(
                err(json!({"connectionId": "c1", "limit": limit})),
                INVALID_LIMIT
            );
        }
        for before in [json!(5), json!("%%"), json!(URL_SAFE_NO_PAD.encode("12"))] {
            assert_eq!(
                err(json!({"connectionId": "c1", "before": before})),
                INVALID_CURSOR
            );
        }
        assert_eq!(err(json!({"limit": 5})), "Invalid connection id.");
        assert_eq!(err(json!("c1")), "Invalid payload.");
    }
}
