//! Readiness, as both binaries report it: Redis answers and every shard's data is whole. The
//! settler also needs Postgres to settle anything; the gateway only reports it, since bookings
//! need no Postgres and a busy database must not pull every gateway out of rotation.

use std::time::Duration;

use fred::prelude::{ClientLike, Pool};
use serde::Serialize;
use sqlx::PgPool;

use domain::ids::Shard;
use redis_store::recovery::ShardGuard;

/// A readiness check answers within this, whatever the dependencies do.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether Postgres decides readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Postgres {
    Required,
    Reported,
}

/// `{"status","redis","postgres","recoveringShards"}`: each dependency `ok` or `unavailable`,
/// and the shards whose data is not (yet) whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// `ok` when this process can do its work.
    status: &'static str,
    redis: &'static str,
    postgres: &'static str,
    /// Shards whose data is being rebuilt after Redis lost it; their bookings answer 503.
    recovering_shards: Vec<u8>,
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "unavailable" }
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == "ok"
    }

    /// Each dependency's name (a metric label) and whether it answered.
    pub fn dependencies(&self) -> [(&'static str, bool); 2] {
        [
            ("redis", self.redis == "ok"),
            ("postgres", self.postgres == "ok"),
        ]
    }
}

/// Pings Redis and Postgres at once, each within a second, and asks `guard` which shards are
/// not whole.
pub async fn check(redis: &Pool, db: &PgPool, guard: &ShardGuard, postgres: Postgres) -> Readiness {
    let redis_ping = tokio::time::timeout(CHECK_TIMEOUT, redis.next().ping::<String>(None));
    let postgres_ping = tokio::time::timeout(CHECK_TIMEOUT, pg_store::ping(db));
    let (redis_ping, postgres_ping) = tokio::join!(redis_ping, postgres_ping);
    let redis_ok = matches!(redis_ping, Ok(Ok(_)));
    let postgres_ok = matches!(postgres_ping, Ok(Ok(_)));
    if !redis_ok {
        tracing::warn!(?redis_ping, "readiness: redis unavailable");
    }
    if !postgres_ok {
        tracing::warn!(?postgres_ping, "readiness: postgres unavailable");
    }
    let recovering: Vec<u8> = guard.not_whole().into_iter().map(Shard::index).collect();
    let ready =
        redis_ok && recovering.is_empty() && (postgres_ok || postgres == Postgres::Reported);
    Readiness {
        status: verdict(ready),
        redis: verdict(redis_ok),
        postgres: verdict(postgres_ok),
        recovering_shards: recovering,
    }
}
