//! Stock in Redis: reading it for the catalog, and loading tiers that are missing from Redis
//! (a new deployment, or a Redis that lost its data) from Postgres.

use std::collections::HashMap;

use fred::prelude::{KeysInterface, Pool, PubsubInterface};
use fred::types::SetOptions;
use futures::future::try_join_all;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use booking::keys::{Keyspace, Shard};

use crate::catalog::Catalog;

#[derive(Debug, thiserror::Error)]
pub enum StockError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
}

/// A stock change as published on the stock channel; the reservation script publishes the same
/// shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StockEvent {
    pub concert_id: Uuid,
    pub ticket_tier_id: Uuid,
    pub available_quantity: i64,
}

/// Available tickets of each `(shard, tier id)`; `None` where Redis holds no stock for a tier.
/// One MGET per shard, since only keys of one shard share a cluster slot.
pub async fn read(
    redis: &Pool,
    keys: &Keyspace,
    tiers: impl IntoIterator<Item = (Shard, Uuid)>,
) -> Result<HashMap<Uuid, Option<i64>>, fred::error::Error> {
    let mut by_shard: HashMap<Shard, Vec<Uuid>> = HashMap::new();
    for (shard, tier_id) in tiers {
        by_shard.entry(shard).or_default().push(tier_id);
    }
    let reads = by_shard.into_iter().map(|(shard, tier_ids)| async move {
        let stock_keys: Vec<String> = tier_ids.iter().map(|id| keys.stock(shard, *id)).collect();
        let counts: Vec<Option<i64>> = if stock_keys.len() == 1 {
            vec![redis.get(&stock_keys[0]).await?]
        } else {
            redis.mget(stock_keys).await?
        };
        Ok::<_, fred::error::Error>(tier_ids.into_iter().zip(counts))
    });
    Ok(try_join_all(reads).await?.into_iter().flatten().collect())
}

/// Loads every tier Redis does not know from Postgres: its total less what pending and confirmed
/// bookings hold. `SET NX`, so a gateway racing another, or a booking, never overwrites live
/// stock. Returns how many tiers were loaded.
pub async fn load_missing(
    redis: &Pool,
    db: &PgPool,
    keys: &Keyspace,
    catalog: &Catalog,
) -> Result<usize, StockError> {
    let stock = read(redis, keys, catalog.tiers()).await?;
    let missing: Vec<Uuid> = stock
        .into_iter()
        .filter_map(|(tier_id, available)| available.is_none().then_some(tier_id))
        .collect();
    if missing.is_empty() {
        return Ok(0);
    }
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT t.id, t.total_quantity - COALESCE(SUM(b.quantity) \
                FILTER (WHERE b.status IN ('pending', 'confirmed')), 0) \
         FROM ticket_tiers t LEFT JOIN bookings b ON b.ticket_tier_id = t.id \
         WHERE t.id = ANY($1) GROUP BY t.id",
    )
    .bind(&missing)
    .fetch_all(db)
    .await?;
    let mut loaded = 0;
    for (tier_id, available) in rows {
        let Some(entry) = catalog.tier(tier_id) else {
            continue;
        };
        let key = keys.stock(entry.concert.shard, tier_id);
        let set: Option<String> = redis
            .set(&key, available, None, Some(SetOptions::NX), false)
            .await?;
        if set.is_some() {
            loaded += 1;
            tracing::info!(%tier_id, available, "stock loaded from postgres");
            publish(redis, keys, entry.concert.id, tier_id, available).await?;
        }
    }
    Ok(loaded)
}

/// Publishes a stock change for live clients.
pub async fn publish(
    redis: &Pool,
    keys: &Keyspace,
    concert_id: Uuid,
    ticket_tier_id: Uuid,
    available_quantity: i64,
) -> Result<(), fred::error::Error> {
    let event = StockEvent {
        concert_id,
        ticket_tier_id,
        available_quantity,
    };
    let payload = simd_json::to_string(&event).map_err(|error| {
        fred::error::Error::new(fred::error::ErrorKind::Parse, error.to_string())
    })?;
    redis.next().publish(keys.stock_channel(), payload).await
}
