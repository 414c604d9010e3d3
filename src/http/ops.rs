//! The operators' port (`metrics.bind`, not the public one): `GET /metrics` in the
//! Prometheus text format and `GET /readyz`.
//!
//! `/readyz` answers 200 `{"ready":true}` when every dependency (the database; Redis, when
//! configured) answers within `metrics.ready_timeout`, and 503 with a JSON body naming what
//! is down otherwise: `{"ready":false,"down":{"database":"timed out after 1000 ms"}}`. From
//! the first moment of a shutdown it answers 503 `{"ready":false,"down":{"server":"shutting
//! down"}}`, so that a load balancer stops sending clients before the node stops accepting.
//! `/healthz` on the public port stays the liveness check.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use prometheus::{Encoder, IntGauge, Registry, TextEncoder};
use serde_json::{json, Map, Value};

/// A dependency's check: `Ok` when it answered, `Err(why)` otherwise.
pub(crate) type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A named dependency `/readyz` checks.
pub struct ReadinessCheck {
    /// Its name in the 503 body (`database`, `redis`).
    pub name: &'static str,
    /// Runs the check once.
    pub check: Box<dyn Fn() -> CheckFuture + Send + Sync>,
}

/// What the operators' routes read.
pub struct Ops {
    /// Every series.
    pub registry: Registry,
    /// Sets the gauges that are read rather than counted, just before a scrape.
    pub refresh: Box<dyn Fn() + Send + Sync>,
    /// Whether the server still admits sessions (`false` once shutting down).
    pub accepting: Box<dyn Fn() -> bool + Send + Sync>,
    /// The dependencies.
    pub checks: Vec<ReadinessCheck>,
    /// How long each check may take.
    pub timeout: Duration,
}

/// What the allocator holds, read at each scrape: `courier_allocator_allocated_bytes`
/// (live allocations: what a leak would grow) and `courier_allocator_resident_bytes` (pages
/// the allocator keeps mapped: what fragmentation would grow). Both are 0 when the process
/// does not allocate through jemalloc (the `courier` binary does).
pub(crate) fn allocator_gauges(registry: &Registry) -> prometheus::Result<impl Fn() + Send + Sync> {
    let allocated = IntGauge::new(
        "courier_allocator_allocated_bytes",
        "Bytes in live allocations (jemalloc stats.allocated)",
    )?;
    let resident = IntGauge::new(
        "courier_allocator_resident_bytes",
        "Bytes in pages the allocator keeps resident (jemalloc stats.resident)",
    )?;
    registry.register(Box::new(allocated.clone()))?;
    registry.register(Box::new(resident.clone()))?;
    Ok(move || {
        // The statistics are a snapshot taken when the epoch advances.
        if tikv_jemalloc_ctl::epoch::advance().is_ok() {
            if let Ok(n) = tikv_jemalloc_ctl::stats::allocated::read() {
                allocated.set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            if let Ok(n) = tikv_jemalloc_ctl::stats::resident::read() {
                resident.set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    })
}

/// The routes: `/metrics` and `/readyz`.
pub fn routes(ops: Arc<Ops>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::from(ops))
            .route("/metrics", web::get().to(metrics))
            .route("/readyz", web::get().to(readyz));
    }
}

async fn metrics(ops: web::Data<Ops>) -> HttpResponse {
    (ops.refresh)();
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&ops.registry.gather(), &mut body) {
        Ok(()) => HttpResponse::Ok()
            .content_type(encoder.format_type())
            .body(body),
        Err(e) => {
            log::error!("metrics: cannot encode: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

async fn readyz(ops: web::Data<Ops>) -> HttpResponse {
    let mut down = Map::new();
    if !(ops.accepting)() {
        down.insert("server".into(), Value::from("shutting down"));
    } else {
        let checks = ops.checks.iter().map(|c| async {
            let outcome = match tokio::time::timeout(ops.timeout, (c.check)()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("timed out after {} ms", ops.timeout.as_millis())),
            };
            (c.name, outcome)
        });
        for (name, outcome) in futures_util::future::join_all(checks).await {
            if let Err(why) = outcome {
                down.insert(name.into(), Value::from(why));
            }
        }
    }
    if down.is_empty() {
        HttpResponse::Ok().json(json!({ "ready": true }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({ "ready": false, "down": down }))
    }
}
