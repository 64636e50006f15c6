//! Readiness, as both binaries report it: Redis answers and every shard's data is whole. The
//! settler also needs Postgres to settle anything; the gateway only reports it, since bookings
//! need no Postgres and a busy database must not pull every gateway out of rotation.

use std::time::Duration;

use fred::prelude::{ClientLike, Pool};
use serde::Serialize;
use sqlx::PgPool;

use domain::ids::Shard;
use redis_store::recovery::{EpochChange, ShardGuard};

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

/// What a service reports of its dependencies and of the shards' wholeness: the same three
/// metrics in both binaries, each named for its service where the binary defines it.
#[derive(Debug, Clone, Copy)]
pub struct HealthMetrics {
    /// `gateway` or `settler`, for the help texts.
    pub service: &'static str,
    /// Counter: shards this process rebuilt, by cause.
    pub recoveries: &'static str,
    /// Gauge: 1 when a dependency answered the last readiness check, by dependency.
    pub dependency_up: &'static str,
    /// Gauge: shards whose data is not known to be whole.
    pub not_whole: &'static str,
}

impl HealthMetrics {
    /// Registers the three help texts; `not_whole_means` says what such a shard costs here.
    pub fn describe(self, not_whole_means: &str) {
        metrics::describe_counter!(
            self.recoveries,
            format!(
                "Shards this {} rebuilt after Redis lost (or may have lost) their data, by cause (lost, restarted).",
                self.service
            )
        );
        metrics::describe_gauge!(
            self.dependency_up,
            "1 when a dependency (redis, postgres) answered the last readiness check, else 0."
        );
        metrics::describe_gauge!(
            self.not_whole,
            format!(
                "Shards whose data is not known to be whole (recovering, or unchecked while Redis is away){not_whole_means}."
            )
        );
    }

    /// Records what a readiness check found of each dependency.
    pub fn dependencies(self, readiness: &Readiness) {
        for (dependency, up) in readiness.dependencies() {
            metrics::gauge!(self.dependency_up, "dependency" => dependency)
                .set(f64::from(u8::from(up)));
        }
    }

    /// Records a round of the shard guard: how many shards are not whole, and each recovery.
    pub fn guarded(self, guard: &ShardGuard, changes: &[EpochChange]) {
        metrics::gauge!(self.not_whole).set(guard.not_whole().len() as f64);
        for report in changes
            .iter()
            .filter_map(|change| change.recovered.as_ref())
        {
            metrics::counter!(self.recoveries, "cause" => report.cause.label()).increment(1);
        }
    }
}
