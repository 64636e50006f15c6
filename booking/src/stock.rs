//! Stock in Redis, seen from outside the scripts: reading it, publishing changes, and rebuilding
//! tiers that Redis lacks (a new deployment, or a Redis that lost its data) from Postgres.

use std::collections::HashMap;

use fred::prelude::{KeysInterface, Pool, PubsubInterface};
use fred::types::SetOptions;
use futures::future::try_join_all;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::keys::{Keyspace, Shard};

/// A tier and where its keys live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TierRef {
    pub shard: Shard,
    pub concert_id: Uuid,
    pub tier_id: Uuid,
}

#[derive(Debug, thiserror::Error)]
pub enum StockError {
    #[error("redis: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
}

/// A stock change as published on the stock channel; the scripts publish the same shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StockEvent {
    pub concert_id: Uuid,
    pub ticket_tier_id: Uuid,
    pub available_quantity: i64,
}

/// Which per-tier counter to read.
#[derive(Clone, Copy, Debug)]
pub enum Counter {
    /// Tickets still available.
    Available,
    /// Tickets in bookings accepted but not yet settled.
    Pending,
}

/// The counter of each `(shard, tier id)`; `None` where Redis holds no such key. One MGET per
/// shard, since only keys of one shard share a cluster slot.
pub async fn read(
    redis: &Pool,
    keys: &Keyspace,
    counter: Counter,
    tiers: impl IntoIterator<Item = (Shard, Uuid)>,
) -> Result<HashMap<Uuid, Option<i64>>, fred::error::Error> {
    let mut by_shard: HashMap<Shard, Vec<Uuid>> = HashMap::new();
    for (shard, tier_id) in tiers {
        by_shard.entry(shard).or_default().push(tier_id);
    }
    let reads = by_shard.into_iter().map(|(shard, tier_ids)| async move {
        let names: Vec<String> = tier_ids
            .iter()
            .map(|id| match counter {
                Counter::Available => keys.stock(shard, *id),
                Counter::Pending => keys.pending(shard, *id),
            })
            .collect();
        let counts: Vec<Option<i64>> = redis.mget(names).await?;
        Ok::<_, fred::error::Error>(tier_ids.into_iter().zip(counts))
    });
    Ok(try_join_all(reads).await?.into_iter().flatten().collect())
}

/// Loads every tier of `tiers` that Redis lacks: total less confirmed (Postgres) less pending
/// (Redis). Pending is read first, so a booking settling in between is counted twice rather than
/// not at all: a rebuild can undersell, never oversell. `SET NX`, so live stock is never
/// overwritten. Returns how many tiers were loaded.
pub async fn rebuild_missing(
    redis: &Pool,
    db: &PgPool,
    keys: &Keyspace,
    tiers: &[TierRef],
) -> Result<usize, StockError> {
    let available = read(
        redis,
        keys,
        Counter::Available,
        tiers.iter().map(|t| (t.shard, t.tier_id)),
    )
    .await?;
    let missing: Vec<&TierRef> = tiers
        .iter()
        .filter(|tier| matches!(available.get(&tier.tier_id), Some(None)))
        .collect();
    if missing.is_empty() {
        return Ok(0);
    }
    let pending = read(
        redis,
        keys,
        Counter::Pending,
        missing.iter().map(|t| (t.shard, t.tier_id)),
    )
    .await?;
    let ids: Vec<Uuid> = missing.iter().map(|tier| tier.tier_id).collect();
    let unsold: HashMap<Uuid, i64> = sqlx::query_as(
        "SELECT t.id, t.total_quantity - COALESCE(SUM(b.quantity) \
                FILTER (WHERE b.status IN ('pending', 'confirmed')), 0) \
         FROM ticket_tiers t LEFT JOIN bookings b ON b.ticket_tier_id = t.id \
         WHERE t.id = ANY($1) GROUP BY t.id",
    )
    .bind(&ids)
    .fetch_all(db)
    .await?
    .into_iter()
    .collect();
    let mut loaded = 0;
    for tier in missing {
        let Some(unsold) = unsold.get(&tier.tier_id) else {
            continue;
        };
        let held = pending.get(&tier.tier_id).copied().flatten().unwrap_or(0);
        let available = (unsold - held).max(0);
        let set: Option<String> = redis
            .set(
                keys.stock(tier.shard, tier.tier_id),
                available,
                None,
                Some(SetOptions::NX),
                false,
            )
            .await?;
        if set.is_some() {
            loaded += 1;
            tracing::info!(tier_id = %tier.tier_id, available, "stock rebuilt from postgres");
            publish(redis, keys, tier.concert_id, tier.tier_id, available).await?;
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
    let payload = serde_json::to_string(&event).map_err(|error| {
        fred::error::Error::new(fred::error::ErrorKind::Parse, error.to_string())
    })?;
    redis.next().publish(keys.stock_channel(), payload).await
}
