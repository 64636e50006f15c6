//! Customers' held counts get their expiry here, off the booking path. A booking creates its
//! concert's `held:<concertId>` hash without one: setting it in `reserve.lua` on every booking
//! cost Redis about a tenth of its booking rate. Each settler sweeps every concert once per
//! `RECONCILE_INTERVAL_S` and gives a hash that has no expiry one, a day after the concert
//! (`EXPIREAT ... NX`: a hash that has one keeps it, and a missing hash stays missing).

use std::collections::BTreeMap;

use chrono::Utc;
use fred::prelude::{KeysInterface, Pool};
use fred::types::ExpireOptions;
use sqlx::PgPool;

use domain::ids::Shard;
use redis_store::error::StoreError;
use redis_store::keys::{Keyspace, held_until};

use crate::store;

/// Concerts per pipeline.
const PAGE: usize = 500;

/// Gives every concert's held counts an expiry where they have none. Returns how many got one.
pub async fn sweep(redis: &Pool, db: &PgPool, keys: &Keyspace) -> Result<u64, StoreError> {
    let now = Utc::now();
    let mut by_shard: BTreeMap<Shard, Vec<(String, i64)>> = BTreeMap::new();
    for concert in store::concerts(db).await? {
        let Ok(shard) = u8::try_from(concert.shard) else {
            continue;
        };
        let shard = Shard::new(shard);
        by_shard
            .entry(shard)
            .or_default()
            .push((keys.held(shard, concert.id), held_until(concert.date, now)));
    }
    let mut given = 0;
    for concerts in by_shard.values() {
        for page in concerts.chunks(PAGE) {
            let pipeline = redis.next().pipeline();
            for (key, until) in page {
                let _: () = pipeline
                    .expire_at(key, *until, Some(ExpireOptions::NX))
                    .await?;
            }
            let set: Vec<u64> = pipeline.all().await?;
            given += set.iter().sum::<u64>();
        }
    }
    Ok(given)
}
