//! Keys derived from the shared secret (`auth.secret`), so that every node, after every
//! restart, makes the same message id for the same message and verifies the same pids.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::protocol::send_message::SendMessage;

/// An HMAC-SHA256 key derived from `secret` for the purpose `label`.
pub fn derive(secret: &str, label: &[u8]) -> Hmac<Sha256> {
    let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    derive.update(label);
    let key = derive.finalize().into_bytes();
    <Hmac<Sha256> as Mac>::new_from_slice(&key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"))
}

/// The key message ids are made with.
#[derive(Clone)]
pub struct MessageIdKey(Hmac<Sha256>);

impl MessageIdKey {
    /// The key for `secret`.
    pub fn new(secret: &str) -> Self {
        MessageIdKey(derive(secret, b"courier message ids v1"))
    }
}

/// The id of `message` from `sender`: `c` and 24 base-36 characters (the shape of Prisma's
/// `cuid()`), a keyed hash of the sender, the connection, the `tempId`, the content and the
/// media fields. A client that sends the same message again with the same `tempId` (a retry)
/// gets the same id, so the database keeps one row; reusing a `tempId` for different content
/// makes a different id, a new message.
pub fn message_id(key: &MessageIdKey, sender: &str, message: &SendMessage) -> String {
    let mut mac = key.0.clone();
    let media = &message.media;
    let fields: [&[u8]; 9] = [
        sender.as_bytes(),
        message.connection_id.as_bytes(),
        message.temp_id.as_bytes(),
        message.content.as_bytes(),
        media.url.as_deref().unwrap_or("").as_bytes(),
        media.media_type.map_or("", |t| t.as_str()).as_bytes(),
        media.name.as_deref().unwrap_or("").as_bytes(),
        media.thumbnail.as_deref().unwrap_or("").as_bytes(),
        &media.size.map_or(-1i64, i64::from).to_le_bytes(),
    ];
    for field in fields {
        // Length-prefixed, so that no two different messages feed the same bytes.
        mac.update(&(field.len() as u64).to_le_bytes());
        mac.update(field);
    }
    let digest = mac.finalize().into_bytes();
    let mut n = u128::from_le_bytes(digest[..16].try_into().unwrap_or([0; 16]));
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut id = [b'0'; 25];
    id[0] = b'c';
    for slot in id[1..].iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8_lossy(&id).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::protocol::send_message::parse;
    use serde_json::{json, Value};

    fn send(v: Value) -> Result<SendMessage, crate::chat::protocol::args::ArgError> {
        parse(&[v], 10)
    }

    #[test]
    fn message_ids_are_made_from_the_message() {
        let key = MessageIdKey::new("secret");
        let m = send(json!({"connectionId": "c1", "content": "hi", "tempId": "t1"})).unwrap();
        let id = message_id(&key, "alice", &m);
        assert_eq!(id.len(), 25);
        assert!(id.starts_with('c'));
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
        // The same message again: the same id, also from another key object (another node).
        assert_eq!(message_id(&MessageIdKey::new("secret"), "alice", &m), id);
        // Anything different: a different id.
        let other = |v: Value| message_id(&key, "alice", &send(v).unwrap());
        assert_ne!(
            other(json!({"connectionId": "c1", "content": "hi!", "tempId": "t1"})),
            id
        );
        assert_ne!(
            other(json!({"connectionId": "c1", "content": "hi", "tempId": "t2"})),
            id
        );
        assert_ne!(
            other(json!({"connectionId": "c2", "content": "hi", "tempId": "t1"})),
            id
        );
        assert_ne!(
            other(
                json!({"connectionId": "c1", "content": "hi", "tempId": "t1", "mediaUrl": "https://x"})
            ),
            id
        );
        assert_ne!(message_id(&key, "bob", &m), id);
        assert_ne!(message_id(&MessageIdKey::new("other"), "alice", &m), id);
        // Field boundaries count: "ab"+"c" is not "a"+"bc".
        let a = send(json!({"connectionId": "c1", "content": "bc", "tempId": "a"})).unwrap();
        let b = send(json!({"connectionId": "c1", "content": "c", "tempId": "ab"})).unwrap();
        assert_ne!(message_id(&key, "u", &a), message_id(&key, "u", &b));
    }
}
