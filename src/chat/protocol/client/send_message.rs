//! `send_message({connectionId, content, tempId, mediaUrl?, mediaType?, mediaName?,
//! mediaSize?, mediaThumbnail?})`: where a message is parsed, ordered, saved and delivered.
//!
//! 1. **Parsed** here ([`parse`]): `content` trimmed as JavaScript does, non-empty unless
//!    `mediaUrl` is given, at most `chat.max_content_chars` characters; media fields
//!    checked.
//! 2. **Accepted** by the socket: the message gets its id now, once (see `chat::keys::message_id`),
//!    and goes to its conversation's room at once (many may be in flight; the window and
//!    the write queue push back).
//! 3. **Ordered** by the room: its sequence number and `createdAt`.
//! 4. **Saved** by `Persistence`, in a group commit, with `ON CONFLICT ("id") DO NOTHING`.
//! 5. **Delivered** by the room in commit order: `receive_message` (the saved message) to
//!    every socket of the receiver, `message_sent` `{tempId, savedMessage}` (and the ack) to
//!    the sending socket. A retry of a message already saved gets the saved row as
//!    `message_sent`, and the receiver gets nothing twice.

use serde_json::Value;

use super::args::{
    connection_id, http_url, js_trim, object, present, ArgError, MediaType, MAX_ID_CHARS,
    MAX_MEDIA_NAME_CHARS,
};

const INVALID_MESSAGE_PAYLOAD: &str = "Invalid message payload.";
const CONTENT_REQUIRED: &str = "Message content is required.";
const INVALID_TEMP_ID: &str = "tempId must be a string of at most 128 characters.";
const INVALID_MEDIA_URL: &str = "Invalid mediaUrl.";
const INVALID_MEDIA_TYPE: &str = "Invalid mediaType.";
const INVALID_MEDIA_NAME: &str = "Invalid mediaName.";
const INVALID_MEDIA_SIZE: &str = "Invalid mediaSize.";
const INVALID_MEDIA_THUMBNAIL: &str = "Invalid mediaThumbnail.";
const MEDIA_URL_REQUIRED: &str = "mediaUrl is required with media fields.";

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

/// Parses `send_message` (see the module doc).
pub fn parse(args: &[Value], max_content_chars: usize) -> Result<SendMessage, ArgError> {
    let obj = object(args, INVALID_MESSAGE_PAYLOAD)?;
    let connection_id = connection_id(obj)?;
    let content = match present(obj, "content") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(ArgError::fixed(INVALID_MESSAGE_PAYLOAD)),
    };
    let temp_id = match obj.get("tempId") {
        Some(Value::String(s)) if s.chars().count() <= MAX_ID_CHARS => s.clone(),
        _ => return Err(ArgError::fixed(INVALID_TEMP_ID)),
    };
    let media = media(obj)?;

    let content = content.map(js_trim).unwrap_or("");
    if content.is_empty() && media.url.is_none() {
        return Err(ArgError::fixed(CONTENT_REQUIRED));
    }
    if content.chars().count() > max_content_chars {
        return Err(ArgError::owned(format!(
            "Message content is too long (max {max_content_chars} characters)."
        )));
    }
    Ok(SendMessage {
        connection_id,
        content: content.to_owned(),
        temp_id,
        media,
    })
}

/// The media fields of a `send_message` payload.
fn media(obj: &serde_json::Map<String, Value>) -> Result<Media, ArgError> {
    let url = present(obj, "mediaUrl")
        .map(|v| http_url(v).ok_or(ArgError::fixed(INVALID_MEDIA_URL)))
        .transpose()?;
    let media_type = present(obj, "mediaType")
        .map(|v| {
            v.as_str()
                .and_then(MediaType::parse)
                .ok_or(ArgError::fixed(INVALID_MEDIA_TYPE))
        })
        .transpose()?;
    let name = present(obj, "mediaName")
        .map(|v| match v {
            Value::String(s) if s.chars().count() <= MAX_MEDIA_NAME_CHARS => Ok(s.clone()),
            _ => Err(ArgError::fixed(INVALID_MEDIA_NAME)),
        })
        .transpose()?;
    let size = present(obj, "mediaSize")
        .map(|v| {
            // `as_i64` is `None` for floats (even 3.0) and for integers above i64::MAX.
            v.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .filter(|n| *n >= 0)
                .ok_or(ArgError::fixed(INVALID_MEDIA_SIZE))
        })
        .transpose()?;
    let thumbnail = present(obj, "mediaThumbnail")
        .map(|v| http_url(v).ok_or(ArgError::fixed(INVALID_MEDIA_THUMBNAIL)))
        .transpose()?;

    let has_details =
        media_type.is_some() || name.is_some() || size.is_some() || thumbnail.is_some();
    if url.is_none() && has_details {
        return Err(ArgError::fixed(MEDIA_URL_REQUIRED));
    }
    Ok(Media {
        url,
        media_type,
        name,
        size,
        thumbnail,
    })
}

#[cfg(test)]
mod tests {
    use super::super::args::refusal;
    use super::super::args::MAX_URL_CHARS;
    use super::*;
    use serde_json::json;

    fn send_message(args: &[Value], max: usize) -> Result<SendMessage, ArgError> {
        parse(args, max)
    }

    fn send(v: Value) -> Result<SendMessage, ArgError> {
        parse(&[v], 10)
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
        assert_eq!(
            refusal(send(base(json!("")))),
            "Message content is required."
        );
        assert_eq!(
            refusal(send(base(json!(" \t\n\u{feff}\u{3000}")))),
            "Message content is required."
        );
        assert_eq!(
            refusal(send(base(Value::Null))),
            "Message content is required."
        );
        assert_eq!(
            refusal(send(json!({"connectionId": "c", "tempId": "t"}))),
            "Message content is required."
        );
        assert_eq!(refusal(send(base(json!(5)))), "Invalid message payload.");
        assert_eq!(
            refusal(send(base(json!(["a"])))),
            "Invalid message payload."
        );
        // Ten characters (multi-byte), padded: fits after trimming.
        let ten = "ééééééééé😀";
        assert_eq!(
            send(base(json!(format!("  {ten}  ")))).unwrap().content,
            ten
        );
        assert_eq!(
            refusal(send(base(json!("12345678901")))),
            "Message content is too long (max 10 characters)."
        );
        // Media does not lift the length limit.
        assert_eq!(
            refusal(send(
                json!({"connectionId": "c", "tempId": "t", "content": "12345678901",
                "mediaUrl": "https://x"})
            )),
            "Message content is too long (max 10 characters)."
        );
    }

    #[test]
    fn send_message_refuses_bad_shapes() {
        for args in [
            vec![],
            vec![json!("c1")],
            vec![json!(null)],
            vec![json!([{}])],
        ] {
            assert_eq!(refusal(send_message(&args, 10)), "Invalid message payload.");
        }
        for id in [json!(null), json!(""), json!(7), json!("a".repeat(129))] {
            assert_eq!(
                refusal(send(
                    json!({"connectionId": id, "content": "x", "tempId": "t"})
                )),
                "Invalid connection id."
            );
        }
        let msg = "tempId must be a string of at most 128 characters.";
        assert_eq!(
            refusal(send(json!({"connectionId": "c", "content": "x"}))),
            msg
        );
        for t in [json!(null), json!(1), json!("a".repeat(129))] {
            assert_eq!(
                refusal(send(
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
            refusal(send(obj))
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
                refusal(send(obj)),
                "mediaUrl is required with media fields.",
                "{key}"
            );
        }
    }
}
