//! The background loop that keeps this gateway's catalog and Redis stock in step with Postgres:
//! concerts created through another gateway appear, and a tier whose stock is missing from a
//! whole shard (its concert's stock write failed) is loaded, without a restart. Shards that lost
//! their data are rebuilt whole by the shard guard instead (`redis_store::recovery`).

use std::sync::Arc;
use std::time::Duration;

use redis_store::recovery;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// How often the catalog is re-read when nothing asks sooner.
const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// One refresh: the catalog from Postgres, then any missing stock.
pub async fn refresh(state: &AppState) {
    if let Err(error) = state.catalog.reload(&state.db).await {
        tracing::warn!(%error, "catalog refresh failed; keeping the last one");
    }
    let tiers = state.catalog.current().tier_refs();
    if let Err(error) = recovery::load_missing(&state.redis, &state.db, &state.keys, &tiers).await {
        tracing::warn!(%error, "loading missing stock failed; will retry");
    }
}

/// Refreshes every `REFRESH_INTERVAL`, or at once when a request finds stock missing or another
/// gateway created a concert.
pub async fn run(state: Arc<AppState>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(REFRESH_INTERVAL) => {}
            () = state.stock.missing.notified() => {}
            () = state.streams.hub.catalog_changed() => {}
        }
        refresh(&state).await;
    }
}
