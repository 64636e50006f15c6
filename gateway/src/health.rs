//! `GET /api/health` (liveness) and `GET /api/health/ready` (readiness: Redis and Postgres answer).

use std::time::Duration;

use fred::prelude::ClientLike;
use http::header::RETRY_AFTER;
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::body::{Body, json};
use crate::error::ApiError;
use crate::state::AppState;

/// A readiness probe answers within this, whatever the dependencies do.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Serialize)]
struct Live {
    status: &'static str,
}

pub fn live() -> Result<Response<Body>, ApiError> {
    json(StatusCode::OK, &Live { status: "ok" })
}

#[derive(Serialize)]
struct Ready {
    status: &'static str,
    redis: &'static str,
    postgres: &'static str,
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "unavailable" }
}

pub async fn ready(state: &AppState) -> Result<Response<Body>, ApiError> {
    let redis = tokio::time::timeout(CHECK_TIMEOUT, state.redis.next().ping::<String>(None));
    let postgres = tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(&state.db));
    let (redis, postgres) = tokio::join!(redis, postgres);
    let redis_ok = matches!(redis, Ok(Ok(_)));
    let postgres_ok = matches!(postgres, Ok(Ok(_)));
    if !redis_ok {
        tracing::warn!(?redis, "readiness: redis unavailable");
    }
    if !postgres_ok {
        tracing::warn!(?postgres, "readiness: postgres unavailable");
    }
    let ready = redis_ok && postgres_ok;
    let body = Ready {
        status: if ready { "ok" } else { "unavailable" },
        redis: verdict(redis_ok),
        postgres: verdict(postgres_ok),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = json(status, &body)?;
    if !ready {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    Ok(response)
}
