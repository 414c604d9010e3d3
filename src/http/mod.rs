//! HTTP routes besides Engine.IO's (which `engineio::endpoint` serves): the health check,
//! and the demo page (only with the built-in development secret, see [`demo`]); [`ops`]:
//! `/metrics` and `/readyz` on the operators' port (`metrics.bind`). With the development
//! secret, every route is behind [`loopback_host_only`].

pub mod demo;
pub mod ops;
pub mod settings;

use std::net::Ipv6Addr;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::HttpResponse;
use log::debug;

/// `GET /healthz`: 200 while the server runs.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok")
}

/// The body of the answer to a request for another host name under the development secret.
pub(crate) const NOT_LOOPBACK: &str = "This Courier runs with the built-in development secret and \
    answers only requests for localhost, 127.0.0.1 or [::1] (any port): this request names \
    another host (a defence against DNS rebinding). Open the page as http://localhost:<port>/, \
    or set SOCKET_SECRET to the app's secret to serve other host names.\n";

/// Whether a `Host` header (`name[:port]`) names this machine's loopback as the
/// development mode allows: `localhost`, `127.0.0.1` or `[::1]`, with any port or none.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let port_ok = |port: Option<&str>| {
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
    };
    if let Some(rest) = host.strip_prefix('[') {
        let Some((address, after)) = rest.split_once(']') else {
            return false;
        };
        let port = match after {
            "" => None,
            after => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return false,
            },
        };
        return port_ok(port) && address.parse::<Ipv6Addr>() == Ok(Ipv6Addr::LOCALHOST);
    }
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    port_ok(port) && (name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1")
}

/// Middleware for the development secret, under which anyone can forge tokens: requests
/// whose `Host` (or HTTP/2 authority) is not a loopback name ([`is_loopback_host`]) get
/// 421 Misdirected Request, on every route. The listener is bound to loopback in that mode,
/// but a page on another site whose name an attacker resolves to 127.0.0.1 (DNS rebinding)
/// would otherwise be same-origin with this server.
pub(crate) async fn loopback_host_only(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    if host.as_deref().is_some_and(is_loopback_host) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    debug!(
        "refused a request for host {host:?}: the development secret serves loopback names only"
    );
    let response = HttpResponse::build(StatusCode::MISDIRECTED_REQUEST)
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(NOT_LOOPBACK);
    Ok(req.into_response(response))
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_host_names() {
        for host in [
            "localhost",
            "localhost:4000",
            "LocalHost:1",
            "127.0.0.1",
            "127.0.0.1:4000",
            "[::1]",
            "[::1]:4000",
            "[0:0:0:0:0:0:0:1]:80",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "rebind.example",
            "rebind.example:4000",
            "localhost.rebind.example",
            "localhost.",
            "127.0.0.2",
            "127.0.0.1.nip.io:4000",
            "0.0.0.0:4000",
            "[::2]:4000",
            "[::1]x",
            "[::1",
            "localhost:",
            "localhost:40a0",
            "localhost:4000:1",
            "user@localhost",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
