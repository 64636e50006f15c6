//! `GET /api/health` (liveness) and `GET /api/health/ready` (readiness: this gateway can take
//! bookings, so Redis answers and every shard is whole; Postgres is reported, not required).

use http::header::RETRY_AFTER;
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::http::body::{Body, json};
use crate::http::error::ApiError;
use crate::state::AppState;

#[derive(Serialize)]
struct Live {
    status: &'static str,
}

pub fn live() -> Result<Response<Body>, ApiError> {
    json(StatusCode::OK, &Live { status: "ok" })
}

pub async fn ready(state: &AppState) -> Result<Response<Body>, ApiError> {
    let readiness = booking::health::check(
        &state.redis,
        &state.db,
        &state.guard,
        booking::health::Postgres::Reported,
    )
    .await;
    if readiness.is_ready() {
        return json(StatusCode::OK, &readiness);
    }
    let mut response = json(StatusCode::SERVICE_UNAVAILABLE, &readiness)?;
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    Ok(response)
}
