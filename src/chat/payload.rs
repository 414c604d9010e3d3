//! Validation of the chat events' arguments.
//!
//! The browser runs the unmodified socket.io-client, so an event's arguments arrive as
//! JSON values. These pure functions turn them into typed payloads or a [`PayloadError`]
//! whose [`message`](PayloadError::message) is sent back to the client as is.
//!
//! Common rules: fields the server does not know are ignored, and JSON `null` in an
//! optional field means the field is absent.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};

pub use entity::messages::MediaType;

/// Most characters in a connection id, message id or `tempId`.
pub const MAX_ID_CHARS: usize = 128;
/// Most characters in `mediaUrl` and `mediaThumbnail`.
pub const MAX_URL_CHARS: usize = 2048;
/// Most characters in `mediaName`.
pub const MAX_MEDIA_NAME_CHARS: usize = 255;

const INVALID_CONNECTION_ID: &str = "Invalid connection id.";
const INVALID_MESSAGE_ID: &str = "Invalid message id.";
const INVALID_PAYLOAD: &str = "Invalid payload.";
const INVALID_MESSAGE_PAYLOAD: &str = "Invalid message payload.";
const CONTENT_REQUIRED: &str = "Message content is required.";
const INVALID_TEMP_ID: &str = "tempId must be a string of at most 128 characters.";
const INVALID_MEDIA_URL: &str = "Invalid mediaUrl.";
const INVALID_MEDIA_TYPE: &str = "Invalid mediaType.";
const INVALID_MEDIA_NAME: &str = "Invalid mediaName.";
const INVALID_MEDIA_SIZE: &str = "Invalid mediaSize.";
const INVALID_MEDIA_THUMBNAIL: &str = "Invalid mediaThumbnail.";
const MEDIA_URL_REQUIRED: &str = "mediaUrl is required with media fields.";

/// Why an event's arguments were refused; [`message`](Self::message) is client-facing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadError(Cow<'static, str>);

impl PayloadError {
    fn fixed(message: &'static str) -> Self {
        PayloadError(Cow::Borrowed(message))
    }

    /// The message for the client, a short sentence ending with a period.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PayloadError {}

/// The arguments of `join_chat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinChat {
    /// The connection (conversation) to join.
    pub connection_id: String,
}

/// Parses `join_chat`: the connection id as a string (the Node server's form) or as
/// `{connectionId}`.
pub fn join_chat(args: &[Value]) -> Result<JoinChat, PayloadError> {
    let raw = match args.first() {
        Some(Value::Object(obj)) => obj.get("connectionId"),
        other => other,
    };
    let connection_id = id_string(raw).ok_or(PayloadError::fixed(INVALID_CONNECTION_ID))?;
    Ok(JoinChat { connection_id })
}

/// The optional attachment of a message; every field is `None` when there is none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Media {
    /// `http(s)` URL of the uploaded file; set whenever any other field is.
    pub url: Option<String>,
    /// Kind of the file.
    pub media_type: Option<MediaType>,
    /// Original file name.
    pub name: Option<String>,
    /// Size in bytes.
    pub size: Option<i32>,
    /// `http(s)` URL of a preview image.
    pub thumbnail: Option<String>,
}

/// The arguments of `send_message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendMessage {
    /// The connection (conversation) the message belongs to.
    pub connection_id: String,
    /// The text, trimmed; empty only when the message carries media.
    pub content: String,
    /// The client's id for its optimistic copy, echoed back.
    pub temp_id: String,
    /// The attachment.
    pub media: Media,
}

/// Parses `send_message`: `{connectionId, content, tempId, mediaUrl?, mediaType?,
/// mediaName?, mediaSize?, mediaThumbnail?}`.
///
/// `content` is trimmed as JavaScript's `String.prototype.trim` does; it may be empty (or
/// absent) only when `mediaUrl` is given, and has at most `max_content_chars` characters.
pub fn send_message(args: &[Value], max_content_chars: usize) -> Result<SendMessage, PayloadError> {
    let Some(Value::Object(obj)) = args.first() else {
        return Err(PayloadError::fixed(INVALID_MESSAGE_PAYLOAD));
    };
    let connection_id =
        id_string(obj.get("connectionId")).ok_or(PayloadError::fixed(INVALID_CONNECTION_ID))?;
    let content = match present(obj, "content") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(PayloadError::fixed(INVALID_MESSAGE_PAYLOAD)),
    };
    let temp_id = match obj.get("tempId") {
        Some(Value::String(s)) if s.chars().count() <= MAX_ID_CHARS => s.clone(),
        _ => return Err(PayloadError::fixed(INVALID_TEMP_ID)),
    };
    let media = media(obj)?;

    let content = content.map(js_trim).unwrap_or("");
    if content.is_empty() && media.url.is_none() {
        return Err(PayloadError::fixed(CONTENT_REQUIRED));
    }
    if content.chars().count() > max_content_chars {
        return Err(PayloadError(Cow::Owned(format!(
            "Message content is too long (max {max_content_chars} characters)."
        ))));
    }
    Ok(SendMessage {
        connection_id,
        content: content.to_owned(),
        temp_id,
        media,
    })
}

/// The arguments of `mark_message_read`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkRead {
    /// The message to mark as read.
    pub message_id: String,
    /// The connection the message belongs to.
    pub connection_id: String,
}

/// Parses `mark_message_read`: `{messageId, connectionId}`.
pub fn mark_message_read(args: &[Value]) -> Result<MarkRead, PayloadError> {
    let Some(Value::Object(obj)) = args.first() else {
        return Err(PayloadError::fixed(INVALID_PAYLOAD));
    };
    let message_id =
        id_string(obj.get("messageId")).ok_or(PayloadError::fixed(INVALID_MESSAGE_ID))?;
    let connection_id =
        id_string(obj.get("connectionId")).ok_or(PayloadError::fixed(INVALID_CONNECTION_ID))?;
    Ok(MarkRead {
        message_id,
        connection_id,
    })
}

/// The media fields of a `send_message` payload.
fn media(obj: &Map<String, Value>) -> Result<Media, PayloadError> {
    let url = present(obj, "mediaUrl")
        .map(|v| http_url(v).ok_or(PayloadError::fixed(INVALID_MEDIA_URL)))
        .transpose()?;
    let media_type = present(obj, "mediaType")
        .map(|v| {
            v.as_str()
                .and_then(|s| s.parse::<MediaType>().ok())
                .ok_or(PayloadError::fixed(INVALID_MEDIA_TYPE))
        })
        .transpose()?;
    let name = present(obj, "mediaName")
        .map(|v| match v {
            Value::String(s) if s.chars().count() <= MAX_MEDIA_NAME_CHARS => Ok(s.clone()),
            _ => Err(PayloadError::fixed(INVALID_MEDIA_NAME)),
        })
        .transpose()?;
    let size = present(obj, "mediaSize")
        .map(|v| {
            // `as_i64` is `None` for floats (even 3.0) and for integers above i64::MAX.
            v.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .filter(|n| *n >= 0)
                .ok_or(PayloadError::fixed(INVALID_MEDIA_SIZE))
        })
        .transpose()?;
    let thumbnail = present(obj, "mediaThumbnail")
        .map(|v| http_url(v).ok_or(PayloadError::fixed(INVALID_MEDIA_THUMBNAIL)))
        .transpose()?;

    let has_details =
        media_type.is_some() || name.is_some() || size.is_some() || thumbnail.is_some();
    if url.is_none() && has_details {
        return Err(PayloadError::fixed(MEDIA_URL_REQUIRED));
    }
    Ok(Media {
        url,
        media_type,
        name,
        size,
        thumbnail,
    })
}

/// The field `key` of `obj`, `None` when missing or `null`.
fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// A non-empty string of at most [`MAX_ID_CHARS`] characters.
fn id_string(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_ID_CHARS => {
            Some(s.clone())
        }
        _ => None,
    }
}

/// A string starting with `http://` or `https://` (scheme in any case) followed by at least
/// one character, at most [`MAX_URL_CHARS`] characters long, without control characters.
fn http_url(v: &Value) -> Option<String> {
    let s = v.as_str()?;
    let rest = strip_prefix_ignore_ascii_case(s, "https://")
        .or_else(|| strip_prefix_ignore_ascii_case(s, "http://"))?;
    let ok =
        !rest.is_empty() && s.chars().count() <= MAX_URL_CHARS && !s.chars().any(char::is_control);
    ok.then(|| s.to_owned())
}

fn strip_prefix_ignore_ascii_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `s` without leading and trailing whitespace as JavaScript's `String.prototype.trim`
/// defines it (WhiteSpace and LineTerminator; unlike [`str::trim`], it strips U+FEFF and
/// keeps U+0085).
fn js_trim(s: &str) -> &str {
    s.trim_matches(is_js_whitespace)
}

fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\u{0009}'
            | '\u{000A}'
            | '\u{000B}'
            | '\u{000C}'
            | '\u{000D}'
            | '\u{0020}'
            | '\u{00A0}'
            | '\u{1680}'
            | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err<T: fmt::Debug>(r: Result<T, PayloadError>) -> String {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.message().to_owned(),
        }
    }

    fn send(v: Value) -> Result<SendMessage, PayloadError> {
        send_message(&[v], 10)
    }

    #[test]
    fn join_chat_accepts_a_string_or_an_object() {
        assert_eq!(join_chat(&[json!("conn1")]).unwrap().connection_id, "conn1");
        assert_eq!(
            join_chat(&[json!({"connectionId": "conn2", "extra": 1})])
                .unwrap()
                .connection_id,
            "conn2"
        );
        let long = "é".repeat(MAX_ID_CHARS);
        assert_eq!(join_chat(&[json!(long)]).unwrap().connection_id, long);
    }

    #[test]
    fn join_chat_refuses_bad_ids() {
        let too_long = "a".repeat(MAX_ID_CHARS + 1);
        for args in [
            vec![],
            vec![json!(null)],
            vec![json!("")],
            vec![json!(42)],
            vec![json!(too_long)],
            vec![json!({})],
            vec![json!({"connectionId": 1})],
            vec![json!({"connectionId": ""})],
            vec![json!(["conn"])],
        ] {
            assert_eq!(err(join_chat(&args)), "Invalid connection id.", "{args:?}");
        }
    }

    #[test]
    fn send_message_text() {
        let m = send_message(
            &[
                json!({"connectionId": "c1", "content": "  hi there \n", "tempId": "t1", "x": [1]}),
                json!("ignored"),
            ],
            1000,
        )
        .unwrap();
        assert_eq!(
            m,
            SendMessage {
                connection_id: "c1".into(),
                content: "hi there".into(),
                temp_id: "t1".into(),
                media: Media::default(),
            }
        );
    }

    #[test]
    fn send_message_media() {
        let m = send(json!({
            "connectionId": "c1",
            "tempId": "t1",
            "content": null,
            "mediaUrl": "https://cdn.example.com/a.png",
            "mediaType": "image",
            "mediaName": "a.png",
            "mediaSize": 2147483647,
            "mediaThumbnail": "http://cdn.example.com/a-thumb.png",
        }))
        .unwrap();
        assert_eq!(m.content, "");
        assert_eq!(
            m.media,
            Media {
                url: Some("https://cdn.example.com/a.png".into()),
                media_type: Some(MediaType::Image),
                name: Some("a.png".into()),
                size: Some(i32::MAX),
                thumbnail: Some("http://cdn.example.com/a-thumb.png".into()),
            }
        );
        // Absent content with media, nulls for the optional fields, blank content.
        let m = send(
            json!({"connectionId": "c", "tempId": "", "mediaUrl": "http://x",
            "mediaType": null, "mediaSize": 0, "content": "   "}),
        )
        .unwrap();
        assert_eq!(m.content, "");
        assert_eq!(m.media.size, Some(0));
        assert_eq!(m.media.media_type, None);
        assert_eq!(m.temp_id, "");
        for (name, t) in [
            ("video", MediaType::Video),
            ("audio", MediaType::Audio),
            ("file", MediaType::File),
        ] {
            let m = send(
                json!({"connectionId": "c", "tempId": "t", "mediaUrl": "http://x",
                "mediaType": name}),
            )
            .unwrap();
            assert_eq!(m.media.media_type, Some(t));
            assert_eq!(t.as_str(), name);
        }
    }

    #[test]
    fn send_message_content_rules() {
        let base = |content: Value| json!({"connectionId": "c", "tempId": "t", "content": content});
        assert_eq!(err(send(base(json!("")))), "Message content is required.");
        assert_eq!(
            err(send(base(json!(" \t\n\u{feff}\u{3000}")))),
            "Message content is required."
        );
        assert_eq!(err(send(base(Value::Null))), "Message content is required.");
        assert_eq!(
            err(send(json!({"connectionId": "c", "tempId": "t"}))),
            "Message content is required."
        );
        assert_eq!(err(send(base(json!(5)))), "Invalid message payload.");
        assert_eq!(err(send(base(json!(["a"])))), "Invalid message payload.");
        // Ten characters (multi-byte), padded: fits after trimming.
        let ten = "ééééééééé😀";
        assert_eq!(
            send(base(json!(format!("  {ten}  ")))).unwrap().content,
            ten
        );
        assert_eq!(
            err(send(base(json!("12345678901")))),
            "Message content is too long (max 10 characters)."
        );
        // Media does not lift the length limit.
        assert_eq!(
            err(send(
                json!({"connectionId": "c", "tempId": "t", "content": "12345678901",
                "mediaUrl": "https://x"})
            )),
            "Message content is too long (max 10 characters)."
        );
    }

    #[test]
    fn js_trim_matches_javascript() {
        assert_eq!(js_trim("\u{feff} a b \u{2029}"), "a b");
        // U+0085 is not whitespace for JavaScript's trim.
        assert_eq!(js_trim("\u{85}a\u{85}"), "\u{85}a\u{85}");
        assert_eq!(
            js_trim("\u{a0}\u{1680}\u{2000}\u{200a}\u{202f}\u{205f}x\u{b}\u{c}\r"),
            "x"
        );
        // Zero-width space is not whitespace.
        assert_eq!(js_trim("\u{200b}x"), "\u{200b}x");
    }

    #[test]
    fn send_message_refuses_bad_shapes() {
        for args in [
            vec![],
            vec![json!("c1")],
            vec![json!(null)],
            vec![json!([{}])],
        ] {
            assert_eq!(err(send_message(&args, 10)), "Invalid message payload.");
        }
        for id in [json!(null), json!(""), json!(7), json!("a".repeat(129))] {
            assert_eq!(
                err(send(
                    json!({"connectionId": id, "content": "x", "tempId": "t"})
                )),
                "Invalid connection id."
            );
        }
        let msg = "tempId must be a string of at most 128 characters.";
        assert_eq!(err(send(json!({"connectionId": "c", "content": "x"}))), msg);
        for t in [json!(null), json!(1), json!("a".repeat(129))] {
            assert_eq!(
                err(send(
                    json!({"connectionId": "c", "content": "x", "tempId": t})
                )),
                msg
            );
        }
        assert!(
            send(json!({"connectionId": "c", "content": "x", "tempId": "a".repeat(128)})).is_ok()
        );
    }

    #[test]
    fn send_message_refuses_bad_media() {
        let with = |key: &str, v: Value| {
            let mut obj = json!({"connectionId": "c", "content": "x", "tempId": "t",
                "mediaUrl": "https://cdn.example.com/f"});
            obj[key] = v;
            err(send(obj))
        };
        for v in [
            json!(""),
            json!("ftp://x"),
            json!("javascript:alert(1)"),
            json!("https://"),
            json!("https://a\nb"),
            json!(1),
            json!(format!("https://{}", "a".repeat(2041))),
        ] {
            assert_eq!(with("mediaUrl", v.clone()), "Invalid mediaUrl.", "{v}");
            assert_eq!(
                with("mediaThumbnail", v.clone()),
                "Invalid mediaThumbnail.",
                "{v}"
            );
        }
        for v in [json!("IMAGE"), json!("pdf"), json!(1), json!("")] {
            assert_eq!(with("mediaType", v.clone()), "Invalid mediaType.", "{v}");
        }
        for v in [
            json!(1.5),
            json!(3.0),
            json!("12"),
            json!(-1),
            json!(2147483648u64),
            json!(u64::MAX),
            json!(true),
        ] {
            assert_eq!(with("mediaSize", v.clone()), "Invalid mediaSize.", "{v}");
        }
        for v in [json!(1), json!("a".repeat(256))] {
            assert_eq!(with("mediaName", v.clone()), "Invalid mediaName.", "{v}");
        }
        // Exactly at the limits.
        let url = format!("https://{}", "a".repeat(2040));
        assert_eq!(url.len(), MAX_URL_CHARS);
        let m = send(json!({"connectionId": "c", "content": "x", "tempId": "t",
            "mediaUrl": url, "mediaName": "n".repeat(255), "mediaThumbnail": "HTTPS://X"}))
        .unwrap();
        assert_eq!(m.media.url.as_deref(), Some(url.as_str()));
        assert_eq!(m.media.thumbnail.as_deref(), Some("HTTPS://X"));
    }

    #[test]
    fn media_fields_need_a_media_url() {
        for (key, v) in [
            ("mediaType", json!("image")),
            ("mediaName", json!("a.png")),
            ("mediaSize", json!(3)),
            ("mediaThumbnail", json!("https://x/t")),
        ] {
            let mut obj = json!({"connectionId": "c", "content": "x", "tempId": "t",
                "mediaUrl": null});
            obj[key] = v;
            assert_eq!(
                err(send(obj)),
                "mediaUrl is required with media fields.",
                "{key}"
            );
        }
    }

    #[test]
    fn mark_message_read_parses() {
        let r =
            mark_message_read(&[json!({"messageId": "m1", "connectionId": "c1", "x": 0})]).unwrap();
        assert_eq!(
            r,
            MarkRead {
                message_id: "m1".into(),
                connection_id: "c1".into()
            }
        );
        for args in [vec![], vec![json!("m1")], vec![json!(null)]] {
            assert_eq!(err(mark_message_read(&args)), "Invalid payload.");
        }
        assert_eq!(
            err(mark_message_read(&[json!({"connectionId": "c1"})])),
            "Invalid message id."
        );
        assert_eq!(
            err(mark_message_read(&[
                json!({"messageId": "", "connectionId": "c1"})
            ])),
            "Invalid message id."
        );
        assert_eq!(
            err(mark_message_read(&[
                json!({"messageId": "m", "connectionId": 3})
            ])),
            "Invalid connection id."
        );
        assert_eq!(
            err(mark_message_read(&[
                json!({"messageId": "m", "connectionId": "a".repeat(129)})
            ])),
            "Invalid connection id."
        );
    }

    #[test]
    fn payload_error_displays_its_message() {
        let e = PayloadError::fixed(INVALID_PAYLOAD);
        assert_eq!(e.to_string(), "Invalid payload.");
        assert_eq!(e.message(), "Invalid payload.");
    }
}
