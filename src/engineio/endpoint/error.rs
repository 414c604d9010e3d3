//! Engine.IO's HTTP errors ([`EngineError`]: a code, a message, a status) and the 503 of a
//! handshake past a bound ([`BUSY_CODE`]).

use actix_web::http::header;
use actix_web::HttpResponse;
use serde_json::json;

/// Engine.IO's error codes for HTTP errors, with their messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineError {
    /// `0`: the transport is not known or not enabled.
    UnknownTransport,
    /// `1`: the sid is not a live session.
    UnknownSid,
    /// `2`: wrong HTTP method for a handshake.
    BadHandshakeMethod,
    /// `3`: anything else that is wrong with the request.
    BadRequest,
    /// `4`: refused (e.g. a disallowed origin).
    Forbidden,
    /// `5`: an `EIO` other than 4.
    UnsupportedProtocolVersion,
}

impl EngineError {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            EngineError::UnknownTransport => 0,
            EngineError::UnknownSid => 1,
            EngineError::BadHandshakeMethod => 2,
            EngineError::BadRequest => 3,
            EngineError::Forbidden => 4,
            EngineError::UnsupportedProtocolVersion => 5,
        }
    }

    /// The message Engine.IO sends with the code.
    pub fn message(self) -> &'static str {
        match self {
            EngineError::UnknownTransport => "Transport unknown",
            EngineError::UnknownSid => "Session ID unknown",
            EngineError::BadHandshakeMethod => "Bad handshake method",
            EngineError::BadRequest => "Bad request",
            EngineError::Forbidden => "Forbidden",
            EngineError::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    /// The HTTP response: 403 for `Forbidden`, 400 otherwise, with `{"code","message"}`.
    pub fn response(self) -> HttpResponse {
        let body = json!({ "code": self.code(), "message": self.message() });
        match self {
            EngineError::Forbidden => HttpResponse::Forbidden().json(body),
            _ => HttpResponse::BadRequest().json(body),
        }
    }
}

/// The `code` of the 503 answer to a handshake past a bound (Engine.IO's codes stop at 5).
pub const BUSY_CODE: u8 = 6;

/// The answer to a handshake past a bound: 503 `{"code":6,"message":"Server busy"}`.
pub(super) fn busy() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, "1"))
        .json(json!({ "code": BUSY_CODE, "message": "Server busy" }))
}
