//! Browser origins: which may use the endpoint (and which only with a restricted session,
//! [`ClientInfo::restricted`]), the same-origin rule, and CORS (preflights, the headers of
//! an allowed origin's answers).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use log::debug;

use super::error::EngineError;
use super::state::EngineEndpoint;
use crate::engineio::client::{client_info, ClientInfo};
use crate::engineio::session::EngineHandler;

impl<H: EngineHandler> EngineEndpoint<H> {
    /// The request's `Origin`, if it is allowed; `Err(Forbidden)` for any other origin.
    /// Requests without an `Origin` (non-browser clients) are allowed.
    pub(super) fn allowed_origin(&self, req: &HttpRequest) -> Result<Option<String>, EngineError> {
        let Some(origin) = req.headers().get(header::ORIGIN) else {
            return Ok(None);
        };
        let origin = origin.to_str().map_err(|_| EngineError::Forbidden)?;
        let listed = |list: &[String]| {
            list.iter()
                .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
        };
        let allowed = listed(&self.options.cors_origins)
            || listed(&self.options.restricted_origins)
            || (self.options.allow_same_origin && is_same_origin(req, origin));
        if allowed {
            Ok(Some(origin.to_string()))
        } else {
            debug!("refused a request from origin {origin:?}");
            Err(EngineError::Forbidden)
        }
    }

    /// Who the client of a new session is; marked restricted if its `Origin` is one of
    /// `restricted_origins` (and not an origin allowed without restriction).
    pub(super) fn client_info(&self, req: &HttpRequest) -> ClientInfo {
        let mut client = client_info(req, &self.options.trusted_proxies);
        if let Some(origin) = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
        {
            let listed = |list: &[String]| {
                list.iter()
                    .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
            };
            client.restricted = listed(&self.options.restricted_origins)
                && !listed(&self.options.cors_origins)
                && !(self.options.allow_same_origin && is_same_origin(req, origin));
        }
        client
    }
}

/// Whether `origin` (`http(s)://host[:port]`) names the host `req` was sent to.
fn is_same_origin(req: &HttpRequest, origin: &str) -> bool {
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| !authority.is_empty() && authority.eq_ignore_ascii_case(host))
}

/// A CORS preflight: 204 with the allowed methods and headers (the origin headers are added
/// by [`handle`](super::handle) when the origin is allowed).
pub(super) fn preflight(req: &HttpRequest) -> HttpResponse {
    let mut response = HttpResponse::NoContent();
    response.insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"));
    let requested = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("content-type"));
    response.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, requested));
    response.insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"));
    response.finish()
}
