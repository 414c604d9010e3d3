//! The chat events' argument checks (`join_chat`, `send_message`, `mark_message_read`,
//! `delete_messages`, `clear_conversation`, `fetch_messages`, the `call:*` events) on
//! arbitrary JSON.
//!
//! Beyond "no panic", it checks what the checks promise: an accepted message has content
//! (trimmed, within the limit) or media, ids are non-empty and at most 128 characters, a
//! refusal's message is a sentence for the client (ending with a period).

#![no_main]

use courier_fuzz::chat::{
    args::{ArgError, MAX_ID_CHARS},
    call, clear_conversation, delete_messages, fetch_messages, join_chat, mark_read,
    send_message,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const MAX_CONTENT: usize = 50;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    // The event's arguments: an array as it comes, anything else as the one argument.
    let args = match value {
        Value::Array(args) => args,
        other => vec![other],
    };
    check(join_chat::parse(&args).map(|j| assert_id(&j.connection_id)));
    check(send_message::parse(&args, MAX_CONTENT).map(|m| {
        assert_id(&m.connection_id);
        assert!(m.temp_id.chars().count() <= MAX_ID_CHARS);
        assert!(m.content.chars().count() <= MAX_CONTENT);
        assert!(!m.content.is_empty() || m.media.url.is_some(), "{m:?}");
        assert_eq!(m.content.trim(), m.content.trim_matches(char::is_whitespace));
        if m.media.url.is_none() {
            assert!(m.media.media_type.is_none() && m.media.name.is_none());
            assert!(m.media.size.is_none() && m.media.thumbnail.is_none());
        }
        assert!(m.media.size.is_none_or(|n| n >= 0));
    }));
    check(mark_read::parse(&args).map(|r| {
        assert_id(&r.message_id);
        assert_id(&r.connection_id);
    }));
    check(delete_messages::parse(&args, delete_messages::MAX_MESSAGE_IDS).map(|d| {
        assert_id(&d.connection_id);
        assert!(!d.message_ids.is_empty() && d.message_ids.len() <= delete_messages::MAX_MESSAGE_IDS);
        d.message_ids.iter().for_each(|id| assert_id(id));
    }));
    check(clear_conversation::parse(&args).map(|c| assert_id(&c.connection_id)));
    check(fetch_messages::parse(&args).map(|f| {
        assert_id(&f.connection_id);
        assert!((1..=fetch_messages::MAX_LIMIT).contains(&f.limit));
        if let Some(cursor) = &f.before {
            // A cursor the client sent back decodes to what it encodes.
            let again = fetch_messages::Cursor::decode(&cursor.encode());
            assert_eq!(again.as_ref(), Some(cursor));
        }
    }));
    for name in [
        "call:initiate",
        "call:answer",
        "call:reject",
        "call:end",
        "call:ice-candidate",
    ] {
        let parsed = call::parse(name, &args).expect("a call event name");
        check(parsed.map(|c| {
            if let Some(other) = c.other() {
                assert_id(other);
            }
        }));
    }
    assert!(call::parse("send_message", &args).is_none());
});

fn assert_id(id: &str) {
    assert!(!id.is_empty() && id.chars().count() <= MAX_ID_CHARS, "{id:?}");
}

fn check(result: Result<(), ArgError>) {
    if let Err(e) = result {
        assert!(e.message().ends_with('.'), "{:?}", e.message());
    }
}
