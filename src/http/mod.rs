//! HTTP routes besides Engine.IO's (which `engineio::endpoint` serves): the health check,
//! and the demo page (only with the built-in development secret, see [`demo`]); [`ops`]:
//! `/metrics` and `/readyz` on the operators' port (`metrics.bind`).

pub mod demo;
pub mod ops;

use actix_web::HttpResponse;

/// `GET /healthz`: 200 while the server runs.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok")
}
