//! Courier's own broadcast flags (a Node server ignores flags it does not know).

use std::sync::Arc;

use crate::chat::push::Mark;

/// The broadcast flag that carries an event's place in its conversation's stream between
/// Courier nodes, `[connectionId, stamp, key]` (a Node server ignores flags it does not know).
pub const MARK_FLAG: &str = "courierMark";

/// The flags that carry `mark`.
pub(super) fn mark_flags(mark: &Mark) -> Vec<(rmpv::Value, rmpv::Value)> {
    vec![(
        rmpv::Value::from(MARK_FLAG),
        rmpv::Value::Array(vec![
            rmpv::Value::from(&*mark.conversation),
            rmpv::Value::from(mark.at),
            rmpv::Value::from(mark.key.as_str()),
        ]),
    )]
}

/// The mark a broadcast's flags carry, if any.
pub(super) fn mark_of(flags: &serde_json::Value) -> Option<Mark> {
    let [conversation, at, key] = flags.get(MARK_FLAG)?.as_array()?.as_slice() else {
        return None;
    };
    let conversation = conversation.as_str()?;
    if conversation.is_empty()
        || conversation.chars().count() > crate::chat::protocol::args::MAX_ID_CHARS
    {
        return None;
    }
    Some(Mark {
        conversation: Arc::from(conversation),
        at: at.as_i64()?,
        key: crate::chat::recovery::StreamKey::parse(key.as_str()?)?,
    })
}

/// The broadcast flag of a node's notice that some of its publishes were lost (Redis failed
/// them): a user's id (what was lost went to that user), or `true` (to anyone). The other
/// Courier nodes' sockets of that user (of everyone) catch up from the database; the notice
/// follows the lost publishes and comes before the next ones on the same channel.
pub const MISSED_FLAG: &str = "courierMissed";

/// The room a missed-publishes notice goes to: nobody's (a Node server delivers it to no one).
pub const MISSED_ROOM: &str = "courier:missed";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::recovery::StreamKey;
    use crate::cluster::wire;
    use serde_json::json;

    #[test]
    fn a_mark_crosses_in_the_broadcast_flags() {
        let mark = Mark {
            conversation: Arc::from("conv1"),
            at: 1_768_712_378_123,
            key: StreamKey::read("m1"),
        };
        let bytes = wire::encode_broadcast(
            "node1",
            "/",
            &json!(["message_read", {"messageId": "m1"}]),
            &["u1"],
            mark_flags(&mark),
        );
        let broadcast = wire::decode_broadcast(&bytes).expect("a broadcast");
        assert_eq!(
            broadcast.flags,
            json!({"courierMark": ["conv1", 1_768_712_378_123_i64, "r:m1"]})
        );
        let back = mark_of(&broadcast.flags).expect("a mark");
        assert_eq!(&*back.conversation, "conv1");
        assert_eq!(back.at, mark.at);
        assert_eq!(back.key, mark.key);
        // A Node server's flags, or a mangled mark: none.
        assert!(mark_of(&json!({})).is_none());
        assert!(mark_of(&json!({"volatile": true})).is_none());
        assert!(mark_of(&json!({"courierMark": ["c", "x", "m:1"]})).is_none());
        assert!(mark_of(&json!({"courierMark": ["c", 1, "z:1"]})).is_none());
        assert!(mark_of(&json!({"courierMark": ["", 1, "m:1"]})).is_none());
        assert!(mark_of(&json!({"courierMark": ["c", 1]})).is_none());
    }
}
