//! HTTP routes: the Engine.IO endpoint and the health check.

pub mod engineio;

use actix_web::{web, HttpResponse};

use crate::actors::session::EngineHandler;
use engineio::EngineEndpoint;

/// Engine.IO's default path, where `socket.io-client` connects.
pub const SOCKET_IO_PATH: &str = "/socket.io/";

/// `GET /healthz`: 200 while the server runs.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok")
}

/// Mounts an Engine.IO endpoint at `path` (with and without the trailing slash).
pub fn mount_engine<H: EngineHandler>(
    cfg: &mut web::ServiceConfig,
    path: &str,
    endpoint: web::Data<EngineEndpoint<H>>,
) {
    let bare = path.trim_end_matches('/');
    for p in [path, bare] {
        cfg.service(
            web::resource(p)
                .app_data(endpoint.clone())
                .route(web::route().to(engineio::handle::<H>)),
        );
    }
}
