//! Readiness of the two dependencies, as both binaries report it.

use std::time::Duration;

use fred::prelude::{ClientLike, Pool};
use serde::Serialize;
use sqlx::PgPool;

/// A readiness check answers within this, whatever the dependencies do.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// `{"status","redis","postgres"}`, each `ok` or `unavailable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Readiness {
    status: &'static str,
    redis: &'static str,
    postgres: &'static str,
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "unavailable" }
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == "ok"
    }
}

/// Pings Redis and Postgres at once, each within a second.
pub async fn check(redis: &Pool, db: &PgPool) -> Readiness {
    let redis_ping = tokio::time::timeout(CHECK_TIMEOUT, redis.next().ping::<String>(None));
    let postgres_ping = tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(db));
    let (redis_ping, postgres_ping) = tokio::join!(redis_ping, postgres_ping);
    let redis_ok = matches!(redis_ping, Ok(Ok(_)));
    let postgres_ok = matches!(postgres_ping, Ok(Ok(_)));
    if !redis_ok {
        tracing::warn!(?redis_ping, "readiness: redis unavailable");
    }
    if !postgres_ok {
        tracing::warn!(?postgres_ping, "readiness: postgres unavailable");
    }
    Readiness {
        status: verdict(redis_ok && postgres_ok),
        redis: verdict(redis_ok),
        postgres: verdict(postgres_ok),
    }
}
