//! What the chat events' argument checks share: the client-facing [`ArgError`], and
//! validators for ids, URLs and text.
//!
//! The browser runs the unmodified socket.io-client, so an event's arguments arrive as JSON
//! values. Each event's file turns them into a typed request with these helpers, or into an
//! [`ArgError`] whose [`message`](ArgError::message) is sent back to the client as is.
//! Common rules: fields the server does not know are ignored, and JSON `null` in an
//! optional field means the field is absent.
//!
//! Pure code (no I/O, no actix): the fuzz targets under `tests/fuzz` build it on its own.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};

/// Most characters in a connection id, message id or `tempId`.
pub const MAX_ID_CHARS: usize = 128;
/// Most characters in `mediaUrl` and `mediaThumbnail`.
pub(crate) const MAX_URL_CHARS: usize = 2048;
/// Most characters in `mediaName`.
pub(crate) const MAX_MEDIA_NAME_CHARS: usize = 255;

pub(crate) const INVALID_CONNECTION_ID: &str = "Invalid connection id.";
pub(crate) const INVALID_MESSAGE_ID: &str = "Invalid message id.";
pub(crate) const INVALID_PAYLOAD: &str = "Invalid payload.";

/// Why an event's arguments were refused; [`message`](Self::message) is client-facing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgError(Cow<'static, str>);

impl ArgError {
    /// An error with a fixed message.
    pub const fn fixed(message: &'static str) -> Self {
        ArgError(Cow::Borrowed(message))
    }

    /// An error with a message made for this case.
    pub(crate) fn owned(message: String) -> Self {
        ArgError(Cow::Owned(message))
    }

    /// The message for the client, a short sentence ending with a period.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

/// A refusal's message (tests: the checks must refuse `r`).
#[cfg(test)]
pub fn refusal<T: fmt::Debug>(r: Result<T, ArgError>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.message().to_owned(),
    }
}

/// Values of `messages.mediaType`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum MediaType {
    Image,
    Video,
    Audio,
    File,
}

impl MediaType {
    /// `"image"`, `"video"`, `"audio"`, `"file"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::File => "file",
        }
    }

    /// The media type named `s` exactly (lowercase), if any.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "image" => Some(Self::Image),
            "video" => Some(Self::Video),
            "audio" => Some(Self::Audio),
            "file" => Some(Self::File),
            _ => None,
        }
    }
}

/// The field `key` of `obj`, `None` when missing or `null`.
pub fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// A non-empty string of at most [`MAX_ID_CHARS`] characters.
pub(crate) fn id_string(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_ID_CHARS => {
            Some(s.clone())
        }
        _ => None,
    }
}

/// The connection id of an object argument `{connectionId}`.
pub fn connection_id(obj: &Map<String, Value>) -> Result<String, ArgError> {
    id_string(obj.get("connectionId")).ok_or(ArgError::fixed(INVALID_CONNECTION_ID))
}

/// The first argument as an object, or `error`.
pub(crate) fn object<'a>(
    args: &'a [Value],
    error: &'static str,
) -> Result<&'a Map<String, Value>, ArgError> {
    match args.first() {
        Some(Value::Object(obj)) => Ok(obj),
        _ => Err(ArgError::fixed(error)),
    }
}

/// A string starting with `http://` or `https://` (scheme in any case) followed by at least
/// one character, at most [`MAX_URL_CHARS`] characters long, without control characters.
pub(crate) fn http_url(v: &Value) -> Option<String> {
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
pub(crate) fn js_trim(s: &str) -> &str {
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
    fn payload_error_displays_its_message() {
        let e = ArgError::fixed(INVALID_PAYLOAD);
        assert_eq!(e.to_string(), "Invalid payload.");
        assert_eq!(e.message(), "Invalid payload.");
    }

    #[test]
    fn media_types_by_their_exact_names() {
        for m in [
            MediaType::Image,
            MediaType::Video,
            MediaType::Audio,
            MediaType::File,
        ] {
            assert_eq!(MediaType::parse(m.as_str()), Some(m));
        }
        assert_eq!(MediaType::parse("IMAGE"), None);
        assert_eq!(MediaType::parse(""), None);
    }
}
