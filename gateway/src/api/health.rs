//! `GET /api/health` (liveness) and `GET /api/health/ready` (readiness: this gateway can take
//! bookings, so Redis answers and every shard is whole; Postgres is reported, not required).

use fred::prelude::Pool;
use http::header::RETRY_AFTER;
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use redis_store::recovery::ShardGuard;
use runtime::health::Readiness;

use crate::http::body::{Body, json};
use crate::http::error::ApiError;

/// The process runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct Live {
    status: &'static str,
}

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/api/health", operation_id = "health", tag = "operations",
    responses((status = 200, description = "Alive", body = Live))
)]
pub fn live() -> Result<Response<Body>, ApiError> {
    json(StatusCode::OK, &Live { status: "ok" })
}

/// Readiness: this gateway can take bookings (Redis answers and every shard is whole). Postgres'
/// state is reported but does not fail it: bookings need no Postgres.
#[utoipa::path(get, path = "/api/health/ready", operation_id = "ready", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready, and why", body = Readiness,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    )
)]
pub async fn ready(
    redis: &Pool,
    db: &PgPool,
    guard: &ShardGuard,
) -> Result<Response<Body>, ApiError> {
    let readiness =
        runtime::health::check(redis, db, guard, runtime::health::Postgres::Reported).await;
    crate::metrics::HEALTH.dependencies(&readiness);
    if readiness.is_ready() {
        return json(StatusCode::OK, &readiness);
    }
    let mut response = json(StatusCode::SERVICE_UNAVAILABLE, &readiness)?;
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    Ok(response)
}

/// Prometheus metrics of this gateway (`gateway_*`).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text", content_type = "text/plain", body = String))
)]
pub fn metrics(exporter: &runtime::telemetry::Exporter) -> Response<Body> {
    let mut response = Response::new(crate::http::body::full(exporter.render()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
