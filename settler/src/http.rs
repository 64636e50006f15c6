//! The settler's small HTTP surface on `SETTLER_METRICS_ADDR`: `/metrics` (Prometheus text),
//! `/health` (liveness) and `/health/ready` (Redis and Postgres answer, every shard is whole).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::Pool;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use redis_store::recovery::ShardGuard;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Open requests get this long to finish after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Probe {
    pub redis: Pool,
    pub db: PgPool,
    pub guard: Arc<ShardGuard>,
    pub metrics: runtime::telemetry::Exporter,
}

fn answer(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

async fn route(probe: &Probe, request: Request<Incoming>) -> Response<Full<Bytes>> {
    const JSON: &str = "application/json";
    if request.method() != Method::GET {
        return answer(
            StatusCode::METHOD_NOT_ALLOWED,
            JSON,
            r#"{"status":"method not allowed"}"#,
        );
    }
    match request.uri().path() {
        "/metrics" => answer(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            probe.metrics.render(),
        ),
        "/health" => answer(StatusCode::OK, JSON, r#"{"status":"ok"}"#),
        "/health/ready" => {
            let readiness = runtime::health::check(
                &probe.redis,
                &probe.db,
                &probe.guard,
                runtime::health::Postgres::Required,
            )
            .await;
            crate::metrics::HEALTH.dependencies(&readiness);
            let status = if readiness.is_ready() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            match serde_json::to_vec(&readiness) {
                Ok(body) => answer(status, JSON, body),
                Err(_) => answer(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    JSON,
                    r#"{"status":"error"}"#,
                ),
            }
        }
        _ => answer(StatusCode::NOT_FOUND, JSON, r#"{"status":"not found"}"#),
    }
}

/// Serves until `shutdown`, then lets open requests finish.
pub async fn serve(listener: TcpListener, probe: Probe, shutdown: CancellationToken) {
    let probe = Arc::new(probe);
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "metrics listener accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let probe = Arc::clone(&probe);
        let service = service_fn(move |request| {
            let probe = Arc::clone(&probe);
            async move { Ok::<_, Infallible>(route(&probe, request).await) }
        });
        let connection =
            graceful.watch(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "metrics connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {}
    }
}
